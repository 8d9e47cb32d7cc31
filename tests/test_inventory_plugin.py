"""inventories/ctforge_staging.proxmox.yml: the community.proxmox inventory plugin, run by ansible-inventory
against minipve, lists in group ctforge_staging the running LXC guests tagged ctforge-staging, reached as root
at the IPv4 the CT reports; an untagged CT and a template (even a tagged one) are left out."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from playbook_helpers import REPO, api, destroy, wait_task

pytestmark = [pytest.mark.host]

INVENTORY = REPO / "inventories" / "ctforge_staging.proxmox.yml"
TAGGED, UNTAGGED, TEMPLATE = 7410, 7411, 7412


def eth0_ipv4(px, node: str, vmid: int) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for iface in px.nodes(node).lxc(vmid).interfaces.get() or []:
            if iface["name"] == "eth0" and iface.get("inet"):
                return iface["inet"].split("/")[0]
        time.sleep(0.2)
    raise AssertionError(f"CT {vmid} got no IPv4 address")


def plain(value):
    """--list marks the plugin's values unsafe as {"__ansible_unsafe": value}: the values alone."""
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {
            k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def inventory(minipve) -> dict:
    # TLS stays verified, against minipve's own self-signed certificate (the plugin reads no env switch)
    ca = minipve.state_dir / "etc" / "pve" / "local" / "pve-ssl.pem"
    env = {**os.environ, **minipve.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "REQUESTS_CA_BUNDLE": str(ca)}
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-inventory"), "-i", str(INVENTORY), "--list"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[WARNING]" not in proc.stderr, proc.stderr  # a source that failed to parse is only a warning
    return plain(json.loads(proc.stdout))


@pytest.fixture(scope="module")
def guests(minipve):
    px, node = api(minipve.env), minipve.env["PROXMOX_NODE"]
    appliance = px.nodes(node).storage("local").content.get(content="vztmpl")[0]["volid"]

    def create(vmid: int, **extra) -> None:
        wait_task(px, node, px.nodes(node).lxc.post(
            vmid=vmid, hostname=f"inv{vmid}", ostemplate=appliance, storage="local", rootfs="local:1",
            net0="name=eth0,bridge=vmbr0,ip=dhcp", **extra))

    try:
        create(TAGGED, tags="team-a;ctforge-staging")
        create(UNTAGGED, tags="team-a")
        create(TEMPLATE, tags="ctforge-staging")
        px.nodes(node).lxc(TEMPLATE).template.post()
        for vmid in (TAGGED, UNTAGGED):
            wait_task(px, node, px.nodes(node).lxc(vmid).status.start.post())
        deadline = time.monotonic() + 60
        while not px.nodes(node).lxc(TEMPLATE).config.get().get("template"):
            assert time.monotonic() < deadline, "the template conversion did not finish"
            time.sleep(0.2)
        yield {"ip": {vmid: eth0_ipv4(px, node, vmid) for vmid in (TAGGED, UNTAGGED)}}
    finally:
        present = {ct["vmid"] for ct in px.nodes(node).lxc.get()}
        for vmid in (TAGGED, UNTAGGED, TEMPLATE):
            if vmid in present:
                destroy(px, node, vmid)


def test_a_tagged_running_ct_is_in_ctforge_staging_at_its_address_and_nothing_else_is(minipve, guests):
    listed = inventory(minipve)
    assert listed["ctforge_staging"]["hosts"] == [f"inv{TAGGED}"]
    hostvars = listed["_meta"]["hostvars"]
    assert set(hostvars) == {f"inv{TAGGED}"}  # the untagged CT and the tagged template are not hosts at all
    host = hostvars[f"inv{TAGGED}"]
    assert host["ansible_host"] == guests["ip"][TAGGED]
    assert host["ansible_user"] == "root"
    assert host["proxmox_vmid"] == TAGGED
    assert sorted(host["proxmox_tags_parsed"]) == ["ctforge-staging", "team-a"]


def test_a_stopped_staging_ct_is_no_host_of_the_group(minipve, guests):
    px, node = api(minipve.env), minipve.env["PROXMOX_NODE"]
    wait_task(px, node, px.nodes(node).lxc(TAGGED).status.stop.post())  # the last test of the module
    listed = inventory(minipve)
    assert not listed.get("ctforge_staging", {}).get("hosts")
    assert "ansible_host" not in listed["_meta"]["hostvars"][f"inv{TAGGED}"]  # listed, with no address
