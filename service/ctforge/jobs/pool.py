"""The worker pool of one service process: claims queued jobs, runs them, beats, reaps the dead.

    pool = JobPool(service); pool.start() ... pool.wake() after queueing a job ... pool.stop()

- At most settings.job_workers runs at once. The dispatcher claims a queued job only when a slot is
  free (records.jobs.claim_next: SKIP LOCKED on PostgreSQL, compare-and-set on the status), so a
  process never holds a job it cannot run, and several processes on one database share the queue.
- The heartbeat writes workers.heartbeat_at every job_heartbeat_seconds. Every beat also reaps: a
  worker silent for job_reap_seconds, or one of this host whose process is gone (a service started
  again after SIGKILL finds its old self at once), is dead. Its running jobs end `failed` with
  "service restarted during the run", their templates go to `error`, the smoke clones they made
  are destroyed; the CT at a record's own VMID is left for retry to adopt. The dead run's
  ansible-playbook died with it (ctforge.jobs.shim), so nothing races the reaper.
- stop() cancels the runs (the templates go to error, "the service was stopped during the run")
  and waits for them to end.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from ctforge import messages
from ctforge.db.models import Job, utcnow
from ctforge.jobs.inventory import write_inventory
from ctforge.jobs.runner import RunOutcome, run_playbook
from ctforge.jobs.work import (
    EventRecorder,
    JobWork,
    cleanup,
    pid_alive,
    run_env,
    run_secrets,
)
from ctforge.records import jobs as job_records
from ctforge.requests import DestroyRequest

log = logging.getLogger("ctforge.jobs")
PRUNE_EVERY_SECONDS = 600.0  # how often a process removes old job directories


class JobPool:
    def __init__(self, service: Any, *, enabled: bool = True) -> None:
        self.service = service
        self.enabled = enabled  # False: start() and stop() do nothing, queued jobs stay queued
        self.settings = service.settings
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.worker_id = f"{self.hostname}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.size = self.settings.job_workers
        self._slots = threading.Semaphore(self.size)
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []
        self.running: dict[uuid.UUID, JobWork] = {}
        self._lock = threading.Lock()

    # -- life --------------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled:
            return
        self._beat()
        self._reap()
        self._executor = ThreadPoolExecutor(max_workers=self.size + 1, thread_name_prefix="ctforge-job")
        for target, name in ((self._dispatch, "ctforge-dispatch"), (self._heartbeat, "ctforge-heartbeat")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        if not self.enabled:
            return
        self._stopping.set()
        self._wakeup.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # the runs see _stopping within a second and end
        try:
            with self.service.db.writing() as session:
                job_records.forget_workers(session, [self.worker_id])
        except Exception:  # the database may be gone at shutdown: the others reap us by heartbeat
            log.warning("could not remove worker %s on stop", self.worker_id)

    def wake(self) -> None:
        self._wakeup.set()

    # -- claiming and running ------------------------------------------------------------------------
    def _dispatch(self) -> None:
        poll = self.settings.job_poll_seconds
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=poll):
                continue
            job = None
            try:
                with self.service.db.writing() as session:
                    job = job_records.claim_next(session, self.worker_id)
            except Exception:
                log.exception("claiming a job failed")
            if job is None or self._stopping.is_set():
                self._slots.release()
                if job is not None:  # claimed just as we stop: put it back for another process
                    self._unclaim(job)
                self._wakeup.wait(poll)
                self._wakeup.clear()
                continue
            work = JobWork(self.service, job, self.worker_id, self._stopping)
            with self._lock:
                self.running[job.id] = work
            assert self._executor is not None
            self._executor.submit(self._run, work)

    def _run(self, work: JobWork) -> None:
        try:
            work.run()
        except Exception:
            log.exception("job %s crashed its worker", work.job_id)
        finally:
            with self._lock:
                self.running.pop(work.job_id, None)
            self._slots.release()
            self._wakeup.set()  # a slot is free: look for the next job now

    def _unclaim(self, job: Job) -> None:
        with self.service.db.writing() as session:
            session.execute(update(Job).where(Job.id == job.id, Job.worker_id == self.worker_id,
                                              Job.status == "running")
                            .values(status="queued", worker_id=None, started_at=None)
                            .execution_options(synchronize_session=False))

    # -- heartbeat and reaping -------------------------------------------------------------------
    def _heartbeat(self) -> None:
        pruned = 0.0
        while not self._stopping.wait(self.settings.job_heartbeat_seconds):
            try:
                self._beat()
                self._reap()
                if time.monotonic() - pruned > PRUNE_EVERY_SECONDS:
                    self.prune()
                    pruned = time.monotonic()
            except Exception:
                log.exception("heartbeat, reaping or pruning failed")

    def prune(self) -> int:
        """Remove the private_data_dirs of jobs that ended more than job_keep_days ago."""
        cutoff = utcnow() - timedelta(days=self.settings.job_keep_days)
        with self.service.db.writing() as session:
            old = session.execute(select(Job.id, Job.artifacts_dir).where(
                Job.finished_at < cutoff, Job.artifacts_dir.is_not(None))).all()
            for job_id, path in old:
                shutil.rmtree(path, ignore_errors=True)
                session.execute(update(Job).where(Job.id == job_id).values(artifacts_dir=None)
                                .execution_options(synchronize_session=False))
        return len(old)

    def _beat(self) -> None:
        with self.service.db.writing() as session:
            job_records.beat(session, self.worker_id, self.hostname, self.pid)

    def _alive(self, pid: int, worker_id: str) -> bool:
        return worker_id == self.worker_id or pid_alive(pid)

    def _reap(self) -> list[uuid.UUID]:
        """Fail the jobs of dead workers; returns their ids."""
        with self.service.db.writing() as session:
            dead = [w for w in job_records.dead_workers(
                session, silent_for=self.settings.job_reap_seconds, hostname=self.hostname,
                alive=self._alive) if w != self.worker_id]
            orphans = job_records.orphaned_jobs(session, [*dead, "-"])
            reaped = []
            for job in orphans:
                if job.worker_id == self.worker_id:
                    continue
                if job_records.finish(session, job, "failed", failed_step=job.playbook,
                                      error=messages.JOB_SERVICE_RESTARTED):
                    job_records.fail_record(session, job, messages.JOB_SERVICE_RESTARTED)
                    reaped.append(job.id)
            job_records.forget_workers(session, dead)
        for job_id in reaped:
            log.warning("job %s: its worker died; failed, its smoke clone (if any) destroyed", job_id)
            self._cleanup_reaped(job_id)
        if reaped and self.service.deliverer is not None:
            self.service.deliverer.wake()
        return reaped

    def _cleanup_reaped(self, job_id: uuid.UUID) -> None:
        with self.service.db.reading() as session:
            job = session.get(Job, job_id)
            seq = job.event_count if job else 0
        work_dir = self.settings.jobs_dir / str(job_id)
        work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        recorder = EventRecorder(self.service, job_id, seq, playbook="destroy")

        def destroy(vmid: int) -> RunOutcome:
            inventory = write_inventory(work_dir, job_id, None, None, self.settings.state_dir / "build_key")
            outcome = run_playbook(
                work_dir, f"reaped-destroy-{vmid}", "destroy.yml", DestroyRequest(ctforge_vmid=vmid),
                inventories=[self.settings.inventory, inventory], env=run_env(self.settings),
                secrets=run_secrets(self.settings), on_event=recorder, should_cancel=lambda: False,
                timeout=self.settings.job_timeout_seconds)
            recorder.flush()
            return outcome

        cleanup(self.service, job_id, destroy)
