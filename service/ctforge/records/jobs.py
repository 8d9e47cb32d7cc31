"""Job records: which action may start from which status, one job at a time on a template, the claim
of a queued job by one worker, the events, the end of a job and the reaping of a dead worker's jobs.

Like records/templates.py, every function writes only through the caller's session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ctforge import messages, notify
from ctforge.catalog import Catalog
from ctforge.db.models import JOB_DONE, Job, JobEvent, Template, User, VmidClaim, Worker, Workspace, utcnow
from ctforge.records import templates as template_records
from ctforge.records import vmids
from ctforge.records import workspaces as workspace_records
from ctforge.records.errors import Conflict, NotFound
from ctforge.settings import Settings

ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Action:
    steps: tuple[str, ...]  # the playbooks, in order
    statuses: frozenset[str]  # the template statuses it starts from
    moves_to: str | None  # the status the template takes when the job is queued
    needs_parent_ready: bool


ACTIONS: dict[str, Action] = {
    "provision": Action(("provision",), frozenset({"pending", "error", "destroyed"}), "provisioning", True),
    "build": Action(("provision", "finalize"), frozenset({"pending", "error", "destroyed"}), "provisioning",
                    True),
    "finalize": Action(("finalize",), frozenset({"staging"}), None, False),
    "destroy": Action(("destroy",), frozenset({"pending", "staging", "ready", "error"}), None, False),
    "retry": Action((), frozenset({"error"}), None, True),  # its steps: from the one that failed
    # a new CT at a VMID of the job's own, built from the parent; the record keeps serving the old
    # one (it stays ready) until the new one is ready, then points at it and the old CT goes
    "rebuild": Action(("provision", "finalize", "replace"), frozenset({"ready"}), None, True),
}


def active_job(session: Session, template_id: uuid.UUID) -> Job | None:
    """The template's own job that is queued or running (a workspace's job names its template too)."""
    return session.scalars(select(Job).where(Job.template_id == template_id, Job.workspace_name.is_(None),
                                             Job.status.in_(ACTIVE))
                           .order_by(Job.created_at).limit(1)).first()


def last_failed_job(session: Session, template_id: uuid.UUID) -> Job | None:
    last = session.scalars(select(Job).where(Job.template_id == template_id, Job.workspace_name.is_(None),
                                             Job.status.in_(JOB_DONE))
                           .order_by(Job.created_at.desc(), Job.id).limit(1)).first()
    return last if last is not None and last.status != "successful" else None


def get_job(session: Session, job_id: uuid.UUID, user: User | None) -> Job:
    job = session.get(Job, job_id)
    if job is None or not can_see(session, user, job):
        raise NotFound(messages.JOB_NOT_FOUND.format(id=job_id))
    return job


def can_see(session: Session, user: User | None, job: Job) -> bool:
    """Who started it, an admin, and: for a template's job whoever sees the template, for a
    workspace's job its owner (it is about their workspace, not the template's)."""
    if user is not None and (user.is_admin or job.started_by_id == user.id):
        return True
    if job.workspace_name is not None:
        workspace = session.get(Workspace, job.workspace_id) if job.workspace_id else None
        return workspace is not None and workspace_records.can_see(user, workspace)
    template = session.get(Template, job.template_id) if job.template_id else None
    return template is not None and template_records.can_see(user, template)


def list_jobs(session: Session, user: User | None, *, template_id: uuid.UUID | None = None,
              workspace_id: uuid.UUID | None = None, status: str | None = None, limit: int = 50,
              offset: int = 0) -> tuple[int, Sequence[Job]]:
    query = (select(Job).outerjoin(Template, Template.id == Job.template_id)
             .outerjoin(Workspace, Workspace.id == Job.workspace_id))
    if user is None or not user.is_admin:
        mine = Job.started_by_id == user.id if user is not None else False
        templates_job = Job.workspace_name.is_(None) & template_records.visible_to(user)
        workspaces_job = Job.workspace_name.is_not(None) & workspace_records.visible_to(user)
        query = query.where(templates_job | workspaces_job | mine)
    if template_id is not None:
        query = query.where(Job.template_id == template_id)
    if workspace_id is not None:
        query = query.where(Job.workspace_id == workspace_id)
    if status is not None:
        query = query.where(Job.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)).all()
    return total, rows


def start_action(session: Session, catalog: Catalog, settings: Settings, user: User, template: Template,
                 action: str, *, in_use: Iterable[int] = (), force: bool = False) -> Job:
    """Queue `action` on `template` (locked by the caller), or refuse it with what to do instead."""
    template_records.check_may_change(user, template)
    rule = ACTIONS[action]
    running = active_job(session, template.id)
    if running is not None:
        raise Conflict(messages.JOB_RUNNING_ON_TEMPLATE.format(
            name=template.name, kind=running.kind, status=running.status, job_id=running.id))
    if template.status not in rule.statuses:
        raise Conflict(messages.ACTION_NEEDS_STATUS.format(
            action=action, name=template.name, status=template.status,
            wanted=" or ".join(sorted(rule.statuses))))
    steps = list(rule.steps)
    moves_to = rule.moves_to
    if action == "retry":
        failed = last_failed_job(session, template.id)
        if failed is None or not failed.steps:
            raise Conflict(messages.RETRY_NOTHING_FAILED.format(name=template.name))
        at = failed.playbook if failed.playbook in failed.steps else failed.steps[0]
        steps = failed.steps[failed.steps.index(at):]
        moves_to = {"provision": "provisioning", "finalize": "staging"}.get(steps[0])
    if "provision" in steps and template.parent_id is not None:
        parent = session.get(Template, template.parent_id)
        if parent is None or parent.status != "ready" or parent.vmid is None:
            raise Conflict(messages.ACTION_PARENT_NOT_READY.format(
                action=action, name=template.name, parent=parent.name if parent else "?",
                status=parent.status if parent else "deleted"))
        # a new CT is a clone of the parent's CT as it is now: it inherits what that CT was built with
        # (the parent may have been rebuilt with other stacks since this record was made)
        inherited = parent.built_stacks if parent.built_stacks is not None else \
            template_records.effective_stacks(catalog, parent)
        if inherited != template.inherited_tech_stacks:
            template.inherited_tech_stacks = list(inherited)
            session.flush()
    if action in ("destroy", "rebuild"):
        built_on = [child.name for child in template_records.children(session, template)
                    if child.status != "destroyed"]
        if built_on:
            text = messages.DESTROY_HAS_CHILDREN if action == "destroy" else messages.REBUILD_HAS_CHILDREN
            raise Conflict(text.format(name=template.name, children=", ".join(built_on)))
        # workspaces are linked clones of the CT: they go with it (destroy with force), or it stays
        made = workspace_records.of_template(session, template.id)
        if made and action == "rebuild":
            raise Conflict(messages.REBUILD_HAS_WORKSPACES.format(
                name=template.name, workspaces=", ".join(repr(w.name) for w in made)))
        if workspace_records.check_template_may_go(session, template, force=force):
            steps = ["workspaces", *steps]
    if "provision" in steps and template.vmid is None:  # destroyed: it gets a VMID again
        vmid = vmids.claim(session, "template", settings.template_vmids, template_id=template.id,
                           in_use=in_use)
        session.execute(update(Template).where(Template.id == template.id).values(vmid=vmid)
                        .execution_options(synchronize_session=False))
        session.refresh(template)
    job = Job(id=uuid.uuid4(), kind=action, template_id=template.id, template_name=template.name,
              status="queued", started_by_id=user.id, started_by=user.name, steps=steps,
              playbook=steps[0] if steps else None)
    session.add(job)
    session.flush()
    if action == "rebuild":  # the new CT's VMID, the job's until it replaces the old one
        vmids.claim(session, "template", settings.template_vmids, template_id=None, in_use=in_use,
                    job_id=job.id)
    if moves_to is not None and moves_to != template.status:
        template_records.move_status(session, template, moves_to, catalog=catalog, job_id=job.id)
    return job


# --- the worker's side --------------------------------------------------------------------------

def claim_next(session: Session, worker_id: str) -> Job | None:
    """Take the oldest queued job for this worker, or None. On PostgreSQL, SKIP LOCKED lets several
    processes claim at once without waiting on each other; the status compare-and-set below makes
    the claim exactly-once on SQLite too (where writers take turns anyway)."""
    query = select(Job.id).where(Job.status == "queued").order_by(Job.created_at, Job.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    job_id = session.scalar(query)
    if job_id is None:
        return None
    claimed = session.execute(
        update(Job).where(Job.id == job_id, Job.status == "queued")
        .values(status="running", worker_id=worker_id, started_at=utcnow())
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(Job, job_id, populate_existing=True)


def append_events(session: Session, job_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    session.add_all(JobEvent(job_id=job_id, **row) for row in rows)
    session.execute(update(Job).where(Job.id == job_id).values(event_count=rows[-1]["seq"])
                    .execution_options(synchronize_session=False))


def events(session: Session, job_id: uuid.UUID, *, after: int = 0, limit: int = 500) -> Sequence[JobEvent]:
    return session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after)
                           .order_by(JobEvent.seq).limit(limit)).all()


def job_payload(job: Job) -> dict[str, Any]:
    return {"id": str(job.id), "kind": job.kind,
            "template_id": str(job.template_id) if job.template_id else None,
            "template_name": job.template_name,
            "workspace_id": str(job.workspace_id) if job.workspace_id else None,
            "workspace_name": job.workspace_name, "status": job.status, "started_by": job.started_by,
            "rc": job.rc, "failed_step": job.failed_step, "error": job.error,
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def finish(session: Session, job: Job, status: str, *, rc: int | None = None, failed_step: str | None = None,
           error: str | None = None, only_if_worker: str | None = None, only_if_queued: bool = False) -> bool:
    """End the job (compare-and-set on it being unfinished, and on its worker when given)."""
    where = [Job.id == job.id, Job.status.in_(("queued",) if only_if_queued else ACTIVE)]
    if only_if_worker is not None:
        where.append(Job.worker_id == only_if_worker)
    done = session.execute(update(Job).where(*where).values(
        status=status, rc=rc, failed_step=failed_step, error=error, finished_at=utcnow())
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.refresh(job)
    notify.publish(session, "job.finished", job_payload(job))
    return True


def request_cancel(session: Session, job: Job, user: User) -> Job:
    if job.status in JOB_DONE:
        raise Conflict(messages.JOB_ALREADY_DONE.format(job_id=job.id, status=job.status))
    session.execute(update(Job).where(Job.id == job.id).values(cancel_requested_by=user.name)
                    .execution_options(synchronize_session=False))
    session.refresh(job)
    return job


def smoke_claims(session: Session, job_id: uuid.UUID) -> list[int]:
    return list(session.scalars(select(VmidClaim.vmid).where(VmidClaim.job_id == job_id,
                                                             VmidClaim.kind == "smoke")))


def job_claims(session: Session, job_id: uuid.UUID) -> list[int]:
    """Every VMID the job holds: smoke clones, and a rebuild's new CT. None belongs to a record."""
    return list(session.scalars(select(VmidClaim.vmid).where(VmidClaim.job_id == job_id)))


