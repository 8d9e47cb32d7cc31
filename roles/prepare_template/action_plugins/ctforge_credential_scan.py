"""Action plugin ctforge_credential_scan: credentials on a host found by what they are, on the controller.

A person customising a staging CT leaves credentials no path list foresees: a key they generated in a
project directory, a token in a `.env`, a password in a remote URL of a clone. The prepare_template role
removes what it knows by path; this finds the rest by content, with the detectors of Yelp's detect-secrets
(a maintained rule set: private keys, AWS, GitHub, GitLab, npm, PyPI, OpenAI, Slack, Stripe... tokens,
user:password in URLs, JWTs, `password = ...` assignments), which runs here on the controller so that
nothing of the scanner is ever installed in the CT.

The host runs `cmd`, which writes the candidate files (the role's scan.sh.j2 chooses them) as one gzip'd
tar, base64-encoded, on stdout; the files are unpacked into a private temporary directory, scanned and
deleted. Only paths, finding types and line numbers come back: never a secret, its hash or its line.
With `remove_key_files`, a file that holds nothing but private keys (PEM blocks, PuTTY key files) is
removed from the host with its `.pub` companion; a finding in any other file is reported, for a person
to decide: the scrub cannot know what else the file holds. A line with a `pragma: allowlist secret` comment
is not reported (detect-secrets' own marker for a false positive).

detect-secrets runs each detector on each line through a layer of argument injection: about 200 KB of
text a second on one core, so the role's scan script sends text files only, up to a size, outside the
directories of installed packages. Not used: the high-entropy detectors (they flag every checksum,
integrity hash and embedded certificate of ordinary configuration) and the public-IP detector (an address
is no credential). Check mode scans and reports what it would remove.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import shlex
import tarfile
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: ctforge_credential_scan
short_description: Find credentials on the host by content, with detect-secrets running on the controller
options:
  cmd:
    description: >-
      A bash script that writes the files to scan as a gzip'd tar (names relative to /), base64-encoded,
      on stdout.
    type: str
    required: true
  remove_key_files:
    description: Remove the files that hold nothing but private keys (and their .pub companions).
    type: bool
    default: false
  known:
    description: >-
      Paths reported already (by the role's check by path, a reason in parentheses may follow each):
      findings at or under them are left out of `found`.
    type: list
    elements: str
    default: []
"""

RETURN = r"""
found: {description: "Each finding left on the host, as 'PATH (type, type: line N)'.", type: list}
paths: {description: The paths of those findings., type: list}
removed: {description: The private key files removed (or that would be, in check mode)., type: list}
scanned: {description: How many files were scanned., type: int}
"""

# Detectors left out of detect-secrets' set, and why: see the module docstring.
EXCLUDED_DETECTORS = frozenset({"Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector"})
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.S)


def is_key_file(text: str) -> bool:
    """True when the file holds private keys and nothing else (certificates may sit beside them)."""
    if text.startswith("PuTTY-User-Key-File-"):
        return True
    keys = [m for m in _PEM_BLOCK.finditer(text) if "PRIVATE KEY" in m.group(1)]
    return bool(keys) and not _PEM_BLOCK.sub("", text).strip()


def scan_tree(root: str) -> dict[str, list[tuple[str, int]]]:
    """Findings of detect-secrets' detectors in the files under root: relative path → [(type, line)]."""
    from detect_secrets import SecretsCollection
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import transient_settings

    detectors = sorted(cls.__name__ for cls in get_mapping_from_secret_type_to_class().values()
                       if cls.__name__ not in EXCLUDED_DETECTORS)
    findings: dict[str, list[tuple[str, int]]] = {}
    with transient_settings({"plugins_used": [{"name": name} for name in detectors]}):
        secrets = SecretsCollection(root=root)
        for folder, _, names in os.walk(root):
            for name in names:
                secrets.scan_file(os.path.relpath(os.path.join(folder, name), root))
        for filename, secret in secrets:
            findings.setdefault(filename, []).append((secret.type, secret.line_number))
    return findings


def describe(path: str, hits: list[tuple[str, int]]) -> str:
    return f"{path} ({', '.join(f'{kind}: line {line}' for kind, line in sorted(set(hits)))})"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _VALID_ARGS = frozenset(("cmd", "remove_key_files", "known"))

    def _run_on_host(self, script: str) -> dict:
        return self._low_level_execute_command("/bin/bash -s", sudoable=True, in_data=script.encode())

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        script = self._task.args.get("cmd")
        if not isinstance(script, str) or not script.strip():
            raise AnsibleActionFail("ctforge_credential_scan needs `cmd`, the script that writes the tar")
        remove = self._task.args.get("remove_key_files", False)
        if not isinstance(remove, bool):
            raise AnsibleActionFail("ctforge_credential_scan: remove_key_files must be true or false")
        known = self._task.args.get("known") or []
        if not isinstance(known, list) or not all(isinstance(item, str) for item in known):
            raise AnsibleActionFail("ctforge_credential_scan: known must be a list of paths")
        known_paths = tuple(re.sub(r" \(.*\)$", "", item).rstrip("/") for item in known)
        try:
            import detect_secrets  # noqa: F401
        except ImportError as exc:
            raise AnsibleActionFail("detect-secrets is missing on the controller: run scripts/setup.sh"
                                    ) from exc

        findings, keys, scanned = self._scan(script)
        removed: list[str] = []
        if remove and keys:
            removed = keys if self._task.check_mode else self._remove(keys)
        left = {"/" + rel: hits for rel, hits in findings.items() if rel not in removed
                and not any(f"/{rel}" == path or f"/{rel}".startswith(path + "/") for path in known_paths)}
        result.update(
            found=[describe(path, hits) for path, hits in sorted(left.items())],
            paths=sorted(left),
            removed=["/" + rel for rel in sorted(removed)],
            scanned=scanned,
            changed=bool(removed),
        )
        return result

    def _scan(self, script: str) -> tuple[dict[str, list[tuple[str, int]]], list[str], int]:
        """The host's candidate files, scanned: findings by relative path, the key files among them, and
        how many files there were."""
        out = self._run_on_host(script)
        with tempfile.TemporaryDirectory(prefix="ctforge-scan-") as root:
            try:
                data = base64.b64decode(out.get("stdout", ""), validate=True)
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                    members = [member for member in archive.getmembers() if member.isfile()]
                    # the data filter refuses absolute names, `..`, links and devices, drops special modes
                    archive.extractall(root, members=members, filter="data")
            except (binascii.Error, tarfile.TarError, EOFError, OSError) as exc:
                raise AnsibleActionFail(
                    f"the host did not send its candidate files as a tar ({exc}), rc {out.get('rc')}: "
                    f"{out.get('stderr', '').strip()[-2000:]}") from exc
            findings = scan_tree(root)
            keys = []
            for rel, hits in findings.items():
                if {kind for kind, _ in hits} == {"Private Key"}:
                    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as handle:
                        if is_key_file(handle.read()):
                            keys.append(rel)
        return findings, keys, len(members)

    def _remove(self, keys: list[str]) -> list[str]:
        """Removes each key file and its .pub; returns those gone (an immutable one stays and is reported)."""
        lines = []
        for index, rel in enumerate(keys):
            path = shlex.quote("/" + rel)
            pub = shlex.quote(f"/{rel}.pub")
            lines.append(f"rm -f -- {path} && echo {index}; if [ -f {pub} ]; then rm -f -- {pub}; fi")
        out = self._run_on_host("\n".join(lines) + "\n")
        gone = {int(word) for word in out.get("stdout", "").split() if word.isdigit()}
        return [rel for index, rel in enumerate(keys) if index in gone]
