"""A throwaway private PostgreSQL server for tests and benchmarks: `with PostgresServer() as pg:`.

    with PostgresServer() as pg:                # a temp dir, a free port on 127.0.0.1
        engine = create_engine(pg.url)          # postgresql+psycopg://postgres@127.0.0.1:PORT/ctforge
        pg.create_database("ctforge_gw1")       # one per worker: pg.url_for("ctforge_gw1")

It runs Debian's `initdb` and `postgres` (the newest /usr/lib/postgresql/<version>/bin) in a directory
of its own, as the `postgres` system user when run as root (PostgreSQL refuses root), listening on
127.0.0.1 and on a unix socket inside that directory; the system cluster is never started or touched.
`start()` returns once the server accepts connections and the database exists. `stop()` ends it with
`pg_ctl stop -m fast`, failing that by its PID; a temp dir it made is removed on exit.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

DEBIAN_LIB = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"  # owns the data when run as root; Debian's package creates the user
READY_TIMEOUT = 60.0


class PostgresServerError(RuntimeError):
    pass


class PostgresNotFoundError(PostgresServerError):
    pass


def find_bindir() -> Path:
    """The directory of initdb, postgres and pg_ctl: Debian's newest version, else `pg_config --bindir`."""
    versions = [p for p in DEBIAN_LIB.glob("*/bin") if p.parent.name.isdigit()]
    candidates = sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "postgres", "pg_ctl")):
            return bindir
    raise PostgresNotFoundError(
        f"no PostgreSQL server binaries (initdb, postgres, pg_ctl) in {DEBIAN_LIB}/<version>/bin nor in "
        "`pg_config --bindir`: run `apt-get install postgresql` or `bash scripts/setup.sh`"
    )


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresNotFoundError(
            f"no {SYSTEM_USER!r} user to run the server as (PostgreSQL refuses root): "
            "run `apt-get install postgresql` or `bash scripts/setup.sh`"
        ) from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(
        self,
        base_dir: Path | str | None = None,
        port: int | None = None,
        database: str = "ctforge",
        max_connections: int = 200,  # two service processes, each a pool with overflow, under load
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.bindir = find_bindir()
        self._owner = _system_user() if os.geteuid() == 0 else None
        self._made_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="ctforge-pg-")).resolve()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.database = database
        self.max_connections = max_connections
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    # -- what clients need ----------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    # No password: trust is acceptable for this server alone: throwaway data, loopback, its own port.
    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def create_database(self, name: str) -> None:
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        """Drops it even while a pool still holds connections to it (FORCE ends them)."""
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def postmaster_pid(self) -> int | None:
        """The PID that postmaster.pid names (its first line); None once the server has removed it."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _connect(self, database: str = "postgres", timeout: int = 5) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=database, connect_timeout=timeout,
            autocommit=True,  # CREATE and DROP DATABASE refuse to run inside a transaction
        )

    def _admin(self, statement: sql.Composable) -> None:
        with self._connect() as conn:
            conn.execute(statement)

    # -- lifecycle ------------------------------------------------------------------------------
    def _as_owner(self) -> dict[str, Any]:
        """subprocess arguments that run a PostgreSQL binary as the data's unprivileged owner."""
        if self._owner is None:
            return {"cwd": self.base_dir}
        owner = self._owner
        return {"cwd": self.base_dir, "user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._owner is not None:
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
            if subprocess.run(["test", "-w", str(self.base_dir)], check=False, **self._as_owner()).returncode:
                raise PostgresServerError(
                    f"the {SYSTEM_USER} user, who runs the server when we are root, cannot write in "
                    f"{self.base_dir}: give a directory it may reach through every parent (e.g. under /tmp)"
                )
        if (self.data_dir / "PG_VERSION").exists():
            return  # a base dir given again: the cluster of last time
        command = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "--auth=trust"]
        command += ["--username=postgres", "--encoding=UTF8", "--locale=C", "--no-sync"]
        out = subprocess.run(command, capture_output=True, text=True, check=False, **self._as_owner())
        if out.returncode != 0:
            raise PostgresServerError(
                f"initdb failed (exit {out.returncode}) in {self.data_dir}:\n{out.stdout}{out.stderr}"
            )

    def start(self) -> PostgresServer:
        self._initdb()
        settings = {
            "listen_addresses": self.host,
            "port": self.port,
            "unix_socket_directories": self.socket_dir,
            "max_connections": self.max_connections,
            # Throwaway test data: a crash may lose all of it, so no write needs to wait for the disk.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data_dir), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **self._as_owner(),
            )
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise PostgresServerError(
                    f"postgres exited with {self.proc.returncode} (port {self.port}):\n{self._log_tail()}"
                )
            try:
                conn = self._connect(timeout=1)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostgresServerError(
                        f"postgres did not accept connections within {self.ready_timeout:.0f}s:\n"
                        f"{self._log_tail()}"
                    ) from None
                time.sleep(0.05)  # the interval between tries; the deadline bounds the wait
        with conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        return self

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30) -> None:
        """`pg_ctl stop -m fast`; if the server outlives it, SIGQUIT (immediate shutdown), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pg_ctl = [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast"]
        pg_ctl += ["-w", "-t", str(int(timeout))]
        stopped = subprocess.run(pg_ctl, capture_output=True, check=False, **self._as_owner()).returncode == 0
        # Signals go to our child, the postmaster: postmaster.pid may be what made pg_ctl fail.
        for sig in (None, signal.SIGQUIT, signal.SIGKILL) if stopped else (signal.SIGQUIT, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(5 if sig is None else timeout)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self._cleanup()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        self.stop()
        if self._made_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
