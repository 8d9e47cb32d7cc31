"""Template records: the family's rules, and the one function that moves a status.

Every function takes the caller's session and writes only through it, so a refusal raised
half-way leaves the transaction to roll back whole: a failed request changes no row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ctforge import messages, notify
from ctforge.catalog import Catalog, CatalogError
from ctforge.db.models import Job, Template, User, utcnow
from ctforge.records import vmids
from ctforge.records.errors import Conflict, Forbidden, Invalid, NotFound
from ctforge.settings import Settings

# pending → provisioning → staging → ready; any of them → error; error → back by retry. A destroy
# job takes any record whose CT is not being made to destroyed; provision makes it again from there.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"provisioning", "error", "destroyed"}),
    "provisioning": frozenset({"staging", "error"}),
    "staging": frozenset({"ready", "error", "destroyed"}),
    "ready": frozenset({"error", "destroyed"}),
    "error": frozenset({"pending", "provisioning", "staging", "destroyed"}),
    "destroyed": frozenset({"provisioning"}),
}
BUSY = frozenset({"provisioning"})  # a job works on the CT: the record waits for it
NEEDS_REBUILD_AFTER_EDIT = frozenset({"staging", "ready"})  # the CT exists: an edit is not in it yet


# --- who sees and who changes -------------------------------------------------------------------

def visible_to(user: User | None) -> ColumnElement[bool]:
    """Admins see every template; a user their own and the defaults; no token: the defaults."""
    if user is not None and user.is_admin:
        return true()
    if user is None:
        return Template.is_default == true()
    return or_(Template.owner_id == user.id, Template.is_default == true())


def can_see(user: User | None, template: Template) -> bool:
    return template.is_default or (user is not None and (user.is_admin or template.owner_id == user.id))


def check_may_change(user: User, template: Template) -> None:
    if not (user.is_admin or template.owner_id == user.id):
        raise Forbidden(messages.TEMPLATE_NOT_YOURS.format(name=template.name, owner=template.owner.name))


def get_template(session: Session, template_id: uuid.UUID, user: User | None, *,
                 for_update: bool = False) -> Template:
    query = select(Template).where(Template.id == template_id)
    if for_update:
        query = query.with_for_update(of=Template)
    template = session.scalar(query)
    if template is None:
        raise NotFound(messages.TEMPLATE_NOT_FOUND.format(id=template_id))
    if not can_see(user, template):
        raise Forbidden(messages.TEMPLATE_NOT_VISIBLE.format(id=template_id))
    return template


# --- stacks and the family ----------------------------------------------------------------------

def check_stacks(catalog: Catalog, stacks: Iterable[str]) -> list[str]:
    stacks = list(stacks)
    try:
        catalog.resolve(stacks)
    except CatalogError as exc:
        raise Invalid(str(exc)) from None
    return stacks


def effective_stacks(catalog: Catalog, template: Template) -> list[str]:
    """Inherited then own, in dependency order, each once."""
    return catalog.effective(template.inherited_tech_stacks, template.tech_stacks)


def check_parent(session: Session, catalog: Catalog, user: User, parent_id: uuid.UUID,
                 child: Template | None = None) -> Template:
    """The parent a child may be made from (or moved under): visible, ready, with a VMID, no cycle."""
    try:  # locked: a delete of the parent waits for the child, or the child sees it gone
        parent = get_template(session, parent_id, user, for_update=True)
    except (NotFound, Forbidden):
        raise Invalid(messages.PARENT_NOT_FOUND.format(id=parent_id)) from None
    if child is not None:
        chain = ancestry(session, parent)  # [parent, its parent, ...]: reaching the child is a cycle
        ids = [t.id for t in chain]
        if child.id in ids:
            names = " → ".join([child.name, *(t.name for t in chain[: ids.index(child.id) + 1])])
            raise Invalid(messages.PARENT_CYCLE.format(name=child.name, parent=parent.name, chain=names))
    if parent.status != "ready" or parent.vmid is None:
        raise Conflict(messages.PARENT_NOT_READY.format(name=parent.name, status=parent.status))
    return parent


def ancestry(session: Session, template: Template) -> list[Template]:
    """The template, its parent, its parent's parent, ... (stops at a repeat: no endless walk)."""
    chain: list[Template] = []
    seen: set[uuid.UUID] = set()
    current: Template | None = template
    while current is not None and current.id not in seen:
        chain.append(current)
        seen.add(current.id)
        current = session.get(Template, current.parent_id) if current.parent_id else None
    return chain


def needs_rebuild(template: Template, fingerprint_today: str | None) -> bool:
    """Marked so by an edit, or ready but built from catalog entries or roles that changed since
    (`fingerprint_today`: ctforge.fingerprint of its built stacks as the tree is now)."""
    if template.needs_rebuild:
        return True
    return (template.status == "ready" and template.built_fingerprint is not None
            and fingerprint_today is not None and template.built_fingerprint != fingerprint_today)


