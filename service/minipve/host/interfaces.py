"""A running CT's interfaces in the shape of Proxmox's `GET /nodes/{node}/lxc/{vmid}/interfaces`."""

from __future__ import annotations

import json

from minipve.host.commands import run


def read_interfaces(pid: int) -> list[dict] | None:
    """Read addresses in the CT's network namespace (no tool inside the CT is needed)."""
    proc = run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "addr", "show"], check=False)
    if proc.returncode != 0:
        return None
    return [to_proxmox(link) for link in json.loads(proc.stdout or "[]")]


def to_proxmox(link: dict) -> dict:
    """One `ip -j addr` entry as Proxmox reports it: inet/inet6 only once an address exists."""
    hwaddr = link.get("address", "00:00:00:00:00:00")
    entry: dict = {"name": link.get("ifname", "")}
    entry["hwaddr"] = hwaddr
    entry["hardware-address"] = hwaddr
    addresses = []
    for info in link.get("addr_info", []):
        family = {"inet": "inet", "inet6": "inet6"}.get(info.get("family", ""))
        if family is None or info.get("tentative"):
            continue
        cidr = f"{info['local']}/{info['prefixlen']}"
        entry.setdefault(family, cidr)
        addresses.append(
            {"ip-address-type": family, "ip-address": info["local"], "prefix": info["prefixlen"]}
        )
    entry["ip-addresses"] = addresses
    return entry
