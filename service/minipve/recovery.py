"""What a restarted minipve does about work its previous process left half done.

Tasks still marked running were reaped by TaskManager ("unexpected status"). CT configs still
locked belong to those dead tasks: a CT still `lock: create` (or `destroyed`) is removed, as its
creation never finished; any other lock is lifted, as `pct unlock` would.
"""

from __future__ import annotations

import logging

from minipve.api.app import App
from minipve.api.lxc import remove_ct

log = logging.getLogger("minipve.recovery")


def recover(app: App) -> None:
    for vmid in app.store.vmids():
        conf = app.store.read(vmid)
        lock = conf.get("lock") if conf else None
        if not lock:
            continue
        if lock in ("create", "destroyed"):
            log.warning("CT %s: removing it, its creation was interrupted (lock: %s)", vmid, lock)
            remove_ct(app, vmid)
        else:
            log.warning("CT %s: lifting lock '%s' left by an interrupted task", vmid, lock)
            app.store.update(vmid, {"lock": None})
    running = app.host.running_vmids()
    if running:
        log.info("found running CTs again: %s", ", ".join(map(str, running)))