def rebuild_target(session: Session, job_id: uuid.UUID) -> int | None:
    return session.scalar(select(VmidClaim.vmid).where(VmidClaim.job_id == job_id,
                                                       VmidClaim.kind == "template"))


def replace_ct(session: Session, template: Template, job_id: uuid.UUID, new_vmid: int) -> int | None:
    """The record takes the rebuilt CT: the job's claim becomes the record's, the old one is freed.
    Returns the old VMID (its CT is the caller's to destroy)."""
    old = template.vmid
    if old is not None:
        vmids.release(session, old)
    session.execute(update(VmidClaim).where(VmidClaim.vmid == new_vmid, VmidClaim.job_id == job_id)
                    .values(template_id=template.id, job_id=None)
                    .execution_options(synchronize_session=False))
    session.execute(update(Template).where(Template.id == template.id).values(vmid=new_vmid)
                    .execution_options(synchronize_session=False))
    session.refresh(template)
    return old


def claim_smoke_vmid(session: Session, settings: Settings, job_id: uuid.UUID, in_use: Iterable[int]) -> int:
    return vmids.claim(session, "smoke", settings.template_vmids, template_id=None, in_use=in_use,
                       job_id=job_id)


def release_job_claims(session: Session, job_id: uuid.UUID) -> None:
    session.execute(delete(VmidClaim).where(VmidClaim.job_id == job_id))


