"""A workspace job's steps: the request each playbook gets from the workspace record, and what its
result writes back. ctforge.jobs.work runs them as it runs a template's.

    workspace   playbooks/workspace.yml: clone the template, let the owner in, install what it lacks
    start/stop  playbooks/workspace_power.yml
    destroy     playbooks/destroy.yml; the record goes with its CT, and the VMID is freed
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ctforge import messages
from ctforge.db.models import Template, Workspace
from ctforge.records import workspaces as workspace_records
from ctforge.records.errors import Conflict
from ctforge.requests import (
    DestroyRequest,
    WorkspacePowerRequest,
    WorkspacePowerResult,
    WorkspaceRequest,
    WorkspaceResult,
)


def workspace_request(service: Any, session: Session, workspace: Workspace, playbook: str) -> Any:
    """The request of `playbook` for `workspace`, from its record (None: nothing to run)."""
    settings = service.settings
    node = workspace.node or settings.proxmox.node
    if playbook == "workspace":
        template = session.get(Template, workspace.template_id)
        if template is None or template.vmid is None:
            raise Conflict(messages.WORKSPACE_TEMPLATE_GONE.format(name=workspace.template.name))
        fields: dict[str, Any] = {
            "ctforge_workspace_name": workspace.name, "ctforge_vmid": workspace.vmid,
            "ctforge_template_vmid": template.vmid, "ctforge_stacks": list(workspace.requested_stacks),
            "ctforge_template_stacks": list(workspace.template_stacks),
            "ctforge_ssh_public_keys": list(workspace.ssh_public_keys),
        }
        if node:
            fields["ctforge_node"] = node
        if template.storage:
            fields["ctforge_storage"] = template.storage
        if settings.apt_proxy is not None:
            fields["ctforge_apt_proxy"] = settings.apt_proxy
        if settings.ssh_timeout_seconds is not None:
            fields["ctforge_ssh_timeout"] = settings.ssh_timeout_seconds
        return WorkspaceRequest.model_validate(fields, context={"catalog": service.catalog})
    if playbook in ("start", "stop"):
        extra = ({"ctforge_ssh_timeout": settings.ssh_timeout_seconds}
                 if settings.ssh_timeout_seconds is not None and playbook == "start" else {})
        if node:
            extra["ctforge_node"] = node
        return WorkspacePowerRequest(ctforge_vmid=workspace.vmid,
                                     ctforge_state="started" if playbook == "start" else "stopped", **extra)
    if playbook == "destroy":
        if workspace.vmid is None:
            return None
        return DestroyRequest(ctforge_vmid=workspace.vmid)
    raise ValueError(f"no such workspace step {playbook!r}")


def apply_workspace_result(service: Any, session: Session, workspace: Workspace, playbook: str,
                           stats: dict[str, Any]) -> None:
    """Write what `playbook` reported into the workspace record."""
    if playbook == "workspace":
        result = WorkspaceResult.model_validate(stats)
        workspace_records.move_status(session, workspace, "running", node=result.node, ip=result.ip,
                                      dev_user=result.dev_user, template_stacks=list(result.template_stacks),
                                      installed_stacks=list(result.installed))
    elif playbook in ("start", "stop"):
        power = WorkspacePowerResult.model_validate(stats)
        to = "running" if power.status == "running" else "stopped"
        if workspace.status == to:  # a retry of a start that had done its work
            return
        facts = {"ip": power.ip} if to == "running" else {}
        workspace_records.move_status(session, workspace, to, node=power.node, **facts)
    elif playbook == "destroy":
        workspace_records.forget(session, workspace)
