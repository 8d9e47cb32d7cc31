"""Fixtures shared by every suite: one minipve instance for the whole test session.

It gets its own state dir, port, subnet and bridge, so it runs beside a developer's instance
(127.0.0.1:8006, 10.213.0.0/24, mpvebr0) without touching it, and is reset on exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_PORT = int(os.environ.get("CTFORGE_TEST_PVE_PORT", "18006"))
# a /23: the upper half of it is the DHCP pool, 255 leases, and a whole session makes a few hundred CTs
TEST_SUBNET = os.environ.get("CTFORGE_TEST_PVE_SUBNET", "10.231.0.0/23")
TEST_BRIDGE = os.environ.get("CTFORGE_TEST_PVE_BRIDGE", "mpvetest0")


def host_can_run_containers() -> str | None:
    """Why real containers cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "real containers need root"
    for tool in ("lxc-start", "debootstrap", "nft", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: run `bash scripts/setup.sh`"
    return None


@pytest.fixture(scope="session")
def minipve() -> Iterator[object]:
    """A running minipve with real LXC containers; `.env` holds the PROXMOX_* client settings."""
    reason = host_can_run_containers()
    if reason:
        pytest.skip(reason)
    from minipve.launcher import MiniPVE

    state_dir = Path(tempfile.mkdtemp(prefix="ctforge-test-minipve-"))
    # `isos` is the storage a real cluster's `local` usually is: appliances and ISOs, no CT volumes.
    with MiniPVE(state_dir=state_dir, port=TEST_PORT, subnet=TEST_SUBNET, bridge=TEST_BRIDGE,
                 storages={"isos": "iso,vztmpl"}) as pve:
        yield pve


# --- the service's API suite: real migrations on SQLite and PostgreSQL, rolled back per test -----

@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One private PostgreSQL server (ctforge.devdb) for the session; skipped only when not root and
    the binaries are absent (as root, after setup.sh, a missing binary fails the tests)."""
    from service_helpers import postgres_unavailable

    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    from ctforge.devdb import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgresql_database(postgres) -> Iterator[object]:
    """The session server's database, migrated once."""
    from ctforge.db import Database

    db = Database(postgres.url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory) -> Iterator[object]:
    """A SQLite file in a temp dir, migrated once."""
    from ctforge.db import Database

    db = Database(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'ctforge.db'}")
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request) -> Iterator[object]:
    """A Database whose sessions share one connection in an outer transaction, rolled back after
    the test; checked afterwards: nothing the test wrote is left."""
    from service_helpers import rolled_back, row_count

    base = request.getfixturevalue(f"{request.param}_database")
    with rolled_back(base) as rolled:
        yield rolled
    for table in ("templates", "users", "vmid_claims", "api_tokens"):
        assert row_count(base, table) == 0, f"{table}: a row outlived the test's rollback"


@pytest.fixture
def make_api(db, tmp_path):
    """make_api(**settings) -> ApiClient: the app over the rolled-back `db`, with alice (admin),
    bob and carol and a token each; settings default to claims alone (no Proxmox)."""
    from service_helpers import ApiClient, service_settings

    def make(proxmox_view=None, **settings):
        return ApiClient(db, service_settings(tmp_path / "state", **settings), proxmox=proxmox_view)

    return make


@pytest.fixture
def api(make_api):
    return make_api()


@pytest.fixture
def fresh_postgresql_database(postgres) -> Iterator[object]:
    """A new database on the session's server, migrated, for tests that need real commits (races,
    concurrency); dropped after the test."""
    import uuid

    from ctforge.db import Database

    name = f"ctforge_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    db = Database(postgres.url_for(name))
    db.upgrade()
    yield db
    db.dispose()
    postgres.drop_database(name)


# --- the job service: one `ctforge serve` over the session's minipve, and the canonical chain -----



@pytest.fixture(scope="session")
def job_service(minipve, tmp_path_factory):
    """`ctforge serve` as a real process on SQLite, with alice (admin) and bob; `.alice`, `.bob` are
    API clients, `.service` the process (kill() / start()), `.state_dir`, `.env`."""
    from types import SimpleNamespace

    from job_helpers import JOB_TEMPLATE_VMIDS, Client, ServiceProcess, ctforge, service_env

    state_dir = tmp_path_factory.mktemp("job-service")
    env = service_env(state_dir, minipve.env, template_vmids=JOB_TEMPLATE_VMIDS,
                      workspace_vmids="7900-7999", job_workers="4", job_heartbeat_seconds="1")
    ctforge(env, "db", "upgrade")
    ctforge(env, "users", "add", "alice", "--admin")
    ctforge(env, "users", "add", "bob")
    tokens = {name: ctforge(env, "tokens", "create", name).strip() for name in ("alice", "bob")}
    service = ServiceProcess(env, state_dir / "serve.log").start()
    try:
        yield SimpleNamespace(service=service, env=env, state_dir=state_dir, pve=minipve,
                              alice=Client(service, tokens["alice"]), bob=Client(service, tokens["bob"]))
    finally:
        service.stop()


@pytest.fixture(scope="session")
def canonical_chain(job_service):
    """base → nodejs → fullstack built through the HTTP API alone, once per session. Returns the
    templates (ready records), each build's jobs, the statuses seen and the streamed events."""
    from job_helpers import StatusWatch

    api = job_service.alice
    chain = {"templates": {}, "jobs": {}, "seen": {}, "streamed": {}}
    base = api.create("base", base_ct_template="debian-12-standard", tech_stacks=[], is_default=True)
    with StatusWatch(api, base["id"]) as watch:
        job = api.act(base["id"], "build")
        chain["streamed"]["base"] = list(api.stream(job["id"]))
    chain["seen"]["base"], chain["jobs"]["base"] = watch.seen, [api.job(job["id"])]
    nodejs = api.create("nodejs", parent_id=base["id"], tech_stacks=["nodejs", "claude_cli"], is_default=True)
    with StatusWatch(api, nodejs["id"]) as watch:  # in two steps, as a person who customises staging
        provision = api.wait(api.act(nodejs["id"], "provision")["id"])
        staged = api.template(nodejs["id"])
        finalize = api.wait(api.act(nodejs["id"], "finalize")["id"])
    chain["seen"]["nodejs"], chain["jobs"]["nodejs"] = watch.seen, [provision, finalize]
    chain["staged"] = staged
    fullstack = api.create("fullstack", parent_id=nodejs["id"], tech_stacks=["postgresql", "redis"])
    with StatusWatch(api, fullstack["id"]) as watch:
        job = api.act(fullstack["id"], "build")
        chain["streamed"]["fullstack"] = list(api.stream(job["id"]))
    chain["seen"]["fullstack"], chain["jobs"]["fullstack"] = watch.seen, [api.job(job["id"])]
    for name, record in (("base", base), ("nodejs", nodejs), ("fullstack", fullstack)):
        chain["templates"][name] = api.template(record["id"])
    return chain
