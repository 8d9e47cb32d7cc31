"""`ctforge workspaces list|show|create|start|stop|retry|destroy` over the HTTP API, with the options,
the errors and the job following of cli/remote.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ctforge.cli.remote import (
    AsJson,
    NameOrId,
    NoFollow,
    ShowLog,
    Token,
    Url,
    connected,
    finish_job,
    job_action,
    out,
    print_json,
    print_record,
    split_stacks,
)
from ctforge.client import ClientError
from ctforge.formats import login_command

workspaces_app = typer.Typer(help="Workspaces over the HTTP API.", no_args_is_help=True)
KEY_FILES = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
NO_KEY = "no SSH public key: give --key PATH (none of ~/.ssh/{files} exists)"

@workspaces_app.command("list")
def workspaces_list(url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """Your workspaces (an admin's: everyone's)."""
    with connected(url, token) as client:
        rows = client.pages("/workspaces")
    if as_json:
        print_json({"data": rows, "count": len(rows)})
        return
    table = Table(title=f"{len(rows)} workspaces", title_justify="left")
    for column in ("name", "status", "template", "vmid", "ip", "installed", "owner"):
        table.add_column(column)
    for w in rows:
        table.add_row(escape(w["name"]), w["status"], escape(w["template_name"]), str(w["vmid"] or "-"),
                      w["ip"] or "-", escape(", ".join(w["installed_stacks"]) or "-"), escape(w["owner"]))
    out().print(table)


@workspaces_app.command("show")
def workspaces_show(name: NameOrId, url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """One workspace's record."""
    with connected(url, token) as client:
        w = client.workspace(name)
    if as_json:
        print_json(w)
        return
    print_record({"name": w["name"], "id": w["id"], "owner": w["owner"], "status": w["status"],
                  "template": w["template_name"], "vmid": w["vmid"], "ip": w["ip"],
                  "login": login_command(w["ip"], w.get("dev_user")),
                  "requested": w["requested_stacks"], "from the template": w["template_stacks"],
                  "installed": w["installed_stacks"], "error": w["error_message"],
                  "running since": w["running_at"], "created": w["created_at"]})


def public_keys(paths: list[Path] | None) -> list[str]:
    if not paths:
        home = Path.home() / ".ssh"
        paths = [p for p in (home / f for f in KEY_FILES) if p.is_file()][:1]
        if not paths:
            raise ClientError(NO_KEY.format(files="{" + ",".join(KEY_FILES) + "}"))
    keys = []
    for path in paths:
        try:
            keys += [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise ClientError(f"cannot read the key file {path}: {exc.strerror}") from None
    return keys


@workspaces_app.command("create")
def workspaces_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The CT's hostname: lower case, digits, -.")],
    stacks: Annotated[str | None, typer.Option(help="The stacks the work needs, comma-separated.")] = None,
    template: Annotated[str | None, typer.Option(help="The template to clone (default: the best).")] = None,
    key: Annotated[list[Path] | None, typer.Option(help="An SSH public key file (repeatable; "
                                                        "default: ~/.ssh/id_ed25519.pub, ...)")] = None,
    url: Url = None, token: Token = None, no_follow: NoFollow = False, log: ShowLog = False,
    as_json: AsJson = False,
) -> None:
    """A workspace from the template that covers the most of the stacks, the rest installed on top."""
    with connected(url, token) as client:
        body: dict[str, Any] = {"name": name, "stacks": split_stacks(stacks),
                                "ssh_public_keys": public_keys(key)}
        if template is not None:
            body["template_id"] = client.template(template)["id"]
        created = client.post("/workspaces", body)
        finish_job(client, created["job"], no_follow=no_follow, as_json=as_json, log=log)
        if not no_follow and not as_json:
            w = client.get(f"/workspaces/{created['workspace']['id']}")
            login = login_command(w["ip"], w.get("dev_user"))
            out().print(escape(f"ok: workspace {w['name']} is {w['status']}: {login}"))


for _action, _doc in (("start", "Start a stopped workspace."), ("stop", "Stop a running workspace."),
                      ("retry", "From error: the failed job's steps again."),
                      ("destroy", "Remove the workspace's CT, its VMID and its record.")):
    workspaces_app.command(_action)(job_action("workspace", _action, _doc))



def register(app: typer.Typer) -> None:
    app.add_typer(workspaces_app, name="workspaces")
