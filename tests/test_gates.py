"""The repository's quality gates, one test each: ruff, yamllint, ansible-lint, playbook syntax, role
argument specs against defaults, and catalog entries against roles.

Each gate also proves it can fail: its configuration rejects a planted fault in a temporary file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from catalog_helpers import write_role
from ctforge import messages
from ctforge.catalog import CatalogError, MissingRoleError, load_catalog
from ctforge.rolespecs import RoleSpecError, check_role, role_dirs

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROLES = REPO / "roles"
PYTHON_DIRS = ["service", "tests", "scripts", "plugins", "roles/prepare_template/action_plugins"]
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    "ANSIBLE_NOCOLOR": "1",
    "NO_COLOR": "1",
}


def run(*cmd: str | Path, cwd: Path = REPO, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def params(items: list[str], what: str) -> list[object]:
    """One parameter per item, or one skipped parameter saying that there is nothing to check yet."""
    return items or [pytest.param(None, marks=pytest.mark.skip(reason=f"no {what} in the repository yet"))]


# --- ruff ---------------------------------------------------------------------------------------


def test_ruff_check() -> None:
    proc = run(BIN / "ruff", "check", "--no-cache", *PYTHON_DIRS)
    assert proc.returncode == 0, output(proc)


def test_ruff_check_rejects_a_planted_fault(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    proc = run(BIN / "ruff", "check", "--no-cache", "--config", REPO / "pyproject.toml", bad)
    assert proc.returncode == 1 and "F401" in proc.stdout, output(proc)


# --- yamllint -----------------------------------------------------------------------------------


def test_yamllint() -> None:
    proc = run(BIN / "yamllint", "-s", "-c", REPO / ".yamllint", ".")
    assert proc.returncode == 0, output(proc)


def test_yamllint_checks_the_projects_files_and_skips_installed_ones() -> None:
    proc = run(BIN / "yamllint", "--list-files", "-c", REPO / ".yamllint", ".")
    files = {Path(line).as_posix().removeprefix("./") for line in proc.stdout.splitlines()}
    assert {"stacks/nodejs.yml", ".yamllint", ".ansible-lint"} <= files, sorted(files)
    assert any(f.startswith("roles/") for f in files) and any(f.startswith("playbooks/") for f in files)
    assert not [f for f in files if f.startswith((".venv/", ".collections/", ".ansible/"))]


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("key: value\n", "document-start"),
        ("---\nenabled: yes\n", "truthy"),
        ("---\nmode: 0644\n", "octal-values"),
        ("---\nkey: value # comment\n", None),  # one space before a comment is allowed (ansible-lint)
        ("---\nkey: {  a: 1 }\n", "braces"),
        ("---\nkey: value  \n", "trailing-spaces"),
        ("---\nkey: a\nkey: b\n", "key-duplicates"),
        ("---\nkey: " + "x" * 160 + "\n", "line-length"),
    ],
    ids=lambda v: v if isinstance(v, str) and "\n" not in v else None,
)
def test_yamllint_config_rejects_planted_faults(tmp_path: Path, text: str, rule: str | None) -> None:
    planted = tmp_path / "planted.yml"
    planted.write_text(text)
    proc = run(BIN / "yamllint", "-s", "-f", "parsable", "-c", REPO / ".yamllint", planted)
    if rule is None:
        assert proc.returncode == 0, output(proc)
    else:
        assert proc.returncode != 0 and f"({rule})" in proc.stdout, output(proc)


# --- ansible-lint -------------------------------------------------------------------------------


def test_ansible_lint_config_is_production_with_nothing_skipped() -> None:
    config = yaml.safe_load((REPO / ".ansible-lint").read_text())
    assert config["profile"] == "production"
    assert config.get("skip_list") == []
    assert not config.get("warn_list"), "warnings would let violations through"


def test_ansible_lint() -> None:
    proc = run(BIN / "ansible-lint", "-c", REPO / ".ansible-lint", timeout=900)
    assert proc.returncode == 0, output(proc)
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout, output(proc)


def test_ansible_lint_config_rejects_a_planted_fault(tmp_path: Path) -> None:
    (tmp_path / ".ansible-lint").write_text((REPO / ".ansible-lint").read_text())
    (tmp_path / ".yamllint").write_text((REPO / ".yamllint").read_text())
    (tmp_path / "planted.yml").write_text(
        "---\n- name: Planted\n  hosts: localhost\n  tasks:\n    - shell: echo hi\n"
    )
    proc = run(
        BIN / "ansible-lint", "-c", tmp_path / ".ansible-lint", "planted.yml", cwd=tmp_path, timeout=300
    )
    assert proc.returncode != 0, output(proc)
    for rule in ("fqcn[action-core]", "name[missing]", "no-changed-when"):
        assert rule in proc.stdout, output(proc)


# --- playbook syntax ----------------------------------------------------------------------------

PLAYBOOKS = sorted(p.name for p in (REPO / "playbooks").glob("*.yml"))


@pytest.mark.parametrize("playbook", params(PLAYBOOKS, "playbooks"))
def test_playbook_syntax(playbook: str) -> None:
    proc = run(BIN / "ansible-playbook", "--syntax-check", REPO / "playbooks" / playbook)
    assert proc.returncode == 0, output(proc)


def test_syntax_check_rejects_a_planted_fault(tmp_path: Path) -> None:
    planted = tmp_path / "planted.yml"
    planted.write_text(
        "---\n- name: Broken\n  hosts: localhost\n  tasks:\n    - name: Nothing\n      no_such_key: 1\n"
    )
    proc = run(BIN / "ansible-playbook", "--syntax-check", planted)
    assert proc.returncode != 0, output(proc)


# --- role argument specs against role defaults --------------------------------------------------

ROLE_NAMES = [d.name for d in role_dirs(ROLES)]


@pytest.mark.parametrize("role", params(ROLE_NAMES, "roles"))
def test_role_defaults_match_argument_specs(role: str) -> None:
    report = check_role(ROLES / role)
    assert report.ok, report.message()


def test_spec_check_names_a_planted_mismatch(tmp_path: Path) -> None:
    defaults = {"demo_version": "1", "demo_port": 80, "_demo_internal": True}
    options = {"demo_version": {"type": "str"}, "demo_user": {"type": "str"}}
    report = check_role(write_role(tmp_path, "demo", defaults, options))
    assert (report.ok, report.only_in_defaults, report.only_in_specs) == (False, ["demo_port"], ["demo_user"])
    assert report.message() == messages.ROLE_SPEC_MISMATCH.format(
        role="demo", only_defaults="demo_port", only_specs="demo_user"
    )


def test_spec_check_merges_every_entry_point(tmp_path: Path) -> None:
    role = write_role(tmp_path, "demo", {"demo_a": 1, "demo_b": 2}, {"demo_a": {"type": "int"}})
    specs = {
        "argument_specs": {
            "main": {"options": {"demo_a": {"type": "int"}}},
            "verify": {"options": {"demo_b": {"type": "int"}, "_demo_hidden": {"type": "int"}}},
        }
    }
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(specs))
    assert check_role(role).ok


def test_spec_check_counts_defaults_without_specs_as_a_mismatch(tmp_path: Path) -> None:
    role = write_role(tmp_path, "demo", {"demo_a": 1}, {})
    (role / "meta" / "argument_specs.yml").unlink()
    assert check_role(role).only_in_defaults == ["demo_a"]


def test_spec_check_names_an_unreadable_file(tmp_path: Path) -> None:
    role = write_role(tmp_path, "demo", {}, {})
    (role / "defaults" / "main.yml").write_text("demo_a: [unclosed\n")
    with pytest.raises(RoleSpecError, match=r"role 'demo': .*defaults/main\.yml cannot be read"):
        check_role(role)


# --- catalog entries against roles --------------------------------------------------------------


def _catalog_ids() -> list[str]:
    try:
        return load_catalog().ids()
    except CatalogError:
        return []  # test_catalog_loads reports why


def test_catalog_loads() -> None:
    load_catalog()


@pytest.mark.parametrize("stack_id", params(_catalog_ids(), "loadable catalog entries"))
def test_catalog_entry_names_an_existing_role(stack_id: str) -> None:
    missing = load_catalog().missing_roles(ROLES, [stack_id])
    assert not missing, str(MissingRoleError(missing))


def test_role_check_names_a_planted_missing_role(tmp_path: Path) -> None:
    catalog = load_catalog()
    stack_id = catalog.ids()[0]
    with pytest.raises(MissingRoleError) as err:
        catalog.check_roles(tmp_path, [stack_id])
    assert str(err.value) == messages.MISSING_ROLE.format(
        stack_id=stack_id, role=catalog.get(stack_id).role, path=tmp_path / stack_id / "tasks" / "main.yml"
    )
