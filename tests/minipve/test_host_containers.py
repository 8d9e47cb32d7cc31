"""LxcHost on real LXC containers: create, DHCP, SSH, apt, clones and chains, static IP, restart, reset.

The tests share one host (state dir in tmp, subnet and bridge of host_helpers) and run in file
order, as a CT's life does; the last one resets the host and checks that nothing is left behind.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import pytest
from host_helpers import (
    GATEWAY,
    SUBNET,
    assert_forwarding_put_back,
    forwarding_before,
    host_config,
    require_host,
    ssh,
    ssh_key,
    wait_ipv4,
    wait_ssh,
)

from minipve.host import CTSpec, HostError
from minipve.host.lxc import LxcHost
from minipve.host.network import nft_table

pytestmark = pytest.mark.host
STATIC = str(SUBNET.network_address + 51)  # in the lower half, outside the DHCP range

APPLIANCE = "debian-12-standard"
LOG: list[str] = []


def net0(vmid: int, ip: str = "dhcp", gw: str | None = None) -> dict[str, str]:
    net = {"name": "eth0", "bridge": "vmbr0", "hwaddr": f"BC:24:11:33:00:{vmid % 256:02X}", "ip": ip}
    if gw:
        net["gw"] = gw
    return net


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    require_host()
    tmp = tmp_path_factory.mktemp("minipve-host")
    forward_before = forwarding_before()
    host = LxcHost(host_config(tmp / "state"))
    host.up()
    data = {"host": host, "key": ssh_key(tmp), "tmp": tmp, "forward_before": forward_before, "vols": {}}
    try:
        yield data
    finally:
        LxcHost(host.config).reset()  # idempotent: the last test has normally done it already


def test_appliance_is_placed_in_storage(world) -> None:
    host = world["host"]
    path = host.build_appliance(APPLIANCE, LOG.append)
    assert path == host.config.storage_dir / "template/cache/debian-12-standard_12.12-1_amd64.tar.zst"
    assert path.stat().st_size > 10 << 20
    world["tarball"] = path


def test_new_ct_gets_dhcp_address_ssh_and_apt(world) -> None:
    host, key = world["host"], world["key"]
    vol = host.create_volume(200, world["tarball"], LOG.append)
    assert vol == "subvol-200-disk-0"
    host.prepare_new_ct(
        vol,
        hostname="first",
        root_password="not-logged-pw",
        ssh_public_keys=key.with_suffix(".pub").read_text(),
    )
    assert host.interfaces(200) is None
    host.start(CTSpec(vmid=200, hostname="first", volume=vol, net0=net0(200)), LOG.append)
    ip = wait_ipv4(host, 200)
    assert ipaddress.IPv4Address(ip) in SUBNET
    ifaces = {i["name"]: i for i in host.interfaces(200)}
    assert set(ifaces) == {"lo", "eth0"}
    eth0 = ifaces["eth0"]
    assert eth0["hwaddr"] == eth0["hardware-address"] == "bc:24:11:33:00:c8"
    assert {"ip-address-type": "inet", "ip-address": ip, "prefix": 24} in eth0["ip-addresses"]
    assert ifaces["lo"]["inet"] == "127.0.0.1/8"
    wait_ssh(ip, key)
    limit = ssh(ip, key, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes").stdout.strip()
    assert limit == str(512 << 20)  # CTSpec's default memory, 512 MiB
    out = ssh(ip, key, "hostname; cat /etc/resolv.conf; test -s /etc/machine-id && echo mid-ok").stdout
    assert out.splitlines()[0] == "first"
    assert f"nameserver {GATEWAY}" in out and "mid-ok" in out
    # apt through NAT and DNS forwarding, then through the apt proxy
    result = ssh(ip, key, "apt-get update -q && apt-get install -y -q hello && hello")
    assert result.returncode == 0, result.stderr[-800:]
    assert "Hello, world!" in result.stdout
    proxy = host.apt_proxy_url()
    assert proxy == f"http://{GATEWAY}:3142"
    via_proxy = ssh(
        ip,
        key,
        f"apt-get -o Acquire::http::Proxy={proxy} update -q && apt-get -o Acquire::http::Proxy={proxy}"
        " install -y -q --reinstall hello",
    )
    assert via_proxy.returncode == 0, via_proxy.stderr[-800:]
    assert all("not-logged-pw" not in line for line in LOG)
    world["vols"][200] = vol
    world["ip200"] = ip


def test_runtime_and_template_refusals(world) -> None:
    host = world["host"]
    rt = host.runtime(200)
    assert rt.running and rt.pid and rt.mem > 0
    assert host.running_vmids() == [200]
    with pytest.raises(HostError, match="running"):
        host.make_base(world["vols"][200], 200)
    host.shutdown(200, 30, False, LOG.append)
    assert not host.runtime(200).running
    assert host.interfaces(200) is None
    base = host.make_base(world["vols"][200], 200)
    assert base == "basevol-200-disk-0"
    with pytest.raises(HostError, match="template"):
        host.start(CTSpec(vmid=200, hostname="first", volume=base, net0=net0(200)), LOG.append)
    world["vols"][200] = base


def test_linked_clone_with_static_ip_leaves_base_untouched(world) -> None:
    host, key, base = world["host"], world["key"], world["vols"][200]
    base_layer = host.volumes.layer(base)
    vol = host.linked_clone(base, 201)
    assert vol == "basevol-200-disk-0/subvol-201-disk-0"
    host.after_clone(vol)
    upper_etc = host.volumes.layer(vol) / "etc"
    assert (upper_etc / "machine-id").read_text() == ""
    assert (base_layer / "etc/machine-id").read_text().strip()  # the booted base keeps its own
    assert upper_etc.stat().st_mode == (base_layer / "etc").stat().st_mode
    assert not os.path.ismount(host.volumes.rootfs(vol))
    host.start(
        CTSpec(
            vmid=201, hostname="clone", volume=vol, net0=net0(201, f"{STATIC}/{SUBNET.prefixlen}", GATEWAY)
        ),
        LOG.append,
    )
    assert wait_ipv4(host, 201) == STATIC
    wait_ssh(STATIC, key)
    out = ssh(STATIC, key, "echo clone > /etc/clone-only; rm /usr/bin/hello; ip -4 addr show eth0").stdout
    assert f"brd {SUBNET.broadcast_address}" in out
    assert not (base_layer / "etc/clone-only").exists()
    assert (base_layer / "usr/bin/hello").exists()
    assert host.linked_clones_of(base) == [vol]
    host.stop(201, LOG.append)
    world["vols"][201] = vol


def test_chain_of_templates_stacks_lower_layers(world) -> None:
    host = world["host"]
    base2 = host.make_base(world["vols"][201], 201)
    assert base2 == "basevol-200-disk-0/basevol-201-disk-0"
    vol = host.linked_clone(base2, 202)
    with host.volumes.opened(vol) as root:
        (root / "etc/third-layer").write_text("third\n")
    base3 = host.make_base(vol, 202)
    leaf = host.linked_clone(base3, 203)
    assert host.linked_clones_of(world["vols"][200]) == [base2, base3, leaf]
    with host.volumes.opened(leaf) as root:
        assert (root / "etc/clone-only").read_text() == "clone\n"  # from the second layer
        assert (root / "etc/third-layer").exists()  # from the third
        assert not (root / "usr/bin/hello").exists()  # deleted in the second layer
        assert (root / "etc/debian_version").exists()  # from the appliance
    assert not os.path.ismount(host.volumes.rootfs(leaf))
    with pytest.raises(HostError, match="still in use by linked clones"):
        host.destroy_volume(world["vols"][200])
    with pytest.raises(HostError, match="still in use by linked clones"):
        host.destroy_volume(base3)
    world["vols"].update({201: base2, 202: base3, 203: leaf})


def test_full_clone_is_independent(world) -> None:
    host = world["host"]
    full = host.full_clone(world["vols"][201], 204, LOG.append)
    assert full == "subvol-204-disk-0"
    root = host.volumes.rootfs(full)
    assert (root / "etc/clone-only").exists() and (root / "etc/debian_version").exists()
    (root / "etc/full-only").write_text("x\n")
    assert not (host.volumes.layer(world["vols"][201]) / "etc/full-only").exists()
    assert full not in host.linked_clones_of(world["vols"][200])
    assert host.volume_usage(full) > host.volume_usage(world["vols"][203])
    host.start(CTSpec(vmid=204, hostname="full", volume=full, net0=net0(204)), LOG.append)
    with pytest.raises(HostError, match="CT 204 is running"):
        host.destroy_volume(full)
    host.stop(204, LOG.append)
    host.destroy_volume(full)
    assert not host.volumes.path(full).exists()
    assert not (host.lxcpath / "204").exists()


def test_restarted_host_finds_running_ct_and_its_mount(world) -> None:
    host, key = world["host"], world["key"]
    leaf = world["vols"][203]
    host.start(CTSpec(vmid=203, hostname="leaf", volume=leaf, net0=net0(203)), LOG.append)
    ip = wait_ipv4(host, 203)
    wait_ssh(ip, key)
    again = LxcHost(host.config)  # a fresh object, as after a minipve restart
    assert again.running_vmids() == [203]
    rt = again.runtime(203)
    assert rt.running and rt.pid == host.runtime(203).pid
    assert again.interfaces(203) is not None
    assert ssh(ip, key, "cat /etc/third-layer").stdout == "third\n"
    again.stop(203, LOG.append)
    assert not again.runtime(203).running
    assert not os.path.ismount(again.volumes.rootfs(leaf))


SLOW_STOP_UNIT = """[Unit]
Description=a service that takes a minute to stop
[Service]
ExecStart=/bin/sleep infinity
ExecStop=/bin/sleep 60
TimeoutStopSec=90
"""


def test_shutdown_times_out_unless_forced(world) -> None:
    host, key = world["host"], world["key"]
    host.start(CTSpec(vmid=203, hostname="leaf", volume=world["vols"][203], net0=net0(203)), LOG.append)
    ip = wait_ipv4(host, 203)
    wait_ssh(ip, key)
    unit = f"cat > /etc/systemd/system/slowstop.service <<'EOF'\n{SLOW_STOP_UNIT}EOF\n"
    assert ssh(ip, key, unit + "systemctl daemon-reload && systemctl start slowstop").returncode == 0
    with pytest.raises(HostError, match="did not stop within 2 s"):
        host.shutdown(203, 2, False, LOG.append)
    assert host.runtime(203).running
    host.shutdown(203, 2, True, LOG.append)
    assert not host.runtime(203).running
    assert not os.path.ismount(host.volumes.rootfs(world["vols"][203]))


def test_reset_leaves_the_host_as_it_was(world) -> None:
    host = world["host"]
    host.start(CTSpec(vmid=203, hostname="leaf", volume=world["vols"][203], net0=net0(203)), LOG.append)
    pids = [int((host.network.run_dir / f"{d}.pid").read_text()) for d in ("dnsmasq", "apt-cacher-ng")]
    state_dir = host.config.state_dir
    host.reset()
    assert not state_dir.exists()
    assert not Path(f"/sys/class/net/{host.config.bridge}").exists()
    tables = subprocess.run(
        ["nft", "-j", "list", "tables"], capture_output=True, text=True, check=True
    ).stdout
    names = [t["table"]["name"] for t in json.loads(tables)["nftables"] if "table" in t]
    assert nft_table(host.config) not in names
    assert str(state_dir) not in Path("/proc/self/mounts").read_text()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    listening = subprocess.run(["ss", "-ltnu"], capture_output=True, text=True, check=True).stdout
    assert f"{GATEWAY}:" not in listening
    assert_forwarding_put_back(world["forward_before"])
