#!/usr/bin/env python3
"""Render scripts/prepare-proxmox-template.sh from the prepare_template role.

The role runs templates/scrub.sh.j2, check.sh.j2 and prepare-template.sh.j2, each after common.sh.j2, on
the staging CT; the script for use by hand (templates/prepare-proxmox-template.sh.j2) includes those
same templates, rendered with the role's defaults and vars, so the two cannot drift apart. The role's
credential scan by content (scan.sh.j2 and the ctforge_credential_scan action) runs on the controller and
has no part in the script.
tests/test_playbooks_prepare_script.py fails when the committed script differs from a fresh render.
Usage: python scripts/gen-prepare-script.py [--check]
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import jinja2
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "roles" / "prepare_template"
SCRIPT = ROOT / "scripts" / "prepare-proxmox-template.sh"


def render() -> str:
    # The settings of Ansible's template lookup (trim_blocks, no trailing newline kept) and its filters.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), trim_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["quote"] = shlex.quote
    env.filters["regex_replace"] = lambda value, pattern, repl: re.sub(pattern, repl, value)
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
                 **yaml.safe_load((ROLE / "vars" / "main.yml").read_text())}
    return env.get_template("prepare-proxmox-template.sh.j2").render(variables) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if SCRIPT.read_text() != text:
            print(f"{SCRIPT} is out of date: run python scripts/gen-prepare-script.py", file=sys.stderr)
            return 1
        return 0
    SCRIPT.write_text(text)
    SCRIPT.chmod(0o755)
    return 0


if __name__ == "__main__":
    sys.exit(main())
