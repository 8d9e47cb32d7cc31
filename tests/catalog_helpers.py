"""Building stack catalogs for tests: valid stack files in a directory, or Stack objects in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ctforge.catalog import Stack


def stack_fields(stack_id: str, requires: Any = None, **overrides: Any) -> dict[str, Any]:
    """The fields of a valid entry for `stack_id`, with `overrides` applied."""
    fields: dict[str, Any] = {
        "id": stack_id,
        "name": stack_id.replace("_", " ").title(),
        "description": f"The {stack_id} stack.",
        "icon": "📦",
        "tags": ["test"],
        "role": stack_id,
        "requires": [] if requires is None else requires,
        "verify": f"{stack_id} --version",
    }
    fields.update(overrides)
    return fields


def stack(stack_id: str, requires: list[str] | None = None) -> Stack:
    return Stack(**stack_fields(stack_id, requires))


def write_stack(directory: Path, stack_id: str, requires: Any = None, **overrides: Any) -> Path:
    """Write stacks/<stack_id>.yml with valid fields, then `overrides`; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stack_id}.yml"
    path.write_text(yaml.safe_dump(stack_fields(stack_id, requires, **overrides), allow_unicode=True))
    return path


def write_role(roles_dir: Path, role: str, defaults: dict[str, Any], options: dict[str, Any]) -> Path:
    """A minimal role: tasks/main.yml, defaults/main.yml and meta/argument_specs.yml (entry point main)."""
    role_dir = roles_dir / role
    (role_dir / "tasks").mkdir(parents=True, exist_ok=True)
    (role_dir / "defaults").mkdir(exist_ok=True)
    (role_dir / "meta").mkdir(exist_ok=True)
    (role_dir / "tasks" / "main.yml").write_text("---\n[]\n")
    (role_dir / "defaults" / "main.yml").write_text("---\n" + yaml.safe_dump(defaults))
    specs = {"argument_specs": {"main": {"short_description": "Test role", "options": options}}}
    (role_dir / "meta" / "argument_specs.yml").write_text("---\n" + yaml.safe_dump(specs))
    return role_dir
