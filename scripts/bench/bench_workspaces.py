#!/usr/bin/env python3
"""Benchmark workspaces (issue #14) through the HTTP API, on a minipve of its own.

One run: one `ctforge serve` (SQLite, its own state dir, templates 7500-7599, workspaces 7700-7799),
an admin and a token made with the ctforge CLI, a person's own SSH key pair; the canonical chain base
(no stacks) -> nodejs (nodejs, claude_cli) -> fullstack (postgresql, redis) built through the API
(untimed, printed). Then:

1. Request -> SSH-ready, --rounds rounds, each side by side:
   A  POST /workspaces for {nodejs, claude_cli, postgresql, redis} (fullstack covers them all): timed
      from the POST until `ssh DEV_USER@IP true` with the person's own key answers, the address read
      from the workspace record (shown as soon as the owner can log in). The job's end is timed too
      (every stack's verify runs after the login). Destroyed through the API afterwards (untimed).
   B  the least any tool can do: a linked clone of fullstack, started, its address read and root's SSH
      with the build key, by hand through the Proxmox API (proxmoxer), no ctforge at all.
   Goal: A's median <= 3 s. Printed: each round, the medians and A / B.
2. {nodejs, claude_cli, postgresql, redis, python} from fullstack (python installed on top) vs the
   same workspace from base (all five installed), each timed from the POST to the job's end, in turn
   (--five-rounds pairs): the median ratio fullstack / base, goal <= 0.3.

Exits non-zero only on an error. Every process it starts is stopped by its PID at the end (minipve's
exit removes every CT).
Usage: .venv/bin/python scripts/bench/bench_workspaces.py [--rounds 5] [--five-rounds 2] [--json FILE]
       [--pve-port 18406 --pve-subnet 10.238.0.0/24 --pve-bridge mpvebench4] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ctforge_procs import Api, Services, bench_dir, ctforge, save_figures, service_env

APPLIANCE = "debian-12-standard"
USER = "alice"
DEV_USER = "kobozo"  # the base role's default dev user
TEMPLATE_VMIDS, WORKSPACE_VMIDS = "7500-7599", "7700-7799"
BARE_VMID = 7690  # outside both ranges: B's clone
COVERED = ["nodejs", "claude_cli", "postgresql", "redis"]
FIVE = [*COVERED, "python"]
READY_GOAL, RATIO_GOAL = 3.0, 0.3
WAIT = 600.0  # the longest wait for an address or a login, a bound, not a pace


def ssh_once(ip: str, key: Path, user: str) -> bool:
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
         "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=2", "-o", "IdentitiesOnly=yes",
         "-o", "LogLevel=ERROR", f"{user}@{ip}", "true"],
        capture_output=True, timeout=30, check=False).returncode == 0


def until(what: str, probe: Any) -> Any:
    """probe() until it answers something true; the deadline bounds the wait."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        answer = probe()
        if answer:
            return answer
        time.sleep(0.02)  # between tries of a local call
    raise SystemExit(f"{what}: not within {WAIT:.0f} s")


# -- A: through the service ------------------------------------------------------------------------

def api_workspace(api: Api, name: str, stacks: list[str], public: str, key: Path,
                  template_id: str | None = None) -> dict[str, Any]:
    """POST /workspaces, then the owner's first login and the job's end, each from the POST."""
    body: dict[str, Any] = {"name": name, "stacks": stacks, "ssh_public_keys": [public]}
    if template_id:
        body["template_id"] = template_id
    posted = time.time()
    made = api.call("POST", "/workspaces", 202, json=body)
    workspace, job = made["workspace"], made["job"]

    def address() -> str | None:
        record = api.call("GET", f"/workspaces/{workspace['id']}", 200)
        if record["status"] == "error":
            raise SystemExit(f"workspace {name}: {record['error_message']}")
        return record["ip"]

    ip = until(f"workspace {name}'s address", address)
    until(f"{DEV_USER}@{ip} with the owner's key", lambda: ssh_once(ip, key, DEV_USER))
    ready = time.time() - posted
    items = api.stream(job["id"])
    ended = time.time() - posted
    job = api.call("GET", f"/jobs/{job['id']}", 200)
    if job["status"] != "successful":
        raise SystemExit(f"workspace {name}: job {job['id']} {job['status']}: {job['error']}")
    record = api.call("GET", f"/workspaces/{workspace['id']}", 200)
    return {"id": workspace["id"], "template": record["template_name"],
            "installed": record["installed_stacks"], "ready": ready, "ended": ended, "events": len(items),
            "marks": marks(api, job, posted)}


