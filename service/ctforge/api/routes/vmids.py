"""VMIDs: the ranges, the claims, and what Proxmox itself lists."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from ctforge.api.deps import CurrentUser, ReadSession, ServiceDep
from ctforge.api.schemas import (
    GuestPublic,
    Message,
    ProxmoxPublic,
    VmidClaimPublic,
    VmidRangePublic,
    VmidsPublic,
)
from ctforge.db.models import Template, VmidClaim, Workspace
from ctforge.records.errors import Unavailable
from ctforge.records.templates import can_see
from ctforge.records.workspaces import can_see as can_see_workspace
from ctforge.settings import KINDS

router = APIRouter(prefix="/vmids", tags=["vmids"])


@router.get("", response_model=VmidsPublic, responses={code: {"model": Message} for code in (401, 422)})
def list_vmids(session: ReadSession, user: CurrentUser, service: ServiceDep,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> VmidsPublic:
    """Which VMIDs are claimed, by which record and owner, in which range, and which guests the
    cluster lists (claimed or not: one made by hand in a range shows with claimed=false)."""
    ranges = {kind: service.settings.vmid_range(kind) for kind in KINDS}
    try:
        guests = service.proxmox.guests()
        error = None
    except Unavailable as exc:
        guests, error = [], exc.message
    on_cluster = {g.vmid for g in guests}
    asked = service.proxmox.configured and error is None

    by_kind = select(VmidClaim.kind, func.count()).group_by(VmidClaim.kind)
    counts: dict[str, int] = {kind: count for kind, count in session.execute(by_kind)}
    total = sum(counts.values())
    rows = session.execute(
        select(VmidClaim, Template).outerjoin(Template, VmidClaim.template_id == Template.id)
        .order_by(VmidClaim.vmid).limit(limit).offset(offset)).all()
    workspace_ids = [c.workspace_id for c, _ in rows if c.workspace_id is not None]
    workspaces = {w.id: w for w in session.scalars(
        select(Workspace).where(Workspace.id.in_(workspace_ids))).unique()} if workspace_ids else {}
    claimed = set(session.scalars(select(VmidClaim.vmid).where(VmidClaim.vmid.in_(on_cluster)))) \
        if on_cluster else set()

    def shown(template: Template | None) -> Template | None:
        """Another user's private template is a claim without a name here."""
        return template if template is not None and can_see(user, template) else None

    def mine(workspace: Workspace | None) -> Workspace | None:
        return workspace if workspace is not None and can_see_workspace(user, workspace) else None

    def in_range(vmid: int) -> str | None:
        return next((kind for kind, r in ranges.items() if vmid in r), None)

    return VmidsPublic(
        ranges=[VmidRangePublic(kind=kind, first=r.first, last=r.last, size=r.size,  # type: ignore[arg-type]
                                claimed=counts.get(kind, 0)) for kind, r in ranges.items()],
        data=[VmidClaimPublic(vmid=c.vmid, kind=c.kind, template_id=c.template_id,
                              template_name=shown(t).name if shown(t) else None,
                              workspace_id=mine(w).id if mine(w) else None,
                              workspace_name=mine(w).name if mine(w) else None,
                              owner=(shown(t).owner.name if shown(t) else mine(w).owner.name if mine(w)
                                     else None),
                              on_cluster=(c.vmid in on_cluster) if asked else None, claimed_at=c.created_at)
              for c, t in rows for w in [workspaces.get(c.workspace_id)]],
        count=total,
        proxmox=ProxmoxPublic(
            configured=service.proxmox.configured, reachable=asked if service.proxmox.configured else None,
            error=error,
            guests=[GuestPublic(vmid=g.vmid, node=g.node, type=g.type, name=g.name, template=g.template,
                                status=g.status, claimed=g.vmid in claimed,
                                in_range=in_range(g.vmid))  # type: ignore[arg-type]
                    for g in sorted(guests, key=lambda g: g.vmid)]),
    )
