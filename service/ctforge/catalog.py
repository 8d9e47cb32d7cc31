"""The stack catalog: one `stacks/<id>.yml` per tech stack, validated, and dependency-ordered lists of stacks.

    catalog = load_catalog()                    # <repo>/stacks by default
    catalog.resolve(["claude_cli"])             # ['nodejs', 'claude_cli']
    catalog.effective(["nodejs"], ["redis"])    # ['nodejs', 'redis']

Loading checks every file and the catalog as a whole (known requirements, no cycles). Whether each
entry's role exists is a separate step, `check_roles`, so the catalog loads while roles are written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from ctforge import messages
from ctforge.yamlfile import load_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CATALOG_DIR = REPO_ROOT / "stacks"
DEFAULT_ROLES_DIR = REPO_ROOT / "roles"

StackId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.+-]*$", max_length=32)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class CatalogError(Exception):
    """Anything wrong with the catalog or a request against it; the message names the culprit."""


class StackFileError(CatalogError):
    """A stack file that is not a valid entry: its path, and each wrong field with the reason."""

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.path, self.problems = path, problems
        self.field, self.reason = problems[0]
        text = "; ".join(messages.STACK_FIELD_PROBLEM.format(field=f, reason=r) for f, r in problems)
        super().__init__(messages.STACK_FILE_INVALID.format(path=path, problems=text))


class UnknownStackError(CatalogError):
    """An id the catalog does not have, asked for by a caller or required by another stack."""

    def __init__(self, stack_id: str, message: str) -> None:
        self.stack_id = stack_id
        super().__init__(message)


class StackCycleError(CatalogError):
    """Stacks whose `requires` lead back to themselves; `cycle` is the path, first id repeated last."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(messages.STACK_CYCLE.format(cycle=" → ".join(cycle)))


class MissingRoleError(CatalogError):
    """Catalog entries whose role is not under the roles directory."""

    def __init__(self, missing: list[tuple[str, str, Path]]) -> None:
        self.missing = missing
        super().__init__(
            "; ".join(messages.MISSING_ROLE.format(stack_id=s, role=r, path=p) for s, r, p in missing)
        )


def _unique(items: list[str]) -> list[str]:
    for i, item in enumerate(items):
        if item in items[:i]:
            raise ValueError(messages.STACK_LIST_DUPLICATE.format(item=item))
    return items


