"""CT configs in Proxmox's own `.conf` format, under `<state>/etc/pve/nodes/<node>/lxc/<vmid>.conf`.

`key: value` lines, the description as leading `#` comment lines (percent-encoded as Proxmox does),
and `digest` = sha1 of the file's bytes. Every change goes through `ConfigStore.lock`, and files are
replaced atomically, so readers never see half a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote

Conf = dict[str, object]


def parse_conf(text: str) -> Conf:
    conf: Conf = {}
    description: list[str] = []
    for line in text.splitlines():
        if line.startswith("["):  # snapshot sections: minipve keeps none
            break
        if line.startswith("#"):
            description.append(unquote(line[1:]))
            continue
        m = re.match(r"^([a-z][a-z0-9_\-]*):\s*(.*?)\s*$", line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        conf[key] = int(value) if re.fullmatch(r"-?\d+", value) and key not in ("hostname", "tags") else value
    if description:
        conf = {"description": "\n".join(description), **conf}
    return conf


def format_conf(conf: Conf) -> str:
    lines = []
    description = conf.get("description")
    if description:
        lines.extend(
            "#" + quote(part, safe=" !\"$&'()*+,-./:;<=>?@[\\]^_`{|}~")
            for part in str(description).split("\n")
        )
    for key, value in conf.items():
        if key in ("description", "digest") or value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


class ConfExists(Exception):
    pass


class ConfigStore:
    def __init__(self, state_dir: Path, node: str) -> None:
        self.node = node
        self.root = state_dir / "etc" / "pve"
        self.lxc_dir = self.root / "nodes" / node / "lxc"
        self.lxc_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Held around every read-check-write of CT configs (one node: one lock is plenty)."""
        with self._lock:
            yield

    def path(self, vmid: int) -> Path:
        return self.lxc_dir / f"{vmid}.conf"

    def relpath(self, vmid: int) -> str:
        return f"nodes/{self.node}/lxc/{vmid}.conf"

    def vmids(self) -> list[int]:
        return sorted(int(p.stem) for p in self.lxc_dir.glob("*.conf") if p.stem.isdigit())

    def exists(self, vmid: int) -> bool:
        return self.path(vmid).exists()

    def read(self, vmid: int) -> Conf | None:
        try:
            raw = self.path(vmid).read_bytes()
        except FileNotFoundError:
            return None
        conf = parse_conf(raw.decode())
        conf["digest"] = hashlib.sha1(raw).hexdigest()
        return conf

    def write(self, vmid: int, conf: Conf, *, exclusive: bool = False) -> None:
        path = self.path(vmid)
        with self._lock:
            if exclusive and path.exists():
                raise ConfExists(str(vmid))
            tmp = path.with_suffix(".tmp")
            tmp.write_text(format_conf(conf))
            os.replace(tmp, path)

    def update(self, vmid: int, changes: dict[str, object]) -> Conf:
        """Set (or, with None, remove) keys of an existing config."""
        with self._lock:
            conf = self.read(vmid)
            if conf is None:
                raise FileNotFoundError(self.relpath(vmid))
            for key, value in changes.items():
                if value is None:
                    conf.pop(key, None)
                else:
                    conf[key] = value
            self.write(vmid, conf)
            return conf

    def remove(self, vmid: int) -> None:
        with self._lock:
            self.path(vmid).unlink(missing_ok=True)

    # datacenter.cfg holds /cluster/options
    def read_options(self) -> Conf:
        path = self.root / "datacenter.cfg"
        return parse_conf(path.read_text()) if path.exists() else {}

    def write_options(self, options: Conf) -> None:
        path = self.root / "datacenter.cfg"
        with self._lock:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(format_conf(options))
            os.replace(tmp, path)
