"""Proxmox's answers to bad credentials, bad parameters, unknown CTs and taken VMIDs, plus the
fault switch; checked on the wire (status, reason phrase, body) and through proxmoxer."""

from __future__ import annotations

import pytest
from proxmoxer import ProxmoxAPI
from pve_helpers import APPLIANCE_VOLID, create_ct, destroy_ct, error_of, wait_task

pytestmark = pytest.mark.host
VERIFY_FAILED = "Parameter verification failed."


@pytest.fixture(scope="module")
def existing(api, node):
    """One stopped CT that the checks below can collide with."""
    vmid = int(api.cluster.nextid.get())
    create_ct(api, node, vmid)
    yield vmid
    destroy_ct(api, node, vmid)


def test_auth_failures(minipve) -> None:
    status, reason, _ = minipve.request("GET", "/api2/json/version", headers={"Authorization": ""})
    assert (status, reason) == (401, "No ticket")
    bad = f"PVEAPIToken={minipve.env['PROXMOX_USER']}!{minipve.env['PROXMOX_TOKEN_ID']}=wrong"
    status, reason, _ = minipve.request("GET", "/api2/json/version", headers={"Authorization": bad})
    assert status == 401 and reason == "invalid token value!"
    status, reason, _ = minipve.request(
        "POST", "/api2/json/access/ticket", {"username": "root@pam", "password": "wrong"}
    )
    assert (status, reason) == (401, "authentication failure")


def test_ticket_login_and_csrf(minipve, node) -> None:
    api = ProxmoxAPI(
        minipve.env["PROXMOX_HOST"],
        port=int(minipve.env["PROXMOX_PORT"]),
        user="root@pam",
        password=minipve.password,
        verify_ssl=False,
    )
    assert api.version.get()["release"]
    api.cluster.options.put(description="set with a ticket")  # proxmoxer sends the CSRF token
    assert api.cluster.options.get()["description"] == "set with a ticket"
    api.cluster.options.put(delete="description")
    ticket = api.get_tokens()[0]
    status, reason, _ = minipve.request(
        "PUT",
        "/api2/json/cluster/options",
        {"description": "x"},
        headers={"Authorization": "", "Cookie": f"PVEAuthCookie={ticket}"},
    )
    assert (status, reason) == (401, "Permission denied - invalid csrf token")


def test_parameter_errors_on_the_wire(minipve, node) -> None:
    status, reason, body = minipve.request(
        "POST", f"/api2/json/nodes/{node}/lxc", {"vmid": "abc", "memory": 1, "bogus": 1, "arch": "sparc"}
    )
    assert (status, reason) == (400, VERIFY_FAILED)
    assert body == {
        "data": None,
        "message": VERIFY_FAILED + "\n",
        "errors": {
            "vmid": "type check ('integer') failed - got 'abc'",
            "memory": "value must have a minimum value of 16",
            "bogus": "property is not defined in schema and the schema does not allow additional properties",
            "arch": "value 'sparc' does not have a value in the enumeration "
            "'amd64, i386, arm64, armhf, riscv32, riscv64'",
            "ostemplate": "property is missing and it is not optional",
        },
    }
    status, _, body = minipve.request("GET", "/api2/json/cluster/nextid?vmid=42")
    assert status == 400 and body["errors"] == {
        "vmid": "invalid format - value does not look like a valid VM ID"
    }
    status, _, body = minipve.request("GET", f"/api2/json/nodes/{node}/tasks/nonsense/status")
    assert status == 400 and body["errors"] == {"upid": "unable to parse worker upid"}


def test_unknown_ct_and_node(api, node) -> None:
    for call in (
        lambda: api.nodes(node).lxc(999999).status.current.get(),
        lambda: api.nodes(node).lxc(999999).status.start.post(),
        lambda: api.nodes(node).lxc(999999).delete(),
    ):
        err = error_of(call)
        assert (err.status_code, err.content) == (
            500,
            f"Configuration file 'nodes/{node}/lxc/999999.conf' does not exist",
        )
    err = error_of(lambda: api.nodes("elsewhere").lxc.get())
    assert err.status_code == 500 and err.content.startswith("hostname lookup 'elsewhere' failed")


def test_nextid_and_taken_ids(api, node, existing) -> None:
    nextid = api.cluster.nextid.get()
    assert isinstance(nextid, str) and int(nextid) not in {ct["vmid"] for ct in api.nodes(node).lxc.get()}
    err = error_of(lambda: api.cluster.nextid.get(vmid=existing))
    assert err.status_code == 400 and err.errors == {"vmid": f"VM {existing} already exists"}
    assert api.cluster.nextid.get(vmid=999_999_000) == "999999000"
    err = error_of(lambda: api.nodes(node).lxc.post(vmid=existing, ostemplate=APPLIANCE_VOLID))
    assert err.content == f"CT {existing} already exists on node '{node}'"
    try:
        api.cluster.options.put(**{"next-id": f"lower={existing},upper={existing + 1}"})
        assert api.cluster.options.get()["next-id"] == {"lower": existing, "upper": existing + 1}
        err = error_of(lambda: api.cluster.nextid.get())
        assert err.content == f"unable to get any free VMID in range [{existing}, {existing + 1}]"
        api.cluster.options.put(**{"next-id": f"lower={existing},upper={existing + 5}"})
        assert api.cluster.nextid.get() == str(existing + 1)
    finally:
        api.cluster.options.put(delete="next-id")