class Stack(BaseModel):
    """One catalog entry, as written in stacks/<id>.yml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StackId
    name: Text
    description: Text
    icon: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    tags: list[Tag] = Field(default_factory=list)
    role: StackId
    requires: list[StackId] = Field(default_factory=list)
    verify: Text

    @field_validator("role")
    @classmethod
    def _role_is_id(cls, role: str, info: ValidationInfo) -> str:
        stack_id = info.data.get("id")
        if stack_id is not None and role != stack_id:
            raise ValueError(messages.STACK_ROLE_NOT_ID.format(stack_id=stack_id))
        return role

    @field_validator("tags", "requires")
    @classmethod
    def _no_repeats(cls, items: list[str]) -> list[str]:
        return _unique(items)


def _field_name(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "-"


def _reason(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return messages.STACK_FIELD_MISSING
    if error["type"] == "extra_forbidden":
        return messages.STACK_FIELD_UNKNOWN.format(fields=", ".join(Stack.model_fields))
    return error["msg"].removeprefix("Value error, ")


def load_stack(path: Path) -> Stack:
    """One stack file, validated; a StackFileError names the path, the field and the reason."""
    try:
        data = load_yaml(path)
    except OSError as exc:
        reason = messages.STACK_FILE_UNREADABLE.format(error=exc.strerror)
        raise StackFileError(path, [("-", reason)]) from None
    except yaml.YAMLError as exc:
        reason = messages.STACK_FILE_NOT_YAML.format(error=_one_line(exc))
        raise StackFileError(path, [("-", reason)]) from None
    if not isinstance(data, dict):
        reason = messages.STACK_FILE_NOT_MAPPING.format(kind=type(data).__name__)
        raise StackFileError(path, [("-", reason)])
    try:
        stack = Stack.model_validate(data)
    except ValidationError as exc:
        raise StackFileError(path, [(_field_name(e["loc"]), _reason(e)) for e in exc.errors()]) from None
    if stack.id != path.stem:
        raise StackFileError(path, [("id", messages.STACK_ID_NOT_FILE_NAME.format(stem=path.stem))])
    return stack


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


class Catalog:
    """A validated set of stacks: every requirement known, no cycles."""

    def __init__(self, stacks: Iterable[Stack]) -> None:
        self._stacks: dict[str, Stack] = {}
        for stack in stacks:
            if stack.id in self._stacks:
                raise CatalogError(messages.DUPLICATE_STACK.format(stack_id=stack.id))
            self._stacks[stack.id] = stack
        for stack in self:
            for required in stack.requires:
                if required not in self._stacks:
                    raise UnknownStackError(
                        required, messages.UNKNOWN_REQUIREMENT.format(stack_id=stack.id, required=required)
                    )
        cycle = find_cycle({s.id: s.requires for s in self})
        if cycle:
            raise StackCycleError(cycle)

    def __iter__(self) -> Iterator[Stack]:
        return (self._stacks[i] for i in self.ids())

    def __len__(self) -> int:
        return len(self._stacks)

    def __contains__(self, stack_id: object) -> bool:
        return stack_id in self._stacks

    def ids(self) -> list[str]:
        return sorted(self._stacks)

    def get(self, stack_id: str) -> Stack:
        try:
            return self._stacks[stack_id]
        except KeyError:
            known = ", ".join(self.ids()) or "(none)"
            raise UnknownStackError(
                stack_id, messages.UNKNOWN_STACK.format(stack_id=stack_id, known=known)
            ) from None

    def resolve(self, stack_ids: Iterable[str]) -> list[str]:
        """The stacks asked for and everything they require, each once, requirements first.

        Each asked-for stack comes with the requirements not yet listed placed right before it, so
        the caller's order holds wherever the dependencies allow; a list already resolved comes
        back unchanged.
        """
        if isinstance(stack_ids, str):
            raise TypeError(f"resolve() takes a list of stack ids, not the string {stack_ids!r}")
        order: list[str] = []
        placed: set[str] = set()

        def place(stack_id: str) -> None:
            if stack_id in placed:
                return
            for required in self.get(stack_id).requires:
                place(required)
            placed.add(stack_id)
            order.append(stack_id)

        for stack_id in stack_ids:
            place(stack_id)
        return order

    def effective(self, inherited: Iterable[str], own: Iterable[str]) -> list[str]:
        """A template's stacks: its parent's (inherited) then its own, resolved; none twice."""
        return self.resolve([*inherited, *own])

    def missing_roles(
        self, roles_dir: Path = DEFAULT_ROLES_DIR, stack_ids: Iterable[str] | None = None
    ) -> list[tuple[str, str, Path]]:
        """(stack id, role, the missing tasks/main.yml) for each entry of `stack_ids` (default: all)
        whose role does not exist in roles_dir."""
        stacks = list(self) if stack_ids is None else [self.get(i) for i in stack_ids]
        entry_points = [(s, roles_dir / s.role / "tasks" / "main.yml") for s in stacks]
        return [(s.id, s.role, path) for s, path in entry_points if not path.is_file()]

    def check_roles(
        self, roles_dir: Path = DEFAULT_ROLES_DIR, stack_ids: Iterable[str] | None = None
    ) -> None:
        """Raise MissingRoleError naming every entry whose role is missing (see missing_roles)."""
        missing = self.missing_roles(roles_dir, stack_ids)
        if missing:
            raise MissingRoleError(missing)


def find_cycle(requires: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the `requires` graph as a path whose first id is repeated last, or None.

    Ids missing from `requires` count as having no requirements. Visits ids in sorted order, so the
    same catalog always reports the same cycle.
    """
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in on_path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        on_path.add(node)
        for nxt in requires.get(node, []):
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for node in sorted(requires):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def load_catalog(path: Path | str | None = None) -> Catalog:
    """The catalog in `path` (default <repo>/stacks), every file and the whole validated."""
    directory = Path(path) if path is not None else DEFAULT_CATALOG_DIR
    if not directory.is_dir():
        raise CatalogError(messages.CATALOG_MISSING.format(path=directory))
    for stray in sorted(directory.glob("*.yaml")):
        raise StackFileError(stray, [("-", messages.STACK_FILE_SUFFIX.format(name=f"{stray.stem}.yml"))])
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise CatalogError(messages.CATALOG_EMPTY.format(path=directory))
    return Catalog(load_stack(f) for f in files)
