"""Rewrite pve-api-subset.json from Proxmox's published API schema (pve-docs' api-viewer/apidata.js).

    git clone https://git.proxmox.com/git/pve-docs.git    # or github.com/proxmox/pve-docs
    .venv/bin/python tests/pve_schema/refresh.py pve-docs [--commit TAG-OR-SHA]

Only the endpoints minipve serves (its router) are kept, and of each only its `parameters`; the
parameters keep every field as Proxmox publishes it except the prose (`description`,
`verbose_description`), which the tests do not read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "pve-api-subset.json"
APIDATA = "api-viewer/apidata.js"
PROSE = ("description", "verbose_description")


def load_apidata(text: str) -> list[dict[str, Any]]:
    """apidata.js is `const apiSchema = [ ...JSON... ]\\n;` followed by nothing we need."""
    start, end = text.index("["), text.rindex("]")
    return json.loads(text[start : end + 1])


def walk(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for node in nodes:
        if "info" in node:
            found[node["path"]] = node["info"]
        found.update(walk(node.get("children") or []))
    return found


def facts(spec: Any) -> Any:
    """A parameter's definition without its prose, nested formats, items and properties alike."""
    if not isinstance(spec, dict):
        return spec
    out = {key: value for key, value in spec.items() if key not in PROSE}
    if isinstance(out.get("format"), dict):
        out["format"] = {name: facts(sub) for name, sub in out["format"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = facts(out["items"])
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: facts(sub) for name, sub in out["properties"].items()}
    return out


def subset(schema: dict[str, dict[str, Any]], routes: list[tuple[str, str]]) -> dict[str, Any]:
    endpoints: dict[str, dict[str, Any]] = {}
    for method, path in sorted(routes, key=lambda r: (r[1], r[0])):
        info = schema.get(path, {}).get(method)
        if info is None:
            print(f"not in Proxmox's schema: {method} {path}", file=sys.stderr)
            continue
        params = info.get("parameters") or {}
        endpoints.setdefault(path, {})[method] = {"parameters": facts(params)}
    return endpoints


def git(checkout: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True)
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkout", type=Path, help="a git checkout of Proxmox's pve-docs")
    parser.add_argument("--commit", default="HEAD", help="the pve-docs commit or tag to read (default HEAD)")
    args = parser.parse_args()
    sha = git(args.checkout, "rev-parse", f"{args.commit}^{{commit}}").strip()
    text = git(args.checkout, "show", f"{sha}:{APIDATA}")
    version = git(args.checkout, "show", f"{sha}:debian/changelog").split("\n", 1)[0].split()[1].strip("()")

    sys.path.insert(0, str(HERE.parents[1] / "service"))
    from minipve.api.routes import build_router

    endpoints = subset(walk(load_apidata(text)), list(build_router().routes))
    doc = {
        "source": f"proxmox/pve-docs {APIDATA} @ {sha} (pve-docs {version}); prose left out",
        "license": "AGPL-3.0-or-later (pve-docs debian/copyright: *.js), as ctforge",
        "endpoints": endpoints,
    }
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    count = sum(len(methods) for methods in endpoints.values())
    print(f"wrote {OUT} ({count} endpoints from pve-docs {version})")


if __name__ == "__main__":
    main()
