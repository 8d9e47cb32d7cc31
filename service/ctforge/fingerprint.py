"""The fingerprint of what a template is built from: its stacks' catalog entries and the contents of
every role a build runs (the stacks' roles, plus base and prepare_template, which every build runs).

`sha256:` and the hex digest of each file's path and bytes, in path order. A template whose recorded
fingerprint differs from today's was built from other roles than the ones it would get now.
Molecule scenarios are left out: they test a role, they are not part of what it installs.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from ctforge.catalog import Catalog

ALWAYS = ("base", "prepare_template")
_SKIP_DIRS = {"molecule", "__pycache__"}


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not _SKIP_DIRS.intersection(p.relative_to(root).parts))


def build_fingerprint(catalog: Catalog, stacks: Iterable[str], catalog_dir: Path, roles_dir: Path) -> str:
    stack_ids = list(stacks)
    roles = sorted({*ALWAYS, *(catalog.get(s).role for s in stack_ids)})
    sources = [(f"stacks/{s}.yml", catalog_dir / f"{s}.yml") for s in sorted(stack_ids)]
    for role in roles:
        sources.extend((f"roles/{p.relative_to(roles_dir)}", p) for p in _files(roles_dir / role))
    digest = hashlib.sha256()
    for label, path in sources:
        digest.update(label.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"sha256:{digest.hexdigest()}"


class Fingerprints:
    """Today's fingerprint per list of stacks, computed at most once per `ttl` seconds (hashing the
    roles takes ~30 ms; a list of templates shares the few stack lists it has)."""

    def __init__(self, catalog: Catalog, catalog_dir: Path, roles_dir: Path, ttl: float = 10.0) -> None:
        self.catalog, self.catalog_dir, self.roles_dir, self.ttl = catalog, catalog_dir, roles_dir, ttl
        self._known: dict[tuple[str, ...], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def of(self, stacks: Iterable[str]) -> str:
        key = tuple(stacks)
        now = time.monotonic()
        with self._lock:
            known = self._known.get(key)
            if known is None or now - known[0] > self.ttl:
                known = (now, build_fingerprint(self.catalog, key, self.catalog_dir, self.roles_dir))
                self._known[key] = known
            return known[1]
