"""Workspaces: containers developers work in, cloned from the template that covers the most.

    POST /workspaces                 a record with its VMID, and the create job (202)
    POST /workspaces/plan            which template a workspace would come from, what it would install
    GET  /workspaces, /workspaces/{id}
    POST /workspaces/{id}/start|stop|retry|destroy     each one job (202); destroy frees the VMID

A workspace is its owner's (and every admin's): nobody else sees it. The routes only queue jobs.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from ctforge.api.deps import CurrentUser, ReadSession, ServiceDep, WriteSession, commit
from ctforge.api.routes.jobs import job_public
from ctforge.api.routes.templates import BODY_ERRORS, ERRORS
from ctforge.api.schemas import (
    JobPublic,
    WorkspaceCreate,
    WorkspaceCreated,
    WorkspacePlan,
    WorkspacePublic,
    WorkspacesPublic,
    WorkspaceStatus,
)
from ctforge.catalog import Catalog
from ctforge.db.models import Workspace
from ctforge.detect import detect_stacks
from ctforge.records import workspaces as records
from ctforge.records.workspaces import WorkspaceFields

router = APIRouter(prefix="/workspaces", tags=["workspaces"])

Action = Literal["start", "stop", "retry", "destroy"]


def public(workspace: Workspace) -> WorkspacePublic:
    return WorkspacePublic(
        id=workspace.id, owner=workspace.owner.name, name=workspace.name, template_id=workspace.template_id,
        template_name=workspace.template.name, status=workspace.status,  # type: ignore[arg-type]
        vmid=workspace.vmid, node=workspace.node, ip=workspace.ip, dev_user=workspace.dev_user,
        requested_stacks=workspace.requested_stacks, template_stacks=workspace.template_stacks,
        installed_stacks=workspace.installed_stacks, ssh_public_keys=workspace.ssh_public_keys,
        detected=workspace.detected, error_message=workspace.error_message,
        running_at=workspace.running_at, created_at=workspace.created_at, updated_at=workspace.updated_at)


def _wanted(body: WorkspaceCreate, catalog: Catalog) -> tuple[list[str], dict[str, Any]]:
    """The stacks asked for plus those the project files give away, and what gave them away."""
    if not body.project_files:
        return list(body.stacks), {}
    detection = detect_stacks({path: text.encode() for path, text in body.project_files.items()}, catalog)
    found = [s for s in detection.stack_ids() if s not in body.stacks]
    return [*body.stacks, *found], detection.model_dump(mode="json")


@router.post("/plan", response_model=WorkspacePlan, responses=BODY_ERRORS)
def plan_workspace(body: WorkspaceCreate, session: ReadSession, user: CurrentUser,
                   service: ServiceDep) -> WorkspacePlan:
    """What POST /workspaces would do with this body, without doing it."""
    stacks, detected = _wanted(body, service.catalog)
    choice = records.choose_template(session, service.catalog, user, stacks, template_id=body.template_id)
    return WorkspacePlan(template_id=choice.template.id, template_name=choice.template.name,
                         wanted=choice.wanted, covered=choice.covered, install=choice.missing,
                         extra=choice.extra, detected=detected)


@router.post("", status_code=202, response_model=WorkspaceCreated, responses=BODY_ERRORS)
def create_workspace(body: WorkspaceCreate, session: WriteSession, user: CurrentUser, service: ServiceDep,
                     request: Request, response: Response) -> WorkspaceCreated:
    """A workspace from the named template, or from the ready template that covers the most of the
    stacks (then the fewest stacks nobody asked for, then a default); its VMID is claimed from the
    workspace range and its create job queued: follow it at /jobs/{id}/stream."""
    in_use = service.proxmox.used_vmids()  # before any write: Proxmox down changes nothing
    stacks, detected = _wanted(body, service.catalog)
    fields = WorkspaceFields(name=body.name, stacks=stacks, ssh_public_keys=list(body.ssh_public_keys),
                             template_id=body.template_id, detected=detected)
    workspace, job = records.create_workspace(session, service.catalog, service.settings, user, fields,
                                              in_use=in_use)
    response.headers["Location"] = request.app.url_path_for("get_workspace", workspace_id=str(workspace.id))
    answer = commit(session, WorkspaceCreated(workspace=public(workspace), job=job_public(job)))
    service.jobs.wake()
    return answer


@router.get("", response_model=WorkspacesPublic, responses=ERRORS)
def list_workspaces(session: ReadSession, user: CurrentUser, status: WorkspaceStatus | None = None,
                    template_id: uuid.UUID | None = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> WorkspacesPublic:
    """Your workspaces (an admin's: everyone's), oldest first."""
    count, rows = records.list_workspaces(session, user, status=status, template_id=template_id,
                                          limit=limit, offset=offset)
    return WorkspacesPublic(data=[public(w) for w in rows], count=count)


def _visible(workspace_id: uuid.UUID, session: ReadSession, user: CurrentUser) -> Workspace:
    return records.get_workspace(session, workspace_id, user)


def _to_change(workspace_id: uuid.UUID, session: WriteSession, user: CurrentUser) -> Workspace:
    return records.get_workspace(session, workspace_id, user, for_update=True)


WorkspaceDep = Annotated[Workspace, Depends(_visible)]
WorkspaceToChange = Annotated[Workspace, Depends(_to_change)]


@router.get("/{workspace_id}", response_model=WorkspacePublic, responses=ERRORS)
def get_workspace(workspace: WorkspaceDep) -> WorkspacePublic:
    return public(workspace)


@router.post("/{workspace_id}/{action}", status_code=202, response_model=JobPublic, responses=ERRORS)
def workspace_action(action: Action, workspace: WorkspaceToChange, session: WriteSession,
                     user: CurrentUser, service: ServiceDep) -> JobPublic:
    """Queue the action as a job: start (stopped), stop (running), retry (error: the failed job's
    steps again; a create takes up the CT it had made), destroy (the CT, the VMID and the record)."""
    job = records.start_action(session, user, workspace, action)
    answer = commit(session, job_public(job))
    service.jobs.wake()
    return answer
