"""The commands over the HTTP API: `templates`, `jobs`, `login` (`workspaces` in cli/workspaces.py).

Each takes --url and --token (else CTFORGE_URL / CTFORGE_TOKEN, else the config file `ctforge
login` writes); each read takes --json and prints the API's JSON. An action on a template or a
workspace queues a job and, unless --no-follow, follows it to its end (exit 2 when it failed).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ctforge.cli.common import fail
from ctforge.cli.progress import DONE_OK, failure, follow
from ctforge.client import DEFAULT_URL, Client, ClientError, config_path, write_config

Url = Annotated[str | None, typer.Option("--url", envvar="CTFORGE_URL", show_envvar=True,
                                         help="The service (default: the config file's, else http://127.0.0.1:8100).")]
Token = Annotated[str | None, typer.Option("--token", envvar="CTFORGE_TOKEN", show_envvar=True,
                                           help="An API token (default: the config file's).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON, for scripts.")]
NoFollow = Annotated[bool, typer.Option("--no-follow", help="Print the queued job and return at once.")]
ShowLog = Annotated[bool, typer.Option("--log", help="Print Ansible's output while following.")]
NameOrId = Annotated[str, typer.Argument(metavar="NAME", help="A name or an id.")]

templates_app = typer.Typer(help="The template family over the HTTP API (no command: the tree).",
                            invoke_without_command=True)
jobs_app = typer.Typer(help="Jobs over the HTTP API (no command: the newest jobs).",
                       invoke_without_command=True)

CAPTURED_WIDTH = 200
BASE_NEEDS_APPLIANCE = ("a template without --parent starts from an appliance: give --appliance "
                        "(e.g. debian-12-standard)")


OPTIONS_AFTER_COMMAND = ("give {options} after the command ({group} {command} ... {options}): "
                         "before it they are the {group} listing's own")


def _only_for_listing(ctx: typer.Context, *names: str) -> None:
    """A group's options belong to its listing; before a subcommand they would be dropped silently."""
    # by the enum's name: typer runs on a click of its own (typer._click), not the installed one
    given = [f"--{name.replace('_', '-')}" for name in names
             if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"]
    if given:
        raise fail(OPTIONS_AFTER_COMMAND.format(options=" ".join(given).replace("--as-json", "--json"),
                                                group=ctx.info_name, command=ctx.invoked_subcommand))


def out() -> Console:
    """Captured output (not a terminal) is wide, so a table's columns keep their text whole."""
    terminal = sys.stdout.isatty()
    return Console(highlight=False, width=None if terminal or "COLUMNS" in os.environ else CAPTURED_WIDTH)


@contextmanager
def connected(url: str | None, token: str | None) -> Iterator[Client]:
    """A client for the command; a ClientError becomes its one line on stderr and exit 2."""
    client: Client | None = None
    try:
        client = Client.connect(url, token)
        yield client
    except ClientError as exc:
        raise fail(exc.message) from None
    finally:
        if client is not None:
            client.close()


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def finish_job(client: Client, job: dict[str, Any], *, no_follow: bool, as_json: bool, log: bool) -> None:
    """Print the queued job, or follow it to its end; a job that did not succeed exits 2."""
    if no_follow:
        if as_json:
            print_json(job)
        else:
            out().print(escape(f"queued job {job['id']}: {job['kind']} ({job['status']}); "
                               f"`ctforge jobs follow {job['id']}` follows it"))
        return
    ended = follow(client, job, Console(highlight=False, stderr=as_json), log=log)
    if as_json:
        print_json(ended)
    if ended["status"] != DONE_OK:
        raise ClientError(failure(ended))


# --- templates ----------------------------------------------------------------------------------

def _node_label(node: dict[str, Any], inherited: list[str]) -> str:
    own = [s for s in node["effective_stacks"] if s not in inherited]
    stacks = ", ".join([*(f"[dim]{escape(s)}[/dim]" for s in inherited if s in node["effective_stacks"]),
                        *(f"[bold]{escape(s)}[/bold]" for s in own)]) or "no stacks"
    vmid = f"VMID {node['vmid']}" if node["vmid"] is not None else "no VMID"
    default = " · default" if node["is_default"] else ""
    return f"[bold]{escape(node['name'])}[/bold] · {node['status']} · {vmid} · {stacks}{default}"


def print_tree(tree: dict[str, Any]) -> None:
    root = Tree(f"{tree['count']} template{'' if tree['count'] == 1 else 's'}", guide_style="dim")

    def add(branch: Tree, node: dict[str, Any], inherited: list[str]) -> None:
        child = branch.add(_node_label(node, inherited))
        for grandchild in node["children"]:
            add(child, grandchild, node["effective_stacks"])

    for node in tree["data"]:
        add(root, node, [])
    out().print(root)


@templates_app.callback()
def templates(ctx: typer.Context, url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """Without a command: the family as a tree (name, status, VMID, stacks)."""
    if ctx.invoked_subcommand is not None:
        _only_for_listing(ctx, "url", "token", "as_json")
        return
    with connected(url, token) as client:
        tree = client.get("/templates/tree")
    if as_json:
        print_json(tree)
    else:
        print_tree(tree)


@templates_app.command("tree")
def templates_tree(url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """The family as a tree (name, status, VMID, stacks)."""
    with connected(url, token) as client:
        tree = client.get("/templates/tree")
    print_json(tree) if as_json else print_tree(tree)


def print_record(rows: dict[str, Any]) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in rows.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        grid.add_row(key, escape("-" if value is None or value == "" else str(value)))
    out().print(grid)


def print_template(template: dict[str, Any], parent_name: str | None) -> None:
    print_record({
        "name": template["name"], "id": template["id"], "owner": template["owner"],
        "status": template["status"], "vmid": template["vmid"], "node": template["node"],
        "parent": parent_name or f"none (from {template['base_ct_template']})",
        "own stacks": template["tech_stacks"], "inherited": template["inherited_tech_stacks"],
        "effective": template["effective_stacks"], "default": "yes" if template["is_default"] else "no",
        "needs rebuild": "yes" if template["needs_rebuild"] else "no",
        "built with": template["built_stacks"], "error": template["error_message"],
        "staging ip": template["staging_container_ip"], "description": template["description"],
        "ready at": template["ready_at"], "created": template["created_at"],
    })


def _parent_name(client: Client, template: dict[str, Any]) -> str | None:
    if template["parent_id"] is None:
        return None
    try:
        return str(client.get(f"/templates/{template['parent_id']}")["name"])
    except ClientError:
        return str(template["parent_id"])


@templates_app.command("show")
def templates_show(name: NameOrId, url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """One template's record."""
    with connected(url, token) as client:
        template = client.template(name)
        parent = _parent_name(client, template)
    print_json(template) if as_json else print_template(template, parent)


def split_stacks(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


@templates_app.command("create")
def templates_create(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    parent: Annotated[str | None, typer.Option(help="The parent (name or id); it must be ready.")] = None,
    stacks: Annotated[str | None, typer.Option(help="Its own stacks, comma-separated: a,b.")] = None,
    appliance: Annotated[str | None, typer.Option(help="A base starts from it: debian-12-standard")] = None,
    description: Annotated[str, typer.Option(help="What the template is for.")] = "",
    default: Annotated[bool, typer.Option("--default", help="Shown to every user (admins only).")] = False,
    url: Url = None, token: Token = None, as_json: AsJson = False,
) -> None:
    """Make a pending template record (its VMID claimed); `templates build NAME` builds it."""
    with connected(url, token) as client:
        body: dict[str, Any] = {"name": name, "tech_stacks": split_stacks(stacks), "is_default": default}
        if description:
            body["description"] = description
        if parent is not None:
            body["parent_id"] = client.template(parent)["id"]
        elif appliance is None:
            raise ClientError(BASE_NEEDS_APPLIANCE)
        if appliance is not None:
            body["base_ct_template"] = appliance
        template = client.post("/templates", body)
        parent_name = _parent_name(client, template)
    if as_json:
        print_json(template)
        return
    print_template(template, parent_name)
    out().print(escape(f"ok: template {template['name']} is pending; "
                       f"`ctforge templates build {name}` builds it"))


def job_action(kind: str, action: str, doc: str) -> Callable[..., None]:
    """The command `ctforge {kind}s {action} NAME`: POST /{kind}s/{id}/{action}, then its job followed."""
    def command(name: NameOrId, url: Url = None, token: Token = None, no_follow: NoFollow = False,
                log: ShowLog = False, as_json: AsJson = False) -> None:
        with connected(url, token) as client:
            record = getattr(client, kind)(name)
            job = client.post(f"/{kind}s/{record['id']}/{action}")
            finish_job(client, job, no_follow=no_follow, as_json=as_json, log=log)

    command.__doc__ = doc
    command.__name__ = f"{kind}s_{action}"
    return command


for _action, _doc in (
    ("provision", "Clone the parent (or create from the appliance), start it, install its stacks: staging."),
    ("finalize", "Prepare the staging CT and convert it to a template: ready."),
    ("build", "Provision and finalize in one job: pending, error or destroyed → ready."),
    ("retry", "From error: again from the playbook that failed."),
    ("rebuild", "A ready template built anew from its parent; the new CT replaces the old once ready."),
):
    templates_app.command(_action)(job_action("template", _action, _doc))


@templates_app.command("destroy")
def templates_destroy(
    name: NameOrId, url: Url = None, token: Token = None, no_follow: NoFollow = False, log: ShowLog = False,
    as_json: AsJson = False,
    force: Annotated[bool, typer.Option("--force", help="Destroy its workspaces first.")] = False,
) -> None:
    """Remove the template's CT and free its VMID; the record stays, destroyed."""
    with connected(url, token) as client:
        template = client.template(name)
        job = client.post(f"/templates/{template['id']}/destroy", force="true" if force else None)
        finish_job(client, job, no_follow=no_follow, as_json=as_json, log=log)


# --- jobs ---------------------------------------------------------------------------------------

def print_jobs(rows: list[dict[str, Any]], count: int) -> None:
    table = Table(title=f"{len(rows)} of {count} jobs, newest first", title_justify="left")
    for column in ("id", "kind", "of", "status", "failed step", "by", "created"):
        table.add_column(column, no_wrap=column == "id")
    for job in rows:
        target = f"workspace {job['workspace_name']}" if job["workspace_name"] else job["template_name"]
        table.add_row(job["id"], job["kind"], escape(target), job["status"], job["failed_step"] or "",
                      escape(job["started_by"]), job["created_at"][:19].replace("T", " "))
    out().print(table)


@jobs_app.callback()
def jobs(ctx: typer.Context, url: Url = None, token: Token = None, as_json: AsJson = False,
         limit: Annotated[int, typer.Option(help="At most this many.")] = 20) -> None:
    """Without a command: the newest jobs."""
    if ctx.invoked_subcommand is not None:
        _only_for_listing(ctx, "url", "token", "as_json", "limit")
        return
    with connected(url, token) as client:
        page = client.get("/jobs", limit=limit)
    print_json(page) if as_json else print_jobs(page["data"], page["count"])


@jobs_app.command("list")
def jobs_list(url: Url = None, token: Token = None, as_json: AsJson = False,
              limit: Annotated[int, typer.Option(help="At most this many.")] = 20,
              template: Annotated[str | None, typer.Option(help="Only this template's jobs.")] = None,
              ) -> None:
    """The newest jobs."""
    with connected(url, token) as client:
        template_id = client.template(template)["id"] if template else None
        page = client.get("/jobs", limit=limit, template_id=template_id)
    print_json(page) if as_json else print_jobs(page["data"], page["count"])


JobId = Annotated[str, typer.Argument(metavar="ID", help="A job's id.")]


@jobs_app.command("show")
def jobs_show(job_id: JobId, url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """One job's record."""
    with connected(url, token) as client:
        job = client.get(f"/jobs/{job_id}")
    if as_json:
        print_json(job)
        return
    print_record({key: job[key] for key in (
        "id", "kind", "template_name", "workspace_name", "status", "started_by", "steps", "playbook", "rc",
        "failed_step", "error", "cancel_requested_by", "event_count", "created_at", "started_at",
        "finished_at", "artifacts_dir")})


@jobs_app.command("follow")
def jobs_follow(job_id: JobId, url: Url = None, token: Token = None,
                quiet: Annotated[bool, typer.Option("--quiet", help="Progress only, not Ansible's output.")
                                 ] = False) -> None:
    """Ansible's output of the job as it runs (from the start), until it ends; exit 2 if it failed."""
    with connected(url, token) as client:
        job = client.get(f"/jobs/{job_id}")
        ended = follow(client, job, Console(highlight=False), log=not quiet)
        if ended["status"] != DONE_OK:
            raise ClientError(failure(ended))


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobId, url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """Ask a queued or running job to stop; its template goes to error, "canceled by USER"."""
    with connected(url, token) as client:
        job = client.post(f"/jobs/{job_id}/cancel")
    if as_json:
        print_json(job)
    else:
        out().print(escape(f"ok: cancel asked of job {job['id']} ({job['kind']} of {job['template_name']}); "
                           f"it is {job['status']}"))


# --- login --------------------------------------------------------------------------------------

def login(
    url: Annotated[str, typer.Option("--url", envvar="CTFORGE_URL", help="The service.")] = DEFAULT_URL,
    token: Annotated[str | None, typer.Option("--token", envvar="CTFORGE_TOKEN",
                                              help="The token (default: asked for, not echoed).")] = None,
) -> None:
    """Check the token against the service and keep url and token in the config file (mode 0600)."""
    if token is None:
        token = typer.prompt("token", hide_input=True)
    with connected(url, token) as client:
        client.get("/workspaces", limit=1)  # a route that needs a token: a refused one says so
        path = write_config(client.url, token, config_path())
    out().print(escape(f"ok: the token works at {client.url}; kept in {path} (mode 0600)"))


def register(app: typer.Typer) -> None:
    app.add_typer(templates_app, name="templates")
    app.add_typer(jobs_app, name="jobs")
    app.command("login")(login)
