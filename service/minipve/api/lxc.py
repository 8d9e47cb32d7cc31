"""/nodes/{node}/lxc: list, create, read, destroy, clone, config and template conversion."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from minipve.api.app import App, Request
from minipve.api.ct import check_net, ct_summary, mac_prefix, rootfs_size, volume_of
from minipve.api.errors import (
    BASE_IN_USE,
    CT_EXISTS,
    DESTROY_RUNNING,
    DIGEST_MISMATCH,
    FULL_CLONE_RUNNING,
    LINKED_NEEDS_TEMPLATE,
    LINKED_STORAGE,
    NO_SUCH_NODE,
    ROOTDIR_UNSUPPORTED,
    TEMPLATE_OF_TEMPLATE,
    TEMPLATE_RUNNING,
    fail,
    param_error,
)
from minipve.api.power import start_task
from minipve.paramdefs import CT_OPTIONS
from minipve.params import _lookup
from minipve.state import Conf
from minipve.tasks import TaskContext, TaskFailed

OSTEMPLATE_RE = re.compile(r"([a-z][a-z0-9\-_.]*):vztmpl/([^/]+)")
CT_SUBDIRS = [
    "config",
    "status",
    "vncproxy",
    "termproxy",
    "vncwebsocket",
    "spiceproxy",
    "migrate",
    "clone",
    "snapshot",
    "rrd",
    "rrddata",
    "firewall",
    "pending",
    "interfaces",
    "template",
    "feature",
]


def ct_list(app: App, req: Request) -> Any:
    out = []
    for vmid in app.store.vmids():
        conf = app.store.read(vmid)
        if conf is not None:
            out.append(ct_summary(app, vmid, conf))
    return out


def snapshots(app: App, req: Request) -> Any:
    """minipve takes no snapshots: only Proxmox's `current` entry."""
    vmid = req.params["vmid"]
    app.conf(vmid)
    return [{"name": "current", "description": "You are here!", "running": 1 if app.running(vmid) else 0}]


def ct_index(app: App, req: Request) -> Any:
    app.conf(req.params["vmid"])
    return [{"subdir": name} for name in CT_SUBDIRS]


def _config_values(app: App, params: dict[str, Any]) -> Conf:
    """The CT settings among request parameters, in the form the `.conf` file stores them."""
    values: Conf = {}
    for key, value in params.items():
        if _lookup(CT_OPTIONS, key) is None:
            continue
        if re.fullmatch(r"net\d+", key):
            value = check_net(key, value, mac_prefix(app))
        values[key] = int(value) if isinstance(value, bool) else value
    return values


def _own_volume(volume: str, vmid: int) -> bool:
    """Only a CT's own layer is ever removed with it, never the template volume below it."""
    return bool(volume) and volume.rsplit("/", 1)[-1].startswith(f"subvol-{vmid}-")


def remove_ct(app: App, vmid: int, volume: str | None = None) -> None:
    """Drop a CT whose creation failed: its own volume (the one given, else its config's) and its config."""
    conf = app.store.read(vmid)
    if conf is None:
        return
    volume = volume_of(conf) if volume is None else volume
    if _own_volume(volume, vmid):
        with contextlib.suppress(FileNotFoundError):
            app.host.destroy_volume(volume)
    app.store.remove(vmid)


def _check_rootdir(app: App, storage: str) -> None:
    """A CT's volume goes only where the storage's content includes rootdir."""
    if "rootdir" not in app.storage(storage).content:
        raise param_error("storage", ROOTDIR_UNSUPPORTED.format(storage=storage))


