"""The records' rules: templates, VMID claims, users and tokens. The only place a status moves."""
