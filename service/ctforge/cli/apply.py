"""`ctforge apply FILE [--plan]`: make the service hold the template family of a YAML file.

The plan (ctforge.apply.make_plan) comes from the file and the records as they are now; --plan
prints it and changes nothing. Otherwise each step is printed and done in order, each job followed
to its end; a step that fails stops the run (exit 2), and `ctforge apply FILE` again goes on from
where the service is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ctforge.apply import FamilyError, Step, load_family, make_plan, plan_text
from ctforge.cli.common import fail
from ctforge.cli.progress import DONE_OK, failure, follow
from ctforge.cli.remote import Token, Url, connected, print_json
from ctforge.cli.workspaces import public_keys
from ctforge.client import Client, ClientError

STOPPED = ("apply stopped at step {index} of {total} ({step}): {cause}; the steps before it stay done: "
           "fix the cause and run `ctforge apply {path}` again")
DONE = "done: {count} step{s}; `ctforge templates` shows the family"


def apply(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="The family file (see examples/family.yml).")],
    plan_only: Annotated[bool, typer.Option("--plan", help="Print what it would do; do nothing.")] = False,
    log: Annotated[bool, typer.Option("--log", help="Print Ansible's output while following jobs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --plan: the steps as JSON.")] = False,
    url: Url = None, token: Token = None,
) -> None:
    """Create what the file lists and the service lacks, rebuild what changed, in parent order."""
    try:
        family = load_family(path)
    except FamilyError as exc:
        raise fail(exc.message) from None
    console = Console(highlight=False)
    with connected(url, token) as client:
        try:
            steps = make_plan(family, client.pages("/templates"), _workspaces(client),
                              [s["id"] for s in client.get("/stacks")["data"]])
        except FamilyError as exc:
            raise ClientError(exc.message) from None
        if plan_only and as_json:
            print_json([dataclasses.asdict(step) for step in steps])
            return
        for line in plan_text(path, steps):
            console.print(escape(line), soft_wrap=True)
        if plan_only or not steps:
            return
        ids = {t["name"]: t["id"] for t in client.pages("/templates")}
        for index, step in enumerate(steps, 1):
            console.print(escape(f"step {index}/{len(steps)}: {step.describe()}"), soft_wrap=True)
            try:
                _carry_out(client, step, ids, console, log=log)
            except ClientError as exc:
                raise ClientError(STOPPED.format(index=index, total=len(steps), step=step.describe(),
                                                 cause=exc.message, path=path)) from None
        console.print(escape(DONE.format(count=len(steps), s="" if len(steps) == 1 else "s")))


def _workspaces(client: Client) -> list[dict[str, Any]]:
    return client.pages("/workspaces") if client.endpoint.token else []


def _carry_out(client: Client, step: Step, ids: dict[str, str], console: Console, *, log: bool) -> None:
    if step.kind == "create":
        body = dict(step.body)
        if step.parent is not None:
            body["parent_id"] = ids[step.parent]
        ids[step.name] = client.post("/templates", body)["id"]
        return
    if step.kind == "change":
        client.patch(f"/templates/{ids[step.name]}", step.body)
        return
    if step.kind == "workspace":
        body: dict[str, Any] = {"name": step.name, "stacks": step.body["stacks"],
                                "ssh_public_keys": step.body["ssh_public_keys"] or public_keys(None)}
        if step.parent is not None:
            body["template_id"] = ids[step.parent]
        job = client.post("/workspaces", body)["job"]
    else:
        job = client.post(f"/templates/{ids[step.name]}/{step.kind}")
    ended = follow(client, job, console, log=log)
    if ended["status"] != DONE_OK:
        raise ClientError(failure(ended))


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)
