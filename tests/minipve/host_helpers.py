"""Shared by the host-layer tests: a throwaway host config and SSH into a CT."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from minipve.host import HostConfig
from minipve.host.commands import flock
from minipve.host.network import FORWARD_REGISTRY, FORWARD_SYSCTL

SUBNET = ipaddress.IPv4Network(os.environ.get("CTFORGE_TEST_HOST_SUBNET", "10.233.0.0/24"))
BRIDGE = os.environ.get("CTFORGE_TEST_HOST_BRIDGE", "mpvehost0")
GATEWAY = str(next(SUBNET.hosts()))
# a second instance beside the first: the next subnet of the same size, a bridge of its own
SUBNET2 = ipaddress.IPv4Network((int(SUBNET.broadcast_address) + 1, SUBNET.prefixlen))
BRIDGE2 = os.environ.get("CTFORGE_TEST_HOST_BRIDGE2", f"{BRIDGE[:14]}b")
SSH_OPTS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=2",
    "-o",
    "LogLevel=ERROR",
]


def require_host() -> None:
    if os.geteuid() != 0:
        pytest.skip("real containers need root")
    for tool in ("lxc-start", "debootstrap", "nft", "dnsmasq", "apt-cacher-ng"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing: run `bash scripts/setup.sh`")


def host_config(state_dir: Path) -> HostConfig:
    return HostConfig(state_dir=state_dir, bridge=BRIDGE, subnet=SUBNET)


def ssh_key(tmp: Path) -> Path:
    key = tmp / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    return key


def ssh(ip: str, key: Path, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", *SSH_OPTS, "-i", key, f"root@{ip}", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_ipv4(host, vmid: int, limit: float = 30) -> str:
    """The CT's eth0 address from interfaces() once DHCP (or the static config) has set it."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for iface in host.interfaces(vmid) or []:
            if iface["name"] == "eth0" and "inet" in iface:
                return iface["inet"].split("/")[0]
        time.sleep(0.1)
    raise AssertionError(f"CT {vmid} got no IPv4 address within {limit} s")


def wait_ssh(ip: str, key: Path, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if ssh(ip, key, "true", timeout=10).returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"SSH on {ip} did not answer within {limit} s")


def forwarding_before() -> str:
    """The host's ip_forward before any minipve turned it on (other sessions' instances may run)."""
    try:
        return (FORWARD_REGISTRY / "original").read_text()
    except FileNotFoundError:
        return FORWARD_SYSCTL.read_text()


def assert_forwarding_put_back(before: str) -> None:
    """Once this test's instances are down: forwarding stays on while any other instance on the
    host still claims it, else it is back to the host's own value. Read under the registry's lock,
    so an instance starting or stopping meanwhile cannot come between the two reads."""
    with flock(FORWARD_REGISTRY / ".lock"):
        claims = [c for c in FORWARD_REGISTRY.glob("claim-*") if Path(c.read_text().strip()).is_dir()]
        value = FORWARD_SYSCTL.read_text()
    assert value == ("1\n" if claims else before), (value, claims)
