"""proxmoxer drives a whole CT lifecycle on minipve with real containers, and gets Proxmox's
reply shapes and error texts at every step (../shared/reference/pve-behaviour.md)."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from pve_helpers import (
    APPLIANCE_VOLID,
    UPID_RE,
    create_ct,
    destroy_ct,
    error_of,
    log_lines,
    task_ok,
    wait_config,
    wait_ipv4,
    wait_task,
)

pytestmark = pytest.mark.host

SSH_OPTS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=3",
    "-o",
    "LogLevel=ERROR",
]
MAC_RE = re.compile(r"hwaddr=(BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2})")


def ssh(ip: str, key, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", *SSH_OPTS, "-i", str(key), f"root@{ip}", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_ssh(ip: str, key) -> None:
    for _ in range(100):
        if ssh(ip, key, "true", timeout=10).returncode == 0:
            return
    raise AssertionError(f"no SSH on {ip}")


def test_whole_lifecycle(api, node, ssh_keypair) -> None:
    linked = full = 0
    base = int(api.cluster.nextid.get())
    pubkey = ssh_keypair.with_suffix(".pub").read_text()
    lxc = api.nodes(node).lxc
    try:
        upid = lxc.post(
            vmid=base,
            ostemplate=APPLIANCE_VOLID,
            hostname="lifecycle-base",
            memory=512,
            net0="name=eth0,bridge=vmbr0,ip=dhcp",
            **{"ssh-public-keys": pubkey},
        )
        assert UPID_RE.match(upid) and f":vzcreate:{base}:" in upid
        task_ok(api, node, upid)
        assert log_lines(api, node, upid)[-1] == "TASK OK"
        conf = lxc(base).config.get()
        assert conf["hostname"] == "lifecycle-base" and "lock" not in conf
        assert re.fullmatch(r"[0-9a-f]{40}", conf["digest"])
        base_mac = MAC_RE.search(conf["net0"]).group(1)
        assert lxc(base).status.current.get()["status"] == "stopped"
        assert lxc(base).interfaces.get() is None

        # start, read interfaces until IPv4, SSH with the key given at create time
        task_ok(api, node, lxc(base).status.start.post())
        err = error_of(lambda: lxc(base).status.start.post())
        assert (err.status_code, err.content) == (500, f"CT {base} already running")
        current = lxc(base).status.current.get()
        assert current["status"] == "running" and current["name"] == "lifecycle-base" and current["pid"] > 0
        ip = wait_ipv4(api, node, base)
        wait_ssh(ip, ssh_keypair)
        err = error_of(lambda: lxc(base).delete())
        assert err.content == f"unable to destroy CT {base} - container is running"
        err = error_of(lambda: lxc(base).template.post())
        assert err.content == "you can't convert a CT to template if the CT is running"

        # shut down, then the stopped-CT refusals
        task_ok(api, node, lxc(base).status.shutdown.post(timeout=30))
        assert lxc(base).status.current.get()["status"] == "stopped"
        for action in ("stop", "shutdown"):
            err = error_of(lambda a=action: getattr(lxc(base).status, a).post())
            assert (err.status_code, err.content) == (500, f"CT {base} not running")

        # convert to template: null at once, the conversion runs as a vztemplate task.
        # The task list outlives its CTs, so an earlier test's CT with this VMID may
        # have left vztemplate tasks of its own: count only the new ones.
        def template_tasks() -> dict[str, str]:
            listed = api.nodes(node).tasks.get(vmid=base, typefilter="vztemplate")
            return {t["upid"]: t["status"] for t in listed}

        before = template_tasks()
        assert lxc(base).template.post() is None
        wait_config(api, node, base, "template", 1)
        new = {upid: st for upid, st in template_tasks().items() if upid not in before}
        assert list(new.values()) == ["OK"]
        err = error_of(lambda: lxc(base).template.post())
        assert err.content == "you can't convert a template to a template"
        upid = lxc(base).status.start.post()
        status = wait_task(api, node, upid)
        assert status["exitstatus"] == "you can't start a CT if it's a template"
        assert log_lines(api, node, upid)[-1] == "TASK ERROR: you can't start a CT if it's a template"

        # a linked clone (the default for a template) and a full clone
        linked = int(api.cluster.nextid.get())
        err = error_of(lambda: lxc(base).clone.post(newid=linked, full=0, storage="local"))
        assert err.content == "parameter 'storage' not allowed for linked clones"
        upid = lxc(base).clone.post(newid=linked, hostname="lifecycle-linked")
        assert f":vzclone:{base}:" in upid
        task_ok(api, node, upid)
        full = int(api.cluster.nextid.get())
        task_ok(api, node, lxc(base).clone.post(newid=full, full=1, hostname="lifecycle-full"))
        err = error_of(lambda: lxc(base).clone.post(newid=full))
        assert err.content == f"CT {full} already exists on node '{node}'"
        for vmid in (linked, full):
            conf = lxc(vmid).config.get()
            assert "template" not in conf and "lock" not in conf
            assert MAC_RE.search(conf["net0"]).group(1) != base_mac
            assert lxc(vmid).status.current.get()["status"] == "stopped"
        assert f"basevol-{base}-disk-0/" in lxc(linked).config.get()["rootfs"]
        assert f"basevol-{base}" not in lxc(full).config.get()["rootfs"]

        # start the linked clone, SSH in as root with the key, install a package
        task_ok(api, node, lxc(linked).status.start.post())
        ip = wait_ipv4(api, node, linked)
        wait_ssh(ip, ssh_keypair)
        out = ssh(
            ip,
            ssh_keypair,
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -qq hello >/dev/null && hello",
        )
        assert out.returncode == 0 and "Hello, world!" in out.stdout, out.stderr

        # a template with linked clones refuses deletion, in the task
        upid = lxc(base).delete()
        status = wait_task(api, node, upid)
        assert (
            status["exitstatus"]
            == f"base volume 'local:basevol-{base}-disk-0' is still in use by linked clones"
        )

        # destroy everything
        task_ok(api, node, lxc(linked).status.stop.post())
        for vmid in (linked, full, base):
            task_ok(api, node, lxc(vmid).delete(purge=1))
            err = error_of(lambda v=vmid: lxc(v).config.get())
            assert (err.status_code, err.content) == (
                500,
                f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist",
            )
    finally:
        for vmid in (linked, full, base):
            if vmid:
                destroy_ct(api, node, vmid)


def test_create_from_unknown_template_fails_in_the_task(api, node) -> None:
    vmid = int(api.cluster.nextid.get())
    upid = api.nodes(node).lxc.post(vmid=vmid, ostemplate="local:vztmpl/nope_1.0_amd64.tar.zst")
    status = wait_task(api, node, upid)
    assert status["exitstatus"] == "volume 'local:vztmpl/nope_1.0_amd64.tar.zst' does not exist"
    err = error_of(lambda: api.nodes(node).lxc(vmid).config.get())
    assert err.status_code == 500  # a failed create leaves no CT behind


def test_create_then_start_in_one_call(api, node) -> None:
    vmid = int(api.cluster.nextid.get())
    try:
        earlier = {
            t["upid"] for t in api.nodes(node).tasks.get(vmid=vmid, typefilter="vzstart", source="all")
        }
        create_ct(api, node, vmid, start=1)
        started: list[dict] = []
        for _ in range(300):
            tasks = api.nodes(node).tasks.get(vmid=vmid, typefilter="vzstart")
            started = [t for t in tasks if t["upid"] not in earlier]
            if started:
                break
            time.sleep(0.1)
        assert [t["status"] for t in started] == ["OK"]
        assert api.nodes(node).lxc(vmid).status.current.get()["status"] == "running"
    finally:
        destroy_ct(api, node, vmid)
