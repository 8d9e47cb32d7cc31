"""Which handler serves which Proxmox path (each one also has its parameters in minipve.paramdefs)."""

from __future__ import annotations

from minipve.api import cluster, lxc, power, storage, tasks_api
from minipve.api.server import Router

CT = "/nodes/{node}/lxc/{vmid}"
TASK = "/nodes/{node}/tasks/{upid}"
STORE = "/nodes/{node}/storage/{storage}"


def build_router() -> Router:
    r = Router()
    r.add("GET", "/version", cluster.version)
    r.add("GET", "/access/ticket", cluster.ticket_dummy)
    r.add("POST", "/access/ticket", cluster.ticket)
    r.add("GET", "/nodes", cluster.nodes)
    r.add("GET", "/nodes/{node}/status", cluster.node_status)
    r.add("GET", "/cluster/status", cluster.cluster_status)
    r.add("GET", "/cluster/resources", cluster.resources)
    r.add("GET", "/cluster/nextid", cluster.nextid)
    r.add("GET", "/cluster/options", cluster.options_get)
    r.add("PUT", "/cluster/options", cluster.options_put)
    r.add("GET", "/pools", cluster.pools)
    r.add("GET", "/nodes/{node}/qemu", cluster.qemu_list)
    r.add("GET", "/nodes/{node}/lxc", lxc.ct_list)
    r.add("GET", f"{CT}/snapshot", lxc.snapshots)
    r.add("POST", "/nodes/{node}/lxc", lxc.create)
    r.add("GET", CT, lxc.ct_index)
    r.add("DELETE", CT, lxc.destroy)
    r.add("POST", f"{CT}/clone", lxc.clone)
    r.add("GET", f"{CT}/config", lxc.config_get)
    r.add("PUT", f"{CT}/config", lxc.config_put)
    r.add("POST", f"{CT}/template", lxc.template)
    r.add("GET", f"{CT}/status", power.status_index)
    r.add("GET", f"{CT}/status/current", power.current)
    r.add("POST", f"{CT}/status/start", power.start)
    r.add("POST", f"{CT}/status/stop", power.stop)
    r.add("POST", f"{CT}/status/shutdown", power.shutdown)
    r.add("POST", f"{CT}/status/reboot", power.reboot)
    r.add("GET", f"{CT}/interfaces", power.interfaces)
    r.add("GET", "/nodes/{node}/storage", storage.storage_list)
    r.add("GET", f"{STORE}/status", storage.storage_status)
    r.add("GET", f"{STORE}/content", storage.content_list)
    r.add("DELETE", f"{STORE}/content/{{volume}}", storage.content_delete)
    r.add("GET", "/nodes/{node}/aplinfo", storage.aplinfo_list)
    r.add("POST", "/nodes/{node}/aplinfo", storage.aplinfo_download)
    r.add("GET", "/nodes/{node}/tasks", tasks_api.task_list)
    r.add("GET", TASK, tasks_api.task_index)
    r.add("GET", f"{TASK}/status", tasks_api.task_status)
    r.add("GET", f"{TASK}/log", tasks_api.task_log)
    return r
