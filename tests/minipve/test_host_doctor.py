"""check() and up() on a host that lacks something: a tool, a free subnet, a short bridge name."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from host_helpers import BRIDGE, host_config, require_host

from minipve.host import HostConfig, HostError
from minipve.host.doctor import TOOLS
from minipve.host.lxc import LxcHost

pytestmark = pytest.mark.host


def host_route_subnet() -> ipaddress.IPv4Network:
    """A subnet this host really routes to (not the default route)."""
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True).stdout)
    for route in routes:
        if route.get("dst", "default") != "default" and "/" in route["dst"]:
            return ipaddress.IPv4Network(route["dst"])
    pytest.skip("this host has no non-default IPv4 route")


def test_a_healthy_host_has_no_problem(tmp_path) -> None:
    require_host()
    assert LxcHost(host_config(tmp_path / "state")).check() == []


def test_missing_tool_is_reported_with_the_install_command(tmp_path, monkeypatch) -> None:
    require_host()
    # Provoked fault: uninstalling debootstrap would break every other helper on this shared machine,
    # so the test hides it instead, with a PATH that holds every other tool check() looks for.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        if tool != "debootstrap":
            (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    problems = LxcHost(host_config(tmp_path / "state")).check()
    assert [(p.what, p.fix) for p in problems] == [
        ("debootstrap not found in PATH", "apt-get install -y debootstrap")
    ]


def test_subnet_overlapping_a_host_route_is_refused(tmp_path) -> None:
    require_host()
    taken = host_route_subnet()
    config = HostConfig(state_dir=tmp_path / "state", bridge=BRIDGE, subnet=taken)
    host = LxcHost(config)
    problems = host.check()
    assert len(problems) == 1
    assert f"subnet {taken} overlaps route {taken}" in problems[0].what
    assert "--subnet" in problems[0].fix
    with pytest.raises(HostError, match=r"overlaps route .*--subnet option"):
        host.up()
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()  # refused before making anything


def test_subnet_holding_the_resolver_is_refused(tmp_path) -> None:
    require_host()
    resolvers = [
        line.split()[1]
        for line in Path("/etc/resolv.conf").read_text().splitlines()
        if line.startswith("nameserver")
    ]
    ipv4 = [r for r in resolvers if ":" not in r]
    if not ipv4:
        pytest.skip("no IPv4 resolver in /etc/resolv.conf")
    subnet = ipaddress.IPv4Network(f"{ipv4[0]}/30", strict=False)
    problems = LxcHost(HostConfig(state_dir=tmp_path / "s", bridge=BRIDGE, subnet=subnet)).check()
    assert any(f"resolver {ipv4[0]} in /etc/resolv.conf" in p.what for p in problems)


def test_too_long_bridge_name_is_reported(tmp_path) -> None:
    require_host()
    config = HostConfig(
        state_dir=tmp_path / "s", bridge="minipve-bridge-0", subnet=host_config(tmp_path).subnet
    )
    problems = LxcHost(config).check()
    assert [p.fix for p in problems] == ["choose a shorter name with the --bridge option"]


def test_not_root_is_reported(tmp_path, monkeypatch) -> None:
    # Provoked fault: the suite runs as root; dropping privileges for real would stop check() from
    # reading the host at all, so only the euid it sees is changed.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    problems = LxcHost(host_config(tmp_path / "s")).check()
    assert any("root" in p.what for p in problems)
