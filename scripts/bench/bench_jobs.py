#!/usr/bin/env python3
"""Benchmark the service's overhead on a build: POST /templates/{id}/build through the API vs the same
two playbooks run by hand with ansible-playbook, side by side in one run. Goal: overhead <= 5% of the
build.

One run: its own minipve; one `ctforge serve` (SQLite, its own state dir, CTFORGE_TEMPLATE_VMIDS
7500-7599, minipve's PROXMOX_*), an admin and a token made with the ctforge CLI; a base template (no
stacks, from debian-12-standard) built through the API once, the parent of everything after it.
Then --rounds rounds, each alternating:
  A  through the API: a child of base (--stacks, default none) is created, POST build is timed until
     the job's SSE stream (/jobs/{id}/stream) ends; destroyed through the API afterwards (untimed).
  B  by hand: ansible-playbook playbooks/provision.yml -e @vars, then playbooks/finalize.yml, with the
     variables the service would give (the same typed requests, ctforge.requests), ANSIBLE_CONFIG,
     PROXMOX_* and CTFORGE_STATE_DIR = the service's state dir (the same build key), at VMIDs 7480+
     outside the service's range; timed around the two commands; destroy.yml afterwards (untimed).
A's time is split by the job's timestamps and events: the POST until the job row, the queue wait
(created_at -> started_at), the service before the first event, each run's events (first -> last),
the service between and after them, and the stream's delay to the client after finished_at.

Printed: per round A and B seconds, the medians, overhead = median(A) - median(B), its % of
median(B), PASS/FAIL against 5%, and the breakdown. Exits non-zero only on an error.
Every process it starts is stopped by its PID at the end (minipve's exit removes every CT).
Usage: .venv/bin/python scripts/bench/bench_jobs.py [--rounds 3] [--stacks redis] [--json FILE]
       [--pve-port 18306 --pve-subnet 10.234.0.0/24 --pve-bridge mpvetest3] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ctforge_procs import API, REPO, Api, Services, bench_dir, ctforge, save_figures, service_env, tail

from ctforge.requests import FinalizeRequest, ProvisionRequest, extravars_yaml

APPLIANCE = "debian-12-standard"
USER = "alice"
SERVICE_VMIDS = "7500-7599"
HAND_VMID, HAND_SMOKE_VMID = 7480, 7481  # outside SERVICE_VMIDS; 7600+ belongs to the tests
GOAL_PERCENT = 5.0
VENV_BIN = REPO / ".venv" / "bin"


@dataclass
class ApiBuild:
    seconds: float  # POST build -> the stream's `end`, on the client
    events: int
    segments: dict[str, float] = field(default_factory=dict)


@dataclass
class HandBuild:
    seconds: float  # both commands, wall clock
    provision: float
    finalize: float


@dataclass
class Round:
    index: int
    api: ApiBuild
    hand: HandBuild
    load: float  # the machine's 1-minute load average after the round: others share its cores


# -- A: through the API ----------------------------------------------------------------------------

def epoch(stamp: str) -> float:
    moment = datetime.fromisoformat(stamp)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def run_marks(job: dict[str, Any], events: list[dict[str, Any]], playbook: str) -> dict[str, float]:
    """When one run of the job got where: its runner ready (ansible-runner writes artifacts/<ident>/command
    just before it spawns), the first event (the shim's prompt), playbook_on_start, playbook_on_stats, the
    last event, and ansible-runner's return (it writes artifacts/<ident>/status then)."""
    mine = [e for e in events if e["playbook"] == playbook]
    at = {e["event"]: epoch(e["created_at"]) for e in mine}
    dirs = sorted((Path(job["artifacts_dir"]) / "artifacts").glob(f"*-{playbook}"))
    if len(dirs) != 1 or not mine or not {"playbook_on_start", "playbook_on_stats"} <= set(at):
        raise SystemExit(f"job {job['id']}: no single clean {playbook} run ({dirs}, {len(mine)} events)")
    return {"command": (dirs[0] / "command").stat().st_mtime, "first": epoch(mine[0]["created_at"]),
            "start": at["playbook_on_start"], "stats": at["playbook_on_stats"],
            "last": epoch(mine[-1]["created_at"]), "status": (dirs[0] / "status").stat().st_mtime}


# A's segments: (name, who pays it: "service" | "runner" | "ansible", what B pays for it too or not)
SEGMENTS = (
    ("POST -> the job's row", "service"),
    ("queue wait (created_at -> started_at)", "service"),
    ("claim -> provision's runner ready", "service"),
    ("runner spawn + shim up to its prompt, x2", "runner"),
    ("ansible-playbook start-up (-> playbook_on_start), x2", "ansible"),
    ("the plays (playbook_on_start -> _stats), x2", "ansible"),
    ("ansible-playbook exit + runner return, x2", "runner"),
    ("between: provision's return -> finalize's runner", "service"),
    ("after: finalize's return -> finished_at", "service"),
    ("finished_at -> the client's `end` (stream)", "service"),
)


def api_build(api: Api, name: str, parent: dict[str, Any], stacks: list[str]) -> tuple[ApiBuild, dict]:
    child = api.call("POST", "/templates", 201, json={"name": name, "parent_id": parent["id"],
                                                     "tech_stacks": stacks})
    posted, ended, job, items = api.run_action(child["id"], "build")
    events = [data for kind, data in items if kind != "end"]
    order = [e["playbook"] for i, e in enumerate(events)
             if i == 0 or events[i - 1]["playbook"] != e["playbook"]]
    if order != ["provision", "finalize"]:
        raise SystemExit(f"job {job['id']}: its events are not of provision then finalize")
    created, started, finished = (epoch(job[k]) for k in ("created_at", "started_at", "finished_at"))
    p, f = run_marks(job, events, "provision"), run_marks(job, events, "finalize")
    values = (
        created - posted, started - created, p["command"] - started,
        (p["first"] - p["command"]) + (f["first"] - f["command"]),
        (p["start"] - p["first"]) + (f["start"] - f["first"]),
        (p["stats"] - p["start"]) + (f["stats"] - f["start"]),
        (p["status"] - p["stats"]) + (f["status"] - f["stats"]),
        f["command"] - p["status"], finished - f["status"], ended - finished,
    )
    segments = {name: value for (name, _who), value in zip(SEGMENTS, values, strict=True)}
    # The split: the runs as their events show them (first -> last), and the rest.
    segments["the runs' events (1st -> last), x2"] = (p["last"] - p["first"]) + (f["last"] - f["first"])
    return ApiBuild(seconds=ended - posted, events=len(events), segments=segments), child


def api_destroy(api: Api, template: dict[str, Any]) -> None:
    api.run_action(template["id"], "destroy")
    api.call("DELETE", f"/templates/{template['id']}", 204)


# -- B: the same playbooks by hand ------------------------------------------------------------------

def hand_env(service: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in service.items() if not k.startswith("CTFORGE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               CTFORGE_STATE_DIR=service["CTFORGE_STATE_DIR"], PATH=f"{VENV_BIN}:{env.get('PATH', '')}")
    return env


def playbook(env: dict[str, str], log: Path, name: str, *args: str) -> float:
    start = time.monotonic()
    with log.open("ab") as out:
        rc = subprocess.run([str(VENV_BIN / "ansible-playbook"), str(REPO / "playbooks" / name), *args],
                            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, check=False).returncode
    took = time.monotonic() - start
    if rc != 0:
        raise SystemExit(f"ansible-playbook {name} {' '.join(args)}: rc {rc}\n{tail(log, 40)}")
    return took


def hand_build(env: dict[str, str], work: Path, name: str, parent: dict[str, Any],
               stacks: list[str]) -> HandBuild:
    """provision then finalize with the requests the service builds from a record like A's child."""
    provision = ProvisionRequest.model_validate({
        "ctforge_template_name": name, "ctforge_vmid": HAND_VMID, "ctforge_stacks": stacks,
        "ctforge_env_vars": {}, "ctforge_parent_vmid": parent["vmid"],
        "ctforge_inherited_stacks": list(parent["effective_stacks"])})
    finalize = FinalizeRequest(ctforge_vmid=HAND_VMID, ctforge_smoke_vmid=HAND_SMOKE_VMID)
    files = []
    for kind, request in (("provision", provision), ("finalize", finalize)):
        path = work / f"{name}-{kind}.yml"
        path.write_text(extravars_yaml(request))
        files.append(path)
    log = work / f"{name}.log"
    start = time.monotonic()
    took_provision = playbook(env, log, "provision.yml", "-e", f"@{files[0]}")
    took_finalize = playbook(env, log, "finalize.yml", "-e", f"@{files[1]}")
    return HandBuild(seconds=time.monotonic() - start, provision=took_provision, finalize=took_finalize)


def hand_destroy(env: dict[str, str], work: Path, name: str) -> None:
    for vmid in (HAND_VMID, HAND_SMOKE_VMID):  # the smoke clone is gone after a good finalize
        playbook(env, work / f"{name}-destroy.log", "destroy.yml", "-e", f"ctforge_vmid={vmid}")


# -- the report ------------------------------------------------------------------------------------

def report(rounds: list[Round], base_seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    a = [r.api.seconds for r in rounds]
    b = [r.hand.seconds for r in rounds]
    med_a, med_b = statistics.median(a), statistics.median(b)
    overhead = med_a - med_b
    percent = 100 * overhead / med_b
    verdict = "PASS" if percent <= GOAL_PERCENT else "FAIL"
    stacks = ",".join(args.stacks) or "none"
    print(f"\njobs benchmark: a child of base (stacks: {stacks}) built by POST {API}/templates/{{id}}/build "
          f"(A) vs provision.yml + finalize.yml by ansible-playbook (B), {len(rounds)} rounds, A/B "
          f"alternating; base built through the API first in {base_seconds:.1f} s")
    print(f"{'round':>6}{'A: API (s)':>12}{'B: by hand (s)':>16}{'A - B (s)':>11}{'A / B':>8}"
          f"{'B provision':>13}{'B finalize':>12}{'A events':>10}{'load':>7}")
    for r in rounds:
        gap = r.api.seconds - r.hand.seconds
        print(f"{r.index:>6}{r.api.seconds:>12.2f}{r.hand.seconds:>16.2f}{gap:>11.2f}"
              f"{r.api.seconds / r.hand.seconds:>8.3f}{r.hand.provision:>13.2f}{r.hand.finalize:>12.2f}"
              f"{r.api.events:>10}{r.load:>7.2f}")
    print(f"{'median':>6}{med_a:>12.2f}{med_b:>16.2f}{overhead:>11.2f}{med_a / med_b:>8.3f}")
    print(f"overhead = median(A) - median(B) = {overhead:.2f} s = {percent:.1f}% of median(B) "
          f"(goal <= {GOAL_PERCENT:.0f}%): {verdict}")
    paired = statistics.median(r.api.seconds - r.hand.seconds for r in rounds)
    print(f"median of the rounds' own A - B: {paired:.2f} s = {100 * paired / med_b:.1f}% of median(B)")
    print("\nwhere A's time goes (median over the rounds, seconds; x2: both runs together):")
    medians = {n: statistics.median(r.api.segments[n] for r in rounds) for n in rounds[0].api.segments}
    for name, who in SEGMENTS:
        print(f"  {name:54s}{medians[name]:8.2f}  {who}")
    spans = medians["the runs' events (1st -> last), x2"]
    print(f"  {'the runs themselves: events 1st -> last, x2':54s}{spans:8.2f}")
    print(f"  {'the service around them: A - that':54s}{med_a - spans:8.2f}")
    for who in ("service", "runner", "ansible"):
        total = sum(statistics.median(r.api.segments[n] for r in rounds) for n, w in SEGMENTS if w == who)
        print(f"  {'sum of ' + who:54s}{total:8.2f}")
    print(f"  {'B: both ansible-playbook commands (start-up to exit)':54s}{med_b:8.2f}")
    # What the service and the bridge add by themselves, whatever the plays cost in that round: every
    # segment but ansible-playbook's start-up and plays, which B pays too. Its exit, which B pays as well,
    # is in "runner" (the two cannot be told apart from the events): an upper bound.
    own = [sum(r.api.segments[n] for n, w in SEGMENTS if w != "ansible") for r in rounds]
    own_percent = 100 * statistics.median(own) / med_b
    print(f"the service's and the bridge's own time per build: median {statistics.median(own):.2f} s "
          f"(rounds: {', '.join(f'{o:.2f}' for o in own)}) = {own_percent:.1f}% of median(B); "
          "ansible-runner's cost per event, inside the plays, is not in it (--profile measures it)")
    if max(b) - min(b) > abs(overhead):
        print(f"note: B's rounds spread over {max(b) - min(b):.1f} s ({min(b):.1f}-{max(b):.1f}), more than "
              "the overhead of the medians: that difference is within the machine's noise; the line above "
              "is the service's own share")
    return {"rounds": [asdict(r) for r in rounds], "median_api": med_a, "median_hand": med_b,
            "overhead_seconds": overhead, "overhead_percent": percent, "verdict": verdict,
            "segments_median": medians, "own_seconds": own, "own_percent": own_percent,
            "base_seconds": base_seconds, "stacks": args.stacks}


# -- --profile: the runner bridge alone vs ansible-playbook, on a local playbook -------------------

def local_playbook(work: Path, tasks: int) -> tuple[Path, Path]:
    """A playbook of `tasks` debug tasks on localhost (about 3 events each, as many as a build's run)."""
    inventory = work / "profile-inventory.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                         f"      ansible_python_interpreter: {sys.executable}\n")
    book = work / "profile-playbook.yml"
    steps = "".join(f"    - name: Step {n}\n      ansible.builtin.debug:\n        msg: step {n}\n"
                    for n in range(tasks))
    book.write_text(f"- name: Profile\n  hosts: localhost\n  gather_facts: false\n  tasks:\n{steps}")
    return inventory, book


def profile(work: Path, repeats: int, tasks: int) -> dict[str, dict[str, float]]:
    """Median seconds of one run, each way: where a run through ctforge.jobs.runner spends more than
    ansible-playbook by itself (the shim's prompt and process, ansible-runner's pexpect loop and its
    poll interval, the event callback), measured in this process on the same local playbook."""
    from ctforge.jobs import runner
    from ctforge.requests import DestroyRequest  # extra vars of some request: the playbook ignores them

    inventory, book = local_playbook(work, tasks)
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    plain_env = {**os.environ, **env, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    secret = {"CTFORGE_BENCH_SECRET": "not-a-real-secret"}

    def plain() -> tuple[float, float, float]:
        """(total, start -> first PLAY line, PLAY RECAP -> exit), read from its output as it comes."""
        start, play, recap = time.monotonic(), None, None
        with subprocess.Popen([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(book)],
                              env=plain_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if play is None and line.startswith("PLAY ["):
                    play = time.monotonic()
                elif line.startswith("PLAY RECAP"):
                    recap = time.monotonic()
        end = time.monotonic()
        if proc.returncode != 0 or play is None or recap is None:
            raise SystemExit(f"profile run by ansible-playbook: rc {proc.returncode}")
        return end - start, play - start, end - recap

    def bridge(name: str, *, shim: bool = True,
               poll: float = runner.CANCEL_POLL_SECONDS) -> tuple[float, float, float]:
        """The same three, the play's start and the recap taken from the events as they arrive."""
        saved = runner.SHIM, runner.CANCEL_POLL_SECONDS
        runner.SHIM = runner.SHIM if shim else VENV_BIN / "ansible-playbook"
        runner.CANCEL_POLL_SECONDS = poll
        marks: dict[str, float] = {}

        def on_event(event: dict[str, Any]) -> None:
            kind = event.get("event")
            if kind in ("playbook_on_play_start", "playbook_on_stats"):
                marks.setdefault(str(kind), time.monotonic())

        try:
            start = time.monotonic()
            outcome = runner.run_playbook(work / f"profile-{name}", f"run-{time.monotonic_ns()}", str(book),
                                          DestroyRequest(ctforge_vmid=9999), inventories=[inventory], env=env,
                                          secrets=secret if shim else {}, on_event=on_event,
                                          should_cancel=lambda: False, timeout=None)
            end = time.monotonic()
        finally:
            runner.SHIM, runner.CANCEL_POLL_SECONDS = saved
        if outcome.status != "successful" or len(marks) != 2:
            raise SystemExit(f"profile run {name}: {outcome.status} rc {outcome.rc}")
        return end - start, marks["playbook_on_play_start"] - start, end - marks["playbook_on_stats"]

    ways: dict[str, Any] = {
        "ansible-playbook by itself": plain,
        "ctforge.jobs.runner as the service runs it": lambda: bridge("service"),
        "the same, pexpect poll 0.05 s instead of 1 s": lambda: bridge("poll", poll=0.05),
        "the same, ansible-playbook without the shim": lambda: bridge("noshim", shim=False),
        "without the shim, pexpect poll 0.05 s": lambda: bridge("both", shim=False, poll=0.05),
    }
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ways}
    for _ in range(repeats):  # interleaved, so that a slow moment of the machine hits every way
        for name, way in ways.items():
            times[name].append(way())
    medians = {name: [statistics.median(v[i] for v in values) for i in range(3)]
               for name, values in times.items()}
    base = medians["ansible-playbook by itself"]
    print(f"\nprofile: one run of a local playbook of {tasks} debug tasks, median of {repeats} (seconds; "
          "+/-: against ansible-playbook by itself)")
    print(f"  {'':48s}{'total':>8}{'':8}{'start-up':>10}{'':8}{'recap->exit':>13}{'':8}")
    for name, (total, startup, exit_) in medians.items():
        print(f"  {name:48s}{total:8.2f}{total - base[0]:+8.2f}{startup:10.2f}{startup - base[1]:+8.2f}"
              f"{exit_:13.2f}{exit_ - base[2]:+8.2f}")
    return {name: dict(zip(("total", "startup", "exit"), values, strict=True))
            for name, values in medians.items()}


# -- main ------------------------------------------------------------------------------------------

def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from minipve.launcher import MiniPVE

    with contextlib.ExitStack() as stack:
        pve = stack.enter_context(MiniPVE(state_dir=work / "minipve", port=args.pve_port,
                                          subnet=args.pve_subnet, bridge=args.pve_bridge))
        pve_env = {k: v for k, v in pve.env.items() if k.startswith("PROXMOX_")}
        state = work / "service"
        state.mkdir()
        env = service_env(state, None, SERVICE_VMIDS, pve_env)
        ctforge(env, "db", "upgrade")
        ctforge(env, "users", "add", USER, "--admin")
        token = ctforge(env, "tokens", "create", USER).strip()
        services = stack.enter_context(Services(env, 1, work))
        api = Api(f"http://127.0.0.1:{services.ports[0]}", token)
        stack.callback(api.http.close)
        base = api.call("POST", "/templates", 201, json={"name": "bench-base", "base_ct_template": APPLIANCE,
                                                         "tech_stacks": []})
        posted, ended, _job, _items = api.run_action(base["id"], "build")
        base_seconds = ended - posted
        base = api.call("GET", f"/templates/{base['id']}", 200)
        print(f"base ready at VMID {base['vmid']} in {base_seconds:.1f} s", file=sys.stderr)
        hand = hand_env(env)
        rounds = []
        for index in range(1, args.rounds + 1):
            name = f"bench-child-{index}"
            api_result, child = api_build(api, f"{name}-api", base, args.stacks)
            api_destroy(api, child)
            hand_result = hand_build(hand, work, f"{name}-hand", base, args.stacks)
            hand_destroy(hand, work, f"{name}-hand")
            print(f"round {index}: A {api_result.seconds:.2f} s, B {hand_result.seconds:.2f} s",
                  file=sys.stderr)
            rounds.append(Round(index, api_result, hand_result, os.getloadavg()[0]))
        return report(rounds, base_seconds, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds (3)")
    parser.add_argument("--stacks", default="", help="the children's stacks, comma-separated (none)")
    parser.add_argument("--pve-port", type=int, default=18306)
    parser.add_argument("--pve-subnet", default="10.234.0.0/24")
    parser.add_argument("--pve-bridge", default="mpvetest3")
    parser.add_argument("--profile", action="store_true",
                        help="also time one run through ctforge.jobs.runner vs ansible-playbook, locally")
    parser.add_argument("--profile-only", action="store_true", help="only that (no minipve, no builds)")
    parser.add_argument("--profile-tasks", type=int, default=100, help="debug tasks of that playbook (100)")
    parser.add_argument("--profile-repeats", type=int, default=5, help="runs of each way (5)")
    parser.add_argument("--json", type=Path, help="save the figures there")
    parser.add_argument("--keep", action="store_true", help="keep the state dir (logs, job artifacts)")
    args = parser.parse_args()
    args.stacks = [s for s in args.stacks.split(",") if s]
    if not 1 <= args.rounds <= 50:
        raise SystemExit("--rounds: 1 to 50")
    with bench_dir("ctforge-bench-jobs-", args.keep) as work:
        figures = {} if args.profile_only else bench(args, work)
        if args.profile or args.profile_only:
            figures["profile"] = profile(work, args.profile_repeats, args.profile_tasks)
    save_figures(args.json, figures)


if __name__ == "__main__":
    main()
