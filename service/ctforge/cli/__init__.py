"""The `ctforge` command line. Errors print as one line on stderr and exit with status 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ctforge import messages
from ctforge.catalog import DEFAULT_CATALOG_DIR, DEFAULT_ROLES_DIR, Catalog, CatalogError, load_catalog
from ctforge.cli.apply import register as register_apply_command
from ctforge.cli.common import EXIT_ERROR, fail
from ctforge.cli.remote import register as register_remote_commands
from ctforge.cli.service import register as register_service_commands
from ctforge.cli.workspaces import register as register_workspace_commands
from ctforge.detect import Detection, detect_stacks, read_project
from ctforge.rolespecs import RoleSpecError, check_role, role_dirs

app = typer.Typer(
    help="Build Proxmox VE LXC templates from layered tech stacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stacks_app = typer.Typer(help="The tech stack catalog (stacks/<id>.yml).", no_args_is_help=True)
app.add_typer(stacks_app, name="stacks")
register_service_commands(app)
register_remote_commands(app)
register_workspace_commands(app)
register_apply_command(app)
__all__ = ["EXIT_ERROR", "app"]

CatalogDir = Annotated[
    Path,
    typer.Option(
        "--catalog", envvar="CTFORGE_CATALOG_DIR", help="Directory of stack files.", show_default=True
    ),
]
RolesDir = Annotated[
    Path, typer.Option("--roles", envvar="CTFORGE_ROLES_DIR", help="Directory of roles.", show_default=True)
]


@contextmanager
def catalog_errors() -> Iterator[None]:
    """Turn a catalog error into its one-line message and exit status 2, never a traceback."""
    try:
        yield
    except (CatalogError, RoleSpecError) as exc:
        raise fail(str(exc)) from None


def _join(items: list[str]) -> str:
    return ", ".join(items) or "-"


@stacks_app.command("list")
def list_stacks(catalog_dir: CatalogDir = DEFAULT_CATALOG_DIR) -> None:
    """Show every stack of the catalog."""
    with catalog_errors():
        catalog = load_catalog(catalog_dir)
    table = Table(title=f"{len(catalog)} tech stacks", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("id", style="bold", no_wrap=True)
    table.add_column("name")
    table.add_column("requires")
    table.add_column("tags")
    table.add_column("verify")
    for stack in catalog:
        table.add_row(
            escape(stack.icon),
            escape(stack.id),
            escape(stack.name),
            escape(_join(stack.requires)),
            escape(_join(stack.tags)),
            escape(stack.verify),
        )
    Console(highlight=False).print(table)


def _required_by(catalog: Catalog, stack_id: str) -> list[str]:
    return [s.id for s in catalog if stack_id in s.requires]


@stacks_app.command("show")
def show_stack(
    stack_id: Annotated[str, typer.Argument(metavar="ID")], catalog_dir: CatalogDir = DEFAULT_CATALOG_DIR
) -> None:
    """Show one stack: every field, and what installing it takes."""
    with catalog_errors():
        catalog = load_catalog(catalog_dir)
        stack = catalog.get(stack_id)
        install_order = catalog.resolve([stack_id])
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    rows = {
        "id": stack.id,
        "name": stack.name,
        "icon": stack.icon,
        "description": stack.description,
        "tags": _join(stack.tags),
        "role": stack.role,
        "requires": _join(stack.requires),
        "install order": " → ".join(install_order),
        "required by": _join(_required_by(catalog, stack.id)),
        "verify": stack.verify,
    }
    for key, value in rows.items():
        grid.add_row(key, escape(value))
    Console(highlight=False).print(grid)


@stacks_app.command("resolve")
def resolve_stacks(
    stack_ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="Stacks to install, in your order.")
    ],
    inherited: Annotated[
        list[str] | None,
        typer.Option("--inherited", "-i", metavar="ID", help="A stack the parent template has (repeatable)."),
    ] = None,
    catalog_dir: CatalogDir = DEFAULT_CATALOG_DIR,
) -> None:
    """Print the stacks in install order, one per line: requirements first, none twice."""
    with catalog_errors():
        order = load_catalog(catalog_dir).effective(inherited or [], stack_ids)
    for stack_id in order:
        typer.echo(stack_id)


@stacks_app.command("check")
def check(catalog_dir: CatalogDir = DEFAULT_CATALOG_DIR, roles_dir: RolesDir = DEFAULT_ROLES_DIR) -> None:
    """Validate the catalog, that each entry's role exists, and each role's defaults against its specs."""
    problems: list[str] = []
    try:
        catalog = load_catalog(catalog_dir)
        typer.echo(f"ok: the catalog at {catalog_dir} ({len(catalog)} stacks)")
        catalog.check_roles(roles_dir)
        typer.echo(f"ok: every stack names a role under {roles_dir}")
    except CatalogError as exc:
        problems.append(str(exc))
    roles = role_dirs(roles_dir)
    spec_problems: list[str] = []
    for role_dir in roles:
        try:
            report = check_role(role_dir)
        except RoleSpecError as exc:
            spec_problems.append(str(exc))
            continue
        if not report.ok:
            spec_problems.append(report.message())
    problems += spec_problems
    if not spec_problems:
        typer.echo(f"ok: defaults and argument specs agree in all {len(roles)} roles")
    for problem in problems:
        typer.echo(messages.CLI_ERROR.format(message=problem), err=True)
    if problems:
        raise typer.Exit(EXIT_ERROR)


@stacks_app.command("detect")
def detect(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The top directory of a project's checkout.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {stacks, unknown, problems} as JSON, for scripts.")
    ] = False,
    catalog_dir: CatalogDir = DEFAULT_CATALOG_DIR,
) -> None:
    """Name the stacks a checkout needs, from its own files, each with the file that gave it away.

    Signals of stacks the catalog lacks are listed as unknown; files that cannot be read are listed
    as problems, and the others are read all the same.
    """
    if not path.exists():
        raise fail(messages.DETECT_PATH_MISSING.format(path=path))
    if not path.is_dir():
        raise fail(messages.DETECT_PATH_NOT_DIR.format(path=path))
    with catalog_errors():
        catalog = load_catalog(catalog_dir)
    checkout = read_project(path)
    detection = detect_stacks(checkout.files, catalog, checkout.problems)
    if as_json:
        typer.echo(json.dumps(detection.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        _print_detection(detection, path)


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _print_detection(detection: Detection, path: Path) -> None:
    """Stacks with their evidence, then unknown signals, then problems; each a heading and a table
    (a table's own title would wrap at the table's width)."""
    console = Console(highlight=False)
    if not detection.stacks:
        console.print(escape(messages.DETECT_NOTHING.format(path=path)))
    else:
        console.print(_counted(len(detection.stacks), "stack") + ", in install order:")
        stacks = Table("id", "evidence")
        for stack in detection.stacks:
            lines = [str(e) for e in stack.evidence] or [f"required by {_join(stack.required_by)}"]
            stacks.add_row(escape(stack.id), escape("\n".join(lines)))
        console.print(stacks)
    if detection.unknown:
        console.print(_counted(len(detection.unknown), "signal") + " of what the catalog has no stack for:")
        unknown = Table("name", "signal")
        for signal in detection.unknown:
            unknown.add_row(escape(signal.name), escape(str(signal)))
        console.print(unknown)
    if detection.problems:
        console.print(_counted(len(detection.problems), "file problem") + ":")
        problems = Table("file", "problem")
        for problem in detection.problems:
            problems.add_row(escape(problem.file), escape(problem.problem))
        console.print(problems)