# Where A's time goes: when each of these was done, from the POST (the service stamps each event as
# it arrives from ansible-runner).
MARKS = (("run started", "playbook_on_start", None),
         ("validated", "playbook_on_play_start", "Bring up the workspace CT"),
         ("cloned", "runner_on_ok", "Ensure the workspace CT exists as a clone of its template"),
         ("started", "runner_on_ok", "Ensure the workspace CT is running"),
         ("SSH answers", "runner_on_ok",
          "Wait until the CT reports a global IPv4 address and SSH answers on it"),
         ("keys in", "runner_on_ok", "Record the dev user and the stacks the CT and its template carry, "
                                     "and report that the owner can log in"))


def marks(api: Api, job: dict[str, Any], posted: float) -> dict[str, float]:
    events, after = [], 0
    while batch := api.call("GET", f"/jobs/{job['id']}/events", 200,
                            params={"after": after, "limit": 500})["data"]:
        events += batch
        after = batch[-1]["seq"]
    found = {"job started": epoch(job["started_at"]) - posted}
    for label, kind, task in MARKS:
        hit = next((e for e in events if e["event"] == kind and (task is None or e["task"] == task)), None)
        if hit is not None:
            found[label] = epoch(hit["created_at"]) - posted
    return found


def epoch(stamp: str) -> float:
    moment = datetime.fromisoformat(stamp)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def api_destroy(api: Api, workspace_id: str) -> None:
    job = api.call("POST", f"/workspaces/{workspace_id}/destroy", 202)
    api.stream(job["id"])


# -- B: the bare Proxmox API -----------------------------------------------------------------------

def bare_ready(px: Any, node: str, template_vmid: int, key: Path) -> dict[str, float]:
    """Clone, start, address, root's login with the build key: the floor under any tool."""
    marks: dict[str, float] = {}
    posted = time.monotonic()

    def wait_task(upid: str) -> None:
        def done() -> bool:
            status = px.nodes(node).tasks(upid).status.get()
            if status["status"] == "stopped" and status.get("exitstatus") != "OK":
                raise SystemExit(f"task {upid}: {status.get('exitstatus')}")
            return status["status"] == "stopped"
        until(f"task {upid}", done)

    wait_task(px.nodes(node).lxc(template_vmid).clone.post(newid=BARE_VMID, hostname="bare", full=0))
    marks["clone"] = time.monotonic() - posted
    wait_task(px.nodes(node).lxc(BARE_VMID).status.start.post())
    marks["start"] = time.monotonic() - posted

    def address() -> str | None:
        for nic in px.nodes(node).lxc(BARE_VMID).interfaces.get():
            if nic.get("name") != "lo" and nic.get("inet"):
                return str(nic["inet"]).split("/")[0]
        return None

    ip = until("the bare clone's address", address)
    marks["ip"] = time.monotonic() - posted
    until(f"root@{ip} with the build key", lambda: ssh_once(ip, key, "root"))
    marks["ready"] = time.monotonic() - posted
    return marks


def bare_destroy(px: Any, node: str) -> None:
    upid = px.nodes(node).lxc(BARE_VMID).status.stop.post()
    until("the bare clone's stop", lambda: px.nodes(node).tasks(upid).status.get()["status"] == "stopped")
    upid = px.nodes(node).lxc(BARE_VMID).delete(purge=1)
    until("the bare clone's destroy", lambda: px.nodes(node).tasks(upid).status.get()["status"] == "stopped")


