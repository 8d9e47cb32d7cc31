"""The build fingerprint: it changes with what a build installs (catalog entries, role contents),
and with nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ctforge.catalog import DEFAULT_CATALOG_DIR, DEFAULT_ROLES_DIR, load_catalog
from ctforge.fingerprint import Fingerprints, build_fingerprint


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the catalog and of the roles a nodejs build runs, to change freely."""
    stacks, roles = tmp_path / "stacks", tmp_path / "roles"
    shutil.copytree(DEFAULT_CATALOG_DIR, stacks)
    for role in ("base", "prepare_template", "nodejs", "claude_cli", "redis"):
        shutil.copytree(DEFAULT_ROLES_DIR / role, roles / role)
    return stacks, roles


def fingerprint(tree: tuple[Path, Path], stacks: list[str]) -> str:
    catalog_dir, roles_dir = tree
    return build_fingerprint(load_catalog(catalog_dir), stacks, catalog_dir, roles_dir)


def test_the_same_tree_gives_the_same_fingerprint(tree: tuple[Path, Path]) -> None:
    first = fingerprint(tree, ["nodejs", "claude_cli"])
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert fingerprint(tree, ["nodejs", "claude_cli"]) == first
    assert fingerprint(tree, ["nodejs"]) != first


def test_a_changed_role_file_changes_it(tree: tuple[Path, Path]) -> None:
    before = fingerprint(tree, ["nodejs"])
    defaults = tree[1] / "nodejs" / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text() + "\n# a change\n")
    assert fingerprint(tree, ["nodejs"]) != before


def test_base_and_prepare_count_for_every_build(tree: tuple[Path, Path]) -> None:
    before = fingerprint(tree, [])
    (tree[1] / "prepare_template" / "tasks" / "extra.yml").write_text("---\n")
    assert fingerprint(tree, []) != before


def test_a_changed_catalog_entry_changes_it(tree: tuple[Path, Path]) -> None:
    before = fingerprint(tree, ["redis"])
    entry = tree[0] / "redis.yml"
    entry.write_text(entry.read_text().replace("description:", "description: Changed.", 1))
    assert fingerprint(tree, ["redis"]) != before


def test_roles_a_build_does_not_run_and_molecule_scenarios_do_not_count(tree: tuple[Path, Path]) -> None:
    before = fingerprint(tree, ["nodejs"])
    (tree[1] / "redis" / "tasks" / "extra.yml").write_text("---\n")  # not in a nodejs build
    scenario = tree[1] / "nodejs" / "molecule" / "default"
    scenario.mkdir(parents=True, exist_ok=True)
    (scenario / "converge.yml").write_text("--- # a test of the role, not part of it\n")
    assert fingerprint(tree, ["nodejs"]) == before


def test_the_cache_serves_repeats_and_sees_changes_after_its_ttl(tree: tuple[Path, Path]) -> None:
    catalog_dir, roles_dir = tree
    cached = Fingerprints(load_catalog(catalog_dir), catalog_dir, roles_dir, ttl=3600)
    fresh = Fingerprints(load_catalog(catalog_dir), catalog_dir, roles_dir, ttl=0)
    first = cached.of(["nodejs"])
    assert fresh.of(["nodejs"]) == first
    (roles_dir / "nodejs" / "tasks" / "extra.yml").write_text("---\n")
    assert cached.of(["nodejs"]) == first  # within the TTL: the answer computed before
    assert fresh.of(["nodejs"]) != first