def create(app: App, req: Request) -> Any:
    p = req.params
    vmid: int = p["vmid"]
    m = OSTEMPLATE_RE.fullmatch(p["ostemplate"])
    if not m:
        raise fail(f"unable to parse volume ID '{p['ostemplate']}'")
    source = app.storage(m.group(1)).appliance_dir / m.group(2)
    size = rootfs_size(p.get("rootfs"))
    # As Proxmox: the rootfs volume's storage, or the default `storage` when rootfs names none.
    rootfs_volume = str(p.get("rootfs") or "").split(",")[0]
    _check_rootdir(app, rootfs_volume.split(":")[0] if ":" in rootfs_volume else p.get("storage", "local"))
    conf: Conf = {"arch": "amd64", "hostname": f"CT{vmid}", "memory": 512, "swap": 512, "ostype": "debian"}
    conf.update(_config_values(app, p))
    conf.pop("template", None)
    conf["rootfs"] = f"local:subvol-{vmid}-disk-0,size={size}"
    conf.setdefault("unprivileged", 1)  # Proxmox's create default; minipve runs CTs privileged anyway
    conf["lock"] = "create"
    with app.store.lock():
        if app.store.exists(vmid):
            raise fail(CT_EXISTS.format(vmid=vmid, node=app.node))
        app.store.write(vmid, conf, exclusive=True)
    app.faults.born(vmid)
    made: dict[str, str] = {}

    def body(ctx: TaskContext) -> None:
        if not source.is_file():
            raise TaskFailed(f"volume '{p['ostemplate']}' does not exist")
        ctx.log(f"extracting archive '{source}'")
        volume = made["volume"] = app.host.create_volume(vmid, source, ctx.log)
        app.store.update(vmid, {"rootfs": f"local:{volume},size={size}"})
        app.host.prepare_new_ct(
            volume,
            hostname=str(conf["hostname"]),
            root_password=p.get("password"),
            ssh_public_keys=p.get("ssh-public-keys"),
        )
        ctx.log(f"Architecture detected: {conf['arch']}")

    def finish(error: str | None) -> None:
        if error is not None:
            remove_ct(app, vmid, made.get("volume", ""))  # never a volume this task did not make
            return
        app.store.update(vmid, {"lock": None})
        if p.get("start"):
            start_task(app, vmid, req.user)

    return app.tasks.start("vzcreate", vmid, req.user, body, finish)


def destroy(app: App, req: Request) -> Any:
    vmid: int = req.params["vmid"]
    conf = app.conf(vmid)
    app.check_unlocked(conf)
    if conf.get("protection"):
        raise fail(f"can't remove CT {vmid} - protection mode enabled")
    if app.running(vmid) and not req.params.get("force"):
        raise fail(DESTROY_RUNNING.format(vmid=vmid))

    def body(ctx: TaskContext) -> None:
        with app.ct_mutex(vmid):
            current = app.conf(vmid)
            app.check_unlocked(current)
            if app.running(vmid):
                app.host.stop(vmid, ctx.log)
            volume = volume_of(current)
            if volume and current.get("template") and app.host.linked_clones_of(volume):
                raise TaskFailed(BASE_IN_USE.format(volid=f"local:{volume}"))
            if volume:
                app.host.destroy_volume(volume)
            app.store.remove(vmid)
            ctx.log(f"destroyed CT {vmid}")

    return app.tasks.start("vzdestroy", vmid, req.user, body)


