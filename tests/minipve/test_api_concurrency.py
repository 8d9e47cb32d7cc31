"""Two clones of one template at once, and nextid under parallel creates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from proxmoxer.core import ResourceException
from pve_helpers import APPLIANCE_VOLID, create_ct, destroy_ct, error_of, task_ok, wait_config, wait_task

pytestmark = pytest.mark.host


def test_second_clone_of_a_template_meets_the_disk_lock(api, node, faults) -> None:
    base = int(api.cluster.nextid.get())
    made: list[int] = []
    try:
        create_ct(api, node, base)
        api.nodes(node).lxc(base).template.post()
        wait_config(api, node, base, "template", 1)
        faults(slow=4)  # the first clone's task waits 4 s before it works: the lock window is certain
        first = int(api.cluster.nextid.get())
        upid = api.nodes(node).lxc(base).clone.post(newid=first)
        made.append(first)
        assert api.nodes(node).lxc(base).config.get()["lock"] == "disk"
        assert api.nodes(node).lxc(first).config.get()["lock"] == "create"
        second = int(api.cluster.nextid.get())
        assert second != first  # the new CT's config exists from the start: nextid skips it
        err = error_of(lambda: api.nodes(node).lxc(base).clone.post(newid=second))
        assert (err.status_code, err.content) == (500, "CT is locked (disk)")
        err = error_of(lambda: api.nodes(node).lxc(base).config.put(memory=256))
        assert err.content == "CT is locked (disk)"
        assert api.nodes(node).tasks(upid).status.get()["status"] == "running"
        faults()
        task_ok(api, node, upid)
        assert "lock" not in api.nodes(node).lxc(base).config.get()
        task_ok(api, node, api.nodes(node).lxc(base).clone.post(newid=second))
        made.append(second)
    finally:
        for vmid in [*made, base]:
            destroy_ct(api, node, vmid)


def test_nextid_never_hands_out_an_id_in_use(api, node) -> None:
    """Parallel creators each take nextid then create: ids can collide (Proxmox reserves nothing),
    but nextid never names an id whose config already existed when it was asked."""
    made: list[int] = []
    outcomes: list[str] = []

    def creator(_: int) -> None:
        for _ in range(2):
            in_use = {ct["vmid"] for ct in api.nodes(node).lxc.get()}
            vmid = int(api.cluster.nextid.get())
            assert vmid not in in_use
            try:
                upid = api.nodes(node).lxc.post(vmid=vmid, ostemplate=APPLIANCE_VOLID)
            except ResourceException as exc:
                assert exc.content == f"CT {vmid} already exists on node '{node}'"
                outcomes.append("collided")
                continue
            made.append(vmid)
            assert wait_task(api, node, upid)["exitstatus"] == "OK"
            outcomes.append("created")

    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(creator, range(3)))
        assert outcomes.count("created") == len(set(made)) == len(made) >= 3
    finally:
        for vmid in made:
            destroy_ct(api, node, vmid)
