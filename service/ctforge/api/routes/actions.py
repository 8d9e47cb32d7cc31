"""Lifecycle actions on a template: each queues one job (202) that the worker pool runs.

    POST /templates/{id}/provision   pending|error|destroyed → provisioning → staging
    POST /templates/{id}/finalize    staging → ready
    POST /templates/{id}/build       provision then finalize, in one job
    POST /templates/{id}/retry       error → again from the playbook that failed
    POST /templates/{id}/rebuild     ready: a new CT from the parent; once it is ready it replaces
                                     the old one, which is destroyed (the record stays ready meanwhile)
    POST /templates/{id}/destroy     the CT removed and the VMID freed; the record stays, destroyed;
                                     refused while workspaces are made from it, unless force=true,
                                     which destroys them first

One job at a time on a template (409 naming the running one); a child starts only from a ready
parent. The route only queues: no route runs a playbook.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from ctforge.api.deps import CurrentUser, ServiceDep, TemplateToChange, WriteSession, commit
from ctforge.api.routes.jobs import job_public
from ctforge.api.routes.templates import ERRORS
from ctforge.api.schemas import JobPublic
from ctforge.records import jobs as job_records

router = APIRouter(prefix="/templates", tags=["actions"])

Action = Literal["provision", "finalize", "build", "retry", "rebuild", "destroy"]


@router.post("/{template_id}/{action}", status_code=202, response_model=JobPublic, responses=ERRORS)
def start_action(action: Action, template: TemplateToChange, session: WriteSession, user: CurrentUser,
                 service: ServiceDep, force: bool = False) -> JobPublic:
    """Queue the action as a job; follow it at /jobs/{id} and /jobs/{id}/stream. `force` (destroy):
    destroy the workspaces made from the template first."""
    in_use = service.proxmox.used_vmids() if template.vmid is None or action == "rebuild" else ()
    job = job_records.start_action(session, service.catalog, service.settings, user, template, action,
                                   in_use=in_use, force=force)
    answer = commit(session, job_public(job))
    service.jobs.wake()
    if service.deliverer is not None:
        service.deliverer.wake()
    return answer
