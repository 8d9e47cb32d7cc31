"""ctforge.devdb.PostgresServer: a real private PostgreSQL from Debian's binaries, started and stopped.

Skipped only where the binaries are missing and we are not root; as root (CI, after setup.sh) a
missing binary is a failure, with the message that says how to install it.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from ctforge import devdb
from ctforge.devdb import PostgresNotFoundError, PostgresServer, PostgresServerError
from service_helpers import listening_addresses


def postgres_unavailable() -> str | None:
    """Why a private PostgreSQL cannot run here, or None when it can (or must: as root)."""
    try:
        devdb.find_bindir()
    except PostgresNotFoundError as exc:
        return None if os.geteuid() == 0 else str(exc)
    return None


pytestmark = pytest.mark.skipif(postgres_unavailable() is not None, reason=str(postgres_unavailable()))


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children(pid: int) -> list[int]:
    """The postmaster's child processes (checkpointer, writers, backends)."""
    pids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def test_server_answers_sql_with_the_version_it_was_found_as(pg: PostgresServer) -> None:
    assert pg.url == f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/ctforge"
    engine = create_engine(pg.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar() == 1
            assert conn.execute(text("select current_database()")).scalar() == "ctforge"
            version_num = int(conn.execute(text("show server_version_num")).scalar() or 0)
            assert conn.execute(text("show fsync")).scalar() == "off"
            assert conn.execute(text("show max_connections")).scalar() == "200"
    finally:
        engine.dispose()
    assert version_num >= 150000
    if pg.bindir.parent.parent == devdb.DEBIAN_LIB:  # /usr/lib/postgresql/<major>/bin
        assert version_num // 10000 == int(pg.bindir.parent.name)


def test_second_database_is_created_and_dropped_while_a_pool_holds_it(pg: PostgresServer) -> None:
    pg.create_database("ctforge_gw1")
    engine = create_engine(pg.url_for("ctforge_gw1"))
    try:
        with engine.begin() as conn:
            conn.execute(text("create table probe (n int)"))
            conn.execute(text("insert into probe values (7)"))
        with engine.connect() as conn:
            assert conn.execute(text("select n from probe")).scalar() == 7
        # The pool keeps a connection open; FORCE ends it rather than failing the drop.
        pg.drop_database("ctforge_gw1")
        engine.dispose()
        with pytest.raises(OperationalError, match="ctforge_gw1"), engine.connect():
            pass
    finally:
        engine.dispose()
    admin = create_engine(pg.url)
    try:
        with admin.connect() as conn:
            names = set(conn.execute(text("select datname from pg_database")).scalars())
    finally:
        admin.dispose()
    assert "ctforge_gw1" not in names
    assert "ctforge" in names
    pg.drop_database("ctforge_gw1")  # a second drop of a gone database is no error


def test_server_listens_on_loopback_and_its_own_socket_only(pg: PostgresServer) -> None:
    assert listening_addresses(pg.port) == {"127.0.0.1"}
    assert (pg.socket_dir / f".s.PGSQL.{pg.port}").is_socket()
    assert not Path(f"/var/run/postgresql/.s.PGSQL.{pg.port}").exists()


def test_stop_leaves_no_postmaster_and_removes_the_temp_dir() -> None:
    with PostgresServer() as server:
        pid = server.postmaster_pid()
        assert pid is not None
        assert server.proc is not None
        assert pid == server.proc.pid
        helpers = children(pid)
        assert helpers, "a running postmaster has its checkpointer and writers"
        base_dir = server.base_dir
        if os.geteuid() == 0:
            assert Path(f"/proc/{pid}").stat().st_uid != 0, "the server must not run as root"
    assert not alive(pid)
    assert not [p for p in helpers if alive(p)]
    assert not base_dir.exists()


def test_stop_falls_back_to_the_pid_when_pg_ctl_cannot() -> None:
    # pg_ctl finds the server by postmaster.pid; without the file it refuses, as after a damaged data dir.
    with PostgresServer() as server:
        pid = server.postmaster_pid()
        assert pid is not None
        (server.data_dir / "postmaster.pid").unlink()
        server.stop()
        assert not alive(pid)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp dir the postgres user may enter (pytest's tmp_path is root's alone when run as root)."""
    path = Path(tempfile.mkdtemp(prefix="ctforge-test-devdb-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def test_given_dir_is_kept_and_its_cluster_reused(shared_tmp: Path) -> None:
    base = shared_tmp / "pg"
    with PostgresServer(base) as first:
        first.create_database("kept")
    assert (base / "data" / "PG_VERSION").exists()
    with PostgresServer(base, database="kept") as second:
        engine = create_engine(second.url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("select current_database()")).scalar() == "kept"
        finally:
            engine.dispose()


def test_start_failure_says_why_with_the_log_tail() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = PostgresServer(port=taken.getsockname()[1], ready_timeout=30)
        with pytest.raises(PostgresServerError, match=r"could not bind IPv4 address"), server:
            pass
    assert not server.base_dir.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the data to the postgres user")
def test_dir_out_of_the_postgres_users_reach_is_named(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)  # root's alone
    with pytest.raises(PostgresServerError, match=r"cannot write in .*every parent"):
        PostgresServer(tmp_path / "pg").start()


def test_missing_binaries_name_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty library dir and no pg_config on PATH: the machine as it is before setup.sh.
    monkeypatch.setattr(devdb, "DEBIAN_LIB", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PostgresNotFoundError, match=r"apt-get install postgresql.*bash scripts/setup\.sh"):
        PostgresServer()
