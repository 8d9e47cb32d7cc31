"""`ctforge stacks ...` on the real catalog and on broken ones: errors are one line with status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog_helpers import write_role, write_stack
from ctforge import messages
from ctforge.catalog import load_catalog
from ctforge.cli import EXIT_ERROR, app

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, expected: str) -> None:
    assert code == EXIT_ERROR
    assert stderr == messages.CLI_ERROR.format(message=expected) + "\n"
    assert "Traceback" not in stderr


@pytest.fixture
def small_catalog(tmp_path: Path) -> Path:
    stacks = tmp_path / "stacks"
    write_stack(stacks, "runtime", icon="🟩", tags=["lang"], verify="runtime --version")
    write_stack(stacks, "tool", ["runtime"], name="The Tool", verify="tool --help")
    write_stack(stacks, "db")
    return stacks


def test_list_shows_every_stack_of_the_real_catalog() -> None:
    code, out, _ = run("stacks", "list")
    catalog = load_catalog()
    assert code == 0
    assert f"{len(catalog)} tech stacks" in out
    for stack in catalog:
        assert stack.id in out
        assert stack.name in out


def test_list_shows_requires_and_verify(small_catalog: Path) -> None:
    code, out, _ = run("stacks", "list", "--catalog", small_catalog)
    assert code == 0
    row = next(line for line in out.splitlines() if " tool " in line)
    assert "The Tool" in row and "runtime" in row and "tool --help" in row


def test_show_prints_every_field_and_the_install_order() -> None:
    code, out, _ = run("stacks", "show", "claude_cli")
    stack = load_catalog().get("claude_cli")
    assert code == 0
    for value in (stack.id, stack.name, stack.icon, stack.role, stack.verify, *stack.tags):
        assert value in out
    assert "nodejs → claude_cli" in out


def test_show_lists_the_stacks_that_require_it(small_catalog: Path) -> None:
    code, out, _ = run("stacks", "show", "runtime", "--catalog", small_catalog)
    assert code == 0
    assert next(line for line in out.splitlines() if line.startswith("required by")).split()[-1] == "tool"


def test_show_of_an_unknown_stack_is_a_one_line_error() -> None:
    code, _, err = run("stacks", "show", "cobol")
    known = ", ".join(load_catalog().ids())
    assert_one_line_error(code, err, messages.UNKNOWN_STACK.format(stack_id="cobol", known=known))


def test_resolve_prints_the_install_order() -> None:
    code, out, _ = run("stacks", "resolve", "redis", "claude_cli")
    assert (code, out.split()) == (0, ["redis", "nodejs", "claude_cli"])


def test_resolve_on_top_of_inherited_stacks() -> None:
    code, out, _ = run(
        "stacks", "resolve", "postgresql", "redis", "nodejs", "-i", "nodejs", "-i", "claude_cli"
    )
    assert (code, out.split()) == (0, ["nodejs", "claude_cli", "postgresql", "redis"])


def test_a_malformed_stack_file_is_a_one_line_error_naming_path_and_field(small_catalog: Path) -> None:
    bad = write_stack(small_catalog, "db", requires="runtime")
    for command in (["list"], ["show", "db"], ["resolve", "db"], ["check"]):
        code, _, err = run("stacks", *command, "--catalog", small_catalog)
        assert code == EXIT_ERROR
        assert err.startswith(messages.CLI_ERROR.format(message=f"{bad}: field 'requires': "))
        assert err.count("\n") == 1


def test_a_cycle_is_a_one_line_error_naming_the_cycle(small_catalog: Path) -> None:
    write_stack(small_catalog, "runtime", ["tool"])
    code, _, err = run("stacks", "resolve", "db", "--catalog", small_catalog)
    assert_one_line_error(code, err, messages.STACK_CYCLE.format(cycle="runtime → tool → runtime"))


def test_a_missing_catalog_is_a_one_line_error(tmp_path: Path) -> None:
    code, _, err = run("stacks", "list", "--catalog", tmp_path / "nowhere")
    assert_one_line_error(code, err, messages.CATALOG_MISSING.format(path=tmp_path / "nowhere"))


def test_check_passes_on_a_consistent_catalog_and_roles(small_catalog: Path, tmp_path: Path) -> None:
    roles = tmp_path / "roles"
    for role in ("runtime", "tool", "db"):
        write_role(roles, role, {f"{role}_version": "1"}, {f"{role}_version": {"type": "str"}})
    code, out, err = run("stacks", "check", "--catalog", small_catalog, "--roles", roles)
    assert (code, err) == (0, "")
    assert "(3 stacks)" in out and "in all 3 roles" in out


def test_check_names_a_missing_role_and_a_spec_mismatch(small_catalog: Path, tmp_path: Path) -> None:
    roles = tmp_path / "roles"
    write_role(roles, "runtime", {}, {})
    write_role(roles, "tool", {"tool_version": "1", "tool_extra": 1}, {"tool_version": {"type": "str"}})
    code, _, err = run("stacks", "check", "--catalog", small_catalog, "--roles", roles)
    assert code == EXIT_ERROR
    missing = messages.MISSING_ROLE.format(stack_id="db", role="db", path=roles / "db" / "tasks" / "main.yml")
    mismatch = messages.ROLE_SPEC_MISMATCH.format(
        role="tool", only_defaults="tool_extra", only_specs="(none)"
    )
    assert err.splitlines() == [messages.CLI_ERROR.format(message=m) for m in (missing, mismatch)]


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, ["stacks"])
    assert "list" in result.output and "resolve" in result.output


def test_the_installed_console_script_runs() -> None:
    script = Path(sys.executable).parent / "ctforge"
    proc = subprocess.run(
        [script, "stacks", "resolve", "claude_cli"], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout.split()) == (0, ["nodejs", "claude_cli"]), proc.stderr