def clone(app: App, req: Request) -> Any:
    p = req.params
    vmid, newid = p["vmid"], p["newid"]
    target = p.get("target")
    if target is not None and target != app.node:
        raise fail(NO_SUCH_NODE.format(node=target))
    with app.store.lock():
        src = app.conf(vmid)
        if app.store.exists(newid):
            raise fail(CT_EXISTS.format(vmid=newid, node=app.node))
        app.check_unlocked(src)
        is_template = bool(src.get("template"))
        full = p.get("full")
        if full is None:
            full = not is_template
        storage = p.get("storage")
        if not full and storage is not None:
            raise fail(LINKED_STORAGE)
        if not full and not is_template:
            raise fail(LINKED_NEEDS_TEMPLATE)
        if storage is not None:
            _check_rootdir(app, storage)
        if p.get("snapname"):
            raise fail(f"snapshot '{p['snapname']}' does not exist")
        if full and app.running(vmid):
            raise fail(FULL_CLONE_RUNNING)
        source_volume = volume_of(src)
        size = re.search(r"size=([^,]+)", str(src.get("rootfs", "")))
        size_text = size.group(1) if size else "8G"
        new: Conf = {k: v for k, v in src.items() if k not in ("template", "lock", "digest", "rootfs")}
        for key in list(new):
            if re.fullmatch(r"net\d+", key):
                new[key] = re.sub(r"hwaddr=[0-9A-Fa-f:]+", "", str(new[key])).strip(",").replace(",,", ",")
                new[key] = check_net(key, str(new[key]), mac_prefix(app))
        if p.get("hostname"):
            new["hostname"] = p["hostname"]
        if p.get("description") is not None:
            new["description"] = p["description"]
        planned = f"subvol-{newid}-disk-0" if full else f"{source_volume}/subvol-{newid}-disk-0"
        new["rootfs"] = f"local:{planned},size={size_text}"
        new["lock"] = "create"
        app.store.write(newid, new, exclusive=True)
        app.store.update(vmid, {"lock": "disk"})
    app.faults.born(newid)
    made: dict[str, str] = {}

    def body(ctx: TaskContext) -> None:
        ctx.log(f"create {'full' if full else 'linked'} clone of CT {vmid} as CT {newid}")
        try:
            if full:
                volume = made["volume"] = app.host.full_clone(source_volume, newid, ctx.log)
            else:
                volume = made["volume"] = app.host.linked_clone(source_volume, newid)
            app.store.update(newid, {"rootfs": f"local:{volume},size={size_text}"})
            app.host.after_clone(volume)
        except Exception as exc:
            raise TaskFailed(f"clone failed: {exc}") from exc

    def finish(error: str | None) -> None:
        with app.store.lock():
            source = app.store.read(vmid)
            if source is not None and source.get("lock") == "disk":
                app.store.update(vmid, {"lock": None})
            if error is not None:
                remove_ct(app, newid, made.get("volume", ""))
            else:
                app.store.update(newid, {"lock": None})

    return app.tasks.start("vzclone", vmid, req.user, body, finish)


def config_get(app: App, req: Request) -> Any:
    conf = app.conf(req.params["vmid"])
    if req.params.get("snapshot"):
        raise fail(f"snapshot '{req.params['snapshot']}' does not exist")
    return conf


def config_put(app: App, req: Request) -> Any:
    p = dict(req.params)
    vmid = p["vmid"]
    deletes = [k for k in re.split(r"[,;\s]+", p.pop("delete", "") or "") if k]
    for key in deletes:
        if _lookup(CT_OPTIONS, key) is None:
            raise param_error("delete", f"invalid format - invalid configuration ID '{key}'")
    values = _config_values(app, p)
    with app.store.lock():
        conf = app.conf(vmid)
        if p.get("digest") and p["digest"] != conf["digest"]:
            raise fail(DIGEST_MISMATCH)
        app.check_unlocked(conf)
        changes: dict[str, object] = dict.fromkeys(deletes)
        changes.update(values)
        app.store.update(vmid, changes)
    return None


def template(app: App, req: Request) -> Any:
    vmid = req.params["vmid"]
    with app.store.lock():
        conf = app.conf(vmid)
        app.check_unlocked(conf)
        if conf.get("template"):
            raise fail(TEMPLATE_OF_TEMPLATE)
        if app.running(vmid):
            raise fail(TEMPLATE_RUNNING)

    def body(ctx: TaskContext) -> None:
        with app.ct_mutex(vmid):
            current = app.conf(vmid)
            if current.get("template"):
                raise TaskFailed(TEMPLATE_OF_TEMPLATE)
            if app.running(vmid):
                raise TaskFailed(TEMPLATE_RUNNING)
            app.check_unlocked(current)
            volume = app.host.make_base(volume_of(current), vmid)
            size = re.search(r"size=([^,]+)", str(current.get("rootfs", "")))
            rootfs = f"local:{volume}" + (f",size={size.group(1)}" if size else "")
            app.store.update(vmid, {"rootfs": rootfs, "template": 1})
            ctx.log(f"CT {vmid} is now a template")

    # Proxmox answers null and converts in the background (a `vztemplate` task).
    app.tasks.start("vztemplate", vmid, req.user, body)
    return None
