#!/usr/bin/env python3
"""Benchmark the stack roles against the hand-written script they replace and against the dpkg floor.

On fresh CTs of the same appliance, the three first runs side by side (at once, so they share the
machine's load alike):
1. roles: the dev user, the `packages` role (one apt transaction, one cache update), then the roles
   of {nodejs, python, postgresql, redis}, by ansible-playbook;
   script: one bash script concatenating each stack's install snippet (each runs its own
   `apt-get update && apt-get install -y ...`), run over SSH with `set -e`. Goal roles/script <= 1.0.
2. floor: one plain `apt-get update && apt-get install -y` of the same packages. Goal roles/floor <= 1.25.
3. the roles again on the first CT (nothing to change), as a fraction of their first run. Goal <= 5 %.

Every side gets the same apt proxy (MINIPVE_APT_PROXY), warmed first on a throwaway CT so downloads
do not decide the race. Package lists come from the roles' own vars/Debian.yml, so all sides install
the same set. Starts its own minipve unless --env-file names a running one's client.env; every CT it
makes is destroyed at the end.
Usage: .venv/bin/python scripts/bench/bench_roles.py [--env-file /var/lib/minipve/client.env]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from jinja2.nativetypes import NativeEnvironment

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

STACKS = ["nodejs", "python", "postgresql", "redis"]
# The script installs Debian's Node.js, so the roles do too.
ROLE_VARS = {"nodejs_source": "distro", "nodejs_version": "18"}
DEV_USER = "kobozo"
VMIDS = {"warm": 8390, "roles": 8391, "script": 8392, "floor": 8393}
APPLIANCE = "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst"
# What each stack's snippet does beyond its packages, as the hand-written scripts did.
SNIPPET_AFTER = {
    "nodejs": f"install -d -o {DEV_USER} -g {DEV_USER} /home/{DEV_USER}/.npm-global\n"
              f"runuser -u {DEV_USER} -- npm config set prefix /home/{DEV_USER}/.npm-global\n"
              "echo 'PATH=\"$HOME/.npm-global/bin:$PATH\"' > /etc/profile.d/npm-global.sh\n",
    "python": "",
    "postgresql": "systemctl enable --now postgresql\n",
    "redis": "systemctl enable --now redis-server\n",
}


def stack_packages(stack: str) -> list[str]:
    """_<stack>_packages from the role's vars/Debian.yml, rendered with the benchmark's role variables."""
    data = yaml.safe_load((REPO / "roles" / stack / "vars" / "Debian.yml").read_text())
    value = data[f"_{stack}_packages"]
    if isinstance(value, str):
        value = NativeEnvironment().from_string(value).render(**data, **ROLE_VARS)
    return list(value)


def script_text(stacks: list[str]) -> str:
    parts = ["set -e\nexport DEBIAN_FRONTEND=noninteractive\n",
             f"id -u {DEV_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash {DEV_USER}\n"]
    for stack in stacks:
        parts.append(f"# {stack}\napt-get update\napt-get install -y {' '.join(stack_packages(stack))}\n"
                     + SNIPPET_AFTER.get(stack, ""))
    return "".join(parts)


def floor_text(packages: list[str]) -> str:
    return ("set -e\nexport DEBIAN_FRONTEND=noninteractive\n"
            f"apt-get update\napt-get install -y {' '.join(packages)}\n")


def ssh(ip: str, key: Path, script: str) -> float:
    """Runs a bash script on the CT as root; returns the wall time."""
    start = time.monotonic()
    proc = subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", f"root@{ip}", "bash -s"],
        input=script, capture_output=True, text=True, timeout=1800)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"script on {ip} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def run_roles(ip: str, key: Path, workdir: Path) -> tuple[float, int]:
    """The benchmark playbook on the CT; returns the wall time and the number of changed tasks."""
    inventory = workdir / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"bench": {
        "ansible_host": ip, "ansible_user": "root", "ansible_ssh_private_key_file": str(key)}}}}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory),
         str(REPO / "scripts" / "bench" / "bench_roles.yml"),
         "-e", json.dumps({**ROLE_VARS, "bench_stacks": STACKS, "ctforge_dev_user": DEV_USER})],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"roles on {ip} failed:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    changed = int(proc.stdout.rsplit("changed=", 1)[1].split()[0])
    return elapsed, changed


def proxy_script(apt_proxy: str) -> str:
    if not apt_proxy:
        return "true\n"
    return f"echo 'Acquire::http::Proxy \"{apt_proxy}\";' > /etc/apt/apt.conf.d/01ctforge-proxy\n"


@contextlib.contextmanager
def minipve_cts(env: dict, key: Path) -> Iterator[dict[str, str]]:
    """Fresh CTs from the appliance, one per side; yields side -> IP and destroys them all."""
    from playbook_helpers import api, destroy, wait_task

    px = api(env)
    node = env["PROXMOX_NODE"]
    made: list[int] = []
    try:
        for side, vmid in VMIDS.items():
            wait_task(px, node, px.nodes(node).lxc.post(
                vmid=vmid, ostemplate=APPLIANCE, hostname=f"bench-{side}", storage="local", rootfs="local:8",
                cores=2, memory=2048, swap=512, net0="name=eth0,bridge=vmbr0,ip=dhcp", unprivileged=0,
                **{"ssh-public-keys": Path(f"{key}.pub").read_text()}))
            made.append(vmid)
            wait_task(px, node, px.nodes(node).lxc(vmid).status.start.post())
        yield {side: wait_ip(px, node, vmid) for side, vmid in VMIDS.items()}
    finally:
        for vmid in made:
            with contextlib.suppress(Exception):
                destroy(px, node, vmid)


def wait_ip(px, node: str, vmid: int) -> str:
    import socket

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for iface in px.nodes(node).lxc(vmid).interfaces.get() or []:
            inet = iface.get("inet") or ""
            if iface.get("name") != "lo" and inet and not inet.startswith("127."):
                ip = inet.split("/")[0]
                with contextlib.suppress(OSError), socket.create_connection((ip, 22), timeout=2) as conn:
                    if conn.recv(8).startswith(b"SSH-"):
                        return ip
        time.sleep(0.3)
    raise SystemExit(f"CT {vmid} never answered over SSH")


def bench(cts: dict[str, str], key: Path, apt_proxy: str) -> None:
    packages = sorted({p for s in STACKS for p in stack_packages(s)})
    for ip in cts.values():
        ssh(ip, key, proxy_script(apt_proxy))
    # Warm the proxy: download (not install) everything once on a CT that is not measured.
    ssh(cts["warm"], key, "set -e\nexport DEBIAN_FRONTEND=noninteractive\napt-get update -q >/dev/null\n"
        f"apt-get install -y -q --download-only {' '.join(packages)} >/dev/null\n")
    with tempfile.TemporaryDirectory(prefix="ctforge-bench-roles-") as tmp, ThreadPoolExecutor(3) as pool:
        roles = pool.submit(run_roles, cts["roles"], key, Path(tmp))
        script = pool.submit(ssh, cts["script"], key, script_text(STACKS))
        floor = pool.submit(ssh, cts["floor"], key, floor_text(packages))
        (t_roles, changed_first), t_script, t_floor = roles.result(), script.result(), floor.result()
        t_noop, changed_noop = run_roles(cts["roles"], key, Path(tmp))
    print(f"stacks {', '.join(STACKS)}: {len(packages)} packages asked for, apt proxy {apt_proxy or 'none'}")
    print(f"roles (packages batched):      {t_roles:7.1f} s   ({changed_first} changed)")
    print(f"hand-written script over SSH:  {t_script:7.1f} s")
    print(f"dpkg floor (one apt-get):      {t_floor:7.1f} s")
    print(f"roles re-run, nothing to do:   {t_noop:7.1f} s   ({changed_noop} changed)")
    print(f"roles / script:                {t_roles / t_script:7.2f}   (goal <= 1.0)")
    print(f"roles / floor:                 {t_roles / t_floor:7.2f}   (goal <= 1.25)")
    print(f"no-op re-run / first run:      {t_noop / t_roles:7.1%}   (goal <= 5 %)")


def read_env(path: Path) -> dict:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            env[name.strip()] = value.strip().strip("'\"")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, help="client.env of a running minipve")
    parser.add_argument("--stacks", default=",".join(STACKS), help="comma-separated ids (%(default)s)")
    args = parser.parse_args()
    STACKS[:] = [s for s in args.stacks.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="ctforge-bench-key-") as keydir:
        key = Path(keydir) / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        if args.env_file:
            env = read_env(args.env_file)
            with minipve_cts(env, key) as cts:
                bench(cts, key, env.get("MINIPVE_APT_PROXY", ""))
            return
        from minipve.launcher import MiniPVE

        state_dir = Path(tempfile.mkdtemp(prefix="ctforge-bench-minipve-"))
        with MiniPVE(state_dir=state_dir, port=18208, subnet="10.236.0.0/24", bridge="mpvebench1") as pve, \
                minipve_cts(pve.env, key) as cts:
            bench(cts, key, pve.env.get("MINIPVE_APT_PROXY", ""))


if __name__ == "__main__":
    main()
