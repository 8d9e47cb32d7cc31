"""Keep each role's defaults and its argument specs in step: both must name the same variables.

The variables a role declares in `meta/argument_specs.yml` (every entry point's options, merged)
must be exactly those it sets in `defaults/main.yml`. Internal variables (a leading `_`) are
excluded on both sides: they live in `vars/` and are nobody's knob.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ctforge import messages
from ctforge.yamlfile import load_yaml


class RoleSpecError(Exception):
    """A role whose defaults or argument specs cannot be read."""


@dataclass(frozen=True)
class RoleSpecReport:
    role: str
    only_in_defaults: list[str]
    only_in_specs: list[str]

    @property
    def ok(self) -> bool:
        return not self.only_in_defaults and not self.only_in_specs

    def message(self) -> str:
        return messages.ROLE_SPEC_MISMATCH.format(
            role=self.role,
            only_defaults=", ".join(self.only_in_defaults) or "(none)",
            only_specs=", ".join(self.only_in_specs) or "(none)",
        )


def _unreadable(role: str, path: Path, reason: str) -> RoleSpecError:
    return RoleSpecError(messages.ROLE_SPEC_UNREADABLE.format(role=role, path=path, reason=reason))


def _read_mapping(role: str, path: Path) -> dict[str, Any]:
    try:
        data = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise _unreadable(role, path, " ".join(str(exc).split())) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _unreadable(role, path, f"expected a mapping, found {type(data).__name__}")
    return data


def _public(names: set[str]) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def default_names(role_dir: Path) -> set[str]:
    """Variables set by defaults/main.yml (or every file of a defaults/main/ directory)."""
    main = role_dir / "defaults" / "main.yml"
    files = [main] if main.is_file() else sorted((role_dir / "defaults" / "main").glob("*.yml"))
    names: set[str] = set()
    for path in files:
        names |= set(_read_mapping(role_dir.name, path))
    return _public(names)


def spec_names(role_dir: Path) -> set[str]:
    """Options of every entry point in meta/argument_specs.yml (or meta/main.yml's argument_specs)."""
    specs_file = role_dir / "meta" / "argument_specs.yml"
    if not specs_file.is_file():
        specs_file = role_dir / "meta" / "main.yml"
        if not specs_file.is_file():
            return set()
    specs = _read_mapping(role_dir.name, specs_file).get("argument_specs") or {}
    names: set[str] = set()
    for entry, spec in specs.items():
        options = (spec or {}).get("options") or {}
        if not isinstance(options, dict):
            raise _unreadable(role_dir.name, specs_file, f"entry point {entry!r}: options must be a mapping")
        names |= set(options)
    return _public(names)


def check_role(role_dir: Path) -> RoleSpecReport:
    defaults, specs = default_names(role_dir), spec_names(role_dir)
    return RoleSpecReport(role_dir.name, sorted(defaults - specs), sorted(specs - defaults))


def role_dirs(roles_dir: Path) -> list[Path]:
    """Every role under roles_dir: a directory with tasks/, defaults/ or meta/."""
    if not roles_dir.is_dir():
        return []
    parts = ("tasks", "defaults", "meta")
    return sorted(d for d in roles_dir.iterdir() if d.is_dir() and any((d / p).is_dir() for p in parts))
