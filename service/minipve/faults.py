"""The fault switch: what tests use to provoke what a real cluster does only now and then.

Set through `/minipve/faults` (outside /api2/json). All of it is in memory and clears on restart.
- `endpoints`: {"POST /nodes/{node}/lxc/{vmid}/clone": "text"} makes that route answer 500 "text";
- `tasks`: {"vzclone": "text"} makes the next task of that type fail with "text" (once);
- `slow`: N makes every task wait N s before it does its work;
- `name_late`: for N s after a CT is created or cloned, its /cluster/resources entry holds only
  `id`, `vmid`, `node`, `type`, `status: "unknown"` (and `lock`, `tags`): no `name`, `template`,
  memory or disk figures, as on a real cluster until the node's next stats push (every 10 s).
- `ssh_unreachable`: true makes GET /nodes/{node}/lxc/{vmid}/interfaces report, for eth0 of every
  running CT that has its address, another one instead: an address of minipve's own subnet that no
  container has (the top of the static half, below the DHCP range, skipping any a CT's netN sets).
  The CT itself is untouched and keeps answering on its real address; a client that trusts the API
  connects to nothing and its SSH wait runs out, as it does when a CT's network or sshd is broken.
  false (the default) reports the real address again. A fake, because no real failure gives a
  running CT a reported address that does not answer without breaking the CT for later steps.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class FaultError(ValueError):
    pass


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.endpoints: dict[str, str] = {}
        self.tasks: dict[str, str] = {}
        self.slow = 0.0
        self.name_late = 0.0
        self.ssh_unreachable = False
        self._born: dict[int, float] = {}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "endpoints": dict(self.endpoints),
                "tasks": dict(self.tasks),
                "slow": self.slow,
                "name_late": self.name_late,
                "ssh_unreachable": self.ssh_unreachable,
            }

    def set(self, body: dict[str, Any]) -> None:
        unknown = set(body) - {"endpoints", "tasks", "slow", "name_late", "ssh_unreachable"}
        if unknown:
            raise FaultError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        for key in ("endpoints", "tasks"):
            value = body.get(key, {})
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise FaultError(f"`{key}` must map names to error texts")
        for key in ("slow", "name_late"):
            value = body.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise FaultError(f"`{key}` must be a number of seconds >= 0")
        if not isinstance(body.get("ssh_unreachable", False), bool):
            raise FaultError("`ssh_unreachable` must be true or false")
        with self._lock:
            self.endpoints.update(body.get("endpoints", {}))
            self.tasks.update(body.get("tasks", {}))
            if "slow" in body:
                self.slow = float(body["slow"])
            if "name_late" in body:
                self.name_late = float(body["name_late"])
            if "ssh_unreachable" in body:
                self.ssh_unreachable = body["ssh_unreachable"]

    def clear(self) -> None:
        with self._lock:
            self.endpoints.clear()
            self.tasks.clear()
            self.slow = 0.0
            self.name_late = 0.0
            self.ssh_unreachable = False

    def endpoint_error(self, route: str) -> str | None:
        with self._lock:
            return self.endpoints.get(route)

    def take_task_failure(self, task_type: str) -> str | None:
        with self._lock:
            return self.tasks.pop(task_type, None)

    def born(self, vmid: int) -> None:
        with self._lock:
            self._born[vmid] = time.monotonic()

    def name_hidden(self, vmid: int) -> bool:
        with self._lock:
            born = self._born.get(vmid)
            return born is not None and time.monotonic() - born < self.name_late
