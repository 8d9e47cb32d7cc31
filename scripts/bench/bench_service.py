#!/usr/bin/env python3
"""Benchmark the service's create-and-allocate path: N concurrent POST /api/v1/templates.

Two configurations in one run, side by side, each on a fresh state dir and database:
  1. one `ctforge serve` process on SQLite (the baseline);
  2. two `ctforge serve` processes on one private PostgreSQL (ctforge.devdb), requests alternating.
Each migrates with `ctforge db upgrade`, gets an admin with a token (`ctforge users add`, `ctforge
tokens create`), and starts the real console script's uvicorn on free loopback ports. All N base
templates (debian-12-standard, unique names) are fired at once from one asyncio loop (httpx; a
connection each, no client-side limit unless --concurrency says one), while a reader thread issues
GET /api/v1/templates?limit=50 one after the other until the last create has its answer.

Printed per configuration, then as ratios (PostgreSQL x2 / SQLite x1): VMIDs given to more than
one template in the 201 answers and in the database (goal 0), every answer that is not a 201 (status
and a sample detail), p50/p95/max create latency, creates per second, the read's p50/p95 during the
load and, as its baseline, the same read on the same rows when idle afterwards.

Unless --no-proxmox, the bench starts its own minipve and gives the service its PROXMOX_* settings,
so every allocation consults /cluster/resources as in production (through the service's cache); a
CT made by hand at the range's first id must be skipped by every allocation.
Every process it starts is stopped by its PID at the end, also on an error or Ctrl-C.
Usage: .venv/bin/python scripts/bench/bench_service.py [--requests 500] [--json FILE] [--no-proxmox]
       [--concurrency N] [--pve-port 18306 --pve-subnet 10.234.0.0/24 --pve-bridge mpvetest3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from ctforge_procs import API, Services, ctforge, service_env
from sqlalchemy import select

from ctforge.db import Database
from ctforge.db.models import Template, VmidClaim
from ctforge.devdb import PostgresServer
from ctforge.settings import VmidRange, parse_range

APPLIANCE = "debian-12-standard"
USER = "bench"
DEFAULT_TIMEOUT = 60.0  # --timeout: what a client waits for one answer
READS_MAX = 100_000  # the reader's bound; the load's end stops it long before
IDLE_READS = 20


@dataclass
class Answer:
    index: int
    port: int
    status: int | None  # None: no HTTP answer (the exception's name is in detail)
    seconds: float
    vmid: int | None = None
    template_id: str | None = None
    detail: str | None = None


@dataclass
class Figures:
    config: str
    processes: int
    requests: int
    concurrency: int
    created: int = 0
    duplicate_vmids_answers: int = 0
    duplicate_vmids_database: int = 0
    rows_in_database: int = 0
    answers_not_in_database: int = 0
    rows_without_answer: int = 0
    claims_not_matching: int = 0
    hand_ct_vmid_given: int | None = None
    lowest_free_ids: bool | None = None  # None: no row to judge
    failures: dict[str, int] = field(default_factory=dict)
    failure_samples: dict[str, str] = field(default_factory=dict)
    server_errors_logged: int = 0
    server_error_sample: str | None = None
    wall_seconds: float = 0.0
    creates_per_second: float = 0.0
    create_p50_ms: float = 0.0
    create_p95_ms: float = 0.0
    create_max_ms: float = 0.0
    reads_during_load: int = 0
    read_p50_ms: float = 0.0
    read_p95_ms: float = 0.0
    read_max_ms: float = 0.0
    read_idle_p50_ms: float = 0.0
    read_idle_p95_ms: float = 0.0
    read_failures: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q% of the values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# -- the load --------------------------------------------------------------------------------------

def detail_of(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


class Reader(threading.Thread):
    """GET /templates?limit=50, one after the other, from `go` until `done`; each latency kept."""

    def __init__(self, ports: list[int], token: str, timeout: float, go: threading.Event,
                 done: threading.Event) -> None:
        super().__init__(daemon=True)
        self.ports, self.token, self.timeout, self.go, self.done = ports, token, timeout, go, done
        self.seconds: list[float] = []
        self.failures: Counter[str] = Counter()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=self.timeout, headers=headers) as client:
            if not self.go.wait(self.timeout):
                return
            for i in range(READS_MAX):
                if self.done.is_set():
                    return
                port = self.ports[i % len(self.ports)]
                started = time.perf_counter()
                try:
                    status = client.get(f"http://127.0.0.1:{port}{API}/templates",
                                        params={"limit": 50}).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                took = time.perf_counter() - started
                if status == 200:
                    if not self.done.is_set():  # a read that ended after the load is no read during it
                        self.seconds.append(took)
                else:
                    self.failures[str(status)] += 1


async def fire(ports: list[int], token: str, requests: int, concurrency: int, prefix: str, timeout: float,
               go: threading.Event, done: threading.Event) -> tuple[list[Answer], float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    start = asyncio.Event()
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as client:

        async def one(i: int) -> Answer:
            port = ports[i % len(ports)]
            body = {"name": f"{prefix}-{i:05d}", "base_ct_template": APPLIANCE}
            await start.wait()
            async with gate:
                began = time.perf_counter()
                try:
                    response = await client.post(f"http://127.0.0.1:{port}{API}/templates", json=body)
                except httpx.HTTPError as exc:
                    return Answer(i, port, None, time.perf_counter() - began, detail=type(exc).__name__)
                took = time.perf_counter() - began
            if response.status_code == 201:
                data = response.json()
                return Answer(i, port, 201, took, vmid=data["vmid"], template_id=data["id"])
            return Answer(i, port, response.status_code, took, detail=detail_of(response))

        tasks = [asyncio.create_task(one(i)) for i in range(requests)]
        await asyncio.sleep(0)  # every task is now waiting at the start line
        began = time.perf_counter()
        start.set()
        go.set()
        try:
            answers = await asyncio.gather(*tasks)
        finally:
            done.set()
        return list(answers), time.perf_counter() - began


def idle_reads(ports: list[int], token: str, timeout: float) -> list[float]:
    """The same read once the load has its answers; stops at the first failure (a service still busy
    with requests its clients gave up on), so a stuck service costs one timeout, not twenty."""
    seconds = []
    with httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(IDLE_READS):
            started = time.perf_counter()
            try:
                response = client.get(f"http://127.0.0.1:{ports[i % len(ports)]}{API}/templates",
                                      params={"limit": 50})
            except httpx.HTTPError:
                break
            if response.status_code != 200:
                break
            seconds.append(time.perf_counter() - started)
    return seconds


# -- the checks afterwards -------------------------------------------------------------------------

def duplicates(vmids: list[int]) -> int:
    """How many VMIDs went to more than one template."""
    return sum(1 for n in Counter(vmids).values() if n > 1)


def check_database(figures: Figures, url: str, answers: list[Answer], prefix: str, vmids: VmidRange,
                   hand_vmid: int | None) -> None:
    db = Database(url)
    try:
        with db.reading() as session:
            rows = {str(t.id): t.vmid for t in session.scalars(select(Template).where(
                Template.name.like(f"{prefix}-%")))}
            claims = {c.vmid: str(c.template_id) for c in session.scalars(select(VmidClaim))}
    finally:
        db.dispose()
    created = {a.template_id: a.vmid for a in answers if a.status == 201}
    figures.rows_in_database = len(rows)
    figures.duplicate_vmids_database = duplicates([v for v in rows.values() if v is not None])
    figures.answers_not_in_database = sum(1 for tid, vmid in created.items() if rows.get(tid) != vmid)
    figures.rows_without_answer = sum(1 for tid in rows if tid not in created)
    figures.claims_not_matching = sum(1 for tid, vmid in rows.items() if claims.get(vmid) != tid)
    given = sorted(v for v in rows.values() if v is not None)
    if hand_vmid is not None:
        figures.hand_ct_vmid_given = given.count(hand_vmid)
    lowest = [v for v in range(vmids.first, vmids.last + 1) if v != hand_vmid][:len(given)]
    figures.lowest_free_ids = given == lowest if given else None


def server_errors(figures: Figures, logs: list[Path]) -> None:
    """Lines the service logged at ERROR (database errors, tracebacks): counted, the first kept."""
    lines = [line for path in logs for line in path.read_text(errors="replace").splitlines()
             if " ERROR " in line or line.startswith("Traceback")]
    figures.server_errors_logged = len(lines)
    figures.server_error_sample = lines[0][:300] if lines else None


# -- one configuration -----------------------------------------------------------------------------

def run_config(name: str, processes: int, url: str | None, state_dir: Path, args: argparse.Namespace,
               pve_env: dict[str, str], hand_vmid: int | None) -> Figures:
    env = service_env(state_dir, url, args.template_vmids, pve_env)
    ctforge(env, "db", "upgrade")
    ctforge(env, "users", "add", USER, "--admin")
    token = ctforge(env, "tokens", "create", USER).strip().splitlines()[0]
    concurrency = args.concurrency or args.requests
    figures = Figures(config=name, processes=processes, requests=args.requests, concurrency=concurrency)
    prefix = f"bench-{processes}"
    with Services(env, processes, state_dir) as services:
        for port in services.ports:  # one read each first: imports and pools warm, as in a running service
            httpx.get(f"http://127.0.0.1:{port}{API}/templates", headers={"Authorization": f"Bearer {token}"},
                      timeout=30).raise_for_status()
        go, done = threading.Event(), threading.Event()
        reader = Reader(services.ports, token, args.timeout, go, done)
        reader.start()
        try:
            answers, wall = asyncio.run(fire(services.ports, token, args.requests, concurrency, prefix,
                                             args.timeout, go, done))
        finally:
            done.set()
            go.set()
            reader.join(args.timeout + 5)
        idle = idle_reads(services.ports, token, args.timeout)
        server_errors(figures, services.logs)
    check_database(figures, url or f"sqlite:///{state_dir / 'ctforge.db'}", answers, prefix, args.range,
                   hand_vmid)
    created = [a for a in answers if a.status == 201]
    figures.created = len(created)
    figures.duplicate_vmids_answers = duplicates([a.vmid for a in created if a.vmid is not None])
    for a in answers:
        if a.status != 201:
            key = str(a.status)
            figures.failures[key] = figures.failures.get(key, 0) + 1
            figures.failure_samples.setdefault(key, a.detail or "")
    latencies = [a.seconds for a in answers]
    figures.wall_seconds = wall
    figures.creates_per_second = len(created) / wall
    figures.create_p50_ms = percentile(latencies, 50) * 1000
    figures.create_p95_ms = percentile(latencies, 95) * 1000
    figures.create_max_ms = max(latencies) * 1000
    figures.reads_during_load = len(reader.seconds)
    figures.read_p50_ms = percentile(reader.seconds, 50) * 1000
    figures.read_p95_ms = percentile(reader.seconds, 95) * 1000
    figures.read_max_ms = max(reader.seconds, default=math.nan) * 1000
    figures.read_idle_p50_ms = percentile(idle, 50) * 1000
    figures.read_idle_p95_ms = percentile(idle, 95) * 1000
    figures.read_failures = dict(reader.failures)
    return figures


# -- Proxmox ---------------------------------------------------------------------------------------

def make_hand_ct(pve_env: dict[str, str], vmid: int) -> None:
    """A CT made outside the service at `vmid`: only /cluster/resources tells the allocator of it."""
    from proxmoxer import ProxmoxAPI

    px = ProxmoxAPI(pve_env["PROXMOX_HOST"], port=int(pve_env["PROXMOX_PORT"]), user=pve_env["PROXMOX_USER"],
                    token_name=pve_env["PROXMOX_TOKEN_ID"], token_value=pve_env["PROXMOX_TOKEN_SECRET"],
                    verify_ssl=False)
    node = pve_env["PROXMOX_NODE"]
    appliance = px.nodes(node).storage("local").content.get(content="vztmpl")[0]["volid"]
    upid = px.nodes(node).lxc.post(vmid=vmid, hostname="handmade", ostemplate=appliance, storage="local",
                                   rootfs="local:1")
    deadline = time.monotonic() + 300
    while (status := px.nodes(node).tasks(upid).status.get())["status"] != "stopped":
        if time.monotonic() > deadline:
            raise SystemExit(f"minipve did not create CT {vmid} within 300 s")
        time.sleep(0.2)
    if status.get("exitstatus") != "OK":
        raise SystemExit(f"minipve could not create CT {vmid}: {status.get('exitstatus')}")


# -- the report ------------------------------------------------------------------------------------

ROWS = (  # (label, attribute, format, ratio: "lower"/"higher" is better, or None)
    ("service processes", "processes", "{}", None),
    ("201 created", "created", "{}", None),
    ("duplicate VMIDs in 201 answers (goal 0)", "duplicate_vmids_answers", "{}", None),
    ("duplicate VMIDs in the database (goal 0)", "duplicate_vmids_database", "{}", None),
    ("template rows in the database", "rows_in_database", "{}", None),
    ("201 answers not so in the database", "answers_not_in_database", "{}", None),
    ("rows without a 201 answer", "rows_without_answer", "{}", None),
    ("rows whose claim is not theirs", "claims_not_matching", "{}", None),
    ("hand-made CT's VMID given (goal 0)", "hand_ct_vmid_given", "{}", None),
    ("VMIDs are the lowest free ones", "lowest_free_ids", "{}", None),
    ("ERROR lines in the service logs", "server_errors_logged", "{}", None),
    ("load wall time (s)", "wall_seconds", "{:.2f}", "lower"),
    ("creates per second", "creates_per_second", "{:.1f}", "higher"),
    ("create p50 (ms)", "create_p50_ms", "{:.0f}", "lower"),
    ("create p95 (ms)", "create_p95_ms", "{:.0f}", "lower"),
    ("create max (ms)", "create_max_ms", "{:.0f}", "lower"),
    ("GET /templates reads during load", "reads_during_load", "{}", None),
    ("read p50 during load (ms)", "read_p50_ms", "{:.0f}", "lower"),
    ("read p95 during load (ms)", "read_p95_ms", "{:.0f}", "lower"),
    ("read max during load (ms)", "read_max_ms", "{:.0f}", "lower"),
    ("read p50 idle, same rows (ms)", "read_idle_p50_ms", "{:.1f}", "lower"),
    ("read p95 idle, same rows (ms)", "read_idle_p95_ms", "{:.1f}", "lower"),
)


def report(results: list[Figures], args: argparse.Namespace, proxmox: bool) -> dict[str, float]:
    base, other = results
    concurrency = ("all in flight at once" if base.concurrency >= base.requests
                   else f"at most {base.concurrency} in flight")
    print(f"\nservice benchmark: {args.requests} concurrent POST {API}/templates ({concurrency}), "
          f"range {args.template_vmids}, Proxmox: {'minipve /cluster/resources' if proxmox else 'none'}")
    width = max(len(label) for label, *_ in ROWS) + 2
    print(f"{'':{width}}{base.config:>14}{other.config:>16}{'ratio':>10}")
    ratios: dict[str, float] = {}
    for label, attr, fmt, better in ROWS:
        a, b = getattr(base, attr), getattr(other, attr)
        cells = [fmt.format(v) if v is not None else "-" for v in (a, b)]
        ratio = ""
        if better and a and not math.isnan(a) and not math.isnan(b):
            ratios[attr] = b / a
            ratio = f"{b / a:.2f}x"
        print(f"{label:{width}}{cells[0]:>14}{cells[1]:>16}{ratio:>10}")
    print("ratio = PostgreSQL x2 / SQLite x1; for times lower is better, for creates per second higher")
    for figures in results:
        for status, count in figures.failures.items():
            print(f"{figures.config}: {count} answers {status}, e.g. {figures.failure_samples[status]!r}")
        for status, count in figures.read_failures.items():
            print(f"{figures.config}: {count} reads answered {status}")
        if figures.server_error_sample:
            print(f"{figures.config}: first ERROR line: {figures.server_error_sample}")
    clean = all(not f.failures and not f.duplicate_vmids_answers and not f.duplicate_vmids_database
                and not f.answers_not_in_database and not f.rows_without_answer and not f.claims_not_matching
                and not f.hand_ct_vmid_given for f in results)
    print("verdict: " + ("every request 201, no VMID given twice" if clean else "DEFECTS: see above"))
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="creates per configuration (500)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="at most this many creates in flight (default: all of them at once)")
    parser.add_argument("--template-vmids", default="500-1999", help="CTFORGE_TEMPLATE_VMIDS (500-1999)")
    parser.add_argument("--no-proxmox", action="store_true", help="no minipve: the claims alone decide")
    parser.add_argument("--pve-port", type=int, default=18306)
    parser.add_argument("--pve-subnet", default="10.234.0.0/24")
    parser.add_argument("--pve-bridge", default="mpvetest3")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds a client waits for one answer before counting it failed (60)")
    parser.add_argument("--json", type=Path, help="save the figures and ratios there")
    parser.add_argument("--keep", action="store_true", help="keep the state dirs (logs, SQLite) for a look")
    args = parser.parse_args()
    try:
        args.range = parse_range(args.template_vmids)
    except ValueError as exc:
        raise SystemExit(f"--template-vmids: {exc}") from None
    if args.range.size < args.requests + 1:
        raise SystemExit(f"--template-vmids {args.template_vmids}: no room for {args.requests} templates "
                         "and a hand-made CT")
    work = Path(tempfile.mkdtemp(prefix="ctforge-bench-service-"))
    os.chmod(work, 0o755)  # the postgres user, who runs the private server, reaches its dir below
    results: list[Figures] = []
    try:
        with contextlib.ExitStack() as stack:
            pve_env: dict[str, str] = {}
            hand_vmid = None
            if not args.no_proxmox:
                from minipve.launcher import MiniPVE

                pve = stack.enter_context(MiniPVE(state_dir=work / "minipve", port=args.pve_port,
                                                  subnet=args.pve_subnet, bridge=args.pve_bridge))
                pve_env = {k: v for k, v in pve.env.items() if k.startswith("PROXMOX_")}
                hand_vmid = args.range.first
                make_hand_ct(pve_env, hand_vmid)
            results.append(run_config("SQLite x1", 1, None, work / "sqlite", args, pve_env, hand_vmid))
            pg = stack.enter_context(PostgresServer(base_dir=work / "pg"))
            pg.create_database("ctforge_bench")
            (work / "postgresql").mkdir()
            results.append(run_config("PostgreSQL x2", 2, pg.url_for("ctforge_bench"), work / "postgresql",
                                      args, pve_env, hand_vmid))
    finally:
        if args.keep:
            print(f"state dirs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    ratios = report(results, args, not args.no_proxmox)
    if args.json:
        args.json.write_text(json.dumps({"results": [asdict(r) for r in results], "ratios": ratios,
                                         "template_vmids": args.template_vmids}, indent=2) + "\n")
        print(f"figures saved to {args.json}")


if __name__ == "__main__":
    main()
