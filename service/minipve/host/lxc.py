"""LxcHost: minipve's `Host` on real LXC containers (privileged, systemd as init, private lxcpath).

Containers are privileged, as Proxmox's `unprivileged: 0`: unprivileged ones were never tested on
this kind of host. Each CT is `<state>/lxc/<vmid>/config`; `minipve.json` next to it records which
volume is mounted, so a restarted minipve finds running CTs and their mounts again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from minipve.host import Appliance, CTSpec, HostConfig, HostError, Log, Problem, Runtime
from minipve.host import appliances as _appliances
from minipve.host.commands import run, write_file
from minipve.host.doctor import check as _check
from minipve.host.guest import apply_on_start, prepare_new
from minipve.host.interfaces import read_interfaces
from minipve.host.network import Network
from minipve.host.volumes import Volumes

log = logging.getLogger("minipve.host")

# Every privileged container's processes are root's, and root may hold fs.inotify.max_user_instances
# inotify instances in all (128 by default); a Debian CT's systemd, journald, logind and dbus take
# about 8 (measured), more with services. Past the limit a new CT boots without its network (no
# DHCP lease, "no global IPv4 address"): with the default, about 16 CTs fit on the whole host.
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_WANTED = 8192


def raise_inotify_limit(path: Path = INOTIFY_INSTANCES, wanted: int = INOTIFY_WANTED) -> int | None:
    """Raise the host's limit to `wanted` if it is lower (never lowers it: another user may rely on
    it); returns the value it had when it raised it, else None."""
    try:
        current = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if current >= wanted:
        return None
    try:
        path.write_text(f"{wanted}\n")
    except OSError as exc:
        log.warning("fs.inotify.max_user_instances is %d and cannot be raised (%s): about %d CTs will "
                    "get a network; raise it with sysctl -w fs.inotify.max_user_instances=%d",
                    current, exc, current // 8, wanted)
        return None
    log.info("raised fs.inotify.max_user_instances from %d to %d (each CT's systemd takes about 8)",
             current, wanted)
    return current


class LxcHost:
    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.lxcpath = config.state_dir / "lxc"
        self.network = Network(config)
        self.volumes = Volumes(config)
        self._cpu_seen: dict[int, tuple[float, float]] = {}
        self._disk_seen: dict[int, tuple[float, int]] = {}

    # -- the host as a whole -------------------------------------------------------------------
    def check(self) -> list[Problem]:
        return _check(self.config)

    def up(self) -> None:
        problems = [p for p in self.check() if "subnet" not in p.what]
        if problems:
            raise HostError("; ".join(f"{p.what} (fix: {p.fix})" for p in problems))
        self.lxcpath.mkdir(parents=True, exist_ok=True)
        raise_inotify_limit()
        self.network.up()

    def down(self) -> None:
        self.network.down()

    def reset(self) -> None:
        if self.lxcpath.is_dir():
            for ct_dir in sorted(self.lxcpath.iterdir()):
                if ct_dir.name.isdigit() and (ct_dir / "config").exists():
                    self._lxc("lxc-stop", ct_dir.name, "-k", check=False)
        for mount_point in _mounts_under(self.config.state_dir):
            run(["umount", "-l", mount_point], check=False)
        self.network.remove()
        left = _mounts_under(self.config.state_dir)
        if left:
            raise HostError(f"cannot reset: still mounted: {', '.join(map(str, left))}")
        shutil.rmtree(self.config.state_dir, ignore_errors=True)

    # -- appliances -----------------------------------------------------------------------------
    def appliances(self) -> list[Appliance]:
        return _appliances.appliances()

    def build_appliance(self, package: str, log: Log) -> Path:
        return _appliances.build_appliance(package, self.config.cache_dir, self.config.storage_dir, log)

    # -- volumes --------------------------------------------------------------------------------
    def create_volume(self, vmid: int, ostemplate: Path, log: Log) -> str:
        return self.volumes.create(vmid, ostemplate, log)

    def prepare_new_ct(
        self, volume: str, *, hostname: str, root_password: str | None, ssh_public_keys: str | None
    ) -> None:
        self._refuse_base(volume)
        with self.volumes.opened(volume) as rootfs:
            prepare_new(
                rootfs, hostname=hostname, root_password=root_password, ssh_public_keys=ssh_public_keys
            )

    def linked_clone(self, base_volume: str, vmid: int) -> str:
        return self.volumes.linked_clone(base_volume, vmid)

    def full_clone(self, source_volume: str, vmid: int, log: Log) -> str:
        return self.volumes.full_clone(source_volume, vmid, log)

    def after_clone(self, volume: str) -> None:
        self._refuse_base(volume)
        self.volumes.write_offline(volume, "etc/machine-id", "", 0o444)

    def make_base(self, volume: str, vmid: int) -> str:
        if self._state(vmid) == "RUNNING":
            raise HostError("you can't convert a CT to template if the CT is running")
        return self.volumes.make_base(volume, vmid)

    def linked_clones_of(self, volume: str) -> list[str]:
        return self.volumes.linked_clones_of(volume)

    def destroy_volume(self, volume: str) -> None:
        users = [vmid for vmid in self.running_vmids() if self._volume_of(vmid) == volume]
        if users:
            raise HostError(f"unable to destroy volume '{volume}' - CT {users[0]} is running")
        self.volumes.destroy(volume)
        for ct_dir in self.lxcpath.glob("*/minipve.json"):  # the LXC config of a CT that is gone
            if ct_dir.parent.name.isdigit() and self._volume_of(int(ct_dir.parent.name)) == volume:
                shutil.rmtree(ct_dir.parent, ignore_errors=True)

    def volume_usage(self, volume: str) -> int:
        return self.volumes.usage(volume)

    # -- containers -----------------------------------------------------------------------------
    def start(self, spec: CTSpec, log: Log) -> None:
        self._refuse_base(spec.volume)
        if self._state(spec.vmid) == "RUNNING":
            raise HostError(f"CT {spec.vmid} already running")
        rootfs = self.volumes.mount(spec.volume)
        try:
            apply_on_start(rootfs, spec, self.config)
            ct_dir = self.lxcpath / str(spec.vmid)
            ct_dir.mkdir(parents=True, exist_ok=True)
            write_file(ct_dir / "config", self._lxc_config(spec, rootfs))
            write_file(ct_dir / "minipve.json", json.dumps({"volume": spec.volume}) + "\n")
            log(f"starting CT {spec.vmid}")
            self._lxc("lxc-start", spec.vmid, "-d", "-o", ct_dir / "lxc.log", "-l", "WARN")
            self._lxc("lxc-wait", spec.vmid, "-s", "RUNNING", "-t", "30")
        except BaseException:
            with contextlib.suppress(HostError):
                self._lxc("lxc-stop", spec.vmid, "-k", check=False)
                self.volumes.unmount(spec.volume)
            raise

    def shutdown(self, vmid: int, timeout: int, force_stop: bool, log: Log) -> None:
        if self._state(vmid) != "RUNNING":
            raise HostError(f"CT {vmid} not running")
        log(f"shutting down CT {vmid} (timeout {timeout} s)")
        args = ["-t", str(timeout)] + ([] if force_stop else ["--nokill"])
        proc = self._lxc("lxc-stop", vmid, *args, check=False)
        if self._state(vmid) != "STOPPED":
            raise HostError(f"container did not stop within {timeout} s")
        if proc.returncode != 0 and force_stop:
            log("clean shutdown timed out, container stopped hard")
        self._after_stop(vmid)

    def stop(self, vmid: int, log: Log) -> None:
        if self._state(vmid) == "RUNNING":
            log(f"stopping CT {vmid}")
            self._lxc("lxc-stop", vmid, "-k", check=False)
        if self._state(vmid) not in ("STOPPED", None):
            raise HostError(f"unable to stop CT {vmid}")
        self._after_stop(vmid)

    def runtime(self, vmid: int) -> Runtime:
        info = self._info(vmid)
        if info.get("State") != "RUNNING" or not info.get("PID"):
            return Runtime(running=False, disk=self._disk(vmid))
        pid = int(info["PID"])
        cpu_ns = float(info.get("CPU use", "0").split()[0] or 0)
        now = time.monotonic()
        last = self._cpu_seen.get(vmid)
        self._cpu_seen[vmid] = (now, cpu_ns)
        cpu = 0.0
        if last and now > last[0]:
            cpu = max(0.0, (cpu_ns - last[1]) / 1e9 / (now - last[0]))
        return Runtime(
            running=True,
            pid=pid,
            uptime=_uptime(pid),
            mem=_bytes(info.get("Memory use", "0")),
            cpu=round(cpu, 4),
            disk=self._disk(vmid),
        )

    def running_vmids(self) -> list[int]:
        if not self.lxcpath.is_dir():
            return []
        proc = run(["lxc-ls", "-P", self.lxcpath, "-1", "--running"], check=False)
        return sorted(int(n) for n in proc.stdout.split() if n.isdigit())

    def interfaces(self, vmid: int) -> list[dict] | None:
        info = self._info(vmid)
        if info.get("State") != "RUNNING" or not info.get("PID"):
            return None
        return read_interfaces(int(info["PID"]))

    def apt_proxy_url(self) -> str | None:
        return self.network.apt_proxy_url()

    # -- helpers --------------------------------------------------------------------------------
    def _refuse_base(self, volume: str) -> None:
        if self.volumes.is_base(volume):
            raise HostError(f"volume '{volume}' is a template: it is read-only and never started")

    def _lxc(self, tool: str, vmid: int | str, *args: object, check: bool = True):
        return run([tool, "-P", self.lxcpath, "-n", str(vmid), *map(str, args)], check=check)

    def _info(self, vmid: int) -> dict[str, str]:
        if not (self.lxcpath / str(vmid) / "config").exists():
            return {}
        proc = self._lxc("lxc-info", vmid, "-H", check=False)
        info = {}
        for line in proc.stdout.splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
        return info

    def _state(self, vmid: int) -> str | None:
        return self._info(vmid).get("State")

    def _volume_of(self, vmid: int) -> str | None:
        """The volume CT `vmid` was last started from (recorded by start)."""
        try:
            return json.loads((self.lxcpath / str(vmid) / "minipve.json").read_text())["volume"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def _after_stop(self, vmid: int) -> None:
        volume = self._volume_of(vmid)
        if volume is not None:
            with contextlib.suppress(HostError):
                self.volumes.unmount(volume)
        self._cpu_seen.pop(vmid, None)

    def _disk(self, vmid: int) -> int:
        """Bytes of the CT's own layer, measured at most every 30 s (du is not free)."""
        seen = self._disk_seen.get(vmid)
        if seen and time.monotonic() - seen[0] < 30:
            return seen[1]
        usage, volume = 0, self._volume_of(vmid)
        if volume is not None:
            with contextlib.suppress(HostError):
                usage = self.volumes.usage(volume)
        self._disk_seen[vmid] = (time.monotonic(), usage)
        return usage

    def _lxc_config(self, spec: CTSpec, rootfs: Path) -> str:
        lines = [
            f"lxc.uts.name = {spec.hostname.split('.')[0]}",
            "lxc.arch = amd64",
            f"lxc.rootfs.path = dir:{rootfs}",
            "lxc.include = /usr/share/lxc/config/common.conf",
            "lxc.apparmor.profile = unconfined",
            "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed",
            "lxc.autodev = 1",
            "lxc.tty.max = 2",
            # systemd powers off on SIGRTMIN+3; LXC's default SIGPWR only reaches sigpwr.target
            "lxc.signal.halt = SIGRTMIN+3",
            f"lxc.cgroup.memory.limit_in_bytes = {spec.memory * 1024 * 1024}",
        ]
        if spec.net0:
            lines += [
                "lxc.net.0.type = veth",
                f"lxc.net.0.link = {self.config.bridge}",
                "lxc.net.0.flags = up",
                f"lxc.net.0.name = {spec.net0.get('name', 'eth0')}",
                f"lxc.net.0.mtu = {min(int(spec.net0.get('mtu') or self.config.mtu), self.config.mtu)}",
            ]
            if spec.net0.get("hwaddr"):
                lines.append(f"lxc.net.0.hwaddr = {spec.net0['hwaddr'].lower()}")
        return "\n".join(lines) + "\n"


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _uptime(pid: int) -> int:
    try:
        start_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot_uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0
    return max(0, int(boot_uptime - start_ticks / os.sysconf("SC_CLK_TCK")))


def _bytes(text: str) -> int:
    """lxc-info -H prints raw numbers; tolerate a unit suffix anyway."""
    number, _, unit = text.partition(" ")
    scale = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}.get(unit.strip(), 1)
    try:
        return int(float(number) * scale)
    except ValueError:
        return 0
