"""`ctforge apply FILE`: from a family file and the service's records to an ordered plan. Pure: no
HTTP here (cli/apply.py fetches the records and carries the plan out), so the plan is unit-tested.

    family = load_family(Path("examples/family.yml"))        # FamilyError: one line, nothing changed
    steps = make_plan(family, templates, workspaces, stacks)  # templates/workspaces: the API's JSON

What the plan does:
- a template missing from the service is created, then built, after its parent;
- a template whose stacks in the file differ from its record gets them (PATCH), then a rebuild; so
  does one the service marks `needs_rebuild` (an edit, or its stacks' roles changed since it was
  built), and one whose inherited stacks are no longer what its parent has;
- a template whose parent gets a new CT in this run is stale: Proxmox's linked clones pin the
  parent's CT, and the service refuses to rebuild a template with live children. So the stale
  descendants are destroyed first (deepest first), the parent is rebuilt, and they are built again
  after it, parents first;
- pending, error or destroyed templates are built, a staging one is finalized;
- a workspace missing from the service is created last.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctforge.api.schemas import Appliance, Description, StackList, TemplateName, WorkspaceName
from ctforge.yamlfile import load_yaml

# --- messages (one line each; the tests assert on them) -----------------------------------------
FILE_UNREADABLE = "{path}: cannot read the file ({error})"
FILE_NOT_YAML = "{path}: not valid YAML: {error}"
FILE_INVALID = "{path}: {problems}"
FILE_DUPLICATE = "{path}: the template {name!r} is listed twice"
FILE_DUPLICATE_WORKSPACE = "{path}: the workspace {name!r} is listed twice"
UNKNOWN_STACK = "template {name!r}: unknown stack {stack!r}; the catalog has: {known}"
UNKNOWN_WORKSPACE_STACK = "workspace {name!r}: unknown stack {stack!r}; the catalog has: {known}"
UNKNOWN_PARENT = "template {name!r}: its parent {parent!r} is neither in the file nor a template you may see"
UNKNOWN_TEMPLATE = ("workspace {name!r}: its template {template!r} is neither in the file nor a template "
                    "you may see")
CYCLE = "the templates' parents form a cycle: {chain}"
ROOT_NEEDS_APPLIANCE = "template {name!r} has no parent: give its appliance (e.g. debian-12-standard)"
CHILD_HAS_APPLIANCE = ("template {name!r} has a parent: a child inherits its parent's appliance; "
                       "leave appliance out")
AMBIGUOUS = "{count} templates you may see are named {name!r} (owners: {owners}): rename one"
PARENT_DIFFERS = ("template {name!r}: the file names parent {wanted}, the service has {found}; apply does "
                  "not move a template: give it a new name, or delete the old one")
APPLIANCE_DIFFERS = ("template {name!r}: the file names appliance {wanted!r}, the service built it from "
                     "{found!r}; apply does not change a base's appliance: give it a new name")
EXTERNAL_PARENT_NOT_READY = ("template {name!r}: its parent {parent!r} (not in the file) is {status}; "
                             "a child is made from a ready parent: build it first")
BUSY = ("template {name!r} is {status}: a job works on it; wait until it ends (`ctforge jobs`), "
        "then apply again")
CHILD_NOT_IN_FILE = ("template {name!r} must be {why}, but {children} (not in the file) are built on its CT: "
                     "add them to the file, or destroy them first")
HAS_WORKSPACES = ("template {name!r} must be {why}, but workspaces are made from its CT ({workspaces}), "
                  "which Proxmox keeps while they use it: destroy them first")
NOTHING_TO_DO = "everything is current: nothing to do"


class FamilyError(Exception):
    """The file cannot be applied: `message` is one line; nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- the file -----------------------------------------------------------------------------------

class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileTemplate(_Entry):
    name: TemplateName
    parent: TemplateName | None = Field(None, description="A template of the file, or one on the service.")
    stacks: StackList = Field(default_factory=list, description="The template's own stacks.")
    appliance: Appliance | None = Field(None, description="What a base (no parent) starts from.")
    description: Description | None = None
    is_default: bool | None = None


