"""Action plugin ctforge_workspace_request: every check a workspace request must pass before Proxmox is
changed, in one task on the controller.

The request's formats (ctforge.formats.request_problems, as check_request.yml), the owner's keys, the
stacks through the catalog (as ctforge_stacks), the build key, then the cluster: where the template and
any CT at the workspace's VMID are, that the template is one, that the VMID is free or holds this very
workspace (taken up after an interrupted run), that the storage holds containers. Each refusal names
the variable or says what to fix. It was some thirty tasks of playbooks/tasks/validate_workspace.yml;
at 30 to 45 ms a task it was a second of issue #14's 3-s request -> SSH-ready budget.

Returns, for the playbook to record (validate_workspace.yml): req (the request with its defaults, the
node and the storage), template (its config and node), existing (the config, node and status of the CT
taken up, or None), clone_full, ws_config (what the CT's config must still change) and build_key
({public, fingerprint}). The Proxmox options are pve_api's (module_defaults group).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ansible.errors import AnsibleFilterError
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import action_loader, filter_loader

REFUSED = "The request is refused, nothing was touched: "
REQUIRED = ("ctforge_workspace_name", "ctforge_vmid", "ctforge_template_vmid", "ctforge_ssh_public_keys")
LINKED_CLONE_TYPES = ("dir", "zfspool", "lvmthin", "rbd", "btrfs", "cephfs")


class Refused(Exception):
    """Ends the task as failed with this message."""


def _sibling(name: str):
    """The module of a sibling action plugin (pve_api's client, ctforge_stacks' resolution)."""
    return sys.modules[action_loader.get(name, class_only=True).__module__]


def settle(check: dict) -> dict:
    """The request (__req), after its fields passed their formats. The task passes every field with the
    playbook's default already applied (validate_workspace.yml, kept equal to ctforge.requests'
    WorkspaceRequest by tests/test_requests.py); None is a field not given."""
    missing = [var for var in REQUIRED if check.get(var) is None]
    if missing:
        raise Refused(
            "Set ctforge_workspace_name (a hostname: lower-case letters, digits and '-'), ctforge_vmid "
            "(the workspace's VMID), ctforge_template_vmid (the ready template to clone) and "
            f"ctforge_ssh_public_keys (the owner's OpenSSH public keys); missing: {', '.join(missing)}.")
    from ctforge.formats import request_problems

    problems = request_problems(check)
    if problems:
        raise Refused(REFUSED + "; ".join(problems))
    if not check["ctforge_ssh_public_keys"]:
        raise Refused(REFUSED + "ctforge_ssh_public_keys lists no key; give the owner's OpenSSH public "
                      "keys, one line each (type, base64, optional comment): the workspace lets them in "
                      "with these.")
    name = check["ctforge_workspace_name"]
    keep = check["ctforge_keep_build_key"]
    return {
        "name": name,
        "vmid": int(check["ctforge_vmid"]),
        "template": int(check["ctforge_template_vmid"]),
        "parent": str(check["ctforge_template_vmid"]),  # tasks/install_stacks.yml: no base role on a clone
        "stacks": check["ctforge_stacks"],
        "template_stacks": check["ctforge_template_stacks"],
        "ssh_public_keys": check["ctforge_ssh_public_keys"],
        "description": (f"ctforge workspace {name}" if check["ctforge_description"] is None
                        else check["ctforge_description"]),
        "net0": check["ctforge_net0"],
        "cores": check["ctforge_cores"],
        "memory": check["ctforge_memory"],
        "apt_proxy": check["ctforge_apt_proxy"],
        "ssh_timeout": int(check["ctforge_ssh_timeout"]),
        "dev_user": check["ctforge_dev_user"] or "",  # empty: the one the template's base fact records
        "ssh_key": os.path.expanduser(check["ctforge_ssh_private_key_file"]),
        "keep_build_key": keep if isinstance(keep, bool) else str(keep).lower() in ("1", "on", "yes", "true"),
    }


def check_stacks(req: dict) -> None:
    """The stacks the work needs, and those the template is said to carry, are the catalog's."""
    resolve = _sibling("ctforge_stacks").resolve
    wanted = resolve(req["stacks"], [], None, False)
    if wanted.get("failed"):
        raise Refused(f"{REFUSED}ctforge_stacks: {wanted['msg']}")
    if req["template_stacks"] is not None:
        given = resolve([], req["template_stacks"], None, False)
        if given.get("failed"):
            raise Refused(f"{REFUSED}ctforge_template_stacks: {given['msg']}")


def build_key(path: str) -> dict:
    """The build key's public half and fingerprint: the template trusts the key that built it, and a new
    key would be trusted by nothing, so none is made here."""
    public = Path(f"{path}.pub")
    if not (Path(path).is_file() and public.is_file()):
        raise Refused(f"The build key {path} (or its .pub) is missing: the CT trusts the key it was "
                      "provisioned with; set ctforge_ssh_private_key_file (or CTFORGE_STATE_DIR) to where "
                      "that key is.")
    line = public.read_text().rstrip()
    try:  # the filter the playbooks use (plugins/filter/ctforge_ssh.py)
        fingerprint = filter_loader.get("ssh_fingerprint").j2_function(line)
    except AnsibleFilterError:
        raise Refused(f"The build key's public half {public} is not an OpenSSH public key line") from None
    return {"public": line, "fingerprint": fingerprint}