# --- heartbeats and reaping -----------------------------------------------------------------------

def beat(session: Session, worker_id: str, hostname: str, pid: int) -> None:
    now = utcnow()
    updated = session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=now)
                              .execution_options(synchronize_session=False))
    if updated.rowcount != 1:  # type: ignore[attr-defined]
        session.add(Worker(id=worker_id, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now))


def dead_workers(session: Session, *, silent_for: float, hostname: str, alive: Any) -> list[str]:
    """Workers silent for `silent_for` s, and those of this host whose process is gone (found at
    once: a service started again after a crash reaps its old self without waiting)."""
    cutoff = utcnow() - timedelta(seconds=silent_for)
    dead = []
    for worker in session.scalars(select(Worker)):
        if worker.heartbeat_at < cutoff or (worker.hostname == hostname and not alive(worker.pid, worker.id)):
            dead.append(worker.id)
    return dead


def orphaned_jobs(session: Session, dead: list[str]) -> Sequence[Job]:
    """Running jobs whose worker is dead or has no row at all."""
    known = select(Worker.id).where(Worker.id.not_in(dead))
    return session.scalars(select(Job).where(Job.status == "running",
                                             (Job.worker_id.is_(None)) | Job.worker_id.not_in(known))).all()


def forget_workers(session: Session, dead: list[str]) -> None:
    if dead:
        session.execute(delete(Worker).where(Worker.id.in_(dead)))


