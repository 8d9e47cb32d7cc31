"""minipve killed during tasks: on restart the tasks are failed, a CT whose creation never finished
is removed, a clone source is unlocked, and running CTs are found again.

Uses an instance of its own (port, subnet and bridge below), since it kills the server."""

from __future__ import annotations

import os

import pytest
from pve_helpers import client, create_ct, error_of, task_ok, wait_config, wait_ipv4

from minipve.launcher import MiniPVE

pytestmark = pytest.mark.host

PORT = int(os.environ.get("CTFORGE_TEST_PVE2_PORT", "18107"))
SUBNET = os.environ.get("CTFORGE_TEST_PVE2_SUBNET", "10.237.0.0/24")
BRIDGE = os.environ.get("CTFORGE_TEST_PVE2_BRIDGE", "mpveapi1")


def test_kill_during_tasks_then_restart(minipve, tmp_path) -> None:
    # `minipve` (the session instance) only makes sure the host can run containers at all
    with MiniPVE(tmp_path / "state", port=PORT, subnet=SUBNET, bridge=BRIDGE) as pve:
        api, node = client(pve.env), pve.env["PROXMOX_NODE"]
        runner, base, creating, cloning = 200, 201, 202, 203
        create_ct(api, node, runner)
        task_ok(api, node, api.nodes(node).lxc(runner).status.start.post())
        ip = wait_ipv4(api, node, runner)
        create_ct(api, node, base)
        api.nodes(node).lxc(base).template.post()
        wait_config(api, node, base, "template", 1)

        pve.faults(slow=300)  # both tasks below are still running when the server dies
        create_upid = api.nodes(node).lxc.post(
            vmid=creating, ostemplate="local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst"
        )
        clone_upid = api.nodes(node).lxc(base).clone.post(newid=cloning)
        assert api.nodes(node).lxc(base).config.get()["lock"] == "disk"
        pve.kill()

        pve.start()
        api = client(pve.env)
        for upid in (create_upid, clone_upid):
            status = api.nodes(node).tasks(upid).status.get()
            assert (status["status"], status["exitstatus"]) == ("stopped", "unexpected status")
        for vmid in (creating, cloning):
            err = error_of(lambda v=vmid: api.nodes(node).lxc(v).config.get())
            assert err.content == f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
        conf = api.nodes(node).lxc(base).config.get()
        assert "lock" not in conf and conf["template"] == 1
        assert api.nodes(node).lxc(runner).status.current.get()["status"] == "running"
        assert wait_ipv4(api, node, runner) == ip
        # and the unlocked template clones again
        task_ok(api, node, api.nodes(node).lxc(base).clone.post(newid=cloning))
        task_ok(api, node, api.nodes(node).lxc(runner).status.stop.post())
        for vmid in (cloning, runner, base):
            task_ok(api, node, api.nodes(node).lxc(vmid).delete())
