"""What the Proxmox VE cluster itself says is in use, read through proxmoxer (`/cluster/resources`).

One answer serves every allocation for `proxmox_cache_seconds`, fetched by one caller while the
others wait for it: 500 creates at once make one API call, not 500. A VMID made by hand in that
window is still caught: the job that creates the CT gets Proxmox's "already exists" and moves the
claim (records.vmids.move_claim).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from ctforge import messages
from ctforge.records.errors import Unavailable
from ctforge.settings import ProxmoxSettings


@dataclass(frozen=True)
class Guest:
    """One VM or CT as /cluster/resources lists it."""

    vmid: int
    node: str
    type: str
    name: str | None
    template: bool
    status: str | None


class ProxmoxView:
    def __init__(self, settings: ProxmoxSettings, cache_seconds: float = 2.0) -> None:
        self.settings = settings
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._guests: list[Guest] | None = None
        self._fetched = 0.0
        self._api: ProxmoxAPI | None = None

    @property
    def configured(self) -> bool:
        return self.settings.host is not None

    def _client(self) -> ProxmoxAPI:
        if self._api is None:
            self._api = ProxmoxAPI(
                self.settings.host, port=self.settings.port, user=self.settings.user,
                token_name=self.settings.token_id,
                token_value=self.settings.token_secret.get_secret_value(),
                verify_ssl=self.settings.validate_certs, timeout=self.settings.timeout,
            )
        return self._api

    def _fetch(self) -> list[Guest]:
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            entries: list[dict[str, Any]] = self._client().cluster.resources.get(type="vm")
        except ResourceException as exc:
            raise Unavailable(messages.PROXMOX_REFUSED.format(
                where=where, status=exc.status_code, reason=exc.status_message or exc.content)) from None
        except requests.RequestException as exc:
            raise Unavailable(messages.PROXMOX_DOWN.format(where=where, error=type(exc).__name__)) from None
        return [
            Guest(vmid=int(e["vmid"]), node=str(e.get("node", "")), type=str(e.get("type", "")),
                  name=e.get("name"), template=bool(e.get("template")), status=e.get("status"))
            for e in entries if "vmid" in e
        ]

    def _call(self, read: Any) -> Any:
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            return read(self._client())
        except ResourceException as exc:
            raise Unavailable(messages.PROXMOX_REFUSED.format(
                where=where, status=exc.status_code, reason=exc.status_message or exc.content)) from None
        except requests.RequestException as exc:
            raise Unavailable(messages.PROXMOX_DOWN.format(where=where, error=type(exc).__name__)) from None

    def ct_ipv4(self, node: str, vmid: int) -> str | None:
        """The CT's global IPv4 address as its node reports it now, or None (stopped, no address)."""
        interfaces = self._call(lambda api: api.nodes(node).lxc(vmid).interfaces.get()) or []
        for iface in interfaces:
            address = str(iface.get("inet") or "").split("/")[0]
            if iface.get("name") != "lo" and address and not address.startswith(("127.", "169.254.")):
                return address
        return None

    def guest(self, vmid: int) -> Guest | None:
        """The guest with this VMID as the cluster lists it now (no cache), or None."""
        return next((g for g in self.guests(fresh=True) if g.vmid == vmid), None)

    def guests(self, *, fresh: bool = False) -> list[Guest]:
        """Every VM and CT of the cluster, every node; [] when no Proxmox is configured."""
        if not self.configured:
            return []
        with self._lock:
            stale = time.monotonic() - self._fetched > self.cache_seconds
            if fresh or self._guests is None or stale:
                self._guests = self._fetch()
                self._fetched = time.monotonic()
            return self._guests

    def used_vmids(self, *, fresh: bool = False) -> set[int]:
        return {guest.vmid for guest in self.guests(fresh=fresh)}
