"""Appliance templates built on this machine with debootstrap, named and listed as Proxmox does.

A build is cached in `<cache_dir>/appliances/<template>` and shared by every minipve instance;
concurrent builders of one package wait on a flock, and the loser finds the finished tarball.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from minipve.host import Appliance, HostError, Log
from minipve.host.commands import flock, run, write_file

MIRROR = "http://deb.debian.org/debian"

# What a Proxmox "standard" appliance carries that matters to its users, beyond minbase.
STANDARD_PACKAGES = (
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "iproute2",
    "iputils-ping",
    "ifupdown",
    "isc-dhcp-client",
    "ca-certificates",
    "sudo",
    "locales",
    "procps",
    "curl",
    "less",
    "netbase",
)


@dataclass(frozen=True)
class ApplianceRecipe:
    appliance: Appliance
    suite: str


def _standard(major: int, suite: str, version: str) -> ApplianceRecipe:
    package = f"debian-{major}-standard"
    return ApplianceRecipe(
        appliance=Appliance(
            template=f"{package}_{version}_amd64.tar.zst",
            package=package,
            version=version,
            os=f"debian-{major}",
            headline=f"Debian {major} (standard)",
            description=(
                f"Debian {major} ({suite}) standard container template, built on this host with "
                "debootstrap: systemd, OpenSSH server, Python 3, ifupdown with DHCP client, sudo."
            ),
        ),
        suite=suite,
    )


RECIPES: dict[str, ApplianceRecipe] = {
    r.appliance.package: r for r in (_standard(12, "bookworm", "12.12-1"), _standard(13, "trixie", "13.1-2"))
}


def appliances() -> list[Appliance]:
    return [r.appliance for r in RECIPES.values()]


def recipe_for(package: str) -> ApplianceRecipe:
    """The recipe of `package`, which may also be given as its template file name."""
    for recipe in RECIPES.values():
        if package in (recipe.appliance.package, recipe.appliance.template):
            return recipe
    raise HostError(f"no such template '{package}'")


def build_appliance(package: str, cache_dir: Path, storage_dir: Path, log: Log) -> Path:
    """Build (or reuse) the tarball of `package`; link it into storage's template cache."""
    recipe = recipe_for(package)
    cache = cache_dir / "appliances"
    cached = cache / recipe.appliance.template
    with flock(cache / f".{recipe.appliance.package}.lock"):
        if cached.is_file():
            log(f"using cached appliance {cached}")
        else:
            _build(recipe, cache, cached, log)
    target = storage_dir / "template" / "cache" / recipe.appliance.template
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(cached, tmp)
        except OSError:  # another filesystem: copy instead of hardlink
            shutil.copyfile(cached, tmp)
        os.replace(tmp, target)
    log(f"appliance ready: {target}")
    return target


def _build(recipe: ApplianceRecipe, cache: Path, cached: Path, log: Log) -> None:
    if os.geteuid() != 0:
        raise HostError("building an appliance needs root (debootstrap)")
    cache.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".build-{recipe.appliance.package}-", dir=cache))
    rootfs = workdir / "rootfs"
    try:
        log(f"debootstrap --variant=minbase {recipe.suite} from {MIRROR}")
        run(["debootstrap", "--variant=minbase", recipe.suite, rootfs, MIRROR], log=None)
        _install_standard(rootfs, log)
        _strip_host_traces(rootfs)
        tarball = workdir / cached.name
        log(f"packing {cached.name}")
        run(
            ["tar", "--numeric-owner", "--xattrs", "--acls", "-C", rootfs, "--zstd", "-cf", tarball, "."],
        )
        os.replace(tarball, cached)
        log(f"built {cached} ({cached.stat().st_size // (1 << 20)} MiB)")
    finally:
        # debootstrap may leave /proc mounted on failure; never remove a tree with a live mount
        for mnt in ("proc", "sys", "dev/pts"):
            _umount_quietly(rootfs / mnt)
        shutil.rmtree(workdir, ignore_errors=True)


def _install_standard(rootfs: Path, log: Log) -> None:
    # Postinst scripts would start daemons in the host's namespaces without this.
    policy = rootfs / "usr/sbin/policy-rc.d"
    write_file(policy, "#!/bin/sh\nexit 101\n", 0o755)
    proc = rootfs / "proc"
    run(["mount", "-t", "proc", "proc", proc])
    try:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "DEBIAN_FRONTEND": "noninteractive",
            "LANG": "C.UTF-8",
        }
        log("installing the standard package set")
        run(["chroot", rootfs, "apt-get", "update", "-q"], env=env)
        run(
            [
                "chroot",
                rootfs,
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                *STANDARD_PACKAGES,
            ],
            env=env,
        )
        write_file(rootfs / "etc/locale.gen", "en_US.UTF-8 UTF-8\n")
        run(["chroot", rootfs, "locale-gen"], env=env)
        write_file(rootfs / "etc/default/locale", "LANG=en_US.UTF-8\n")
        run(["chroot", rootfs, "apt-get", "clean"], env=env)
    finally:
        _umount_quietly(proc)
        policy.unlink(missing_ok=True)


def _strip_host_traces(rootfs: Path) -> None:
    """Remove what debootstrap copied from the host or what each CT must get fresh."""
    write_file(rootfs / "etc/hostname", "localhost\n")
    resolv = rootfs / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    write_file(resolv, "")
    write_file(rootfs / "etc/machine-id", "", 0o444)
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    dbus_id.unlink(missing_ok=True)
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    lists = rootfs / "var/lib/apt/lists"
    for entry in lists.iterdir() if lists.is_dir() else []:
        if entry.is_file():
            entry.unlink()
    for log_file in (rootfs / "var/log").rglob("*"):
        if log_file.is_file():
            log_file.unlink()
    write_file(
        rootfs / "etc/network/interfaces",
        "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n",
    )


def _umount_quietly(path: Path) -> None:
    if os.path.ismount(path):
        run(["umount", "-l", path], check=False)
