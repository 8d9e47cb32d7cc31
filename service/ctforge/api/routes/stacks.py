"""The stack catalog, read-only: what a template may list in tech_stacks."""

from __future__ import annotations

from fastapi import APIRouter

from ctforge import messages
from ctforge.api.deps import ServiceDep
from ctforge.api.schemas import Message, StackPublic, StacksPublic
from ctforge.catalog import CatalogError
from ctforge.records.errors import NotFound

router = APIRouter(prefix="/stacks", tags=["stacks"])


@router.get("", response_model=StacksPublic)
def list_stacks(service: ServiceDep) -> StacksPublic:
    """Every stack of the catalog, by id."""
    data = [StackPublic(**stack.model_dump()) for stack in service.catalog]
    return StacksPublic(data=sorted(data, key=lambda s: s.id), count=len(data))


@router.get("/{stack_id}", response_model=StackPublic,
            responses={code: {"model": Message} for code in (404, 422)})
def get_stack(stack_id: str, service: ServiceDep) -> StackPublic:
    try:
        stack = service.catalog.get(stack_id)
    except CatalogError:
        raise NotFound(messages.STACK_NOT_FOUND.format(
            stack_id=stack_id, known=", ".join(service.catalog.ids()))) from None
    return StackPublic(**stack.model_dump())
