#!/usr/bin/env python3
"""Benchmark minipve's host layer: linked vs full clone by template size, and start -> SSH.

1. Templates of ~0.3 GB and ~1.5 GB (the appliance padded with a file of random data): a linked
   clone (overlayfs, plus what `pct clone` does inside) against a full copy, median of N each.
   Goal: linked <= 1 s whatever the size; printed as a ratio to the full copy.
2. From `start` to sshd answering with its banner, on a linked clone with DHCP. Goal <= 5 s.
   Also printed: from `start` to the DHCP address showing in interfaces().

Uses minipve.host directly with its own state dir, subnet and bridge; resets everything at the end.
Usage: .venv/bin/python scripts/bench/bench_minipve.py [--runs 5] [--subnet 10.236.0.0/24]
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from minipve.host import CTSpec, HostConfig
from minipve.host.lxc import LxcHost

SIZES_GB = (0.3, 1.5)
APPLIANCE = "debian-12-standard"


def quiet(_line: str) -> None:
    pass


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_template(host: LxcHost, tarball: Path, vmid: int, size_gb: float) -> str:
    vol = host.create_volume(vmid, tarball, quiet)
    root = host.volumes.rootfs(vol)
    have = host.volume_usage(vol)
    pad = max(0, int(size_gb * (1 << 30)) - have)
    subprocess.run(
        ["dd", "if=/dev/urandom", f"of={root / 'var/pad.bin'}", "bs=1M", f"count={pad >> 20}", "status=none"],
        check=True,
    )
    return host.make_base(vol, vmid)


def clone_times(host: LxcHost, base: str, runs: int, first_vmid: int) -> tuple[list[float], list[float]]:
    linked, full = [], []
    for i in range(runs):
        vmid = first_vmid + i

        def link(vmid: int = vmid) -> None:
            host.after_clone(host.linked_clone(base, vmid))

        linked.append(timed(link))
        host.destroy_volume(f"{base.rsplit('/', 1)[-1]}/subvol-{vmid}-disk-0")

        def copy(vmid: int = vmid) -> None:
            host.after_clone(host.full_clone(base, vmid, quiet))

        full.append(timed(copy))
        host.destroy_volume(f"subvol-{vmid}-disk-0")
    return linked, full


def ssh_banner(ip: str) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        try:
            sock.connect((ip, 22))
            return sock.recv(8).startswith(b"SSH-")
        except OSError:
            return False


def start_to_ssh(host: LxcHost, base: str, runs: int, vmid: int) -> tuple[list[float], list[float]]:
    vol = host.linked_clone(base, vmid)
    host.prepare_new_ct(vol, hostname="bench", root_password=None, ssh_public_keys=None)
    spec = CTSpec(
        vmid=vmid,
        hostname="bench",
        volume=vol,
        net0={"name": "eth0", "bridge": "vmbr0", "hwaddr": "BC:24:11:36:00:01", "ip": "dhcp"},
    )
    times, dhcp = [], []
    for _ in range(runs):
        start = time.perf_counter()
        host.start(spec, quiet)
        ip = None
        while time.perf_counter() - start < 30:
            if ip is None:
                eth0 = [i for i in host.interfaces(vmid) or [] if i["name"] == "eth0" and "inet" in i]
                ip = eth0[0]["inet"].split("/")[0] if eth0 else None
                if ip:
                    dhcp.append(time.perf_counter() - start)
            if ip and ssh_banner(ip):
                break
            time.sleep(0.02)
        times.append(time.perf_counter() - start)
        host.stop(vmid, quiet)
    return times, dhcp


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--subnet", default="10.236.0.0/24")
    parser.add_argument("--bridge", default="mpvebench0")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="minipve-bench-"))
    host = LxcHost(HostConfig(state_dir=state, bridge=args.bridge, subnet=ipaddress.IPv4Network(args.subnet)))
    try:
        host.up()
        tarball = host.build_appliance(APPLIANCE, quiet)
        rows = []
        for n, size in enumerate(SIZES_GB):
            base = make_template(host, tarball, 100 + n, size)
            real_gb = host.volume_usage(base) / (1 << 30)
            linked, full = clone_times(host, base, args.runs, 200 + 10 * n)
            rows.append((real_gb, statistics.median(linked), statistics.median(full)))
        boot, dhcp = start_to_ssh(host, "basevol-100-disk-0", args.runs, 300)
    finally:
        host.reset()
    print(f"\nminipve host benchmark, median of {args.runs} runs")
    print(f"{'template':>10} {'linked clone':>14} {'full clone':>12} {'linked/full':>12}  goal linked <= 1 s")
    for real_gb, linked_s, full_s in rows:
        verdict = "ok" if linked_s <= 1 else "MISSED"
        ratio = linked_s / full_s
        print(f"{real_gb:>8.2f}GB {linked_s * 1000:>12.1f}ms {full_s:>11.2f}s {ratio:>12.4f}  {verdict}")
    small, large = rows[0][1], rows[-1][1]
    size_ratio = rows[-1][0] / rows[0][0]
    print(f"linked clone, large/small template: {large / small:.2f}x (size ratio {size_ratio:.1f}x)")
    print(f"start -> DHCP address in interfaces(): median {statistics.median(dhcp):.2f} s")
    median_boot = statistics.median(boot)
    print(
        f"start -> SSH answering: median {median_boot:.2f} s (min {min(boot):.2f}, max {max(boot):.2f}); "
        f"goal <= 5 s: {'ok' if median_boot <= 5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
