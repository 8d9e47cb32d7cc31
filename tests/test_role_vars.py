"""A verify's task variables must not share a name with what the role's install registers or sets: in a
workspace the install and the verify run in one play on one host, where a registered variable or a
set_fact outranks a task's vars, so the verify would read the install's value (it did: postgresql's
__postgresql_clusters, the install's command result, read as the verify's list of clusters)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[1] / "roles"


def _tasks(node):
    """Every task in a task list, blocks opened."""
    for task in node or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _set_by_install(role: Path) -> set[str]:
    names: set[str] = set()
    for path in (role / "tasks").glob("*.yml"):
        if path.name == "verify.yml":
            continue
        for task in _tasks(yaml.safe_load(path.read_text())):
            if isinstance(task.get("register"), str):
                names.add(task["register"])
            facts = task.get("ansible.builtin.set_fact") or task.get("set_fact")
            if isinstance(facts, dict):
                names |= set(facts)
    return names


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir() if (p / "tasks/verify.yml").exists()))
def test_a_verify_task_var_is_not_shadowed_by_the_install(role) -> None:
    verify = yaml.safe_load((ROLES / role / "tasks/verify.yml").read_text())
    task_vars = {name for task in _tasks(verify) for name in (task.get("vars") or {})}
    assert not task_vars & _set_by_install(ROLES / role)
