"""Filter ssh_fingerprint: the SHA256 fingerprint of an OpenSSH public key line, as `ssh-keygen -l` prints it.

Computed on the controller from the key itself, so recording which key a template trusts costs no process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: ssh_fingerprint
short_description: SHA256 fingerprint of an OpenSSH public key
description:
  - Takes a public key line (C(ssh-ed25519 AAAA... comment)) and returns C(SHA256:...), the form
    C(ssh-keygen -l -E sha256) prints.
positional: _input
options:
  _input: {description: The public key line., type: str, required: true}
"""


def ssh_fingerprint(pubkey: str) -> str:
    fields = str(pubkey).split()
    if len(fields) < 2:
        raise AnsibleFilterError(f"ssh_fingerprint: not an OpenSSH public key line: {str(pubkey)[:40]!r}")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AnsibleFilterError(f"ssh_fingerprint: the key's base64 part does not decode: {exc}") from None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class FilterModule:
    def filters(self):
        return {"ssh_fingerprint": ssh_fingerprint}