def last_task(session: Session, job_id: uuid.UUID) -> JobEvent | None:
    """The job's most recent task start: where a stopped run was."""
    return session.scalars(select(JobEvent).where(JobEvent.job_id == job_id,
                                                  JobEvent.event == "playbook_on_task_start")
                           .order_by(JobEvent.seq.desc()).limit(1)).first()


def cancel_queued(session: Session, job: Job, user: User) -> None:
    """A job no worker took yet ends here: canceled, and its template in error as after a run."""
    error = messages.JOB_CANCELED_BY.format(user=user.name)
    if finish(session, job, "canceled", error=error, only_if_queued=True):
        fail_record(session, job, error)


def fail_record(session: Session, job: Job, error: str) -> None:
    """The record the job worked on goes to error: its workspace, or its template."""
    if job.workspace_name is not None:
        workspace_records.fail(session, job, error)
    else:
        fail_template(session, job, error)


def fail_template(session: Session, job: Job, error: str) -> None:
    """The job's template goes to error with `error`, from wherever the job left it. A failed
    rebuild leaves the record as it was: its old CT still serves, the job says what went wrong."""
    if job.template_id is None or job.kind == "rebuild":
        return
    template = session.get(Template, job.template_id, populate_existing=True)
    if template is None or template.status in ("error", "destroyed"):
        if template is not None and template.status == "error":
            session.execute(update(Template).where(Template.id == template.id).values(error_message=error)
                            .execution_options(synchronize_session=False))
        return
    template_records.move_status(session, template, "error", error=error, job_id=job.id)
