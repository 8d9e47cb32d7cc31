"""VMID claims: the lowest free id of a kind's range, claimed by a unique insert.

Free means in no claim and not in use on the cluster. The claim is the insert of the id as the
primary key of vmid_claims, inside a savepoint: when a concurrent request (this process or
another one on the same PostgreSQL) took the id first, the insert fails and the next free id is
tried. Nothing reads a counter and writes it back, so no two records ever get one VMID.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ctforge import messages
from ctforge.db.models import Template, VmidClaim
from ctforge.records.errors import Conflict, Invalid
from ctforge.settings import VmidRange


def free_ids(vmids: VmidRange, taken: Iterable[int]) -> Iterator[int]:
    """The ids of `vmids` not in `taken`, lowest first, without walking the taken ones one by one."""
    cursor = vmids.first
    for used in sorted({t for t in taken if t in vmids}):
        yield from range(cursor, used)
        cursor = used + 1
    yield from range(cursor, vmids.last + 1)


def claimed(session: Session, vmids: VmidRange) -> set[int]:
    rows = session.scalars(select(VmidClaim.vmid).where(VmidClaim.vmid.between(vmids.first, vmids.last)))
    return set(rows)


# The advisory-lock namespace of VMID claims (PostgreSQL's two-key form: this key, then the VMID).
_LOCK_SPACE = 0x63746667  # "ctfg"


def _may_try(session: Session, vmid: int) -> bool:
    """On PostgreSQL, whether no other open transaction is inserting this claim: an insert of a key
    another transaction has inserted but not committed waits for it, so N concurrent creates would
    each queue behind the ones before. pg_try_advisory_xact_lock answers at once and holds to the
    end of the transaction. SQLite needs none of it: its writers take turns (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(_LOCK_SPACE, vmid))))


def claim(session: Session, kind: str, vmids: VmidRange, *, template_id: uuid.UUID | None,
          in_use: Iterable[int] = (), job_id: uuid.UUID | None = None,
          workspace_id: uuid.UUID | None = None) -> int:
    """Claim the lowest free id of `vmids` for a record; Conflict when the range has none left."""
    in_use = set(in_use)
    lowest = vmids.first
    while True:
        taken = claimed(session, vmids) | in_use
        for vmid in free_ids(VmidRange(first=lowest, last=vmids.last), taken):
            if not _may_try(session, vmid):
                continue  # an open transaction is claiming it right now: waiting on it would queue us
            try:
                with session.begin_nested():
                    session.add(VmidClaim(vmid=vmid, kind=kind, template_id=template_id, job_id=job_id,
                                          workspace_id=workspace_id))
            except IntegrityError:
                # A concurrent request claimed it since we read the claims: read them again (on
                # PostgreSQL each statement sees what others committed) and go on from the next id.
                lowest = vmid + 1
                break
            return vmid
        else:
            raise Conflict(messages.VMID_RANGE_EXHAUSTED.format(kind=kind, range=vmids))


def release(session: Session, vmid: int) -> None:
    session.execute(delete(VmidClaim).where(VmidClaim.vmid == vmid))


def move_claim(session: Session, template: Template, vmids: VmidRange, in_use: Iterable[int]) -> int:
    """Proxmox answered that the template's VMID exists after all (a CT made by hand): claim the
    next free id, give the old one up, and point the record at the new one."""
    old = template.vmid
    taken = set(in_use) | ({old} if old is not None else set())
    # The record gives its id up first: template_id is unique among claims.
    if old is not None:
        release(session, old)
    new = claim(session, "template", vmids, template_id=template.id, in_use=taken)
    session.execute(update(Template).where(Template.id == template.id).values(vmid=new))
    session.refresh(template)
    return new


def claim_exact(session: Session, kind: str, vmids: VmidRange, vmid: int, *,
                template_id: uuid.UUID | None, in_use: Iterable[int] = ()) -> int:
    """Claim the id a caller asked for: it must lie in the kind's range and be free."""
    if vmid not in vmids:
        raise Invalid(messages.VMID_OUT_OF_RANGE.format(vmid=vmid, kind=kind, range=vmids))
    if vmid in set(in_use):
        raise Conflict(messages.VMID_IN_USE_ON_CLUSTER.format(vmid=vmid))
    try:
        with session.begin_nested():
            session.add(VmidClaim(vmid=vmid, kind=kind, template_id=template_id))
    except IntegrityError:
        raise Conflict(messages.VMID_CLAIMED.format(vmid=vmid)) from None
    return vmid