class FileWorkspace(_Entry):
    name: WorkspaceName
    template: TemplateName | None = Field(None, description="Default: the template that covers the most.")
    stacks: StackList = Field(default_factory=list)
    ssh_public_keys: list[str] = Field(default_factory=list, description="Default: the user's own key.")


class Family(_Entry):
    templates: list[FileTemplate] = Field(min_length=1)
    workspaces: list[FileWorkspace] = Field(default_factory=list)


def load_family(path: Path) -> Family:
    try:
        data = load_yaml(path)
    except OSError as exc:
        raise FamilyError(FILE_UNREADABLE.format(path=path, error=exc.strerror or exc)) from None
    except yaml.YAMLError as exc:
        raise FamilyError(FILE_NOT_YAML.format(path=path, error=" ".join(str(exc).split()))) from None
    try:
        family = Family.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise FamilyError(FILE_INVALID.format(path=path, problems=problems)) from None
    names = [t.name for t in family.templates]
    for name in names:
        if names.count(name) > 1:
            raise FamilyError(FILE_DUPLICATE.format(path=path, name=name))
    workspaces = [w.name for w in family.workspaces]
    for name in workspaces:
        if workspaces.count(name) > 1:
            raise FamilyError(FILE_DUPLICATE_WORKSPACE.format(path=path, name=name))
    return family


# --- the plan -----------------------------------------------------------------------------------

StepKind = Literal["create", "change", "destroy", "build", "finalize", "rebuild", "workspace"]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    name: str  # the template's (or the workspace's) name
    why: str = ""
    body: dict[str, Any] = field(default_factory=dict)  # create: the fields, parent by name; change: PATCH
    parent: str | None = None  # create: the parent's name (its id is known once it exists)

    def describe(self) -> str:
        what = {"create": "create template", "change": "change template", "destroy": "destroy template",
                "build": "build template", "finalize": "finalize template", "rebuild": "rebuild template",
                "workspace": "create workspace"}[self.kind]
        return f"{what} {self.name}" + (f": {self.why}" if self.why else "")


def _stacks(items: Iterable[str]) -> str:
    return ", ".join(items) or "no stacks"


def _order(family: Family) -> list[FileTemplate]:
    """Parents before children, otherwise in the file's order; a cycle is an error."""
    by_name = {t.name: t for t in family.templates}
    done: dict[str, FileTemplate] = {}

    def visit(template: FileTemplate, path: list[str]) -> None:
        if template.name in done:
            return
        if template.name in path:
            loop = [*path[path.index(template.name):], template.name]
            raise FamilyError(CYCLE.format(chain=" → ".join(loop)))
        parent = by_name.get(template.parent) if template.parent else None
        if parent is not None:
            visit(parent, [*path, template.name])
        done[template.name] = template

    for template in family.templates:
        visit(template, [])
    return list(done.values())