# -- the run ---------------------------------------------------------------------------------------

def build_chain(api: Api) -> dict[str, dict[str, Any]]:
    chain: dict[str, dict[str, Any]] = {}
    for name, parent, stacks in (("base", None, []), ("nodejs", "base", ["nodejs", "claude_cli"]),
                                 ("fullstack", "nodejs", ["postgresql", "redis"])):
        body: dict[str, Any] = {"name": name, "tech_stacks": stacks}
        if parent:
            body["parent_id"] = chain[parent]["id"]
        else:
            body["base_ct_template"] = APPLIANCE
            body["is_default"] = True
        record = api.call("POST", "/templates", 201, json=body)
        posted, ended, _job, _items = api.run_action(record["id"], "build")
        chain[name] = api.call("GET", f"/templates/{record['id']}", 200)
        print(f"{name} ready at VMID {chain[name]['vmid']} in {ended - posted:.1f} s", file=sys.stderr)
    return chain


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from proxmoxer import ProxmoxAPI

    from minipve.launcher import MiniPVE

    key = work / "owner" / "id_ed25519"
    key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "owner@bench", "-f", str(key)],
                   check=True)
    public = key.with_suffix(".pub").read_text().strip()
    with contextlib.ExitStack() as stack:
        pve = stack.enter_context(MiniPVE(state_dir=work / "minipve", port=args.pve_port,
                                          subnet=args.pve_subnet, bridge=args.pve_bridge))
        pve_env = {k: v for k, v in pve.env.items() if k.startswith("PROXMOX_")}
        state = work / "service"
        state.mkdir()
        env = service_env(state, None, TEMPLATE_VMIDS, pve_env)
        env["CTFORGE_WORKSPACE_VMIDS"] = WORKSPACE_VMIDS
        ctforge(env, "db", "upgrade")
        ctforge(env, "users", "add", USER, "--admin")
        token = ctforge(env, "tokens", "create", USER).strip()
        services = stack.enter_context(Services(env, 1, work))
        api = Api(f"http://127.0.0.1:{services.ports[0]}", token)
        stack.callback(api.http.close)
        px = ProxmoxAPI(pve_env["PROXMOX_HOST"], port=int(pve_env["PROXMOX_PORT"]),
                        user=pve_env["PROXMOX_USER"], token_name=pve_env["PROXMOX_TOKEN_ID"],
                        token_value=pve_env["PROXMOX_TOKEN_SECRET"],
                        verify_ssl=False)
        node = pve_env["PROXMOX_NODE"]
        chain = build_chain(api)
        rounds = []
        for index in range(1, args.rounds + 1):
            a = api_workspace(api, f"covered-{index}", COVERED, public, key)
            if a["template"] != "fullstack" or a["installed"]:
                raise SystemExit(f"the covered workspace came from {a['template']}, "
                                 f"installing {a['installed']}")
            api_destroy(api, a["id"])
            b = bare_ready(px, node, chain["fullstack"]["vmid"], state / "build_key")
            bare_destroy(px, node)
            rounds.append({"index": index, "api": a, "bare": b, "load": os.getloadavg()[0]})
            print(f"round {index}: A ready {a['ready']:.2f} s (job {a['ended']:.2f} s), B {b['ready']:.2f} s",
                  file=sys.stderr)
        # the two sides of the ratio alternate, so a load that comes and goes weighs on both alike
        pairs = []
        for index in range(1, args.five_rounds + 1):
            pair: dict[str, dict[str, Any]] = {}
            for side in ("fullstack", "base"):
                made = api_workspace(api, f"five-from-{side}-{index}", FIVE, public, key, chain[side]["id"])
                api_destroy(api, made["id"])
                pair[side] = made
                print(f"five from {side} ({index}): {made['ended']:.1f} s (installed {made['installed']}), "
                      f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
            pairs.append(pair)
        return report(rounds, pairs)


def report(rounds: list[dict[str, Any]], pairs: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    ready = [r["api"]["ready"] for r in rounds]
    ended = [r["api"]["ended"] for r in rounds]
    bare = [r["bare"]["ready"] for r in rounds]
    med_a, med_b = statistics.median(ready), statistics.median(bare)
    print(f"\nworkspace benchmark, {len(rounds)} rounds: A = POST /workspaces {{{', '.join(COVERED)}}} "
          "(fullstack covers it) -> the owner's SSH login; B = clone + start + address + SSH by hand "
          "through the Proxmox API")
    print(f"{'round':>6}{'A: ready (s)':>14}{'A: job end (s)':>16}{'B: ready (s)':>14}{'A / B':>8}"
          f"{'B clone':>9}{'B start':>9}{'B ip':>7}{'load':>7}")
    for r in rounds:
        a, b = r["api"], r["bare"]
        print(f"{r['index']:>6}{a['ready']:>14.2f}{a['ended']:>16.2f}{b['ready']:>14.2f}"
              f"{a['ready'] / b['ready']:>8.2f}{b['clone']:>9.2f}{b['start']:>9.2f}{b['ip']:>7.2f}"
              f"{r['load']:>7.2f}")
    print(f"{'median':>6}{med_a:>14.2f}{statistics.median(ended):>16.2f}{med_b:>14.2f}{med_a / med_b:>8.2f}")
    labels = list(rounds[0]["api"]["marks"])
    print("  A's medians from the POST: " + ", ".join(
        f"{label} {statistics.median(r['api']['marks'].get(label, float('nan')) for r in rounds):.2f} s"
        for label in labels) + f", owner logged in {med_a:.2f} s")
    ready_verdict = "PASS" if med_a <= READY_GOAL else "FAIL"
    print(f"request -> SSH-ready: median {med_a:.2f} s (goal <= {READY_GOAL:.0f} s): {ready_verdict}; "
          f"{med_a - med_b:.2f} s over the bare API")
    ratios = [p["fullstack"]["ended"] / p["base"]["ended"] for p in pairs]
    ratio = statistics.median(ratios)
    ratio_verdict = "PASS" if ratio <= RATIO_GOAL else "FAIL"
    top, scratch = pairs[0]["fullstack"], pairs[0]["base"]
    for index, (pair, each) in enumerate(zip(pairs, ratios, strict=True), 1):
        print(f"{{{', '.join(FIVE)}}} ({index}): from fullstack {pair['fullstack']['ended']:.1f} s "
              f"(installs {', '.join(top['installed'])}), from base {pair['base']['ended']:.1f} s "
              f"(installs {', '.join(scratch['installed'])}): ratio {each:.3f}")
    print(f"five stacks, from fullstack / from base: median ratio {ratio:.3f} of {len(pairs)} "
          f"(goal <= {RATIO_GOAL}): {ratio_verdict}")
    return {"rounds": rounds, "ready_median": med_a, "bare_median": med_b, "ready_verdict": ready_verdict,
            "five": pairs, "ratios": ratios, "ratio": ratio, "ratio_verdict": ratio_verdict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="A/B rounds of request -> SSH-ready (5)")
    parser.add_argument("--five-rounds", type=int, default=2,
                        help="pairs of five-stack workspaces, from fullstack and from base, in turn (2)")
    parser.add_argument("--pve-port", type=int, default=18406)
    parser.add_argument("--pve-subnet", default="10.238.0.0/24")
    parser.add_argument("--pve-bridge", default="mpvebench4")
    parser.add_argument("--json", type=Path, help="save the figures there")
    parser.add_argument("--keep", action="store_true", help="keep the state dir (logs, job artifacts)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50:
        raise SystemExit("--rounds: 1 to 50")
    with bench_dir("ctforge-bench-workspaces-", args.keep) as work:
        figures = bench(args, work)
    save_figures(args.json, figures)


if __name__ == "__main__":
    main()
