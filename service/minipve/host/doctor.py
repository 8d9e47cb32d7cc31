"""`minipve doctor`: every host prerequisite, each missing one with the command that fixes it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from minipve.host import HostConfig, HostError, Problem
from minipve.host.network import subnet_overlaps

# tool -> Debian package that provides it
TOOLS = {
    "lxc-start": "lxc",
    "lxc-info": "lxc",
    "lxc-stop": "lxc",
    "lxc-wait": "lxc",
    "debootstrap": "debootstrap",
    "zstd": "zstd",
    "tar": "tar",
    "nft": "nftables",
    "dnsmasq": "dnsmasq-base",
    "apt-cacher-ng": "apt-cacher-ng",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "mount": "mount",
}
MAX_BRIDGE_NAME = 15  # IFNAMSIZ - 1


def check(config: HostConfig) -> list[Problem]:
    problems: list[Problem] = []
    if os.geteuid() != 0:
        problems.append(Problem("minipve must run as root (LXC, bridges, nftables)", "sudo minipve serve"))
    missing: dict[str, list[str]] = {}
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            missing.setdefault(package, []).append(tool)
    for package, tools in missing.items():
        problems.append(Problem(f"{', '.join(tools)} not found in PATH", f"apt-get install -y {package}"))
    if not _has_filesystem("overlay"):
        problems.append(Problem("the kernel lacks overlayfs (linked clones need it)", "modprobe overlay"))
    if not Path("/sys/fs/cgroup").is_dir() or not os.listdir("/sys/fs/cgroup"):
        problems.append(
            Problem(
                "no cgroup filesystem is mounted at /sys/fs/cgroup", "mount -t cgroup2 none /sys/fs/cgroup"
            )
        )
    elif not _has_memory_cgroup():
        problems.append(
            Problem(
                "no memory cgroup controller is mounted (CT memory limits need it)",
                "mount -t cgroup -o memory memory /sys/fs/cgroup/memory",
            )
        )
    if len(config.bridge) > MAX_BRIDGE_NAME or not config.bridge:
        problems.append(
            Problem(
                f"bridge name '{config.bridge}' is longer than {MAX_BRIDGE_NAME} characters",
                "choose a shorter name with the --bridge option",
            )
        )
    if shutil.which("ip") is not None:
        try:
            overlaps = subnet_overlaps(config)
        except HostError as exc:
            overlaps = [str(exc)]
        if overlaps:
            problems.append(
                Problem(
                    f"subnet {config.subnet} overlaps {', '.join(overlaps)}",
                    "choose a free private subnet with the --subnet option, e.g. --subnet 10.213.0.0/24",
                )
            )
    return problems


def _has_filesystem(name: str) -> bool:
    try:
        text = Path("/proc/filesystems").read_text()
    except OSError:
        return False
    return any(line.split()[-1] == name for line in text.splitlines() if line.strip())


def _has_memory_cgroup() -> bool:
    if Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
        return True
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    return controllers.exists() and "memory" in controllers.read_text().split()
