"""The host side of minipve: what turns Proxmox's API calls into real LXC containers.

The API layer (minipve.api, minipve.tasks, minipve.state) speaks Proxmox; this package speaks
LXC, overlayfs, debootstrap, bridges and nftables. The seam between them is `Host` below: the
API layer never runs a host command itself, and this package never parses a Proxmox parameter.

Volumes are named as Proxmox names them on storage `local` (the part of the volid after
`local:`): `subvol-<vmid>-disk-0` for a CT's own root filesystem, `basevol-<vmid>-disk-0` once the
CT is a template, and `basevol-<base>-disk-0/subvol-<vmid>-disk-0` for a linked clone of template
<base> (Proxmox's own naming for linked clones). The host layer keeps each volume's chain of lower
layers itself; callers only pass names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Every long-running host call takes a `log` callable: each line ends up in the Proxmox task log.
Log = Callable[[str], None]


class HostError(Exception):
    """A host operation failed. The message is shown to the API client as Proxmox would show it."""


@dataclass(frozen=True)
class HostConfig:
    state_dir: Path  # everything minipve makes lives here (plus the bridge, its nft table and daemons)
    node: str = "minipve"
    bridge: str = "mpvebr0"  # Linux bridge minipve owns; CT net0 `bridge=vmbr0` maps onto it
    subnet: ipaddress.IPv4Network = field(default_factory=lambda: ipaddress.IPv4Network("10.213.0.0/24"))
    cache_dir: Path = Path("/var/cache/ctforge")  # shared between instances: appliance builds, apt
    mtu: int = 1400

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return next(self.subnet.hosts())

    @property
    def storage_dir(self) -> Path:
        """Storage `local` (type dir): template/cache/*.tar.zst, images/<vmid>/<volume>/."""
        return self.state_dir / "storage" / "local"


@dataclass(frozen=True)
class Appliance:
    """One entry of `aplinfo`; `filename` is what lands in storage content (vztmpl)."""

    template: str  # "debian-12-standard_12.12-1_amd64.tar.zst" (aplinfo's `template` key)
    package: str  # "debian-12-standard"
    version: str  # "12.12-1"
    os: str  # "debian-12"
    headline: str
    description: str
    section: str = "system"
    type: str = "lxc"


@dataclass(frozen=True)
class CTSpec:
    """What the host needs from a CT's Proxmox config to run it (parsed by the API layer)."""

    vmid: int
    hostname: str
    volume: str  # as described in the module docstring
    memory: int = 512  # MiB
    swap: int = 512
    cores: int | None = None
    # net0 parsed: {"name": "eth0", "bridge": "vmbr0", "hwaddr": "BC:24:11:..", "ip": "dhcp"
    # or "10.213.0.50/24", "gw": "10.213.0.1", "mtu": ...}; None when the CT has no net0.
    net0: dict[str, str] | None = None
    nameserver: str | None = None
    searchdomain: str | None = None


@dataclass(frozen=True)
class Runtime:
    running: bool
    pid: int | None = None
    uptime: int = 0  # seconds
    mem: int = 0  # bytes in use
    cpu: float = 0.0  # fraction of one core since the last call, 0.0 is fine
    disk: int = 0  # bytes used on the root filesystem


@dataclass(frozen=True)
class Problem:
    """A missing host prerequisite, as `minipve doctor` and `serve` report it."""

    what: str
    fix: str  # the command that fixes it


class Host(Protocol):
    config: HostConfig

    # -- the host as a whole -------------------------------------------------------------
    def check(self) -> list[Problem]:
        """Every prerequisite (root, lxc, debootstrap, overlayfs, nft, dnsmasq, subnet overlap...)."""

    def up(self) -> None:
        """Bridge, NAT, DHCP/DNS and the apt proxy; idempotent. Raises HostError on a problem."""

    def down(self) -> None:
        """Stop the daemons `up` started; containers keep running (they are found again)."""

    def reset(self) -> None:
        """Stop and remove every container, volume, daemon, nft table and the bridge; restore
        ip_forward; remove the state dir. Leaves the host as it was before minipve."""

    # -- appliances ----------------------------------------------------------------------
    def appliances(self) -> list[Appliance]:
        """What `aplinfo` offers (at least debian-12-standard)."""

    def build_appliance(self, package: str, log: Log) -> Path:
        """Build (or take from cache_dir) the vztmpl tarball of `package` and place it in
        storage_dir/template/cache/<Appliance.template>; return that path."""

    # -- volumes -------------------------------------------------------------------------
    def create_volume(self, vmid: int, ostemplate: Path, log: Log) -> str:
        """Unpack an appliance tarball into a new volume; return the volume name."""

    def prepare_new_ct(
        self, volume: str, *, hostname: str, root_password: str | None, ssh_public_keys: str | None
    ) -> None:
        """What `pct create` does inside a new rootfs: fresh SSH host keys, empty machine-id,
        root password (plain text as given to the API), authorized_keys for root."""

    def linked_clone(self, base_volume: str, vmid: int) -> str:
        """Copy-on-write clone of a template's volume (overlayfs, O(1)); return the new name."""

    def full_clone(self, source_volume: str, vmid: int, log: Log) -> str:
        """Independent copy of a volume; return the new name."""

    def after_clone(self, volume: str) -> None:
        """What `pct clone` does inside the new rootfs: truncate /etc/machine-id, nothing else."""

    def make_base(self, volume: str, vmid: int) -> str:
        """Turn a stopped CT's volume into a read-only template volume; return the new name."""

    def linked_clones_of(self, volume: str) -> list[str]:
        """Names of the volumes that use `volume` as a lower layer."""

    def destroy_volume(self, volume: str) -> None:
        """Remove a volume; HostError if linked clones still use it."""

    def volume_usage(self, volume: str) -> int:
        """Bytes used by the volume's own layer."""

    # -- containers ----------------------------------------------------------------------
    def start(self, spec: CTSpec, log: Log) -> None:
        """Write the LXC config, apply hostname, /etc/hosts, network and DNS inside the rootfs
        (as Proxmox does on every start), start the container; return once init runs."""

    def shutdown(self, vmid: int, timeout: int, force_stop: bool, log: Log) -> None:
        """Clean shutdown; after `timeout` s stop hard if force_stop else raise HostError."""

    def stop(self, vmid: int, log: Log) -> None:
        """Immediate stop."""

    def runtime(self, vmid: int) -> Runtime:
        """Running state of a CT (works after a minipve restart: containers are found again)."""

    def running_vmids(self) -> list[int]:
        """Every CT of this state dir that runs now."""

    def interfaces(self, vmid: int) -> list[dict] | None:
        """Proxmox's /interfaces reply for a running CT (lo and eth0, with inet once DHCP has
        answered); None when it is stopped."""

    def apt_proxy_url(self) -> str | None:
        """http://<gateway>:<port> of the apt proxy that `up` started, for build tools."""
