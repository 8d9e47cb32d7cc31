"""Workspace records: which template a workspace comes from, its VMID, the one function that moves its
status, and the actions (each one job) that change it.

A workspace is a clone of a ready template plus the stacks the template lacked. Like the other
record modules, every function writes only through the caller's session: a refusal raised half-way
rolls the whole request back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ctforge import messages
from ctforge.catalog import Catalog, CatalogError
from ctforge.db.models import JOB_DONE, Job, Template, User, Workspace, utcnow
from ctforge.records import templates as template_records
from ctforge.records import vmids
from ctforge.records.errors import Conflict, Forbidden, Invalid, NotFound
from ctforge.settings import Settings

ACTIVE = ("queued", "running")

# pending → provisioning → running ⇄ stopped; any of them → error; error → back by retry.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"provisioning", "error"}),
    "provisioning": frozenset({"running", "error"}),
    "running": frozenset({"stopped", "error"}),
    "stopped": frozenset({"running", "error"}),
    "error": frozenset({"provisioning", "running", "stopped"}),
}


@dataclass(frozen=True)
class Action:
    steps: tuple[str, ...]  # the playbook steps, in order
    statuses: frozenset[str]  # the workspace statuses it starts from


ACTIONS: dict[str, Action] = {
    "start": Action(("start",), frozenset({"stopped"})),
    "stop": Action(("stop",), frozenset({"running"})),
    "retry": Action((), frozenset({"error"})),  # its steps: the failed job's, from the one that failed
    "destroy": Action(("destroy",), frozenset(TRANSITIONS)),
}


# --- who sees and who changes -------------------------------------------------------------------

def visible_to(user: User | None) -> ColumnElement[bool]:
    """A workspace is its owner's (and every admin's): it holds their keys and their work."""
    if user is not None and user.is_admin:
        return true()
    if user is None:
        return Workspace.id.is_(None)
    return Workspace.owner_id == user.id


def can_see(user: User | None, workspace: Workspace) -> bool:
    return user is not None and (user.is_admin or workspace.owner_id == user.id)


def get_workspace(session: Session, workspace_id: uuid.UUID, user: User | None, *,
                  for_update: bool = False) -> Workspace:
    query = select(Workspace).where(Workspace.id == workspace_id)
    if for_update:
        query = query.with_for_update(of=Workspace)
    workspace = session.scalar(query)
    if workspace is None or not can_see(user, workspace):  # another's workspace is not there for you
        raise NotFound(messages.WORKSPACE_NOT_FOUND.format(id=workspace_id))
    return workspace


def list_workspaces(session: Session, user: User | None, *, status: str | None = None,
                    template_id: uuid.UUID | None = None, limit: int = 50,
                    offset: int = 0) -> tuple[int, list[Workspace]]:
    query = select(Workspace).where(visible_to(user))
    if status is not None:
        query = query.where(Workspace.status == status)
    if template_id is not None:
        query = query.where(Workspace.template_id == template_id)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Workspace.created_at, Workspace.id).limit(limit).offset(offset))
    return count, list(rows.unique())


def of_template(session: Session, template_id: uuid.UUID) -> Sequence[Workspace]:
    return session.scalars(select(Workspace).where(Workspace.template_id == template_id)
                           .order_by(Workspace.created_at, Workspace.id)).all()


# --- which template ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """A template for a request: what it covers, what the workspace adds on top, what it carries
    that nobody asked for."""

    template: Template
    wanted: list[str]  # the request with what it requires, in dependency order
    template_stacks: list[str]  # the template's effective stacks
    missing: list[str]  # installed on top, in dependency order
    extra: list[str]  # carried but not asked for

    @property
    def covered(self) -> list[str]:
        return [s for s in self.wanted if s in self.template_stacks]


def resolve(catalog: Catalog, stacks: Iterable[str]) -> list[str]:
    try:
        return catalog.resolve(list(stacks))
    except CatalogError as exc:
        raise Invalid(str(exc)) from None


def usable(template: Template) -> bool:
    """Ready, on the cluster, and reachable by ctforge (it trusts the build key)."""
    return (template.status == "ready" and template.vmid is not None
            and template.build_key_fingerprint is not None)


def _choice(catalog: Catalog, template: Template, wanted: list[str]) -> Choice:
    have = template_records.effective_stacks(catalog, template)
    return Choice(template=template, wanted=wanted, template_stacks=have,
                  missing=[s for s in wanted if s not in have], extra=[s for s in have if s not in wanted])


def choose_template(session: Session, catalog: Catalog, user: User, stacks: Iterable[str], *,
                    template_id: uuid.UUID | None = None) -> Choice:
    """The template a workspace for `stacks` comes from: the one named, else among the ready
    templates `user` may use, the one that covers the most of the request; on a tie the one that
    carries the fewest stacks the request did not ask for; then a default template, then the user's
    own, then the oldest (so the same request picks the same template every time)."""
    wanted = resolve(catalog, stacks)
    if template_id is not None:
        try:
            template = template_records.get_template(session, template_id, user)
        except Forbidden:
            raise NotFound(messages.TEMPLATE_NOT_FOUND.format(id=template_id)) from None
        if template.status != "ready" or template.vmid is None:
            raise Conflict(messages.WORKSPACE_TEMPLATE_NOT_READY.format(name=template.name,
                                                                        status=template.status))
        if template.build_key_fingerprint is None:
            raise Conflict(messages.WORKSPACE_TEMPLATE_KEYLESS.format(name=template.name))
        return _choice(catalog, template, wanted)
    candidates = [t for t in session.scalars(
        select(Template).where(template_records.visible_to(user), Template.status == "ready")
        .order_by(Template.created_at, Template.id)).unique() if usable(t)]
    if not candidates:
        raise Conflict(messages.WORKSPACE_NO_TEMPLATE)
    choices = [_choice(catalog, t, wanted) for t in candidates]
    return min(choices, key=lambda c: (-len(c.covered), len(c.extra), not c.template.is_default,
                                       c.template.owner_id != user.id))  # min() keeps the oldest of equals


# --- create ---------------------------------------------------------------------------------------

@dataclass
class WorkspaceFields:
    name: str
    stacks: list[str]
    ssh_public_keys: list[str]
    template_id: uuid.UUID | None = None
    detected: dict[str, Any] = field(default_factory=dict)


def create_workspace(session: Session, catalog: Catalog, settings: Settings, user: User,
                     fields: WorkspaceFields, *, in_use: Iterable[int] = ()) -> tuple[Workspace, Job]:
    """A workspace record with its VMID claimed and its create job queued: `pending` until a worker
    runs the job (ctforge.jobs.work moves it to `provisioning`)."""
    if not fields.stacks and not fields.detected:
        raise Invalid(messages.WORKSPACE_NEEDS_STACKS)
    if not fields.ssh_public_keys:
        raise Invalid(messages.WORKSPACE_NEEDS_KEYS)
    if session.scalar(select(Workspace.id).where(Workspace.owner_id == user.id,
                                                 Workspace.name == fields.name)) is not None:
        raise Conflict(messages.WORKSPACE_NAME_TAKEN.format(name=fields.name))
    choice = choose_template(session, catalog, user, fields.stacks, template_id=fields.template_id)
    workspace = Workspace(
        id=uuid.uuid4(), owner_id=user.id, template_id=choice.template.id, name=fields.name,
        status="pending", node=choice.template.node, requested_stacks=choice.wanted,
        template_stacks=choice.template_stacks, installed_stacks=choice.missing,
        ssh_public_keys=list(fields.ssh_public_keys), detected=dict(fields.detected))
    session.add(workspace)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent request took the name since we looked
        raise Conflict(messages.WORKSPACE_NAME_TAKEN.format(name=fields.name)) from None
    workspace.vmid = vmids.claim(session, "workspace", settings.workspace_vmids, template_id=None,
                                 workspace_id=workspace.id, in_use=in_use)
    session.flush()
    job = _queue(session, user, workspace, "create", ["workspace"])
    return workspace, job


def _queue(session: Session, user: User, workspace: Workspace, kind: str, steps: list[str]) -> Job:
    job = Job(id=uuid.uuid4(), kind=kind, template_id=workspace.template_id,
              template_name=workspace.template.name, workspace_id=workspace.id,
              workspace_name=workspace.name, status="queued", started_by_id=user.id,
              started_by=user.name, steps=steps, playbook=steps[0] if steps else None)
    session.add(job)
    session.flush()
    return job


# --- actions --------------------------------------------------------------------------------------

def check_may_change(user: User, workspace: Workspace) -> None:
    if not (user.is_admin or workspace.owner_id == user.id):
        raise Forbidden(messages.WORKSPACE_NOT_YOURS.format(name=workspace.name, owner=workspace.owner.name))


def active_job(session: Session, workspace_id: uuid.UUID) -> Job | None:
    return session.scalars(select(Job).where(Job.workspace_id == workspace_id, Job.status.in_(ACTIVE))
                           .order_by(Job.created_at).limit(1)).first()


def start_action(session: Session, user: User, workspace: Workspace, action: str) -> Job:
    """Queue `action` on `workspace` (locked by the caller), or refuse it with what to do instead."""
    check_may_change(user, workspace)
    rule = ACTIONS[action]
    running = active_job(session, workspace.id)
    if running is not None:
        raise Conflict(messages.WORKSPACE_JOB_RUNNING.format(
            name=workspace.name, kind=running.kind, status=running.status, job_id=running.id))
    if workspace.status not in rule.statuses:
        raise Conflict(messages.WORKSPACE_ACTION_NEEDS_STATUS.format(
            action=action, name=workspace.name, status=workspace.status,
            wanted=" or ".join(sorted(rule.statuses))))
    steps, kind = list(rule.steps), action
    if action == "retry":
        failed = session.scalars(select(Job).where(Job.workspace_id == workspace.id,
                                                   Job.status.in_(JOB_DONE))
                                 .order_by(Job.created_at.desc(), Job.id).limit(1)).first()
        if failed is None or failed.status == "successful" or not failed.steps:
            raise Conflict(messages.WORKSPACE_RETRY_NOTHING_FAILED.format(name=workspace.name))
        steps = list(failed.steps)
        if steps == ["workspace"]:
            move_status(session, workspace, "provisioning")
    return _queue(session, user, workspace, kind, steps)


def move_status(session: Session, workspace: Workspace, to: str, *, error: str | None = None,
                **facts: Any) -> Workspace:
    """Move `workspace` to `to`, or refuse (an illegal step, or a status another writer changed:
    compare-and-set). `facts`: the columns the step sets (vmid, node, ip, installed_stacks, ...)."""
    current = workspace.status
    if to not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(messages.WORKSPACE_STATUS_ILLEGAL.format(
            name=workspace.name, current=current, to=to,
            allowed=", ".join(sorted(TRANSITIONS.get(current, ()))) or "none"))
    if (to == "error") != (error is not None):
        raise ValueError("an error status needs its message, and only an error status has one")
    unknown = set(facts) - {"node", "ip", "dev_user", "template_stacks", "installed_stacks"}
    if unknown:
        raise ValueError(f"move_status cannot set {sorted(unknown)}")
    values: dict[str, Any] = {"status": to, "error_message": error, **facts}
    if to == "running":
        values["running_at"] = utcnow()
    if to == "stopped":
        values["ip"] = None
    result = session.execute(
        update(Workspace).where(Workspace.id == workspace.id, Workspace.status == current).values(**values)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(workspace)
        raise Conflict(messages.STATUS_CHANGED_MEANWHILE.format(
            name=workspace.name, expected=current, found=workspace.status))
    session.refresh(workspace)
    return workspace


def note_address(session: Session, workspace_id: uuid.UUID, ip: str, dev_user: str | None) -> None:
    """A workspace being made is reachable at `ip` as `dev_user` (the owner's keys are in): its record
    shows them before the job ends, while the stacks it lacks install."""
    session.execute(update(Workspace).where(Workspace.id == workspace_id, Workspace.status == "provisioning")
                    .values(ip=ip, dev_user=dev_user).execution_options(synchronize_session=False))


def fail(session: Session, job: Job, error: str) -> None:
    """The job's workspace goes to error with `error` (its CT stays: a retry takes it up)."""
    if job.workspace_id is None:
        return
    workspace = session.get(Workspace, job.workspace_id, populate_existing=True)
    if workspace is None:
        return
    if workspace.status == "error":
        session.execute(update(Workspace).where(Workspace.id == workspace.id).values(error_message=error)
                        .execution_options(synchronize_session=False))
        return
    move_status(session, workspace, "error", error=error)


def forget(session: Session, workspace: Workspace) -> None:
    """Its CT is gone: free the VMID and delete the record (its jobs keep its name)."""
    if workspace.vmid is not None:
        vmids.release(session, workspace.vmid)
    session.delete(workspace)
    session.flush()


# --- a template's workspaces, when the template is to go ----------------------------------------

def check_template_may_go(session: Session, template: Template, *, force: bool) -> list[Workspace]:
    """The workspaces a destroy of `template` must take with it (force), or a refusal naming them.
    A workspace whose job runs cannot be taken: the destroy waits for it."""
    made = list(of_template(session, template.id))
    if not made:
        return []
    if not force:
        raise Conflict(messages.TEMPLATE_HAS_WORKSPACES.format(
            name=template.name, workspaces=", ".join(repr(w.name) for w in made)))
    for workspace in made:
        running = active_job(session, workspace.id)
        if running is not None:
            raise Conflict(messages.TEMPLATE_WORKSPACE_BUSY.format(
                name=template.name, workspace=workspace.name, kind=running.kind, status=running.status,
                job_id=running.id))
    return made
