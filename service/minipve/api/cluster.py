"""/version, /access/ticket, /nodes, /cluster/*: the node and datacenter level endpoints."""

from __future__ import annotations

import os
import platform
import re
import shutil
import time
from pathlib import Path
from typing import Any

from minipve.api.app import App, Request
from minipve.api.ct import ct_summary
from minipve.api.errors import NO_FREE_VMID, VM_EXISTS, fail, param_error
from minipve.params import format_property_string, parse_property_string

PVE_VERSION = {"version": "9.1.1", "release": "9.1", "repoid": "minipve"}
NEXT_ID_DEFAULT = {"lower": 100, "upper": 1_000_000}


def version(app: App, req: Request) -> Any:
    return dict(PVE_VERSION)


def ticket_dummy(app: App, req: Request) -> Any:
    return None


def ticket(app: App, req: Request) -> Any:
    return app.auth.login(req.params["username"], req.params["password"], req.params.get("realm"))


def _memory() -> dict[str, int]:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info[key] = int(value.split()[0]) * 1024
    total, free = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    return {"total": total, "used": total - free, "free": free}


def _node_entry(app: App) -> dict[str, Any]:
    mem = _memory()
    disk = shutil.disk_usage(app.settings.state_dir)
    return {
        "node": app.node,
        "id": f"node/{app.node}",
        "type": "node",
        "status": "online",
        "level": "",
        "cpu": 0.0,
        "maxcpu": os.cpu_count() or 1,
        "mem": mem["used"],
        "maxmem": mem["total"],
        "disk": disk.used,
        "maxdisk": disk.total,
        "uptime": int(time.time() - app.started),
    }


def nodes(app: App, req: Request) -> Any:
    return [_node_entry(app)]


def node_status(app: App, req: Request) -> Any:
    mem = _memory()
    disk = shutil.disk_usage(app.settings.state_dir)
    return {
        "uptime": int(time.time() - app.started),
        "cpu": 0.0,
        "loadavg": [f"{x:.2f}" for x in os.getloadavg()],
        "memory": mem,
        "swap": {"total": 0, "used": 0, "free": 0},
        "rootfs": {"total": disk.total, "used": disk.used, "free": disk.free, "avail": disk.free},
        "cpuinfo": {"cpus": os.cpu_count() or 1, "sockets": 1, "model": platform.processor() or "minipve"},
        "kversion": f"Linux {platform.release()}",
        "pveversion": f"pve-manager/{PVE_VERSION['version']}/minipve",
    }


def cluster_status(app: App, req: Request) -> Any:
    return [
        {
            "type": "node",
            "id": f"node/{app.node}",
            "name": app.node,
            "nodeid": 0,
            "local": 1,
            "online": 1,
            "level": "",
            "ip": str(app.settings.listen),
        }
    ]


def _storage_resources(app: App) -> list[dict[str, Any]]:
    out = []
    for store in app.storages.values():
        disk = store.usage()
        out.append(
            {
                "id": f"storage/{app.node}/{store.name}",
                "type": "storage",
                "storage": store.name,
                "node": app.node,
                "status": "available",
                "plugintype": "dir",
                "content": store.content_text,
                "shared": 0,
                "disk": disk.used,
                "maxdisk": disk.total,
            }
        )
    return out


def resources(app: App, req: Request) -> Any:
    kind = req.params.get("type")
    out: list[dict[str, Any]] = []
    if kind in (None, "vm"):
        for vmid in app.store.vmids():
            conf = app.store.read(vmid)
            if conf is None:
                continue
            item = ct_summary(app, vmid, conf)
            entry = {
                "id": f"lxc/{vmid}",
                "vmid": vmid,
                "node": app.node,
                "type": "lxc",
                **{
                    k: item[k]
                    for k in (
                        "status",
                        "name",
                        "maxmem",
                        "maxdisk",
                        "uptime",
                        "cpu",
                        "mem",
                        "disk",
                        "diskread",
                        "diskwrite",
                        "netin",
                        "netout",
                        "maxcpu",
                    )
                },
                "template": 1 if conf.get("template") else 0,
            }
            if app.faults.name_hidden(vmid):
                # fault switch: until a guest's first stats push (every 10 s) a real cluster knows
                # only its id, vmid, node and type, and says `status: unknown` (pve-manager's
                # PVE::API2Tools::extract_vm_stats); lock and tags still come from its config
                entry = {**{k: entry[k] for k in ("id", "vmid", "node", "type")}, "status": "unknown"}
            for key in ("lock", "tags"):
                if conf.get(key):
                    entry[key] = conf[key]
            out.append(entry)
    if kind in (None, "node"):
        out.append(_node_entry(app))
    if kind in (None, "storage"):
        out += _storage_resources(app)
    return out


def next_id_range(app: App) -> tuple[int, int]:
    raw = app.store.read_options().get("next-id")
    values = dict(NEXT_ID_DEFAULT)
    if raw:
        values.update({k: int(v) for k, v in parse_property_string(str(raw)).items()})
    return values["lower"], values["upper"]


def nextid(app: App, req: Request) -> Any:
    used = set(app.store.vmids())
    wanted = req.params.get("vmid")
    if wanted is not None:
        if wanted in used:
            raise param_error("vmid", VM_EXISTS.format(vmid=wanted))
        return str(wanted)
    lower, upper = next_id_range(app)
    for vmid in range(lower, upper):
        if vmid not in used:
            return str(vmid)
    raise fail(NO_FREE_VMID.format(lower=lower, upper=upper))


def options_get(app: App, req: Request) -> Any:
    options: dict[str, Any] = {}
    for key, value in app.store.read_options().items():
        if key == "next-id":
            options[key] = {k: int(v) for k, v in parse_property_string(str(value)).items()}
        else:
            options[key] = value
    return options


def options_put(app: App, req: Request) -> Any:
    params = dict(req.params)
    deletes = [k for k in re.split(r"[,;\s]+", params.pop("delete", "") or "") if k]
    if "next-id" in params:
        try:
            values = parse_property_string(params["next-id"])
        except ValueError as exc:
            raise param_error("next-id", f"invalid format - {exc}") from None
        checked: dict[str, str] = {}
        for key, value in values.items():
            if key not in ("lower", "upper"):
                raise param_error(
                    "next-id",
                    f"invalid format - format error\nnext-id.{key}: property is not "
                    "defined in schema and the schema does not allow additional properties",
                )
            if not re.fullmatch(r"\d+", value):
                raise param_error(
                    "next-id",
                    f"invalid format - format error\nnext-id.{key}: type check "
                    f"('integer') failed - got '{value}'",
                )
            if int(value) < 100:
                raise param_error(
                    "next-id",
                    f"invalid format - format error\nnext-id.{key}: value must have a minimum value of 100",
                )
            checked[key] = str(int(value))
        params["next-id"] = format_property_string(checked)
    with app.store.lock():
        options = app.store.read_options()
        for key in deletes:
            options.pop(key, None)
        for key, value in params.items():
            options[key] = int(value) if isinstance(value, bool) else value
        app.store.write_options(options)
    return None


def pools(app: App, req: Request) -> Any:
    return []  # minipve keeps no pools: a CT's `pool` is accepted and not acted on


def qemu_list(app: App, req: Request) -> Any:
    return []  # minipve runs containers only
