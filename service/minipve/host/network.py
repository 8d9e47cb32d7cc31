"""The network minipve owns: a bridge, an nftables NAT table, dnsmasq and apt-cacher-ng.

Everything listens only on the bridge's gateway address. Daemons run in their own session and are
stopped by the PID this module wrote, never by name.

IPv4 forwarding is one switch for the whole host, shared by every minipve instance on it. The
registry in /run (gone at reboot, when the kernel starts from the boot value again) records the
value the host had before the first instance turned it on, and one claim per state dir that needs
it. An instance that goes down withdraws its own claim only; the one that withdraws the last claim
puts the recorded value back. A claim stands while its state dir exists, so a crashed instance
(whose containers keep running) holds forwarding until it is served and stopped again, or reset.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from minipve.host import HostConfig, HostError
from minipve.host.commands import flock, pid_alive, run, write_file

APT_PROXY_PORT = 3142
FORWARD_SYSCTL = Path("/proc/sys/net/ipv4/ip_forward")
# Host-wide: `original` (the host's value before the first claim) and one `claim-*` per state dir.
# The directory and its `.lock` stay (an empty dir in /run): removing the lock file while another
# instance waits on it would let a third one lock a new file beside it.
FORWARD_REGISTRY = Path("/run/minipve-ip-forward")


def nft_table(config: HostConfig) -> str:
    return f"minipve_{config.bridge}".replace("-", "_").replace(".", "_")


LEASE_TIME = "10m"


def dhcp_range(subnet: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """The upper half of the subnet's hosts; the lower half stays free for static addresses."""
    first, last = int(subnet.network_address) + 2, int(subnet.broadcast_address) - 1
    if last - first < 2:
        raise HostError(f"subnet {subnet} is too small: use at least a /29 (option --subnet)")
    return ipaddress.IPv4Address((first + last + 1) // 2), ipaddress.IPv4Address(last)


def host_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[ipaddress.IPv4Address]:
    found = []
    with contextlib.suppress(FileNotFoundError):
        for line in resolv_conf.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    found.append(ipaddress.IPv4Address(parts[1]))
    return found


def subnet_overlaps(config: HostConfig) -> list[str]:
    """What on the host overlaps `config.subnet` (routes, addresses, resolvers); [] when free."""
    own = config.bridge
    found: list[str] = []
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev") == own or route.get("type") in ("broadcast", "local"):
            continue
        with contextlib.suppress(ValueError):
            net = ipaddress.IPv4Network(dst, strict=False)
            if net.prefixlen > 0 and net.overlaps(config.subnet):
                found.append(f"route {dst} dev {route.get('dev', '?')}")
    addrs = json.loads(run(["ip", "-j", "-4", "addr"]).stdout or "[]")
    for link in addrs:
        if link.get("ifname") == own:
            continue
        for info in link.get("addr_info", []):
            net = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network
            if net.overlaps(config.subnet) and net.prefixlen > 0:
                found.append(f"address {info['local']}/{info['prefixlen']} on {link.get('ifname')}")
    for resolver in host_resolvers():
        if resolver in config.subnet:
            found.append(f"resolver {resolver} in /etc/resolv.conf")
    return found


class Network:
    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.run_dir = config.state_dir / "run"

    # -- the whole network -----------------------------------------------------------------
    def up(self) -> None:
        # Both checks come before anything is made: a refused instance leaves no trace (not even
        # a claim on the bridge, which would refuse the next instance given that bridge).
        overlaps = subnet_overlaps(self.config)
        if overlaps:
            raise HostError(
                f"subnet {self.config.subnet} overlaps {', '.join(overlaps)}; "
                "choose a free private subnet with the --subnet option"
            )
        self._own_bridge()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._bridge_up()
        self._nft_up()
        self._claim_forwarding()
        self._dnsmasq_up()
        self._apt_proxy_up()

    def down(self) -> None:
        """Stop the daemons; the bridge and NAT stay so running containers keep their links."""
        for name in ("apt-cacher-ng", "dnsmasq"):
            self._stop_daemon(name)
        self._release_forwarding()

    def remove(self) -> None:
        """Everything `up` made, for reset. The bridge and NAT table of another instance (an instance
        that failed to start on a bridge in use) are left alone."""
        self.down()
        if self._bridge_owner() not in (None, self._me()):
            return
        run(["nft", "delete", "table", "ip", nft_table(self.config)], check=False)
        if Path(f"/sys/class/net/{self.config.bridge}").exists():
            run(["ip", "link", "delete", self.config.bridge, "type", "bridge"], check=False)
        self._owner_path().unlink(missing_ok=True)

    # -- which instance a bridge belongs to ----------------------------------------------------
    def _me(self) -> str:
        return str(self.config.state_dir.resolve())

    def _owner_path(self) -> Path:
        return FORWARD_REGISTRY / f"bridge-{self.config.bridge}"

    def _bridge_owner(self) -> str | None:
        """The state dir of the live instance that made the bridge, or None. A record whose bridge
        is gone, or whose state dir is, protects nothing and is void."""
        try:
            owner = self._owner_path().read_text().strip()
        except OSError:
            return None
        alive = owner and Path(owner).is_dir() and Path(f"/sys/class/net/{self.config.bridge}").exists()
        return owner if alive else None

    def _check_bridge_is_ours(self) -> None:
        owner = self._bridge_owner()
        if owner not in (None, self._me()):
            raise HostError(
                f"bridge {self.config.bridge} belongs to the minipve of {owner}: give this one a bridge "
                "and subnet of its own (--bridge, --subnet)"
            )

    def _own_bridge(self) -> None:
        FORWARD_REGISTRY.mkdir(mode=0o700, exist_ok=True)
        with flock(FORWARD_REGISTRY / ".lock"):
            self._check_bridge_is_ours()
            write_file(self._owner_path(), f"{self._me()}\n")

    def apt_proxy_url(self) -> str | None:
        if pid_alive(self.run_dir / "apt-cacher-ng.pid") is None:
            return None
        return f"http://{self.config.gateway}:{APT_PROXY_PORT}"

    # -- bridge and NAT ----------------------------------------------------------------------
    def _bridge_up(self) -> None:
        br, cfg = self.config.bridge, self.config
        if not Path(f"/sys/class/net/{br}").exists():
            run(["ip", "link", "add", br, "type", "bridge"])
        # No IPv6 on the bridge: dnsmasq and apt-cacher-ng then listen on the gateway address only.
        with contextlib.suppress(OSError):
            Path(f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6").write_text("1\n")
        gw_cidr = f"{cfg.gateway}/{cfg.subnet.prefixlen}"
        addrs = json.loads(run(["ip", "-j", "-4", "addr", "show", "dev", br]).stdout or "[]")
        have = {f"{a['local']}/{a['prefixlen']}" for link in addrs for a in link.get("addr_info", [])}
        if gw_cidr not in have:
            run(["ip", "addr", "add", gw_cidr, "broadcast", str(cfg.subnet.broadcast_address), "dev", br])
        run(["ip", "link", "set", br, "mtu", str(cfg.mtu), "up"])

    def _nft_up(self) -> None:
        table, subnet = nft_table(self.config), self.config.subnet
        ruleset = (
            f"table ip {table} {{}}\n"
            f"delete table ip {table}\n"
            f"table ip {table} {{\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f"    ip saddr {subnet} ip daddr != {subnet} masquerade\n"
            "  }\n"
            "}\n"
        )
        run(["nft", "-f", "-"], input=ruleset)

    # -- ip_forward, shared between instances ----------------------------------------------------
    def _claim_path(self) -> Path:
        key = str(self.config.state_dir.resolve()).strip("/").replace("/", "_")
        return FORWARD_REGISTRY / f"claim-{key}"

    def _live_claims(self) -> list[Path]:
        live = []
        for claim in FORWARD_REGISTRY.glob("claim-*"):
            state_dir = Path(claim.read_text().strip() or "/nonexistent")
            if state_dir.is_dir():
                live.append(claim)
            else:  # a state dir removed without reset: its claim is void
                claim.unlink(missing_ok=True)
        return live

    def _claim_forwarding(self) -> None:
        FORWARD_REGISTRY.mkdir(mode=0o700, exist_ok=True)
        with flock(FORWARD_REGISTRY / ".lock"):
            self._live_claims()  # prunes the void ones
            original = FORWARD_REGISTRY / "original"
            # Recorded once, before the first claim, and kept until the last one is withdrawn:
            # whatever the switch says later may be another instance's doing.
            if not original.exists():
                write_file(original, FORWARD_SYSCTL.read_text())
            write_file(self._claim_path(), f"{self.config.state_dir.resolve()}\n")
            FORWARD_SYSCTL.write_text("1\n")

    def _release_forwarding(self) -> None:
        if not FORWARD_REGISTRY.is_dir():
            return
        with flock(FORWARD_REGISTRY / ".lock"):
            self._claim_path().unlink(missing_ok=True)
            if self._live_claims():
                return  # another instance still needs forwarding; it puts the value back
            original = FORWARD_REGISTRY / "original"
            with contextlib.suppress(FileNotFoundError):
                value = original.read_text()
                if value.strip() in ("0", "1"):
                    FORWARD_SYSCTL.write_text(value)
                original.unlink()

    # -- daemons ---------------------------------------------------------------------------
    def _dnsmasq_up(self) -> None:
        if pid_alive(self.run_dir / "dnsmasq.pid"):
            return
        cfg, (low, high) = self.config, dhcp_range(self.config.subnet)
        resolvers = [str(r) for r in host_resolvers()] or ["1.1.1.1"]
        argv = [
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            f"--interface={cfg.bridge}",
            "--except-interface=lo",
            "--bind-interfaces",
            f"--listen-address={cfg.gateway}",
            # 10-minute leases: a destroyed CT's address is free again soon (a test session makes
            # a few hundred CTs, each with a MAC of its own, and a /24 pool holds 127 leases);
            # a running CT renews every 5 minutes
            f"--dhcp-range={low},{high},{cfg.subnet.netmask},{LEASE_TIME}",
            f"--dhcp-leasefile={self.run_dir / 'dnsmasq.leases'}",
            f"--dhcp-option=option:router,{cfg.gateway}",
            f"--dhcp-option=option:dns-server,{cfg.gateway}",
            f"--dhcp-option=option:mtu,{cfg.mtu}",
            # answer at once: no ping probe before an offer, and no wait for unknown leases
            "--no-ping",
            "--dhcp-authoritative",
            "--log-facility=-",
            "--pid-file=",
            *(f"--server={r}" for r in resolvers),
        ]
        self._spawn("dnsmasq", argv)
        self._wait_port(53, "dnsmasq")

    def _apt_proxy_up(self) -> None:
        if pid_alive(self.run_dir / "apt-cacher-ng.pid"):
            return
        shared = self.config.cache_dir / "apt-cacher-ng"
        shared.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(shared / ".minipve.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                cache = shared
            except BlockingIOError:  # another instance's apt-cacher-ng owns the shared cache
                cache = self.config.state_dir / "apt-cacher-ng-cache"
            conf_dir = self.config.state_dir / "apt-cacher-ng"
            log_dir = conf_dir / "log"
            cache.mkdir(parents=True, exist_ok=True)
            log_dir.mkdir(parents=True, exist_ok=True)
            write_file(
                conf_dir / "acng.conf",
                # Our own minimal config: the packaged one remaps deb.debian.org to unreachable mirrors.
                f"CacheDir: {cache}\nLogDir: {log_dir}\nSupportDir: /usr/lib/apt-cacher-ng\n"
                f"Port: {APT_PROXY_PORT}\nBindAddress: {self.config.gateway}\n"
                f"SocketPath: {self.run_dir / 'apt-cacher-ng.socket'}\n"
                "ExThreshold: 4\nReportPage: acng-report.html\n",
            )
            # The daemon inherits the lock fd: the shared cache stays claimed exactly as long as it runs.
            argv = ["apt-cacher-ng", "-c", str(conf_dir), "ForeGround=1"]
            self._spawn("apt-cacher-ng", argv, pass_fds=(lock_fd,) if cache == shared else ())
        finally:
            os.close(lock_fd)
        self._wait_port(APT_PROXY_PORT, "apt-cacher-ng")

    def _spawn(self, name: str, argv: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        log_path = self.run_dir / f"{name}.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=pass_fds,
                close_fds=True,
            )
        write_file(self.run_dir / f"{name}.pid", f"{proc.pid}\n")
        time.sleep(0.05)
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise HostError(f"{name} did not start: {' '.join(tail)}")

    def _wait_port(self, port: int, name: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                sock.settimeout(0.2)
                if sock.connect_ex((str(self.config.gateway), port)) == 0:
                    return
            if pid_alive(self.run_dir / f"{name}.pid") is None:
                break
            time.sleep(0.05)
        tail = (self.run_dir / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
        self._stop_daemon(name)
        raise HostError(f"{name} is not answering on {self.config.gateway}:{port}: {' '.join(tail)}")

    def _stop_daemon(self, name: str) -> None:
        pid_file = self.run_dir / f"{name}.pid"
        pid = pid_alive(pid_file)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while pid_alive(pid_file) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.05)
            if pid_alive(pid_file):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        pid_file.unlink(missing_ok=True)
