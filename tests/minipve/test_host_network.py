"""The network a host owns: what listens where, down() vs reset(), and a second instance's apt cache."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
from host_helpers import BRIDGE, SUBNET, host_config, require_host

from minipve.host import HostConfig
from minipve.host.lxc import LxcHost
from minipve.host.network import FORWARD_SYSCTL, dhcp_range, nft_table

pytestmark = pytest.mark.host


def listening(pid: int) -> list[str]:
    """Local addresses the process listens on (TCP and UDP), as `ss` prints them."""
    out = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True, check=True).stdout
    return sorted({line.split()[4] for line in out.splitlines() if f"pid={pid}," in line})


def acng_cache_dir(host: LxcHost) -> Path:
    conf = (host.config.state_dir / "apt-cacher-ng/acng.conf").read_text()
    return Path(next(line.split(": ", 1)[1] for line in conf.splitlines() if line.startswith("CacheDir:")))


def test_dhcp_range_is_the_upper_half() -> None:
    low, high = dhcp_range(ipaddress.IPv4Network("10.233.0.0/24"))
    assert (str(low), str(high)) == ("10.233.0.128", "10.233.0.254")


def test_daemons_listen_only_on_the_gateway_and_down_keeps_the_bridge(tmp_path) -> None:
    require_host()
    forward_before = FORWARD_SYSCTL.read_text()
    host = LxcHost(host_config(tmp_path / "state"))
    try:
        host.up()
        host.up()  # idempotent: no second daemon, no second address
        run_dir = host.network.run_dir
        dns_pid = int((run_dir / "dnsmasq.pid").read_text())
        acng_pid = int((run_dir / "apt-cacher-ng.pid").read_text())
        assert listening(dns_pid) == [f"0.0.0.0%{BRIDGE}:67", "10.233.0.1:53"]
        assert listening(acng_pid) == ["10.233.0.1:3142"]
        assert (host.config.state_dir / "ip_forward.saved").read_text() == forward_before
        addrs = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", BRIDGE], capture_output=True, text=True
        )
        assert addrs.stdout.count("inet ") == 1 and "10.233.0.1/24 brd 10.233.0.255" in addrs.stdout
        mtu = Path(f"/sys/class/net/{BRIDGE}/mtu").read_text().strip()
        assert mtu == "1400"
        host.down()
        assert not Path(f"/proc/{dns_pid}").exists() and not Path(f"/proc/{acng_pid}").exists()
        assert host.apt_proxy_url() is None
        assert Path(f"/sys/class/net/{BRIDGE}").exists()
        nft = subprocess.run(
            ["nft", "list", "table", "ip", nft_table(host.config)], capture_output=True, text=True
        )
        assert f"ip saddr {SUBNET} ip daddr != {SUBNET} masquerade" in nft.stdout
    finally:
        host.reset()
    assert FORWARD_SYSCTL.read_text() == forward_before


def test_second_instance_keeps_its_apt_cache_private(tmp_path) -> None:
    require_host()
    first = LxcHost(host_config(tmp_path / "one"))
    second = LxcHost(
        HostConfig(
            state_dir=tmp_path / "two", bridge="mpvehost1", subnet=ipaddress.IPv4Network("10.233.1.0/24")
        )
    )
    try:
        first.up()
        second.up()
        assert second.apt_proxy_url() == "http://10.233.1.1:3142"
        # the shared cache is taken (by `first`, or by any other instance on this machine)
        assert acng_cache_dir(second) == second.config.state_dir / "apt-cacher-ng-cache"
        assert acng_cache_dir(first) != acng_cache_dir(second)
    finally:
        second.reset()
        first.reset()
    assert not Path("/sys/class/net/mpvehost1").exists()
