#!/usr/bin/env python3
"""Benchmark the lifecycle playbooks on minipve.

1. Build fullstack from the nodejs template, and again from the base appliance (every stack from
   scratch); print the time ratio. Goal <= 0.5. An untimed fullstack build from the nodejs template
   goes first, so that both timed builds find minipve's apt cache warm for PostgreSQL and Redis:
   the bench's minipve gets a cold cache of its own while another instance holds the shared one,
   and the child alone would then pay for fetching them from the Debian mirror.
2. Time from the clone request to SSH answering for a staging clone of a template. Goal <= 3 s.

Starts its own minipve (port, subnet and bridge of its own) unless --env-file names a running one's
client.env. Everything it makes is destroyed at the end.
Usage: .venv/bin/python scripts/bench/bench_build.py [--env-file /var/lib/minipve/client.env] [--runs 3]
       [--ready-only] [--log-dir DIR]
--log-dir keeps each build's ansible-playbook output there (DIR/<vmid>.log); with
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks in the environment it shows where the time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from playbook_helpers import api, clone_and_start, destroy, run_playbook  # noqa: E402

EXAMPLES = REPO / "examples"
BASE, NODEJS, CHILD, SCRATCH, WARMUP, PROBE = 8150, 8200, 8250, 8260, 8270, 8290


def read_env(path: Path) -> dict:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip().strip("'\"")
    return env


def timed_build(env: dict, extra: dict, example: str, log_dir: Path | None = None) -> float:
    start = time.monotonic()
    run = run_playbook(env, "build.yml", extra, extra_files=(EXAMPLES / example,))
    elapsed = time.monotonic() - start
    if log_dir:
        (log_dir / f"{extra['ctforge_vmid']}.log").write_text(run.output)
    if run.rc != 0:
        raise SystemExit(f"build of {extra['ctforge_vmid']} failed:\n{run.output[-4000:]}")
    return elapsed


def bench(env: dict, runs: int, ready_only: bool, log_dir: Path | None = None) -> None:
    px = api(env)
    node = env["PROXMOX_NODE"]
    took: dict[str, float] = {}
    build = functools.partial(timed_build, env, log_dir=log_dir)
    with tempfile.TemporaryDirectory() as keydir:
        key = Path(keydir) / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        common = {"ctforge_ssh_private_key_file": str(key), "ctforge_node": node, "ctforge_smoke_vmid": 8299}
        try:
            took["base from appliance"] = build({**common, "ctforge_vmid": BASE}, "base.yml")
            ready, phases = [], []
            for _ in range(runs):
                marks: dict[str, float] = {}
                clone_and_start(px, node, BASE, PROBE, marks)
                ready.append(marks["ssh"])
                phases.append(marks)
                destroy(px, node, PROBE)
            if not ready_only:
                took["nodejs from base"] = build(
                    {**common, "ctforge_vmid": NODEJS, "ctforge_parent_vmid": BASE}, "nodejs.yml")
                child = {**common, "ctforge_template_name": "fullstack-warmup", "ctforge_vmid": WARMUP,
                         "ctforge_parent_vmid": NODEJS}
                took["(untimed) warm-up child"] = build(child, "fullstack.yml")
                destroy(px, node, WARMUP)
                took["fullstack from nodejs template"] = build(
                    {**common, "ctforge_vmid": CHILD, "ctforge_parent_vmid": NODEJS}, "fullstack.yml")
                took["fullstack from the appliance"] = build({
                    **common, "ctforge_vmid": SCRATCH, "ctforge_template_name": "fullstack-scratch",
                    "ctforge_parent_vmid": None, "ctforge_base_ct_template": "debian-12-standard",
                    "ctforge_inherited_stacks": [],
                    "ctforge_stacks": ["nodejs", "claude_cli", "postgresql", "redis"],
                }, "fullstack.yml")
        finally:
            for vmid in (PROBE, 8299, WARMUP, SCRATCH, CHILD, NODEJS, BASE):
                with contextlib.suppress(Exception):
                    if any(g["vmid"] == vmid for g in px.cluster.resources.get(type="vm")):
                        destroy(px, node, vmid)
    for what, seconds in took.items():
        print(f"{what + ':':32s}{seconds:7.1f} s")
    if not ready_only:
        ratio = took["fullstack from nodejs template"] / took["fullstack from the appliance"]
        print(f"{'ratio child / scratch:':32s}{ratio:7.2f}   (goal <= 0.5)")
    print(f"{'clone request -> SSH ready:':32s}{statistics.median(ready):7.2f} s median of {runs} "
          f"(min {min(ready):.2f}, max {max(ready):.2f})   (goal <= 3 s)")
    steps = ("clone", "start", "ipv4", "ssh")
    print("  medians from the request: " + ", ".join(
        f"{step} done {statistics.median(m[step] for m in phases):.2f} s" for step in steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, help="client.env of a running minipve")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ready-only", action="store_true", help="build base only; time SSH-ready clones")
    parser.add_argument("--log-dir", type=Path, help="keep each build's output in DIR/<vmid>.log")
    args = parser.parse_args()
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    if args.env_file:
        bench(read_env(args.env_file), args.runs, args.ready_only, args.log_dir)
        return
    from minipve.launcher import MiniPVE

    state_dir = Path(tempfile.mkdtemp(prefix="ctforge-bench-minipve-"))
    with MiniPVE(state_dir=state_dir, port=18207, subnet="10.235.0.0/24", bridge="mpvebench0") as pve:
        bench(pve.env, args.runs, args.ready_only, args.log_dir)


if __name__ == "__main__":
    main()
