"""One job from its claim to its end: for each playbook of its steps, the request from the template
record, the inventory from the staging CT's address, the run, and the result into the record.

A run that fails, is canceled or times out ends the same way: the throwaway smoke clone the job
made is destroyed (it belongs to no record), the template goes to `error` with the step and the
cause, and the job records both. The CT at the record's own VMID stays: it is the record's, and a
retry takes it up where the run stopped (the playbooks adopt an existing CT).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import update

from ctforge import messages
from ctforge.catalog import REPO_ROOT
from ctforge.db.models import Job, Template, Workspace, utcnow
from ctforge.formats import hostname_for
from ctforge.jobs.inventory import write_inventory
from ctforge.jobs.runner import RunOutcome, run_playbook
from ctforge.jobs.steps import cause_of, step_of
from ctforge.jobs.workspace_steps import apply_workspace_result, workspace_request
from ctforge.records import jobs as job_records
from ctforge.records import templates as template_records
from ctforge.records import vmids
from ctforge.records import workspaces as workspace_records
from ctforge.records.errors import RecordError, Unavailable
from ctforge.requests import (
    DestroyRequest,
    FinalizeRequest,
    FinalizeResult,
    ProvisionRequest,
    ProvisionResult,
)

log = logging.getLogger("ctforge.jobs")

# Events are written in batches: at most this many, or this old, before the next write.
EVENT_BATCH = 100
EVENT_BATCH_SECONDS = 0.25
# What of an event's data is kept in the table (the full events stay in the artifacts).
_KEPT = ("play", "task", "task_action", "task_path", "host", "duration", "included_file", "playbook")


class _Ended(Exception):
    """The job has been ended (failed, canceled, timed out) by the step that raises this."""


class JobFailure(Exception):
    def __init__(self, step: str, cause: str) -> None:
        super().__init__(f"{step}: {cause}")
        self.step, self.cause = step, cause


@dataclass
class EventRecorder:
    """Turns a run's events into rows of job_events, and remembers what names a failure's step."""

    service: Any
    job_id: uuid.UUID
    seq: int
    playbook: str = ""
    pending: list[dict[str, Any]] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)
    includes: dict[str, tuple[str, str]] = field(default_factory=dict)  # file -> (include task, its file)

    def __call__(self, event: dict[str, Any]) -> None:
        self.seq += 1
        data = event.get("event_data") or {}
        kind = str(event.get("event") or "verbose")
        if kind == "playbook_on_include" and data.get("included_file"):
            self.includes[str(data["included_file"])] = (str(data.get("task") or ""),
                                                         _file_of(data.get("task_path")))
        kept: dict[str, Any] = {key: data[key] for key in _KEPT if data.get(key) is not None}
        failed = kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors")
        if failed:
            kept["msg"] = cause_of(event)
        if kind == "playbook_on_stats":
            kept["stats"] = data.get("artifact_data") or {}
            for key in ("ok", "changed", "failures", "dark", "skipped", "rescued"):
                kept[key] = data.get(key) or {}
        self.pending.append({"seq": self.seq, "event": kind[:64], "playbook": self.playbook,
                             "task": data.get("task"), "host": data.get("host"), "failed": failed,
                             "stdout": str(event.get("stdout") or ""), "data": kept,
                             "created_at": utcnow()})
        if len(self.pending) >= EVENT_BATCH or time.monotonic() - self.last_flush >= EVENT_BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            rows, self.pending = self.pending, []
            with self.service.db.writing() as session:
                job_records.append_events(session, self.job_id, rows)
        self.last_flush = time.monotonic()

    def include_chain(self, task_path: str | None) -> list[str]:
        """The names of the include tasks that led to a task, outermost first."""
        chain: list[str] = []
        current = _file_of(task_path)
        while current in self.includes and len(chain) < 20:
            name, current = self.includes[current]
            chain.insert(0, name)
        return chain


def reachable_at(event: dict[str, Any]) -> tuple[str, str | None] | None:
    """The address and the dev user playbooks/workspace.yml reports (facts workspace_login_address and
    workspace_login_user) once the owner can log in, before it installs anything; None for every
    other event."""
    if event.get("event") != "runner_on_ok":
        return None
    facts = ((event.get("event_data") or {}).get("res") or {}).get("ansible_facts") or {}
    address, user = facts.get("workspace_login_address"), facts.get("workspace_login_user")
    return (str(address), str(user) if user else None) if address else None


def _file_of(task_path: Any) -> str:
    return str(task_path or "").rsplit(":", 1)[0]


class JobWork:
    """Runs one claimed job in a worker thread of the pool."""

    def __init__(self, service: Any, job: Job, worker_id: str, stopping: threading.Event) -> None:
        self.service, self.settings = service, service.settings
        self.job_id, self.worker_id, self.stopping = job.id, worker_id, stopping
        self.steps = list(job.steps)
        self.rebuild = job.kind == "rebuild"
        self.workspace_id = job.workspace_id if job.workspace_name is not None else None
        self._rebuilt: FinalizeResult | None = None
        self.started_by = job.started_by
        self.dir = self.settings.jobs_dir / str(job.id)
        self.recorder = EventRecorder(service, job.id, job.event_count)
        self.runs = 0
        self.step = self.steps[0] if self.steps else "job"
        self._cancel_checked = 0.0
        self._cancel_by: str | None = None

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.service.db.writing() as session:
            session.execute(update(Job).where(Job.id == self.job_id).values(artifacts_dir=str(self.dir))
                            .execution_options(synchronize_session=False))
        outcome: RunOutcome | None = None
        try:
            for playbook in self.steps:
                self.step = playbook
                self._mark_playbook(playbook)
                if playbook == "replace":
                    self._replace()
                    continue
                if playbook == "workspaces":
                    self._destroy_workspaces()
                    continue
                request, address, vmid = self._prepare(playbook)
                if request is None:
                    continue
                outcome = self._run(playbook, request, address, vmid=vmid)
                if outcome.status != "successful":
                    self._failed(outcome)
                    return
                self._apply(playbook, outcome.stats or {})
            self._succeeded(outcome)
        except _Ended:
            return
        except JobFailure as failure:
            self._end("failed", failure.step, messages.JOB_STEP_FAILED.format(step=failure.step,
                                                                             cause=failure.cause), rc=None)
        except Exception as exc:  # a bug, or the database gone: the job still ends, the record too
            log.exception("job %s: %s", self.job_id, exc)
            self._end("failed", self.step, messages.JOB_STEP_FAILED.format(
                step=self.step, cause=f"internal error in the service: {type(exc).__name__}: {exc}"), rc=None)
        finally:
            self.recorder.flush()

    def _mark_playbook(self, playbook: str) -> None:
        with self.service.db.writing() as session:
            session.execute(update(Job).where(Job.id == self.job_id).values(playbook=playbook)
                            .execution_options(synchronize_session=False))

    def _run(self, playbook: str, request: Any, address: str | None, *,
             vmid: int | None = None) -> RunOutcome:
        self.runs += 1
        self.recorder.playbook = playbook
        with self.service.db.reading() as session:
            record = self._record(session)
            staging_vmid = record.vmid if record is not None else None
        inventory = write_inventory(self.dir, self.job_id, vmid or staging_vmid, address,
                                    self.settings.state_dir / "build_key")
        outcome = run_playbook(
            self.dir, f"{self.runs:02d}-{playbook}", request.playbook, request,
            inventories=[self.settings.inventory, inventory], env=run_env(self.settings),
            secrets=run_secrets(self.settings),
            on_event=self._on_event, should_cancel=self._should_cancel,
            timeout=self.settings.job_timeout_seconds)
        self.recorder.flush()
        return outcome

    def _on_event(self, event: dict[str, Any]) -> None:
        self.recorder(event)
        login = reachable_at(event) if self.workspace_id is not None else None
        if login:
            with self.service.db.writing() as session:
                workspace_records.note_address(session, self.workspace_id, *login)

    def _should_cancel(self) -> bool:
        if self.stopping.is_set():
            self._cancel_by = self._cancel_by or "service"
            return True
        now = time.monotonic()
        if now - self._cancel_checked >= 1.0:
            self._cancel_checked = now
            with self.service.db.reading() as session:
                job = session.get(Job, self.job_id)
                if job is not None and job.cancel_requested_by:
                    self._cancel_by = job.cancel_requested_by
        return self._cancel_by is not None

    def _template_id(self, session: Any) -> uuid.UUID:
        job = session.get(Job, self.job_id)
        if job is None or job.template_id is None:
            raise JobFailure(self.step, "the template record was deleted while the job ran")
        return job.template_id

    def _workspace(self, session: Any) -> Workspace:
        workspace = session.get(Workspace, self.workspace_id, populate_existing=True)
        if workspace is None:
            raise JobFailure(self.step, "the workspace record was deleted while the job ran")
        return workspace

    def _record(self, session: Any) -> Template | Workspace:
        if self.workspace_id is not None:
            return self._workspace(session)
        return session.get(Template, self._template_id(session))

    # -- requests from the record ------------------------------------------------------------------
    def _prepare(self, playbook: str) -> tuple[Any, str | None, int | None]:
        """(the request, the staging CT's address for the inventory, the CT's VMID)."""
        catalog, settings, proxmox = self.service.catalog, self.settings, self.service.proxmox
        try:
            with self.service.db.writing() as session:
                if self.workspace_id is not None:
                    workspace = self._workspace(session)
                    if playbook == "workspace" and workspace.status == "pending":  # its job runs now
                        workspace_records.move_status(session, workspace, "provisioning")
                    request = workspace_request(self.service, session, workspace, playbook)
                    if request is None:
                        return None, None, None
                    address = (proxmox.ct_ipv4(workspace.node or settings.proxmox.node, workspace.vmid)
                               if playbook == "stop" and workspace.vmid else None)
                    return request, address, workspace.vmid
                template = session.get(Template, self._template_id(session))
                # a rebuild makes its CT at the VMID the job holds; the record keeps the old one
                vmid = job_records.rebuild_target(session, self.job_id) if self.rebuild else template.vmid
                if playbook == "provision":
                    parent = session.get(Template, template.parent_id) if template.parent_id else None
                    fields: dict[str, Any] = {
                        "ctforge_template_name": hostname_for(template.name), "ctforge_vmid": vmid,
                        "ctforge_stacks": list(template.tech_stacks),
                        "ctforge_env_vars": dict(template.env_vars or {}),
                    }
                    if parent is not None:
                        fields["ctforge_parent_vmid"] = parent.vmid
                        fields["ctforge_inherited_stacks"] = list(template.inherited_tech_stacks)
                    else:
                        fields["ctforge_base_ct_template"] = template.base_ct_template
                    if template.description:
                        fields["ctforge_description"] = template.description
                    for column, variable in (("node", "ctforge_node"), ("storage", "ctforge_storage")):
                        if getattr(template, column):
                            fields[variable] = getattr(template, column)
                    if settings.apt_proxy is not None:
                        fields["ctforge_apt_proxy"] = settings.apt_proxy
                    if settings.ssh_timeout_seconds is not None:
                        fields["ctforge_ssh_timeout"] = settings.ssh_timeout_seconds
                    return ProvisionRequest.model_validate(fields, context={"catalog": catalog}), None, vmid
                if playbook == "finalize":
                    node = template.node or settings.proxmox.node
                    address = proxmox.ct_ipv4(node, vmid) if node and vmid else None
                    smoke = job_records.smoke_claims(session, self.job_id)
                    smoke_vmid = smoke[0] if smoke else job_records.claim_smoke_vmid(
                        session, settings, self.job_id, proxmox.used_vmids(fresh=True))
                    extra = ({"ctforge_ssh_timeout": settings.ssh_timeout_seconds}
                             if settings.ssh_timeout_seconds is not None else {})
                    return FinalizeRequest(ctforge_vmid=vmid, ctforge_smoke_vmid=smoke_vmid,
                                           **extra), address, vmid
                if playbook == "destroy":
                    if template.vmid is None:
                        return None, None, None
                    return DestroyRequest(ctforge_vmid=template.vmid), None, template.vmid
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise JobFailure("validate", messages.JOB_REQUEST_INVALID.format(
                playbook=playbook, problems=problems)) from None
        except Unavailable as exc:
            raise JobFailure("validate", messages.JOB_PROXMOX_UNREACHABLE.format(cause=exc)) from None
        except RecordError as exc:
            raise JobFailure("validate", str(exc)) from None
        raise JobFailure("validate", f"no such playbook step {playbook!r}")

    # -- results into the record -------------------------------------------------------------------
    def _apply(self, playbook: str, stats: dict[str, Any]) -> None:
        with self.service.db.writing() as session:
            if self.workspace_id is not None:
                apply_workspace_result(self.service, session, self._workspace(session), playbook, stats)
                return
            template = session.get(Template, self._template_id(session), populate_existing=True)
            if self.rebuild:  # the record stays ready on its old CT until _replace
                if playbook == "finalize":
                    self._rebuilt = FinalizeResult.model_validate(stats)
                else:
                    ProvisionResult.model_validate(stats)
            elif playbook == "provision":
                result = ProvisionResult.model_validate(stats)
                template_records.move_status(
                    session, template, "staging", job_id=self.job_id, staging_container_ip=result.ip,
                    node=result.node, build_key_fingerprint=result.build_key)
            elif playbook == "finalize":
                result = FinalizeResult.model_validate(stats)
                stacks = template_records.effective_stacks(self.service.catalog, template)
                template_records.move_status(
                    session, template, "ready", catalog=self.service.catalog, job_id=self.job_id,
                    node=result.node, build_key_fingerprint=result.build_key,
                    built_fingerprint=self.service.fingerprints.of(stacks))
                job_records.release_job_claims(session, self.job_id)
            elif playbook == "destroy":
                if template.vmid is not None:
                    vmids.release(session, template.vmid)
                session.execute(update(Template).where(Template.id == template.id)
                                .values(vmid=None, staging_container_ip=None)
                                .execution_options(synchronize_session=False))
                session.refresh(template)
                template_records.move_status(session, template, "destroyed", job_id=self.job_id)

    def _replace(self) -> None:
        """The rebuilt CT replaces the old one: the record points at it, then the old CT goes."""
        result = self._rebuilt
        assert result is not None, "replace runs after the rebuild's finalize"
        with self.service.db.writing() as session:
            template = session.get(Template, self._template_id(session), populate_existing=True)
            new = job_records.rebuild_target(session, self.job_id)
            stacks = template_records.effective_stacks(self.service.catalog, template)
            old = job_records.replace_ct(session, template, self.job_id, new)
            job_records.release_job_claims(session, self.job_id)  # the smoke clone's
            session.execute(update(Template).where(Template.id == template.id).values(
                node=result.node, build_key_fingerprint=result.build_key, built_stacks=stacks,
                built_fingerprint=self.service.fingerprints.of(stacks), ready_at=utcnow(),
                needs_rebuild=False).execution_options(synchronize_session=False))
        if old is not None:
            outcome = self._run("destroy", DestroyRequest(ctforge_vmid=old), None, vmid=old)
            if outcome.status != "successful":
                _, cause = self._failed_step(outcome)
                raise JobFailure("destroy", messages.REBUILD_OLD_CT_KEPT.format(vmid=old, cause=cause))

    def _destroy_workspaces(self) -> None:
        """A forced destroy of a template takes its workspaces first: Proxmox keeps a template
        while linked clones use it."""
        with self.service.db.reading() as session:
            made = [(w.id, w.name, w.vmid) for w in workspace_records.of_template(session,
                                                                                  self._template_id(session))]
        for workspace_id, name, vmid in made:
            if vmid is not None:
                outcome = self._run("destroy", DestroyRequest(ctforge_vmid=vmid), None, vmid=vmid)
                if outcome.status != "successful":
                    self._failed(outcome)
                    raise _Ended from None
            with self.service.db.writing() as session:
                workspace = session.get(Workspace, workspace_id)
                if workspace is not None:
                    workspace_records.forget(session, workspace)
            log.info("job %s: workspace %s (CT %s) destroyed with its template", self.job_id, name, vmid)

    # -- endings -----------------------------------------------------------------------------------
    def _succeeded(self, outcome: RunOutcome | None) -> None:
        with self.service.db.writing() as session:
            job = session.get(Job, self.job_id)
            job_records.finish(session, job, "successful", rc=outcome.rc if outcome else 0)
        self._tell()

    def _failed(self, outcome: RunOutcome) -> None:
        if outcome.status == "canceled":
            by = self._cancel_by or "service"
            error = (messages.JOB_CANCELED_BY.format(user=by) if by != "service"
                     else messages.JOB_SERVICE_STOPPED)
            self._end("canceled", self._failed_step(outcome)[0], error, rc=outcome.rc)
        elif outcome.status == "timeout":
            step = self._failed_step(outcome)[0]
            self._end("timeout", step, messages.JOB_TIMED_OUT.format(
                seconds=self.settings.job_timeout_seconds, step=step), rc=outcome.rc)
        else:
            step, cause = self._failed_step(outcome)
            self._end("failed", step, messages.JOB_STEP_FAILED.format(step=step, cause=cause), rc=outcome.rc)

    def _failed_step(self, outcome: RunOutcome) -> tuple[str, str]:
        if not outcome.failures:
            return self._running_step(), f"ansible-playbook ended with rc {outcome.rc} (see the job's log)"
        event = outcome.failures[-1]
        data = event.get("event_data") or {}
        cause = cause_of(event)
        chain = self.recorder.include_chain(data.get("task_path"))
        step = step_of(self.step, str(data.get("task") or ""), chain, cause)
        return step, cause

    def _running_step(self) -> str:
        """For a run that was stopped: the step of the task it was in."""
        with self.service.db.reading() as session:
            last = job_records.last_task(session, self.job_id)
        if last is None:
            return self.step
        chain = self.recorder.include_chain(last.data.get("task_path"))
        return step_of(self.step, str(last.task or ""), chain, "")

    def _end(self, status: str, step: str, error: str, *, rc: int | None) -> None:
        """The job ends as `status`: its smoke clone destroyed, the template in error, both recorded."""
        cleanup(self.service, self.job_id, self._run_cleanup)
        with self.service.db.writing() as session:
            job = session.get(Job, self.job_id)
            job_records.finish(session, job, status, rc=rc, failed_step=step, error=error)
            job_records.fail_record(session, job, error)
        self._tell()

    def _run_cleanup(self, vmid: int) -> RunOutcome:
        never = threading.Event()
        saved, self.stopping = self.stopping, never  # a cleanup runs to its end, even while stopping
        self._cancel_by = None
        self._cancel_checked = float("inf")
        try:
            return self._run("destroy", DestroyRequest(ctforge_vmid=vmid), None, vmid=vmid)
        finally:
            self.stopping = saved

    def _tell(self) -> None:
        if self.service.deliverer is not None:
            self.service.deliverer.wake()


def run_env(settings: Any) -> dict[str, str]:
    """The environment of every run: the Proxmox endpoint (never its secret), ansible.cfg, plain output."""
    pve = settings.proxmox
    env = {"ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0",
           "CTFORGE_STATE_DIR": str(settings.state_dir),
           "PROXMOX_PORT": str(pve.port), "PROXMOX_USER": pve.user, "PROXMOX_TOKEN_ID": pve.token_id,
           "PROXMOX_VALIDATE_CERTS": "true" if pve.validate_certs else "false"}
    if pve.host:
        env["PROXMOX_HOST"] = pve.host
    if pve.node:
        env["PROXMOX_NODE"] = pve.node
    return env


def run_secrets(settings: Any) -> dict[str, str]:
    """What the run gets only through ctforge.jobs.shim's prompt: never into a file or the log."""
    secret = settings.proxmox.token_secret.get_secret_value()
    return {"PROXMOX_TOKEN_SECRET": secret} if secret else {}


def cleanup(service: Any, job_id: uuid.UUID, destroy: Callable[[int], RunOutcome]) -> None:
    """Destroy the CTs a job claimed (smoke clones, a rebuild's new CT), if Proxmox has them, and
    free their VMIDs: none of them belongs to a record."""
    with service.db.reading() as session:
        claimed = job_records.job_claims(session, job_id)
    for vmid in claimed:
        try:
            exists = service.proxmox.guest(vmid) is not None
        except Unavailable:
            log.warning("job %s: Proxmox did not answer; smoke clone %s kept claimed", job_id, vmid)
            continue
        if exists and destroy(vmid).status != "successful":
            log.warning("job %s: smoke clone %s could not be destroyed; its VMID stays claimed", job_id, vmid)
            continue
        with service.db.writing() as session:
            vmids.release(session, vmid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
