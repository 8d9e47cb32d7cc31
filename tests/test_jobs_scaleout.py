"""Two `ctforge serve` processes on one PostgreSQL share the job queue: each queued job is claimed by
exactly one of them, and the jobs of a process that dies are reaped by the other."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from ctforge import messages
from ctforge.db.models import Job, VmidClaim

pytestmark = [pytest.mark.host, pytest.mark.slow]

SCALEOUT_VMIDS = "7400-7449"


@pytest.fixture
def two_services(canonical_chain, job_service, fresh_postgresql_database, tmp_path):
    """Two services on one fresh PostgreSQL database, with a ready record of the session's base CT
    (job_helpers.adopt_record: the chain's own CT, built through the other service)."""
    from job_helpers import Client, ServiceProcess, adopt_record, ctforge, service_env, share_build_key

    db = fresh_postgresql_database
    share_build_key(job_service.state_dir, tmp_path / "state")
    env = service_env(tmp_path / "state", job_service.pve.env, database_url=db.url,
                      template_vmids=SCALEOUT_VMIDS, workspace_vmids="7950-7999", job_workers="1",
                      job_heartbeat_seconds="1", job_reap_seconds="5")
    ctforge(env, "users", "add", "alice", "--admin")
    token = ctforge(env, "tokens", "create", "alice").strip()
    base = canonical_chain["templates"]["base"]
    adopt_record(db, base, "alice")
    services = [ServiceProcess(env, tmp_path / f"serve-{n}.log") for n in (1, 2)]
    try:
        for service in services:
            service.start()
        yield [Client(service, token) for service in services], db, base
    finally:
        for service in services:
            service.stop()


def test_two_processes_share_the_queue_and_reap_a_dead_one(two_services) -> None:
    (first, second), db, base = two_services
    # one slot each: a process busy with one job cannot claim the other, so each takes one
    children = [first.create(f"shared-{n}", parent_id=base["id"], tech_stacks=[]) for n in range(2)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        jobs = list(pool.map(lambda t: first.act(t["id"], "build"), children))
        ended = list(pool.map(lambda j: second.wait(j["id"]), jobs))
    assert [job["status"] for job in ended] == ["successful"] * 2, ended
    with db.reading() as session:
        rows = session.scalars(select(Job).where(Job.id.in_([uuid.UUID(j["id"]) for j in jobs]))).all()
    workers = {row.worker_id for row in rows}
    assert len(workers) == 2, workers  # both processes took work
    # claimed once: each job ran its two playbooks once, in one process
    for row in rows:
        runs = sorted(path.name for path in (Path(row.artifacts_dir) / "artifacts").iterdir())
        assert runs == ["01-provision", "02-finalize"], runs

    # SIGKILL the process that runs a job: the other reaps it once its heartbeat is 5 s old
    victim = first.create("dies-with-its-service", parent_id=base["id"], tech_stacks=[])
    job = first.act(victim["id"], "build")
    first.wait_for_task(job["id"], "Wait for the clone's IP and SSH")  # in finalize: a smoke clone exists
    pid = _worker_pid(db, job["id"])
    runner, survivor = (first, second) if first.service.proc.pid == pid else (second, first)
    runner.service.kill()
    reaped = survivor.wait(job["id"])
    assert reaped["status"] == "failed" and reaped["error"] == messages.JOB_SERVICE_RESTARTED
    record = survivor.template(victim["id"])
    assert record["status"] == "error" and record["error_message"] == messages.JOB_SERVICE_RESTARTED
    # the survivor destroys the dead run's smoke clone after failing the job, then frees its VMID
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with db.reading() as session:
            smoke = session.scalars(select(VmidClaim).where(VmidClaim.kind == "smoke")).all()
        if not smoke:
            break
        time.sleep(0.5)  # the destroy run's own time; the deadline bounds the wait
    assert smoke == []
    runner.service.start()
    retried = survivor.wait(survivor.act(victim["id"], "retry")["id"])
    assert retried["status"] == "successful"
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        gone = list(pool.map(lambda t: survivor.wait(survivor.act(t["id"], "destroy")["id"]),
                             [*children, victim]))
    assert [j["status"] for j in gone] == ["successful"] * 3


def _worker_pid(db, job_id: str) -> int:
    with db.reading() as session:
        worker_id = session.get(Job, uuid.UUID(job_id)).worker_id
    return int(worker_id.split(":")[1])
