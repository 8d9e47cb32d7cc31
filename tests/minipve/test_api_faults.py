"""The `ssh_unreachable` fault: a running CT's /interfaces shows, for eth0, an address of minipve's subnet
that no container has, so that a client's SSH wait runs out; the CT itself is left as it is."""

from __future__ import annotations

import ipaddress
import socket
import time

import pytest
from pve_helpers import create_ct, destroy_ct, task_ok, wait_ipv4

from minipve.host.network import dhcp_range
from minipve.launcher import MiniPVEError

pytestmark = pytest.mark.host


def eth0(api, node: str, vmid: int) -> dict:
    return next(i for i in api.nodes(node).lxc(vmid).interfaces.get() if i["name"] == "eth0")


def ssh_banner(addr: str) -> bool:
    try:
        with socket.create_connection((addr, 22), timeout=3) as conn:
            conn.settimeout(3)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def ssh_banner_within(addr: str, limit: float = 60) -> bool:
    """The address comes with DHCP, sshd a moment later (first boot makes its host keys)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if ssh_banner(addr):
            return True
        time.sleep(0.1)  # between knocks; the deadline bounds the wait
    return False


def test_ssh_unreachable_shows_an_unused_address_of_the_subnet_and_clears(minipve, api, node, faults) -> None:
    subnet = ipaddress.IPv4Network(minipve.subnet)
    top_static = dhcp_range(subnet)[0] - 1  # the first address the fault would take, held by a CT below
    running, static = int(api.cluster.nextid.get()), None
    try:
        create_ct(api, node, running)
        static = int(api.cluster.nextid.get())
        create_ct(api, node, static, net0=f"name=eth0,bridge=vmbr0,ip={top_static}/{subnet.prefixlen}")
        task_ok(api, node, api.nodes(node).lxc(running).status.start.post())
        real = wait_ipv4(api, node, running)
        assert ssh_banner_within(real)

        faults(ssh_unreachable=True)
        shown = eth0(api, node, running)
        addr = ipaddress.IPv4Address(shown["inet"].split("/")[0])
        assert addr in subnet and addr not in (subnet.network_address, subnet.broadcast_address)
        assert addr != ipaddress.IPv4Address(real)
        assert addr < dhcp_range(subnet)[0]  # no lease can hold it
        assert addr != top_static  # a CT's netN sets that one
        assert addr != next(subnet.hosts())  # the gateway, minipve's own address
        assert shown["inet"].endswith(f"/{subnet.prefixlen}")
        inet = [ip["ip-address"] for ip in shown["ip-addresses"] if ip["ip-address-type"] == "inet"]
        assert inet == [str(addr)]
        assert not ssh_banner(str(addr))  # nobody answers there...
        assert ssh_banner(real)  # ...while the CT runs untouched on its own address
        assert api.nodes(node).lxc(static).interfaces.get() is None  # a stopped CT still shows nothing

        faults(ssh_unreachable=False)
        assert eth0(api, node, running)["inet"].split("/")[0] == real
        faults(ssh_unreachable=True)
        faults()  # cleared with the rest of the switch
        assert eth0(api, node, running)["inet"].split("/")[0] == real
    finally:
        destroy_ct(api, node, running)
        if static is not None:
            destroy_ct(api, node, static)


@pytest.mark.parametrize("value", [1, "yes", "true"])
def test_ssh_unreachable_takes_only_true_or_false(faults, value) -> None:
    with pytest.raises(MiniPVEError, match="400"):
        faults(ssh_unreachable=value)
    assert faults(slow=0)["ssh_unreachable"] is False