def children(session: Session, template: Template) -> Sequence[Template]:
    return session.scalars(select(Template).where(Template.parent_id == template.id)
                           .order_by(Template.created_at, Template.id)).all()


# --- create, list, update, delete ---------------------------------------------------------------

@dataclass
class TemplateFields:
    """What a caller may set; None (or missing from `given`) means "not given"."""

    name: str | None = None
    description: str | None = None
    parent_id: uuid.UUID | None = None
    base_ct_template: str | None = None
    tech_stacks: list[str] | None = None
    env_vars: dict[str, str] | None = None
    is_default: bool | None = None
    node: str | None = None
    storage: str | None = None
    vmid: int | None = None
    given: set[str] = field(default_factory=set)


def _check_name_free(session: Session, owner_id: int, name: str, except_id: uuid.UUID | None = None) -> None:
    query = select(Template.id).where(Template.owner_id == owner_id, Template.name == name)
    if except_id is not None:
        query = query.where(Template.id != except_id)
    if session.scalar(query) is not None:
        raise Conflict(messages.TEMPLATE_NAME_TAKEN.format(name=name))


def _check_default(user: User, wanted: bool | None) -> None:
    if wanted and not user.is_admin:
        raise Forbidden(messages.DEFAULT_NEEDS_ADMIN)


