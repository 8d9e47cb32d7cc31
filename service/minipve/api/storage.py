"""/nodes/{node}/storage (the dir storages of etc/pve/storage.cfg) and /nodes/{node}/aplinfo."""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from minipve.api.app import App, Request
from minipve.api.ct import volume_of
from minipve.api.errors import NO_SUCH_TEMPLATE, VZTMPL_UNSUPPORTED, fail, param_error
from minipve.host import HostError
from minipve.storagecfg import LOCAL, Storage
from minipve.tasks import TaskContext

FORMATS = {".tar.zst": "tzst", ".tar.gz": "tgz", ".tar.xz": "txz", ".tar.bz2": "tbz2", ".tar": "tar"}


def _status(store: Storage) -> dict[str, Any]:
    usage = store.usage()
    return {
        "storage": store.name,
        "type": "dir",
        "content": store.content_text,
        "active": 1,
        "enabled": 1,
        "shared": 0,
        "total": usage.total,
        "used": usage.used,
        "avail": usage.free,
        "used_fraction": usage.used / usage.total if usage.total else 0.0,
    }


def storage_list(app: App, req: Request) -> Any:
    p = req.params
    wanted = {c for c in re.split(r"[,;\s]+", p.get("content") or "") if c}
    return [
        _status(store)
        for store in app.storages.values()
        if p.get("storage") in (None, store.name) and wanted <= store.content
    ]


def storage_status(app: App, req: Request) -> Any:
    return _status(app.storage(req.params["storage"]))


def _vztmpl(store: Storage) -> list[dict[str, Any]]:
    out = []
    cache = store.appliance_dir
    if cache.is_dir():
        for path in sorted(cache.iterdir()):
            fmt = next((f for suffix, f in FORMATS.items() if path.name.endswith(suffix)), None)
            if fmt is None or not path.is_file():
                continue
            stat = path.stat()
            out.append(
                {
                    "volid": f"{store.name}:vztmpl/{path.name}",
                    "format": fmt,
                    "size": stat.st_size,
                    "ctime": int(stat.st_mtime),
                    "content": "vztmpl",
                }
            )
    return out


def _rootdirs(app: App) -> list[dict[str, Any]]:
    out = []
    for vmid in app.store.vmids():
        conf = app.store.read(vmid)
        volume = volume_of(conf) if conf else ""
        if not volume:
            continue
        try:
            used = app.host.volume_usage(volume)
        except HostError:  # a concurrent destroy removed it while we listed: it is gone, not listed
            continue
        entry = {
            "volid": f"local:{volume}",
            "format": "subvol",
            "vmid": vmid,
            "content": "rootdir",
            "size": 0,
            "used": used,
        }
        out.append(entry)
    return out


def content_list(app: App, req: Request) -> Any:
    p = req.params
    store = app.storage(p["storage"])
    content = p.get("content")
    items: list[dict[str, Any]] = []
    if content in (None, "vztmpl") and "vztmpl" in store.content:
        items += _vztmpl(store)
    if content in (None, "rootdir") and store.name == LOCAL:
        items += _rootdirs(app)
    if p.get("vmid") is not None:
        items = [i for i in items if i.get("vmid") == p["vmid"]]
    return items


def content_delete(app: App, req: Request) -> Any:
    p = req.params
    volume = p["volume"]
    store = app.storage(p["storage"])
    if ":" in volume:
        storage_of_volid, _, volume = volume.partition(":")
        store = app.storage(storage_of_volid)
    volid = f"{store.name}:{volume}"
    m = re.fullmatch(r"vztmpl/([^/]+)", volume)
    if not m:
        raise fail(f"minipve deletes only vztmpl volumes here; destroy the CT that owns '{volid}'")
    path = store.appliance_dir / m.group(1)
    if not path.is_file():
        raise fail(f"volume '{volid}' does not exist")

    def body(ctx: TaskContext) -> None:
        path.unlink()
        ctx.log(f"Removed volume '{volid}'")

    return app.tasks.start("imgdel", volid, req.user, body)


def aplinfo_list(app: App, req: Request) -> Any:
    return [asdict(a) for a in app.host.appliances()]


def aplinfo_download(app: App, req: Request) -> Any:
    p = req.params
    store = app.storage(p["storage"])
    wanted = p["template"]
    appliance = next((a for a in app.host.appliances() if wanted in (a.template, a.package)), None)
    if appliance is None:
        raise param_error("template", NO_SUCH_TEMPLATE)
    if "vztmpl" not in store.content:
        raise fail(VZTMPL_UNSUPPORTED.format(storage=store.name))

    def body(ctx: TaskContext) -> None:
        path = app.host.build_appliance(appliance.package, ctx.log)
        if store.name != LOCAL:
            store.appliance_dir.mkdir(parents=True, exist_ok=True)
            path = Path(shutil.copy2(path, store.appliance_dir / path.name))
        ctx.log(f"download of '{appliance.template}' to '{path}' finished")

    return app.tasks.start("download", appliance.template, req.user, body)
