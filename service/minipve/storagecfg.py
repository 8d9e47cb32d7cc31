"""minipve's storages, read from `<state>/etc/pve/storage.cfg` in Proxmox's own format.

    dir: local
            path /var/lib/minipve/storage
            content backup,images,iso,rootdir,snippets,vztmpl

    dir: isos
            path /srv/isos
            content iso,vztmpl

`local` always exists and holds every container volume (the overlay layers that make linked clones
cheap live there). Further `dir` storages may hold appliances, ISOs, backups and snippets, which is
how a real cluster's `local` usually looks: it is the storage a CT cannot be put on, and tests use
one to see that refused. Other storage types (lvm, zfspool, ...) are not served; the file says so.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from minipve.config import ConfigError

LOCAL = "local"
LOCAL_CONTENT = frozenset({"backup", "images", "iso", "rootdir", "snippets", "vztmpl"})
VOLUME_CONTENT = frozenset({"rootdir", "images"})
KNOWN_CONTENT = LOCAL_CONTENT | {"import"}
STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.I)


@dataclass(frozen=True)
class Storage:
    name: str
    path: Path
    content: frozenset[str]

    @property
    def content_text(self) -> str:
        return ",".join(sorted(self.content))

    @property
    def appliance_dir(self) -> Path:
        return self.path / "template" / "cache"

    def usage(self):
        """shutil.disk_usage of the storage's path: .total, .used and .free bytes."""
        return shutil.disk_usage(self.path)


def config_path(state_dir: Path) -> Path:
    return state_dir / "etc" / "pve" / "storage.cfg"


def load_storages(state_dir: Path, local_path: Path) -> dict[str, Storage]:
    """The storages by name, `local` first; writes the file with `local` alone when it is missing."""
    path = config_path(state_dir)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render([Storage(LOCAL, local_path, LOCAL_CONTENT)]))
    storages = {LOCAL: Storage(LOCAL, local_path, LOCAL_CONTENT)}
    for name, kind, options, lineno in _sections(path):
        where = f"{path}:{lineno}"
        if not STORAGE_ID.match(name):
            raise ConfigError(f"{where}: {name!r} is not a valid storage identifier")
        if name == LOCAL:
            continue  # its path and content are minipve's own; the file shows them for reference
        if kind != "dir":
            raise ConfigError(f"{where}: storage {name} is of type {kind}; minipve serves dir storages only")
        if name in storages:
            raise ConfigError(f"{where}: storage {name} is defined twice")
        content = frozenset(c for c in re.split(r"[,;\s]+", options.get("content", "")) if c)
        unknown = content - KNOWN_CONTENT
        if unknown:
            raise ConfigError(f"{where}: storage {name} has unknown content {', '.join(sorted(unknown))}")
        if content & VOLUME_CONTENT:
            raise ConfigError(
                f"{where}: storage {name} lists {', '.join(sorted(content & VOLUME_CONTENT))}, but minipve "
                f"keeps container volumes on storage {LOCAL} only: drop them from its content"
            )
        if "path" not in options:
            raise ConfigError(f"{where}: storage {name} needs a `path`")
        storages[name] = Storage(name, Path(options["path"]), content)
    return storages


def render(storages: list[Storage]) -> str:
    return "".join(f"dir: {s.name}\n\tpath {s.path}\n\tcontent {s.content_text}\n\n" for s in storages)


def _sections(path: Path):
    """(name, type, options, line number) for each `type: name` section of a storage.cfg."""
    current: tuple[str, str, dict[str, str], int] | None = None
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw[0].isspace():
            if current:
                yield current
            kind, sep, name = line.partition(":")
            if not sep or not name.strip():
                raise ConfigError(f"{path}:{lineno}: expected `type: name`, got {raw.strip()!r}")
            current = (name.strip(), kind.strip(), {}, lineno)
        elif current is None:
            raise ConfigError(f"{path}:{lineno}: an option before any `type: name` line")
        else:
            key, _, value = line.strip().partition(" ")
            current[2][key] = value.strip()
    if current:
        yield current
