"""Appliances: names as Proxmox gives them, the shared cache, the builders' lock, a Debian 13 boot."""

from __future__ import annotations

import threading
import time

import pytest
from host_helpers import host_config, require_host, ssh, ssh_key, wait_ipv4, wait_ssh

from minipve.host import CTSpec, HostError
from minipve.host.appliances import RECIPES, appliances
from minipve.host.commands import flock
from minipve.host.lxc import LxcHost

pytestmark = pytest.mark.host


def test_aplinfo_entries_are_named_as_proxmox_names_them() -> None:
    by_package = {a.package: a for a in appliances()}
    deb12 = by_package["debian-12-standard"]
    assert deb12.template == "debian-12-standard_12.12-1_amd64.tar.zst"
    assert (deb12.version, deb12.os, deb12.section, deb12.type) == ("12.12-1", "debian-12", "system", "lxc")
    assert by_package["debian-13-standard"].template == "debian-13-standard_13.1-2_amd64.tar.zst"


def test_unknown_appliance_is_refused(tmp_path) -> None:
    host = LxcHost(host_config(tmp_path / "state"))
    with pytest.raises(HostError, match="no such template 'debian-99-standard'"):
        host.build_appliance("debian-99-standard", print)


def test_cached_build_is_reused_and_waits_for_a_running_builder(tmp_path) -> None:
    require_host()
    host = LxcHost(host_config(tmp_path / "state"))
    recipe = RECIPES["debian-12-standard"]
    cached = host.config.cache_dir / "appliances" / recipe.appliance.template
    host.build_appliance("debian-12-standard", print)  # builds once if the cache lacks it
    mtime = cached.stat().st_mtime_ns
    lines: list[str] = []
    done = threading.Event()
    # Hold the builders' lock as a concurrent build would: the second caller must wait for it.
    with flock(host.config.cache_dir / "appliances" / ".debian-12-standard.lock"):
        worker = threading.Thread(
            target=lambda: (host.build_appliance("debian-12-standard", lines.append), done.set())
        )
        worker.start()
        time.sleep(0.5)
        assert not done.is_set()
    worker.join(60)
    assert done.is_set()
    assert any("using cached appliance" in line for line in lines)
    assert cached.stat().st_mtime_ns == mtime
    placed = host.config.storage_dir / "template/cache" / recipe.appliance.template
    assert placed.stat().st_ino == cached.stat().st_ino  # hardlinked, not copied
    host.reset()


def test_debian_13_appliance_boots_with_dhcp_and_ssh(tmp_path) -> None:
    require_host()
    host = LxcHost(host_config(tmp_path / "state"))
    key = ssh_key(tmp_path)
    try:
        host.up()
        tarball = host.build_appliance("debian-13-standard", print)
        vol = host.create_volume(300, tarball, print)
        host.prepare_new_ct(
            vol, hostname="trixie", root_password=None, ssh_public_keys=key.with_suffix(".pub").read_text()
        )
        net0 = {"name": "eth0", "bridge": "vmbr0", "hwaddr": "BC:24:11:33:01:2C", "ip": "dhcp"}
        host.start(CTSpec(vmid=300, hostname="trixie", volume=vol, net0=net0), print)
        ip = wait_ipv4(host, 300)
        wait_ssh(ip, key)
        assert ssh(ip, key, "cat /etc/debian_version").stdout.startswith("13")
    finally:
        host.reset()