def read_cluster(client, req: dict, node_given: str | None, storage_given: str | None) -> dict:
    """The template and the CT at the workspace's VMID as Proxmox has them; the node and storage settled.
    /cluster/resources locates each guest; its name and template flag lag behind on a real cluster
    (community.proxmox#510), so the configs are what the checks read."""
    guests = client.call("GET", "/cluster/resources", {"type": "vm"}) or []
    lxc = [g for g in guests if g.get("type") == "lxc"]
    template_at = next((g for g in lxc if g.get("vmid") == req["template"]), None)
    existing_at = next((g for g in lxc if g.get("vmid") == req["vmid"]), None)
    other = next((g for g in guests if g.get("vmid") == req["vmid"] and g.get("type") != "lxc"), None)
    if other is not None:
        raise Refused(f"VMID {req['vmid']} is taken by virtual machine '{other.get('name', '?')}' on node "
                      f"{other.get('node', '?')}: choose a free ctforge_vmid.")
    if template_at is None:
        raise Refused(f"Template {req['template']} does not exist: set ctforge_template_vmid to the VMID "
                      "of a ready template.")
    template = client.call("GET", f"/nodes/{template_at['node']}/lxc/{req['template']}/config") or {}
    if int(template.get("template") or 0) != 1:
        raise Refused(f"CT {req['template']} ('{template.get('hostname', '?')}') is not a template: set "
                      "ctforge_template_vmid to a ready template's VMID (finalize it first if it is a "
                      "staging CT).")
    existing = None
    if existing_at is not None:
        node = existing_at["node"]
        config = client.call("GET", f"/nodes/{node}/lxc/{req['vmid']}/config") or {}
        if config.get("hostname", "") != req["name"] or int(config.get("template") or 0) != 0:
            kind = "template" if int(config.get("template") or 0) == 1 else "CT"
            raise Refused(f"VMID {req['vmid']} is taken by {kind} '{config.get('hostname', '?')}' on node "
                          f"{node}: choose a free ctforge_vmid.")
        status = client.call("GET", f"/nodes/{node}/lxc/{req['vmid']}/status/current") or {}
        existing = {**config, "node": node, "status": status.get("status")}
    req["node"] = existing["node"] if existing else node_given or template_at["node"]
    req["storage"] = storage_given or str(template.get("rootfs", "")).split(":")[0]
    return {"template": {**template, "node": template_at["node"]}, "existing": existing}


def clone_full(client, req: dict, template: dict) -> bool:
    """A linked clone where the storage allows it, a full one otherwise: onto another storage than the
    template's root disk, onto another node, or onto a storage type without linked clones (as
    tasks/clone_type.yml decides for provision's parent)."""
    storages = client.call("GET", f"/nodes/{req['node']}/storage") or []
    storage = next((s for s in storages if s.get("storage") == req["storage"]), None)
    if storage is None:
        names = ", ".join(s.get("storage", "?") for s in storages)
        raise Refused(f"Storage '{req['storage']}' does not exist on node {req['node']} (it has {names}): "
                      "set ctforge_storage.")
    content = str(storage.get("content", ""))
    if "rootdir" not in content.split(","):
        able = ", ".join(s["storage"] for s in storages if "rootdir" in str(s.get("content", "")))
        raise Refused(f"Storage '{req['storage']}' cannot hold containers: its content is {content}, without "
                      f"rootdir. Set ctforge_storage to one of {able}.")
    return (str(template.get("rootfs", "")).split(":")[0] != storage["storage"]
            or template["node"] != req["node"]
            or storage.get("type") not in LINKED_CLONE_TYPES)


def config_changes(req: dict, now: dict) -> dict:
    """What the clone (a copy of the template's config) or the CT taken up still lacks: the workspace tag,
    the resources asked for, the network when a key of ctforge_net0 differs. Empty: no call at all."""
    tags = re.findall(r"[^;, ]+", str(now.get("tags") or ""))
    changes: dict = {}
    if "ctforge-workspace" not in tags:
        changes["tags"] = ";".join([*tags, "ctforge-workspace"])
    for key in ("cores", "memory"):
        if req[key] is not None and str(req[key]) != str(now.get(key, "")):
            changes[key] = int(req[key])
    net_now = str(now.get("net0") or "").split(",")
    if any(part not in net_now for part in req["net0"].split(",")):
        changes["net0"] = req["net0"]
    return changes


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        pve = _sibling("pve_api")
        spec = {key: value for key, value in pve.ARGUMENT_SPEC.items()
                if key.startswith("api_") or key == "validate_certs"}
        spec["request"] = {"type": "dict", "required": True}
        _, params = self.validate_argument_spec(argument_spec=spec)
        check = params["request"]
        try:
            req = settle(check)
            check_stacks(req)
            key = build_key(req["ssh_key"])
            client = pve.PveClient(params)
            found = read_cluster(client, req, check.get("ctforge_node"), check.get("ctforge_storage"))
            full = None
            if found["existing"] is None:
                full = clone_full(client, req, found["template"])
            changes = config_changes(req, found["existing"] or found["template"])
        except Refused as exc:
            return {**result, "failed": True, "msg": str(exc)}
        except pve.PveError as exc:
            return {**result, "failed": True, **exc.fields}
        return {**result, "changed": False, "req": req, "template": found["template"],
                "existing": found["existing"], "clone_full": full, "ws_config": changes, "build_key": key}
