"""Templates: the family's records. Mutations need a token; reads show what the caller may see."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ctforge.api.deps import (
    CurrentUser,
    OptionalUser,
    ReadSession,
    Service,
    ServiceDep,
    TemplateDep,
    TemplateToChange,
    WriteSession,
    commit,
)
from ctforge.api.schemas import (
    EffectiveStacks,
    Message,
    Status,
    TemplateCreate,
    TemplateNode,
    TemplatePublic,
    TemplatesPublic,
    TemplateTree,
    TemplateUpdate,
    UserName,
)
from ctforge.db.models import Template
from ctforge.records import templates as records
from ctforge.records.templates import TemplateFields

router = APIRouter(prefix="/templates", tags=["templates"])

ERRORS = {code: {"model": Message} for code in (401, 403, 404, 409, 422, 503)}
# A body routes' own: 400 when it cannot be decoded at all (not UTF-8: FastAPI's parse error; JSON
# that does not parse is a 422), 413 over CTFORGE_MAX_BODY_BYTES (middleware.BodyLimit).
BODY_ERRORS = {**ERRORS, 400: {"model": Message}, 413: {"model": Message}}
# A read answers without a token too (the defaults): the token is optional, as OpenAPI says with an
# empty alternative beside the bearer scheme FastAPI lists.
TOKEN_OPTIONAL = {"security": [{}]}
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many items.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Skip this many items first.")]


def public(service: Service, template: Template) -> TemplatePublic:
    catalog = service.catalog
    built_from = template.built_stacks if template.built_fingerprint else None
    today = service.fingerprints.of(built_from) if built_from is not None else None
    return TemplatePublic(
        id=template.id, owner=template.owner.name, parent_id=template.parent_id,
        base_ct_template=template.base_ct_template, name=template.name,
        description=template.description, vmid=template.vmid, node=template.node,
        storage=template.storage, status=template.status,  # type: ignore[arg-type]
        tech_stacks=template.tech_stacks, inherited_tech_stacks=template.inherited_tech_stacks,
        effective_stacks=records.effective_stacks(catalog, template), is_default=template.is_default,
        error_message=template.error_message, staging_container_ip=template.staging_container_ip,
        env_vars=template.env_vars, needs_rebuild=records.needs_rebuild(template, today),
        built_stacks=template.built_stacks, built_fingerprint=template.built_fingerprint,
        build_key_fingerprint=template.build_key_fingerprint, ready_at=template.ready_at,
        created_at=template.created_at, updated_at=template.updated_at,
    )


@router.post("", status_code=201, response_model=TemplatePublic, responses=BODY_ERRORS)
def create_template(body: TemplateCreate, session: WriteSession, user: CurrentUser,
                    service: ServiceDep, request: Request, response: Response) -> TemplatePublic:
    """A pending template with its VMID claimed: the lowest free id of the template range, in no
    claim and in use nowhere on the cluster. A child names a ready parent and inherits its stacks."""
    in_use = service.proxmox.used_vmids()  # before any write: Proxmox down changes nothing
    fields = TemplateFields(**body.model_dump(), given=set(body.model_fields_set))
    template = records.create_template(session, service.catalog, service.settings, user, fields,
                                       in_use=in_use)
    response.headers["Location"] = request.app.url_path_for("get_template", template_id=str(template.id))
    return commit(session, public(service, template))


@router.get("", response_model=TemplatesPublic, responses=ERRORS, openapi_extra=TOKEN_OPTIONAL)
def list_templates(session: ReadSession, user: OptionalUser, service: ServiceDep,
                   status: Status | None = None, owner: UserName | None = None,
                   parent_id: uuid.UUID | None = None, limit: Limit = 50,
                   offset: Offset = 0) -> TemplatesPublic:
    """The templates you may see (yours and the defaults; an admin sees all), oldest first."""
    page = records.list_templates(session, user, status=status, owner=owner, parent_id=parent_id,
                                  limit=limit, offset=offset)
    return TemplatesPublic(data=[public(service, t) for t in page.items], count=page.count)


@router.get("/tree", response_model=TemplateTree, responses=ERRORS, openapi_extra=TOKEN_OPTIONAL)
def template_tree(session: ReadSession, user: OptionalUser, service: ServiceDep) -> TemplateTree:
    """The family as a tree: each template you may see under its parent (a root when its parent is
    not one you may see), children oldest first."""
    everything = records.list_templates(session, user, limit=1_000_000).items
    by_parent: dict[uuid.UUID | None, list[Template]] = {}
    ids = {t.id for t in everything}
    for template in everything:
        parent = template.parent_id if template.parent_id in ids else None
        by_parent.setdefault(parent, []).append(template)

    def node(template: Template) -> TemplateNode:
        return TemplateNode(
            id=template.id, name=template.name, owner=template.owner.name,
            status=template.status,  # type: ignore[arg-type]
            vmid=template.vmid, is_default=template.is_default,
            effective_stacks=records.effective_stacks(service.catalog, template),
            children=[node(c) for c in by_parent.get(template.id, [])])

    return TemplateTree(data=[node(t) for t in by_parent.get(None, [])], count=len(everything))


@router.get("/{template_id}", response_model=TemplatePublic, responses=ERRORS,
            openapi_extra=TOKEN_OPTIONAL)
def get_template(template: TemplateDep, service: ServiceDep) -> TemplatePublic:
    return public(service, template)


@router.get("/{template_id}/effective-stacks", response_model=EffectiveStacks, responses=ERRORS,
            openapi_extra=TOKEN_OPTIONAL)
def effective_stacks(template: TemplateDep, service: ServiceDep) -> EffectiveStacks:
    """Inherited + own, in dependency order, each once: what a build of this template installs."""
    return EffectiveStacks(template_id=template.id, inherited=template.inherited_tech_stacks,
                           own=template.tech_stacks,
                           effective=records.effective_stacks(service.catalog, template))


@router.patch("/{template_id}", response_model=TemplatePublic, responses=BODY_ERRORS)
def update_template(body: TemplateUpdate, template: TemplateToChange, session: WriteSession,
                    user: CurrentUser, service: ServiceDep) -> TemplatePublic:
    """Change name, description, stacks, env vars, parent or is_default; refused while a job works on
    it. A staging or ready template keeps its CT as built: a change of what goes into it sets
    needs_rebuild."""
    fields = TemplateFields(**body.model_dump(), given=set(body.model_fields_set))
    records.update_template(session, service.catalog, user, template, fields)
    return commit(session, public(service, template))


@router.delete("/{template_id}", status_code=204, responses=ERRORS)
def delete_template(template: TemplateToChange, session: WriteSession, user: CurrentUser,
                    service: ServiceDep) -> Response:
    """Delete the record and free its VMID; refused while a child inherits from it, a job works on
    it, or its CT exists (POST /templates/{id}/destroy removes it first)."""
    on_cluster = service.proxmox.used_vmids(fresh=True) if template.vmid is not None else set()
    records.delete_template(session, user, template, on_cluster=on_cluster)
    return commit(session, Response(status_code=204))
