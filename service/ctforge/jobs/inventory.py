"""The job's own inventory: the staging CT at the address the Proxmox API gives for it now.

Every run gets two inventories: the control one (settings.inventory: localhost and the Proxmox
endpoint from PROXMOX_*) and this one, written into the job's private_data_dir before each run.
A finalize finds its staging CT here as host `staging` of group ctforge_staging; the playbooks
still look the CT up themselves (they run by hand too) and agree with it. A provision has no CT
yet: its file lists the group empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ctforge.db.models import utcnow


def staging_hosts(vmid: int | None, address: str | None, build_key: Path) -> dict[str, Any]:
    if vmid is None or address is None:
        return {}
    return {"staging": {"ansible_host": address, "ansible_user": "root",
                        "ansible_ssh_private_key_file": str(build_key),
                        "ansible_python_interpreter": "/usr/bin/python3", "ctforge_vmid": vmid}}


def write_inventory(job_dir: Path, job_id: object, vmid: int | None, address: str | None,
                    build_key: Path) -> Path:
    path = job_dir / "inventory" / "staging.yml"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    hosts = staging_hosts(vmid, address, build_key)
    document = {"all": {"children": {"ctforge_staging": {"hosts": hosts} if hosts else {}}}}
    what = f"staging CT {vmid} at {address}, from the Proxmox API" if hosts else "no staging CT yet"
    note = f"# Written by ctforge for job {job_id} at {utcnow().isoformat(timespec='seconds')}: {what}.\n"
    path.write_text(note + yaml.safe_dump(document, sort_keys=False))
    return path