def _flush(session: Session, name: str) -> None:
    """Flush, turning a unique-name race lost to a concurrent request into the same 409."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(messages.TEMPLATE_NAME_TAKEN.format(name=name)) from None


def create_template(session: Session, catalog: Catalog, settings: Settings, user: User,
                    fields: TemplateFields, *, in_use: Iterable[int] = ()) -> Template:
    """A pending record with its VMID claimed; `in_use` is what Proxmox reports in use."""
    assert fields.name is not None
    stacks = check_stacks(catalog, fields.tech_stacks or [])
    _check_default(user, fields.is_default)
    _check_name_free(session, user.id, fields.name)
    parent = check_parent(session, catalog, user, fields.parent_id) if fields.parent_id else None
    if parent is not None:
        if fields.base_ct_template and fields.base_ct_template != parent.base_ct_template:
            raise Invalid(messages.CHILD_BASE_GIVEN.format(
                base=fields.base_ct_template, parent=parent.name, parent_base=parent.base_ct_template))
        base = parent.base_ct_template
        inherited = effective_stacks(catalog, parent)
    else:
        if not fields.base_ct_template:
            raise Invalid(messages.BASE_NEEDS_APPLIANCE)
        base, inherited = fields.base_ct_template, []
    template = Template(
        id=uuid.uuid4(), owner_id=user.id, parent_id=parent.id if parent else None,
        base_ct_template=base, name=fields.name, description=fields.description or "",
        node=fields.node or (parent.node if parent else None) or settings.proxmox.node,
        storage=fields.storage or (parent.storage if parent else None),
        status="pending", tech_stacks=stacks, inherited_tech_stacks=inherited,
        is_default=bool(fields.is_default), env_vars=dict(fields.env_vars or {}),
    )
    session.add(template)
    _flush(session, fields.name)
    if fields.vmid is not None:
        template.vmid = vmids.claim_exact(session, "template", settings.template_vmids, fields.vmid,
                                          template_id=template.id, in_use=in_use)
    else:
        template.vmid = vmids.claim(session, "template", settings.template_vmids,
                                    template_id=template.id, in_use=in_use)
    session.flush()
    return template


@dataclass
class Page:
    items: list[Template]
    count: int


def list_templates(session: Session, user: User | None, *, status: str | None = None,
                   owner: str | None = None, parent_id: uuid.UUID | None = None,
                   roots: bool = False, limit: int = 50, offset: int = 0) -> Page:
    """A page of the templates `user` may see, oldest first (ties by id): the same order every time."""
    query = select(Template).where(visible_to(user))
    if status is not None:
        query = query.where(Template.status == status)
    if owner is not None:
        query = query.join(User, Template.owner_id == User.id).where(User.name == owner)
    if parent_id is not None:
        query = query.where(Template.parent_id == parent_id)
    elif roots:
        query = query.where(Template.parent_id.is_(None))
    count = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = session.scalars(query.order_by(Template.created_at, Template.id).limit(limit).offset(offset))
    return Page(items=list(items.unique()), count=count)


def update_template(session: Session, catalog: Catalog, user: User, template: Template,
                    fields: TemplateFields) -> Template:
    check_may_change(user, template)
    if template.status in BUSY:
        raise Conflict(messages.TEMPLATE_BUSY.format(name=template.name, status=template.status))
    given = fields.given
    rebuild = False
    if "name" in given and fields.name is not None and fields.name != template.name:
        _check_name_free(session, template.owner_id, fields.name, except_id=template.id)
        template.name = fields.name
    if "description" in given and fields.description is not None:
        template.description = fields.description
    if "is_default" in given and fields.is_default is not None:
        if fields.is_default != template.is_default and not user.is_admin:
            raise Forbidden(messages.DEFAULT_NEEDS_ADMIN)
        template.is_default = fields.is_default
    if "tech_stacks" in given and fields.tech_stacks is not None:
        stacks = check_stacks(catalog, fields.tech_stacks)
        rebuild |= stacks != template.tech_stacks
        template.tech_stacks = stacks
    if "env_vars" in given and fields.env_vars is not None:
        rebuild |= fields.env_vars != template.env_vars
        template.env_vars = dict(fields.env_vars)
    if "parent_id" in given and fields.parent_id != template.parent_id:
        if fields.parent_id is None:
            raise Invalid(messages.PARENT_REMOVED.format(name=template.name))
        parent = check_parent(session, catalog, user, fields.parent_id, child=template)
        template.parent_id = parent.id
        template.base_ct_template = parent.base_ct_template  # a child is built on its parent's base
        template.inherited_tech_stacks = effective_stacks(catalog, parent)
        rebuild = True
    if rebuild and template.status in NEEDS_REBUILD_AFTER_EDIT:
        template.needs_rebuild = True
    _flush(session, template.name)
    return template


def delete_template(session: Session, user: User, template: Template, *,
                    on_cluster: Iterable[int] = ()) -> None:
    """Delete the record; refused while a job works on it, a child inherits from it, or its CT
    still exists on the cluster (`on_cluster`: the VMIDs Proxmox lists), which would be left
    without an owner: destroy it first."""
    check_may_change(user, template)
    if template.status in BUSY:
        raise Conflict(messages.TEMPLATE_BUSY.format(name=template.name, status=template.status))
    running = session.scalar(select(Job).where(Job.template_id == template.id,
                                                Job.status.in_(("queued", "running"))).limit(1))
    if running is not None:
        raise Conflict(messages.JOB_RUNNING_ON_TEMPLATE.format(
            name=template.name, kind=running.kind, status=running.status, job_id=running.id))
    if template.vmid is not None and template.vmid in set(on_cluster):
        raise Conflict(messages.DELETE_CT_EXISTS.format(name=template.name, vmid=template.vmid,
                                                         id=template.id))
    from ctforge.records.workspaces import of_template  # workspaces import this module

    made = of_template(session, template.id)
    if made:
        raise Conflict(messages.TEMPLATE_HAS_WORKSPACES.format(
            name=template.name, workspaces=", ".join(repr(w.name) for w in made)))
    dependants = children(session, template)
    if dependants:
        names = ", ".join(repr(c.name) for c in dependants)
        raise Conflict(messages.TEMPLATE_HAS_CHILDREN.format(name=template.name, children=names))
    if template.vmid is not None:
        vmids.release(session, template.vmid)
    session.delete(template)
    session.flush()


def _need(catalog: Catalog | None) -> Catalog:
    if catalog is None:
        raise ValueError("becoming ready records the built stacks: pass the catalog")
    return catalog


# --- the one place a status moves ---------------------------------------------------------------

def move_status(session: Session, template: Template, to: str, *, error: str | None = None,
                catalog: Catalog | None = None, job_id: uuid.UUID | None = None, **facts: Any) -> Template:
    """Move `template` to status `to`, or refuse: an illegal step raises Conflict, and so does a
    status that another writer changed since the record was read (compare-and-set on the status).

    `error` is the message an `error` status must carry; `facts` are the columns the step sets
    (staging_container_ip, node, storage, built_fingerprint, build_key_fingerprint). Becoming
    `ready` records the effective stacks it was built with, so it needs the catalog. Every move is
    published to the webhook subscribers ("template.status"), in the same transaction.
    """
    current = template.status
    if to not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(messages.STATUS_ILLEGAL.format(
            name=template.name, current=current, to=to,
            allowed=", ".join(sorted(TRANSITIONS.get(current, ()))) or "none"))
    if (to == "error") != (error is not None):
        raise ValueError("an error status needs its message, and only an error status has one")
    unknown = set(facts) - {"staging_container_ip", "node", "storage", "built_fingerprint",
                            "build_key_fingerprint"}
    if unknown:
        raise ValueError(f"move_status cannot set {sorted(unknown)}")
    values: dict[str, Any] = {"status": to, "error_message": error, **facts}
    if to == "ready":
        values.update(ready_at=utcnow(), needs_rebuild=False, staging_container_ip=None,
                      built_stacks=effective_stacks(_need(catalog), template))
    result = session.execute(
        update(Template).where(Template.id == template.id, Template.status == current).values(**values)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(template)
        raise Conflict(messages.STATUS_CHANGED_MEANWHILE.format(
            name=template.name, expected=current, found=template.status))
    notify.publish(session, "template.status", {
        "template_id": str(template.id), "name": template.name, "from": current, "to": to,
        "error": error, "job_id": str(job_id) if job_id else None})
    session.refresh(template)
    return template

