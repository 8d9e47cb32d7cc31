"""The network a host owns: what listens where, down() vs reset(), and a second instance's apt cache."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest
from host_helpers import (
    BRIDGE,
    BRIDGE2,
    GATEWAY,
    SUBNET,
    SUBNET2,
    assert_forwarding_put_back,
    forwarding_before,
    host_config,
    require_host,
)

from minipve.host import HostConfig
from minipve.host.lxc import LxcHost
from minipve.host.network import FORWARD_REGISTRY, FORWARD_SYSCTL, dhcp_range, nft_table

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
    forward_before = forwarding_before()
    host = LxcHost(host_config(tmp_path / "state"))
    claim = host.network._claim_path()
    try:
        host.up()
        host.up()  # idempotent: no second daemon, no second address
        run_dir = host.network.run_dir
        dns_pid = int((run_dir / "dnsmasq.pid").read_text())
        acng_pid = int((run_dir / "apt-cacher-ng.pid").read_text())
        assert listening(dns_pid) == [f"0.0.0.0%{BRIDGE}:67", f"{GATEWAY}:53"]
        assert listening(acng_pid) == [f"{GATEWAY}:3142"]
        # forwarding on, claimed for this state dir, the host's own value on record (beside any
        # other instance on this host, as after `scripts/demo.sh`, that value predates them all)
        assert FORWARD_SYSCTL.read_text() == "1\n"
        assert claim.read_text() == f"{host.config.state_dir.resolve()}\n"
        assert (FORWARD_REGISTRY / "original").read_text() == forward_before
        addrs = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", BRIDGE], capture_output=True, text=True
        )
        assert addrs.stdout.count("inet ") == 1
        assert f"{GATEWAY}/{SUBNET.prefixlen} brd {SUBNET.broadcast_address}" in addrs.stdout
        mtu = Path(f"/sys/class/net/{BRIDGE}/mtu").read_text().strip()
        assert mtu == "1400"
        host.down()
        assert not claim.exists()
        assert not Path(f"/proc/{dns_pid}").exists() and not Path(f"/proc/{acng_pid}").exists()
        assert host.apt_proxy_url() is None
        assert Path(f"/sys/class/net/{BRIDGE}").exists()
        nft = subprocess.run(
            ["nft", "list", "table", "ip", nft_table(host.config)], capture_output=True, text=True
        )
        assert f"ip saddr {SUBNET} ip daddr != {SUBNET} masquerade" in nft.stdout
    finally:
        host.reset()
    assert_forwarding_put_back(forward_before)


def test_second_instance_keeps_its_apt_cache_private(tmp_path) -> None:
    require_host()
    first = LxcHost(host_config(tmp_path / "one"))
    second = LxcHost(HostConfig(state_dir=tmp_path / "two", bridge=BRIDGE2, subnet=SUBNET2))
    try:
        first.up()
        second.up()
        assert second.apt_proxy_url() == f"http://{next(SUBNET2.hosts())}:3142"
        # the shared cache is taken (by `first`, or by any other instance on this machine)
        assert acng_cache_dir(second) == second.config.state_dir / "apt-cacher-ng-cache"
        assert acng_cache_dir(first) != acng_cache_dir(second)
    finally:
        second.reset()
        first.reset()
    assert not Path(f"/sys/class/net/{BRIDGE2}").exists()


# Runs inside a network namespace of its own with a private /run: there ip_forward and the
# registry are this test's alone, so "the last one down" is known, whatever runs on the host.
FORWARDING_SCENES = r"""
import json, os, shutil, signal, sys
from pathlib import Path
from minipve.host.network import FORWARD_REGISTRY, FORWARD_SYSCTL
from minipve.launcher import MiniPVE

tmp = Path(sys.argv[1])
seen, made = {}, []

def look(step):
    claims = sorted(Path(c.read_text().strip()).name for c in FORWARD_REGISTRY.glob("claim-*"))
    seen[step] = [FORWARD_SYSCTL.read_text().strip(), claims]

def pve(name, n):
    made.append(MiniPVE(tmp / name, port=18300 + n, subnet=f"10.250.{n}.0/24", bridge=f"mpvens{n}",
                        appliance=""))  # no network for debootstrap here
    return made[-1]

try:
    # as after scripts/demo.sh: a second instance beside one that runs; the first stops first
    FORWARD_SYSCTL.write_text("0\n")
    a, b = pve("a", 1), pve("b", 2)
    a.start(); look("a up")
    b.start(); look("b up beside a")
    a.stop(); look("a down, b runs")
    a.reset(); look("a reset, b runs")
    b.stop(); look("b down, the last")
    b.reset()
    # a host that forwarded already keeps forwarding
    FORWARD_SYSCTL.write_text("1\n")
    with pve("c", 3):
        look("c up on a forwarding host")
    look("c down")
    # a crashed instance keeps its claim (its containers still run) until it is reset
    FORWARD_SYSCTL.write_text("0\n")
    d, e = pve("d", 4), pve("e", 5)
    d.start(); e.start()
    d.kill(); look("d killed, e runs")
    e.stop(); e.reset(); look("e down, d crashed")
    d.reset(); look("d reset")
    # a crashed instance whose state dir was deleted by hand: its claim is void, and the value
    # on record is still the host's own, not the 1 the crashed one left
    f, g = pve("f", 6), pve("g", 7)
    f.start(); f.kill()
    for daemon in ("dnsmasq", "apt-cacher-ng"):
        os.kill(int((f.state_dir / "run" / f"{daemon}.pid").read_text()), signal.SIGTERM)
    shutil.rmtree(f.state_dir)
    with g:
        look("g up, f's dir gone")
    look("g down")
finally:
    for instance in made:
        instance.stop()
        instance.reset()
print(json.dumps(seen))
"""


def test_instances_share_forwarding_and_the_last_one_down_puts_it_back(tmp_path) -> None:
    require_host()
    script = 'mount -t tmpfs minipve-test /run && ip link set lo up && exec "$@"'
    proc = subprocess.run(
        [
            "unshare",
            "--net",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            sys.executable,
            "-c",
            FORWARDING_SCENES,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen == {
        "a up": ["1", ["a"]],
        "b up beside a": ["1", ["a", "b"]],
        "a down, b runs": ["1", ["b"]],
        "a reset, b runs": ["1", ["b"]],
        "b down, the last": ["0", []],
        "c up on a forwarding host": ["1", ["c"]],
        "c down": ["1", []],
        "d killed, e runs": ["1", ["d", "e"]],
        "e down, d crashed": ["1", ["d"]],
        "d reset": ["0", []],
        "g up, f's dir gone": ["1", ["g"]],
        "g down": ["0", []],
    }


def test_a_second_instance_on_a_bridge_in_use_is_refused_and_leaves_it_alone(tmp_path) -> None:
    """Two instances given one bridge by mistake: the second refuses before it touches anything, and
    its reset (the launcher resets a failed start) removes neither the bridge nor the first's NAT."""
    require_host()
    from minipve.host import HostError

    first = LxcHost(host_config(tmp_path / "one"))
    second = LxcHost(HostConfig(state_dir=tmp_path / "two", bridge=BRIDGE, subnet=SUBNET2))
    try:
        first.up()
        with pytest.raises(HostError, match=f"bridge {BRIDGE} belongs to the minipve of "):
            second.up()
        second.reset()
        assert Path(f"/sys/class/net/{BRIDGE}").exists()
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
        assert nft_table(first.config) in tables
        assert first.apt_proxy_url() is not None  # the first's daemons still run
    finally:
        first.reset()
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
