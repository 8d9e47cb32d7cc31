"""/nodes/{node}/storage (storage `local`, type dir) and /nodes/{node}/aplinfo."""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from minipve.api.app import App, Request
from minipve.api.ct import volume_of
from minipve.api.errors import NO_SUCH_STORAGE, NO_SUCH_TEMPLATE, fail, param_error
from minipve.tasks import TaskContext

CONTENT = "backup,images,iso,rootdir,snippets,vztmpl"
FORMATS = {".tar.zst": "tzst", ".tar.gz": "tgz", ".tar.xz": "txz", ".tar.bz2": "tbz2", ".tar": "tar"}


def _check_storage(name: str | None) -> None:
    if name is not None and name != "local":
        raise fail(NO_SUCH_STORAGE.format(storage=name))


def _cache_dir(app: App) -> Path:
    return app.host.config.storage_dir / "template" / "cache"


def _status(app: App) -> dict[str, Any]:
    app.host.config.storage_dir.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(app.host.config.storage_dir)
    return {
        "storage": "local",
        "type": "dir",
        "content": CONTENT,
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
    if p.get("storage") not in (None, "local"):
        return []
    wanted = {c for c in re.split(r"[,;\s]+", p.get("content") or "") if c}
    if wanted and not wanted <= set(CONTENT.split(",")):
        return []
    return [_status(app)]


def storage_status(app: App, req: Request) -> Any:
    _check_storage(req.params["storage"])
    return _status(app)


def _vztmpl(app: App) -> list[dict[str, Any]]:
    out = []
    cache = _cache_dir(app)
    if cache.is_dir():
        for path in sorted(cache.iterdir()):
            fmt = next((f for suffix, f in FORMATS.items() if path.name.endswith(suffix)), None)
            if fmt is None or not path.is_file():
                continue
            stat = path.stat()
            out.append(
                {
                    "volid": f"local:vztmpl/{path.name}",
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
        entry = {
            "volid": f"local:{volume}",
            "format": "subvol",
            "vmid": vmid,
            "content": "rootdir",
            "size": 0,
            "used": app.host.volume_usage(volume) if conf else 0,
        }
        out.append(entry)
    return out


def content_list(app: App, req: Request) -> Any:
    p = req.params
    _check_storage(p["storage"])
    content = p.get("content")
    items: list[dict[str, Any]] = []
    if content in (None, "vztmpl"):
        items += _vztmpl(app)
    if content in (None, "rootdir"):
        items += _rootdirs(app)
    if p.get("vmid") is not None:
        items = [i for i in items if i.get("vmid") == p["vmid"]]
    return items


def content_delete(app: App, req: Request) -> Any:
    p = req.params
    volume = p["volume"]
    storage = p.get("storage")
    if ":" in volume:
        storage_of_volid, _, volume = volume.partition(":")
        _check_storage(storage_of_volid)
    _check_storage(storage)
    m = re.fullmatch(r"vztmpl/([^/]+)", volume)
    if not m:
        raise fail(f"minipve deletes only vztmpl volumes here; destroy the CT that owns 'local:{volume}'")
    path = _cache_dir(app) / m.group(1)
    if not path.is_file():
        raise fail(f"volume 'local:{volume}' does not exist")

    def body(ctx: TaskContext) -> None:
        path.unlink()
        ctx.log(f"Removed volume 'local:{volume}'")

    return app.tasks.start("imgdel", f"local:{volume}", req.user, body)


def aplinfo_list(app: App, req: Request) -> Any:
    return [asdict(a) for a in app.host.appliances()]


def aplinfo_download(app: App, req: Request) -> Any:
    p = req.params
    _check_storage(p["storage"])
    wanted = p["template"]
    appliance = next((a for a in app.host.appliances() if wanted in (a.template, a.package)), None)
    if appliance is None:
        raise param_error("template", NO_SUCH_TEMPLATE)

    def body(ctx: TaskContext) -> None:
        path = app.host.build_appliance(appliance.package, ctx.log)
        ctx.log(f"download of '{appliance.template}' to '{path}' finished")

    return app.tasks.start("download", appliance.template, req.user, body)
