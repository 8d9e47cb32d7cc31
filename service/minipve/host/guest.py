"""What Proxmox writes inside a container's root filesystem: on create, on clone, on every start."""

from __future__ import annotations

import ipaddress
import os
import shutil
from pathlib import Path

from minipve.host import CTSpec, HostConfig, HostError
from minipve.host.commands import run, write_file

_CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _inside(rootfs: Path, relpath: str) -> Path:
    """A path inside the CT; refuses parent directories that are symlinks (they could leave the CT)."""
    path = rootfs / relpath
    parent = rootfs
    for part in Path(relpath).parent.parts:
        parent = parent / part
        if parent.is_symlink():
            raise HostError(f"refusing to write /{relpath}: /{parent.relative_to(rootfs)} is a symlink")
    return path


def truncate_machine_id(rootfs: Path) -> None:
    write_file(_inside(rootfs, "etc/machine-id"), "", 0o444)


def prepare_new(
    rootfs: Path, *, hostname: str, root_password: str | None, ssh_public_keys: str | None
) -> None:
    """`pct create`: fresh SSH host keys, empty machine-id, root password and authorized_keys."""
    ssh_dir = _inside(rootfs, "etc/ssh/x").parent
    if ssh_dir.is_dir():
        for key in ssh_dir.glob("ssh_host_*"):
            key.unlink()
        if shutil.which("ssh-keygen", path=str(rootfs / "usr/bin")):
            run(["chroot", rootfs, "ssh-keygen", "-A"], env=_CHROOT_ENV)
    truncate_machine_id(rootfs)
    write_file(_inside(rootfs, "etc/hostname"), f"{hostname}\n")
    if root_password is not None:
        if "\n" in root_password or "\r" in root_password:
            raise HostError("parameter 'password': must not contain a line break")
        # chpasswd reads `user:password` from stdin: the password never reaches argv or a log.
        run(["chroot", rootfs, "chpasswd"], input=f"root:{root_password}\n", env=_CHROOT_ENV)
    if ssh_public_keys:
        ssh_root = _inside(rootfs, "root/.ssh/x").parent
        ssh_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(ssh_root, 0o700)
        keys = "\n".join(line.strip() for line in ssh_public_keys.splitlines() if line.strip())
        write_file(ssh_root / "authorized_keys", keys + "\n", 0o600)


def apply_on_start(rootfs: Path, spec: CTSpec, config: HostConfig) -> None:
    """Hostname, /etc/hosts, network and DNS, as Proxmox writes them before every start."""
    hostname = spec.hostname
    write_file(_inside(rootfs, "etc/hostname"), f"{hostname}\n")
    address = _static_address(spec, config)
    own = str(address.ip) if address else "127.0.1.1"
    short = hostname.split(".")[0]
    fqdn = hostname if "." in hostname else (f"{hostname}.{spec.searchdomain}" if spec.searchdomain else "")
    names = f"{fqdn} {short}".strip() if fqdn else short
    write_file(
        _inside(rootfs, "etc/hosts"),
        "127.0.0.1 localhost.localdomain localhost\n"
        f"{own} {names}\n\n"
        "# The following lines are desirable for IPv6 capable hosts\n"
        "::1     ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\n"
        "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n",
    )
    write_file(_inside(rootfs, "etc/network/interfaces"), _interfaces(spec, address))
    resolv = [f"search {spec.searchdomain}"] if spec.searchdomain else []
    servers = (spec.nameserver or str(config.gateway)).split()
    resolv += [f"nameserver {ns}" for ns in servers]
    write_file(_inside(rootfs, "etc/resolv.conf"), "\n".join(resolv) + "\n")


def _static_address(spec: CTSpec, config: HostConfig) -> ipaddress.IPv4Interface | None:
    ip = (spec.net0 or {}).get("ip", "")
    if not ip or ip in ("dhcp", "manual"):
        return None
    try:
        address = ipaddress.IPv4Interface(ip)
    except ValueError:
        raise HostError(f"invalid IPv4 address in net0: '{ip}'") from None
    if address.ip not in config.subnet:
        raise HostError(f"net0 address {address} is outside minipve's subnet {config.subnet}")
    return address


def _interfaces(spec: CTSpec, address: ipaddress.IPv4Interface | None) -> str:
    text = "auto lo\niface lo inet loopback\n"
    net0 = spec.net0
    if not net0:
        return text
    name = net0.get("name", "eth0")
    ip = net0.get("ip", "")
    if address is not None:
        text += (
            f"\nauto {name}\niface {name} inet static\n"
            f"\taddress {address.ip}/{address.network.prefixlen}\n"
            f"\tbroadcast {address.network.broadcast_address}\n"
        )
        if net0.get("gw"):
            text += f"\tgateway {net0['gw']}\n"
    elif ip == "dhcp":
        text += f"\nauto {name}\niface {name} inet dhcp\n"
    elif ip == "manual":
        text += f"\nauto {name}\niface {name} inet manual\n"
    return text
