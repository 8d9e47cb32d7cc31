"""Every endpoint minipve serves takes Proxmox's parameters: same names, types, enums, defaults,
limits, optionality, checked against the subset of Proxmox VE's published API schema that the project
carries in tests/pve_schema/ (its README says where it comes from and how to refresh it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minipve.api.routes import build_router
from minipve.paramdefs import SCHEMAS

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "pve_schema" / "pve-api-subset.json"
TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": int}


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())["endpoints"]


SERVED = sorted(build_router().routes)


def test_every_route_has_its_own_parameter_definition() -> None:
    assert set(SERVED) == set(SCHEMAS)


@pytest.mark.parametrize(("method", "path"), SERVED, ids=[f"{m} {p}" for m, p in SERVED])
def test_parameters_match_proxmox(reference: dict, method: str, path: str) -> None:
    assert method in reference.get(path, {}), (
        f"{method} {path} is not in {REFERENCE.name}: run tests/pve_schema/refresh.py (see its README)"
    )
    theirs = reference[path][method].get("parameters", {}).get("properties", {})
    ours = SCHEMAS[(method, path)]
    assert set(ours) == set(theirs), f"{method} {path}: names differ"
    for name, spec in theirs.items():
        mine = ours[name]
        where = f"{method} {path} {name}"
        assert mine.type == spec["type"], where
        assert mine.optional == bool(spec.get("optional", 0)), where
        if "enum" in spec and spec["enum"] is not None and spec["type"] == "string":
            assert list(mine.enum or ()) == spec["enum"], where
        default = spec.get("default")
        if isinstance(default, TYPES[spec["type"]]) and not isinstance(default, bool):
            assert mine.default == default, where
        elif default is not None:
            # a descriptive default ("restore limit from datacenter...") or a string for a boolean
            assert mine.default in (None, default), where
        for limit, attr in (("minimum", "minimum"), ("maximum", "maximum")):
            if limit in spec:
                assert getattr(mine, attr) == float(spec[limit]), where
        if "maxLength" in spec:
            assert mine.max_length == spec["maxLength"], where
        if isinstance(spec.get("format"), str):
            assert mine.format == spec["format"], where
        elif isinstance(spec.get("format"), dict):
            assert mine.format == "property-string", where


def test_the_subset_holds_the_served_endpoints_only(reference: dict) -> None:
    carried = {(method, path) for path, methods in reference.items() for method in methods}
    assert carried == set(SERVED), "refresh tests/pve_schema/pve-api-subset.json (see its README)"
