"""The running minipve: its settings, host, configs, tasks and faults, shared by every handler."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from minipve.api.auth import Auth
from minipve.api.errors import CT_LOCKED, CT_MISSING, NO_SUCH_NODE, NO_SUCH_STORAGE, ApiError, fail
from minipve.config import Settings
from minipve.faults import Faults
from minipve.host import Host
from minipve.state import Conf, ConfigStore
from minipve.storagecfg import Storage
from minipve.tasks import TaskManager


@dataclass
class Request:
    method: str
    path: str  # below /api2/json
    route: str  # the route template, e.g. "/nodes/{node}/lxc/{vmid}"
    params: dict[str, Any]
    user: str
    extra: dict[str, Any] = field(default_factory=dict)  # envelope keys beside `data` (tasks log total)


class App:
    def __init__(self, settings: Settings, host: Host, auth: Auth, storages: dict[str, Storage]) -> None:
        self.settings = settings
        self.host = host
        self.auth = auth
        self.storages = storages
        self.faults = Faults()
        self.store = ConfigStore(settings.state_dir, settings.node)
        self.tasks = TaskManager(settings.state_dir, settings.node, self.faults)
        self.started = time.time()
        self._ct_mutex: defaultdict[int, threading.Lock] = defaultdict(threading.Lock)
        self._mutex_guard = threading.Lock()

    def ct_mutex(self, vmid: int) -> threading.Lock:
        """Held by a CT's worker for the whole of its work, so tasks on one CT run one at a time."""
        with self._mutex_guard:
            return self._ct_mutex[vmid]

    @property
    def node(self) -> str:
        return self.settings.node

    def check_node(self, params: dict[str, Any]) -> None:
        node = params.get("node")
        if node is not None and node != self.node:
            raise fail(NO_SUCH_NODE.format(node=node))

    def storage(self, name: str) -> Storage:
        try:
            return self.storages[name]
        except KeyError:
            raise fail(NO_SUCH_STORAGE.format(storage=name)) from None

    def conf(self, vmid: int) -> Conf:
        conf = self.store.read(vmid)
        if conf is None:
            raise fail(CT_MISSING.format(path=self.store.relpath(vmid)))
        return conf

    @staticmethod
    def check_unlocked(conf: Conf) -> None:
        if conf.get("lock"):
            raise ApiError(500, CT_LOCKED.format(lock=conf["lock"]))

    def running(self, vmid: int) -> bool:
        return self.host.runtime(vmid).running
