"""What the API layer reads out of a CT config: its volume, its network, its summary line."""

from __future__ import annotations

import os
import re
import secrets
from typing import Any

from minipve.api.app import App
from minipve.api.errors import param_error
from minipve.host import CTSpec
from minipve.params import format_property_string, parse_property_string
from minipve.state import Conf

NET_KEYS = {
    "name",
    "bridge",
    "firewall",
    "gw",
    "gw6",
    "host-managed",
    "hwaddr",
    "ip",
    "ip6",
    "link_down",
    "mtu",
    "rate",
    "tag",
    "trunks",
    "type",
}
ROOTFS_KEYS = {"volume", "acl", "mountoptions", "quota", "replicate", "ro", "shared", "size"}
DEFAULT_DISK_GIB = 8


def new_mac(prefix: str = "BC:24:11") -> str:
    octets = prefix.rstrip(":").split(":")
    octets += [f"{b:02X}" for b in secrets.token_bytes(6 - len(octets))]
    return ":".join(o.upper() for o in octets)


def check_net(name: str, value: str, mac_prefix: str) -> str:
    """A `netN` value with Proxmox's defaults filled in (hwaddr, type=veth)."""
    try:
        net = parse_property_string(value)
    except ValueError as exc:
        raise param_error(name, f"invalid format - {exc}") from None
    for key in net:
        if key not in NET_KEYS:
            raise param_error(
                name,
                f"invalid format - format error\n{name}.{key}: property is not defined in "
                "schema and the schema does not allow additional properties",
            )
    if "name" not in net:
        raise param_error(
            name, f"invalid format - format error\n{name}.name: property is missing and it is not optional"
        )
    if "hwaddr" not in net:
        net["hwaddr"] = new_mac(mac_prefix)
    elif not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", net["hwaddr"]):
        raise param_error(
            name,
            f"invalid format - format error\n{name}.hwaddr: value does not look like a valid MAC address",
        )
    net.setdefault("type", "veth")
    ip = net.get("ip")
    if ip and ip not in ("dhcp", "manual") and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+/\d+", ip):
        raise param_error(
            name,
            f"invalid format - format error\n{name}.ip: value does not look like a valid "
            "IPv4 network configuration",
        )
    return format_property_string(net)


def rootfs_parts(conf: Conf) -> dict[str, str]:
    return parse_property_string(str(conf.get("rootfs", "")), default_key="volume")


def volume_of(conf: Conf) -> str:
    """The host volume name (`subvol-101-disk-0`) of a CT's rootfs (`local:subvol-101-disk-0,...`)."""
    volid = rootfs_parts(conf).get("volume", "")
    return volid.split(":", 1)[1] if ":" in volid else volid


def disk_size_bytes(conf: Conf) -> int:
    size = rootfs_parts(conf).get("size", f"{DEFAULT_DISK_GIB}G")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", size)
    if not m:
        return DEFAULT_DISK_GIB << 30
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2)]
    return int(float(m.group(1)) * scale)


def rootfs_size(value: str | None) -> str:
    """The `size=` of a create's `rootfs` (`local:8` or `local:8,...` means 8 GiB)."""
    if not value:
        return f"{DEFAULT_DISK_GIB}G"
    try:
        parts = parse_property_string(value, default_key="volume")
    except ValueError as exc:
        raise param_error("rootfs", f"invalid format - {exc}") from None
    for key in parts:
        if key not in ROOTFS_KEYS:
            raise param_error(
                "rootfs",
                "invalid format - format error\nrootfs." + key + ": property is not "
                "defined in schema and the schema does not allow additional properties",
            )
    volume = parts.get("volume", "")
    m = re.fullmatch(r"(?:[a-z][a-z0-9\-_.]*:)?(\d+(?:\.\d+)?)", volume)
    if m:
        return f"{m.group(1)}G"
    return parts.get("size", f"{DEFAULT_DISK_GIB}G")


def spec_of(vmid: int, conf: Conf) -> CTSpec:
    net0 = parse_property_string(str(conf["net0"])) if conf.get("net0") else None
    return CTSpec(
        vmid=vmid,
        hostname=str(conf.get("hostname") or f"CT{vmid}"),
        volume=volume_of(conf),
        memory=int(conf.get("memory", 512)),
        swap=int(conf.get("swap", 512)),
        cores=int(conf["cores"]) if conf.get("cores") else None,
        net0=net0,
        nameserver=str(conf["nameserver"]) if conf.get("nameserver") else None,
        searchdomain=str(conf["searchdomain"]) if conf.get("searchdomain") else None,
    )


def ct_summary(app: App, vmid: int, conf: Conf) -> dict[str, Any]:
    """One CT as /nodes/{node}/lxc lists it (status/current adds `ha`)."""
    runtime = app.host.runtime(vmid)
    cores = int(conf.get("cores") or 0) or (os.cpu_count() or 1)
    item: dict[str, Any] = {
        "vmid": vmid,
        "name": str(conf.get("hostname") or f"CT{vmid}"),
        "status": "running" if runtime.running else "stopped",
        "type": "lxc",
        "maxmem": int(conf.get("memory", 512)) << 20,
        "maxswap": int(conf.get("swap", 512)) << 20,
        "maxdisk": disk_size_bytes(conf),
        "cpus": cores,
        "maxcpu": cores,
        "uptime": runtime.uptime if runtime.running else 0,
        "cpu": runtime.cpu if runtime.running else 0,
        "mem": runtime.mem if runtime.running else 0,
        "swap": 0,
        "disk": runtime.disk,
        "diskread": 0,
        "diskwrite": 0,
        "netin": 0,
        "netout": 0,
    }
    if runtime.running and runtime.pid:
        item["pid"] = runtime.pid
    if conf.get("template"):
        item["template"] = 1
    if conf.get("lock"):
        item["lock"] = conf["lock"]
    if conf.get("tags"):
        item["tags"] = conf["tags"]
    return item


def mac_prefix(app: App) -> str:
    return str(app.store.read_options().get("mac_prefix") or "BC:24:11")
