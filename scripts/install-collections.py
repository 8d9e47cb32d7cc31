"""Install the Ansible collections ctforge uses from the `ansible` wheel on PyPI.

Galaxy cannot be reached, but the `ansible` distribution on PyPI ships every collection we need.
Installing all of it costs ~550 MB; we download the one wheel (cached) and extract only the
collections listed in requirements/collections.txt into an ansible_collections tree.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "requirements" / "collections.txt"


def read_spec() -> tuple[str, list[str]]:
    distribution, names = "", []
    for raw in SPEC.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("distribution "):
            distribution = line.split(None, 1)[1]
        elif line:
            names.append(line)
    if not distribution or not names:
        sys.exit(f"{SPEC}: needs a 'distribution NAME==VERSION' line and at least one collection")
    return distribution, names


def find_wheel(cache: Path, distribution: str) -> Path:
    name, version = distribution.split("==")
    pattern = f"{name}-{version}-py3-none-any.whl"
    wheel = cache / pattern
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
             "-d", str(cache), distribution],
            check=True,
        )
    if not wheel.exists():
        sys.exit(f"pip downloaded {distribution} but {wheel} is not there")
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="where the wheel is kept")
    parser.add_argument("--dest", type=Path, required=True, help="the collections path to fill")
    args = parser.parse_args()

    distribution, names = read_spec()
    stamp = args.dest / ".installed-from"
    wanted = f"{distribution} {' '.join(names)}"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    wheel = find_wheel(args.cache, distribution)
    if args.dest.exists():
        shutil.rmtree(args.dest)
    prefixes = tuple(f"ansible_collections/{n.replace('.', '/')}/" for n in names)
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith(prefixes)]
        archive.extractall(args.dest, members)
    for name in names:
        if not (args.dest / "ansible_collections" / name.replace(".", "/") / "MANIFEST.json").exists():
            sys.exit(f"{distribution} does not ship the collection {name}")
    stamp.write_text(wanted)
    print(f"==> Installed {', '.join(names)} from {distribution} into {args.dest}")


if __name__ == "__main__":
    main()