def _by_name(templates: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in templates:
        found.setdefault(record["name"], []).append(record)
    return {name: records[0] for name, records in found.items() if len(records) == 1} | {
        name: {"ambiguous": records} for name, records in found.items() if len(records) > 1}


def _record(by_name: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    record = by_name.get(name)
    if record is not None and "ambiguous" in record:
        owners = ", ".join(sorted(r["owner"] for r in record["ambiguous"]))
        raise FamilyError(AMBIGUOUS.format(count=len(record["ambiguous"]), name=name, owners=owners))
    return record


def _check(family: Family, by_name: dict[str, dict[str, Any]], stacks: set[str]) -> None:
    in_file = {t.name for t in family.templates}
    known = ", ".join(sorted(stacks))
    for template in family.templates:
        for stack in template.stacks:
            if stack not in stacks:
                raise FamilyError(UNKNOWN_STACK.format(name=template.name, stack=stack, known=known))
        if template.parent is None and template.appliance is None:
            raise FamilyError(ROOT_NEEDS_APPLIANCE.format(name=template.name))
        if template.parent is not None and template.appliance is not None:
            raise FamilyError(CHILD_HAS_APPLIANCE.format(name=template.name))
        if template.parent is not None and template.parent not in in_file:
            parent = _record(by_name, template.parent)
            if parent is None:
                raise FamilyError(UNKNOWN_PARENT.format(name=template.name, parent=template.parent))
            if parent["status"] != "ready":
                raise FamilyError(EXTERNAL_PARENT_NOT_READY.format(
                    name=template.name, parent=template.parent, status=parent["status"]))
    for workspace in family.workspaces:
        for stack in workspace.stacks:
            if stack not in stacks:
                raise FamilyError(UNKNOWN_WORKSPACE_STACK.format(name=workspace.name, stack=stack,
                                                                 known=known))
        template_name = workspace.template
        if template_name and template_name not in in_file and _record(by_name, template_name) is None:
            raise FamilyError(UNKNOWN_TEMPLATE.format(name=workspace.name, template=workspace.template))


def _changes(wanted: FileTemplate, record: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    if wanted.stacks != record["tech_stacks"]:
        patch["tech_stacks"] = list(wanted.stacks)
    if wanted.description is not None and wanted.description != record["description"]:
        patch["description"] = wanted.description
    if wanted.is_default is not None and wanted.is_default != record["is_default"]:
        patch["is_default"] = wanted.is_default
    return patch


def make_plan(family: Family, templates: list[dict[str, Any]], workspaces: list[dict[str, Any]],
              stacks: Iterable[str]) -> list[Step]:
    """The steps that make the service hold the family of the file; [] when it does already.

    `templates` and `workspaces` are the records the caller may see (TemplatePublic and
    WorkspacePublic JSON), `stacks` the catalog's ids. Raises FamilyError, before any step, for
    what cannot be applied."""
    by_name = _by_name(templates)
    by_id = {t["id"]: t for t in templates}
    _check(family, by_name, set(stacks))
    order = _order(family)
    in_file = {t.name for t in order}

    changes: list[Step] = []
    destroys: list[Step] = []
    builds: list[Step] = []
    new_ct: set[str] = set()  # the templates that get a new CT in this run

    for wanted in order:
        record = _record(by_name, wanted.name)
        if record is None:
            body: dict[str, Any] = {"name": wanted.name, "tech_stacks": list(wanted.stacks)}
            if wanted.appliance is not None:
                body["base_ct_template"] = wanted.appliance
            if wanted.description is not None:
                body["description"] = wanted.description
            if wanted.is_default is not None:
                body["is_default"] = wanted.is_default
            under = f"under {wanted.parent}" if wanted.parent else f"from {wanted.appliance}"
            builds.append(Step("create", wanted.name, f"{under}, {_stacks(wanted.stacks)}", body=body,
                               parent=wanted.parent))
            builds.append(Step("build", wanted.name, "new"))
            new_ct.add(wanted.name)
            continue
        _check_same_place(wanted, record, by_id)
        status = record["status"]
        if status == "provisioning":
            raise FamilyError(BUSY.format(name=wanted.name, status=status))
        patch = _changes(wanted, record)
        if patch:
            changes.append(Step("change", wanted.name, _change_text(patch, record), body=patch))
        parent = by_name.get(wanted.parent) if wanted.parent else None
        why = _rebuild_reason(wanted, record, patch, parent)
        if wanted.parent in new_ct:
            if status != "destroyed":
                destroys.append(Step("destroy", wanted.name, f"its parent {wanted.parent} gets a new CT, "
                                                             "which linked clones of the old one would pin"))
            builds.append(Step("build", wanted.name, f"again, on its parent {wanted.parent}'s new CT"))
            new_ct.add(wanted.name)
        elif status in ("pending", "error", "destroyed"):
            builds.append(Step("build", wanted.name, status))
            new_ct.add(wanted.name)
        elif status == "staging":
            builds.append(Step("finalize", wanted.name, "staging"))
            if why:
                builds.append(Step("rebuild", wanted.name, why))
                new_ct.add(wanted.name)
        elif why:  # ready
            builds.append(Step("rebuild", wanted.name, why))
            new_ct.add(wanted.name)

    _check_clones(destroys, builds, templates, workspaces, by_name, in_file)
    steps = changes + list(reversed(destroys)) + builds  # destroys: the deepest first
    workspace_names = {w["name"] for w in workspaces}
    for workspace in family.workspaces:
        if workspace.name not in workspace_names:
            steps.append(Step("workspace", workspace.name,
                              f"from {workspace.template or 'the template that covers the most'}, "
                              f"{_stacks(workspace.stacks)}",
                              body=workspace.model_dump(), parent=workspace.template))
    return steps


def _check_same_place(wanted: FileTemplate, record: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> None:
    found_parent = by_id.get(record["parent_id"]) if record["parent_id"] else None
    found = (found_parent["name"] if found_parent else record["parent_id"]) if record["parent_id"] else None
    if wanted.parent != found:
        raise FamilyError(PARENT_DIFFERS.format(name=wanted.name, wanted=_or_none(wanted.parent),
                                                found=_or_none(found)))
    if wanted.appliance is not None and wanted.appliance != record["base_ct_template"]:
        raise FamilyError(APPLIANCE_DIFFERS.format(name=wanted.name, wanted=wanted.appliance,
                                                   found=record["base_ct_template"]))


def _or_none(name: str | None) -> str:
    return repr(name) if name else "none"


def _change_text(patch: dict[str, Any], record: dict[str, Any]) -> str:
    parts = []
    if "tech_stacks" in patch:
        parts.append(f"stacks {_stacks(record['tech_stacks'])} → {_stacks(patch['tech_stacks'])}")
    if "description" in patch:
        parts.append("description")
    if "is_default" in patch:
        parts.append(f"default {'yes' if patch['is_default'] else 'no'}")
    return "; ".join(parts)


def _rebuild_reason(wanted: FileTemplate, record: dict[str, Any], patch: dict[str, Any],
                    parent: dict[str, Any] | None) -> str:
    if "tech_stacks" in patch:
        return "its stacks changed"
    if record["needs_rebuild"]:
        return "the service marks it needs_rebuild (an edit, or its stacks' roles changed since it was built)"
    if parent is not None and "ambiguous" not in parent and record["status"] == "ready" \
            and record["inherited_tech_stacks"] != parent["effective_stacks"]:
        return (f"it inherits {_stacks(record['inherited_tech_stacks'])}, its parent has "
                f"{_stacks(parent['effective_stacks'])} now")
    if record["status"] == "ready" and record["built_stacks"] is not None \
            and record["built_stacks"] != record["effective_stacks"]:
        return (f"it was built with {_stacks(record['built_stacks'])}, its record has "
                f"{_stacks(record['effective_stacks'])}")
    return ""


def _check_clones(destroys: list[Step], builds: list[Step], templates: list[dict[str, Any]],
                  workspaces: list[dict[str, Any]], by_name: dict[str, dict[str, Any]],
                  in_file: set[str]) -> None:
    """A template destroyed or rebuilt here must have no CT built on it that the plan leaves alone:
    no child outside the file, no workspace."""
    going = {s.name: "destroyed" for s in destroys}
    going |= {s.name: "rebuilt" for s in builds if s.kind == "rebuild"}
    for name, why in going.items():
        record = by_name[name]
        children = [t["name"] for t in templates if t["parent_id"] == record["id"]
                    and t["status"] != "destroyed" and t["name"] not in in_file]
        if children:
            raise FamilyError(CHILD_NOT_IN_FILE.format(name=name, why=why, children=", ".join(children)))
        made = [w["name"] for w in workspaces if w["template_id"] == record["id"]]
        if made:
            raise FamilyError(HAS_WORKSPACES.format(name=name, why=why, workspaces=", ".join(made)))


def plan_text(path: Path, steps: list[Step]) -> list[str]:
    if not steps:
        return [NOTHING_TO_DO]
    lines = [f"plan for {path}: {len(steps)} step{'s' if len(steps) != 1 else ''}"]
    lines += [f"  {i}. {step.describe()}" for i, step in enumerate(steps, 1)]
    return lines