def test_config_put_digest_and_reply_shapes(api, node, existing) -> None:
    conf = api.nodes(node).lxc(existing).config.get()
    assert api.nodes(node).lxc(existing).config.put(memory=256, digest=conf["digest"]) is None
    err = error_of(lambda: api.nodes(node).lxc(existing).config.put(memory=128, digest=conf["digest"]))
    assert err.content == "detected modified configuration - file changed by other user? Try again."
    assert api.nodes(node).lxc(existing).config.get()["memory"] == 256
    listed = {ct["vmid"]: ct for ct in api.nodes(node).lxc.get()}[existing]
    assert listed["status"] == "stopped" and listed["type"] == "lxc" and listed["maxmem"] == 256 << 20
    resources = {r["vmid"]: r for r in api.cluster.resources.get(type="vm")}
    assert resources[existing]["id"] == f"lxc/{existing}" and resources[existing]["template"] == 0
    content = api.nodes(node).storage("local").content.get(content="vztmpl")
    assert {"volid": APPLIANCE_VOLID, "format": "tzst", "content": "vztmpl"}.items() <= content[0].items()
    err = error_of(lambda: api.nodes(node).aplinfo.post(storage="local", template="nope"))
    assert err.status_code == 400 and err.errors == {"template": "no such template"}


def test_fault_switch(api, node, existing, faults) -> None:
    faults(endpoints={"GET /nodes/{node}/lxc": "cluster not ready, no quorum?"})
    err = error_of(lambda: api.nodes(node).lxc.get())
    assert (err.status_code, err.content) == (500, "cluster not ready, no quorum?")
    faults(tasks={"vzstart": "startup for container failed"})
    status = wait_task(api, node, api.nodes(node).lxc(existing).status.start.post())
    assert status["exitstatus"] == "startup for container failed"
    assert api.nodes(node).lxc(existing).status.current.get()["status"] == "stopped"
    faults()  # cleared: the endpoint answers again
    assert isinstance(api.nodes(node).lxc.get(), list)
    faults(name_late=60)
    vmid = int(api.cluster.nextid.get())
    try:
        create_ct(api, node, vmid)
        entry = {r["vmid"]: r for r in api.cluster.resources.get(type="vm")}[vmid]
        # what a real cluster knows of a guest before its first stats push
        assert entry == {"id": f"lxc/{vmid}", "vmid": vmid, "node": node, "type": "lxc", "status": "unknown"}
        faults(name_late=0)
        entry = {r["vmid"]: r for r in api.cluster.resources.get(type="vm")}[vmid]
        assert entry["name"] == f"ct{vmid}"
    finally:
        destroy_ct(api, node, vmid)


def test_storages_and_content_that_cannot_hold_a_ct(api, node, existing) -> None:
    """`isos` (dir, iso+vztmpl; see tests/conftest.py) is listed like `local` but refuses CT volumes."""
    listed = {s["storage"]: s for s in api.nodes(node).storage.get()}
    assert set(listed) == {"local", "isos"}
    assert listed["isos"]["type"] == "dir" and listed["isos"]["content"] == "iso,vztmpl"
    assert [s["storage"] for s in api.nodes(node).storage.get(content="rootdir")] == ["local"]
    assert {s["storage"] for s in api.nodes(node).storage.get(content="vztmpl")} == {"local", "isos"}
    assert api.nodes(node).storage("isos").content.get() == []
    storages = {r["storage"] for r in api.cluster.resources.get(type="storage")}
    assert storages == {"local", "isos"}
    refusal = {"storage": "storage 'isos' does not support container directories"}
    vmid = int(api.cluster.nextid.get())
    for where in ({"storage": "isos"}, {"rootfs": "isos:4"}):
        err = error_of(lambda w=where: api.nodes(node).lxc.post(vmid=vmid, ostemplate=APPLIANCE_VOLID, **w))
        assert (err.status_code, err.errors) == (400, refusal)
    err = error_of(lambda: api.nodes(node).lxc(existing).clone.post(newid=vmid, full=1, storage="isos"))
    assert (err.status_code, err.errors) == (400, refusal)
    err = error_of(lambda: api.nodes(node).lxc.post(vmid=vmid, ostemplate=APPLIANCE_VOLID, storage="nowhere"))
    assert (err.status_code, err.content) == (500, "storage 'nowhere' does not exist")
    assert vmid not in {ct["vmid"] for ct in api.nodes(node).lxc.get()}  # nothing half-made
