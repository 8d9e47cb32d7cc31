"""The lifecycle playbooks' request and result, typed once for the service and the playbooks' tests.

A request's fields are the playbooks' extra vars (`ctforge_template_name`, `ctforge_vmid`, ...) with the
playbooks' own defaults, in the formats Proxmox VE itself accepts (pve-common's JSONSchema formats and
pve-container's netN property string). Every text format is matched whole (`re.fullmatch` of a pattern
anchored `\\A...\\Z`), so a trailing newline or a shell metacharacter is refused. ctforge.formats holds
the patterns by variable name (`FORMATS`) and checks a playbook request against them (`request_problems`),
which playbooks/tasks/check_request.yml applies for plain `ansible-playbook` users, refusing bad input
before any container is touched. tests/test_requests.py keeps the playbooks' verdicts, defaults and
`set_stats` keys equal to this module's.

    request = ProvisionRequest.model_validate(yaml.safe_load(Path("examples/base.yml").read_text()))
    write_extravars(request, private_data_dir)            # <dir>/env/extravars, all of it !unsafe
    result = ProvisionResult.model_validate(stats_data)   # what provision.yml reported by set_stats

Templates, trust and user strings (ansible-core 2.19): Ansible renders a string as a template only when
it is trusted, and it trusts every extra var: `-e key=value`, `-e '{"json": ...}'` and `-e @file` alike.
ansible-runner passes `run(extravars={...})` as such JSON (or dumps it to env/extravars as JSON), so a
description of `{{ lookup('pipe', 'id') }}` would run `id` on the controller. The YAML tag `!unsafe` is
what Ansible's loader honours: a value under it is never trusted, so it stays that text through every
`{{ var }}` and set_fact, and Proxmox stores it as written. `write_extravars` therefore writes the file
ansible-runner reads itself (env/extravars, passed on as `-e @env/extravars`) as one `!unsafe` mapping.
The tag sits on the root mapping, not on each string: 2.19 resolves a tagged scalar's type again as if it
were plain, so `!unsafe "123"` loads as an int and `!unsafe ""` as None. Never also give
ansible_runner.run an `extravars=` argument: it would reach ansible-playbook as trusted JSON.

Plain ansible-playbook users: a `-e @file` that you wrote yourself is your own code, as trusted as your
inventory and your playbooks, and Jinja in it is rendered, as Ansible does everywhere. Text that came
from someone else (a form, a ticket, an API) must not be pasted into such a file as is: start the file
with `--- !unsafe` (or tag each such list or mapping), or write it from the model: `python -m
ctforge.requests provision REQUEST.json > vars.yml` validates a JSON or YAML request and prints it so.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ctforge.formats import (
    ABS_PATH,
    BOOLEAN,
    CORES_MAX,
    DESCRIPTION_MAX,
    IPV4,
    IPV6,
    MAPPINGS,
    MEMORY_MIN,
    SCALARS,
    SSH_PUBLIC_KEY,
    STACK_ID,
    TEXTS,
    VMID_MAX,
    VMID_MIN,
    anchored,
    parse_net,
)


def _text(variable: str) -> Callable[[Any], Any]:
    """A validator: the value (an int or bool as its text) matches the variable's pattern whole."""
    pattern = anchored(SCALARS[variable])
    kinds = str if variable in TEXTS else (str, int)

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, kinds) or not re.fullmatch(pattern, str(value)):
            raise ValueError(f"{value!r} does not have the format of {variable}")
        return value

    return check


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int) and re.fullmatch(anchored(BOOLEAN), str(value)):
        return str(value).lower() in ("1", "on", "yes", "true")
    raise ValueError(f"{value!r} is not a boolean (true/false, yes/no, on/off, 1/0)")


def _net(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a netN property string such as name=eth0,bridge=vmbr0,ip=dhcp")
    parse_net(value)
    return value


def _unique(items: list[str]) -> list[str]:
    twice = sorted({item for item in items if items.count(item) > 1})
    if twice:
        raise ValueError(f"lists {', '.join(twice)} more than once")
    return items


def _formatted(variable: str, kind: type = str, **bounds: Any) -> Any:
    """The field type of a scalar variable: its pattern matched whole, then Proxmox's bounds."""
    if kind is str:  # the pattern again, for the JSON schema (and the OpenAPI) to show
        bounds = {"pattern": anchored(SCALARS[variable]), **bounds}
    return Annotated[kind, BeforeValidator(_text(variable)), Field(**bounds)]


def _optional_origin(variable: str, kind: type = str, **bounds: Any) -> Any:
    """A parent or appliance field: the playbooks take an empty value as not given."""
    return Annotated[_formatted(variable, kind, **bounds) | None, BeforeValidator(_empty_is_none)]


_VMID = {"ge": VMID_MIN, "le": VMID_MAX}
Boolean = Annotated[bool, BeforeValidator(_boolean)]
StackId = Annotated[str, Field(pattern=anchored(STACK_ID))]
StackList = Annotated[list[StackId], AfterValidator(_unique)]
Path_ = Annotated[str, Field(pattern=anchored(ABS_PATH))]
EnvName = Annotated[str, Field(pattern=anchored(MAPPINGS["ctforge_env_vars"]["key"]))]
EnvValue = Annotated[str, Field(pattern=anchored(MAPPINGS["ctforge_env_vars"]["value"]))]
Fingerprint = Annotated[str, Field(pattern=r"\ASHA256:[A-Za-z0-9+/]{43}\Z")]
IpAddress = Annotated[str, Field(pattern=anchored(f"{IPV4}|{IPV6}"))]
Vmid = _formatted("ctforge_vmid", int, **_VMID)
NodeId = _formatted("ctforge_node")
SshPublicKey = Annotated[str, Field(pattern=anchored(SSH_PUBLIC_KEY))]


def _known_stacks(value: list[str] | None, info: ValidationInfo) -> list[str] | None:
    """Stack ids the catalog has: `context={"catalog": catalog}`, or the repository's catalog."""
    if value:
        from ctforge.catalog import CatalogError, load_catalog

        catalog = (info.context or {}).get("catalog") or load_catalog()
        for stack_id in value:
            try:
                catalog.get(stack_id)
            except CatalogError as exc:
                raise ValueError(str(exc)) from None
    return value


class _Request(BaseModel):
    """Fields are extra vars; unknown ones are refused, so a misspelt variable is not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")
    playbook: ClassVar[str]

    ctforge_pve_module_wait: _formatted("ctforge_pve_module_wait", int, ge=1) = 10

    def extravars(self) -> dict[str, Any]:
        """The extra vars as plain data, without unset optional fields (the playbook's default applies)."""
        return self.model_dump(mode="json", exclude_none=True)


class _BuildKey(_Request):
    # The build key (issue 11 §3): ctforge's own, in its state directory, unless a path is given.
    ctforge_ssh_private_key_file: Path_ | None = None  # default: <state dir>/build_key
    ctforge_state_dir: Path_ | None = None  # default: $CTFORGE_STATE_DIR or /var/lib/ctforge
    ctforge_keep_build_key: Boolean = True  # whether the template keeps trusting the build key


class ProvisionRequest(_BuildKey):
    """playbooks/provision.yml: a staging CT cloned from a parent template or created from an appliance."""

    playbook: ClassVar[str] = "provision.yml"

    ctforge_template_name: _formatted("ctforge_template_name")
    ctforge_vmid: Vmid
    ctforge_parent_vmid: _optional_origin("ctforge_parent_vmid", int, **_VMID) = None
    ctforge_base_ct_template: _optional_origin("ctforge_base_ct_template") = None
    ctforge_stacks: StackList = []
    ctforge_inherited_stacks: StackList | None = None  # None: read from the parent CT's local facts
    ctforge_node: NodeId | None = None  # default: the inventory's pve_node
    ctforge_storage: _formatted("ctforge_storage") | None = None  # default: the inventory's pve_storage
    # default: the inventory's pve_template_storage, else 'local'
    ctforge_template_storage: _formatted("ctforge_template_storage") | None = None
    ctforge_cores: _formatted("ctforge_cores", int, ge=1, le=CORES_MAX) = 2
    ctforge_memory: _formatted("ctforge_memory", int, ge=MEMORY_MIN) = 2048
    ctforge_swap: _formatted("ctforge_swap", int, ge=0) = 512
    ctforge_disk_gb: _formatted("ctforge_disk_gb", int, ge=1) = 8
    ctforge_unprivileged: Boolean = True
    ctforge_net0: Annotated[str, BeforeValidator(_net)] = "name=eth0,bridge=vmbr0,ip=dhcp"
    # default: 'ctforge template <name>'
    ctforge_description: _formatted("ctforge_description", max_length=DESCRIPTION_MAX) | None = None
    ctforge_env_vars: dict[EnvName, EnvValue] = {}
    ctforge_apt_proxy: _formatted("ctforge_apt_proxy") = ""
    # default: the controller's /usr/local/share/ca-certificates/*.crt
    ctforge_ca_certificates: Annotated[list[Path_], AfterValidator(_unique)] | None = None
    ctforge_smoke_vmid: _formatted("ctforge_smoke_vmid", int, **_VMID) | None = None  # build.yml's finalize
    # seconds the started staging CT has to show a global IPv4 and answer over SSH
    ctforge_ssh_timeout: _formatted("ctforge_ssh_timeout", int, ge=1) = 180
    # The roles' shared options; None: the roles' defaults (kobozo; no forced full pass).
    ctforge_dev_user: _formatted("ctforge_dev_user") | None = None
    ctforge_reapply: Boolean | None = None

    _known = field_validator("ctforge_stacks", "ctforge_inherited_stacks")(_known_stacks)

    @model_validator(mode="after")
    def _one_origin(self) -> ProvisionRequest:
        if (self.ctforge_parent_vmid is None) == (self.ctforge_base_ct_template is None):
            both = "both" if self.ctforge_parent_vmid is not None else "neither"
            raise ValueError("give either ctforge_parent_vmid (a parent template) or ctforge_base_ct_template"
                             f" (an appliance such as debian-12-standard), not {both}")
        if self.ctforge_parent_vmid == self.ctforge_vmid:
            raise ValueError("ctforge_parent_vmid must differ from ctforge_vmid")
        return self


class FinalizeRequest(_BuildKey):
    """playbooks/finalize.yml: prepare, stop and convert the staging CT, then smoke-test a clone of it."""

    playbook: ClassVar[str] = "finalize.yml"

    ctforge_vmid: Vmid
    ctforge_smoke_vmid: _formatted("ctforge_smoke_vmid", int, **_VMID) | None = None  # default: next free id
    # seconds a started CT (a staging CT brought up again, the smoke clone) has for its IPv4 and SSH
    ctforge_ssh_timeout: _formatted("ctforge_ssh_timeout", int, ge=1) = 180


class WorkspaceRequest(_BuildKey):
    """playbooks/workspace.yml: a workspace CT cloned from a ready template, the owner's keys set for the
    dev user, the stacks the template lacks installed and every stack verified."""

    playbook: ClassVar[str] = "workspace.yml"

    ctforge_workspace_name: _formatted("ctforge_workspace_name")
    ctforge_vmid: Vmid
    ctforge_template_vmid: _formatted("ctforge_template_vmid", int, **_VMID)
    ctforge_stacks: StackList = []  # every stack the work needs; only those the template lacks are installed
    ctforge_template_stacks: StackList | None = None  # None: read from the clone's local facts
    ctforge_ssh_public_keys: Annotated[list[SshPublicKey], AfterValidator(_unique), Field(min_length=1)]
    ctforge_node: NodeId | None = None  # default: the template's node
    ctforge_storage: _formatted("ctforge_storage") | None = None  # default: the template's storage
    # default: 'ctforge workspace <name>'
    ctforge_description: _formatted("ctforge_description", max_length=DESCRIPTION_MAX) | None = None
    ctforge_net0: Annotated[str, BeforeValidator(_net)] = "name=eth0,bridge=vmbr0,ip=dhcp"
    # default: the template's
    ctforge_cores: _formatted("ctforge_cores", int, ge=1, le=CORES_MAX) | None = None
    ctforge_memory: _formatted("ctforge_memory", int, ge=MEMORY_MIN) | None = None
    ctforge_apt_proxy: _formatted("ctforge_apt_proxy") = ""
    # default: the controller's /usr/local/share/ca-certificates/*.crt
    ctforge_ca_certificates: Annotated[list[Path_], AfterValidator(_unique)] | None = None
    # seconds the started workspace CT has to show a global IPv4 and answer over SSH
    ctforge_ssh_timeout: _formatted("ctforge_ssh_timeout", int, ge=1) = 180
    ctforge_dev_user: _formatted("ctforge_dev_user") | None = None  # default: the roles' (kobozo)

    _known = field_validator("ctforge_stacks", "ctforge_template_stacks")(_known_stacks)

    @model_validator(mode="after")
    def _not_its_own_template(self) -> WorkspaceRequest:
        if self.ctforge_template_vmid == self.ctforge_vmid:
            raise ValueError("ctforge_template_vmid must differ from ctforge_vmid")
        return self


class WorkspacePowerRequest(_Request):
    """playbooks/workspace_power.yml: start a workspace CT (and wait for its SSH) or shut it down."""

    playbook: ClassVar[str] = "workspace_power.yml"

    ctforge_vmid: Vmid
    ctforge_state: _formatted("ctforge_state")
    ctforge_node: NodeId | None = None  # default: the node the cluster lists the CT on
    # seconds a started workspace CT has to show a global IPv4 and answer over SSH
    ctforge_ssh_timeout: _formatted("ctforge_ssh_timeout", int, ge=1) = 180


class DestroyRequest(_Request):
    """playbooks/destroy.yml: stop and delete a CT or a template."""

    playbook: ClassVar[str] = "destroy.yml"

    ctforge_vmid: Vmid


class _Result(BaseModel):
    """What a playbook reported with ansible.builtin.set_stats; a key it does not declare is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")


class ProvisionResult(_Result):
    vmid: Vmid
    node: NodeId
    # both None when the CT was prepared by a finalize that did not finish: provision leaves it
    # untouched (not even reached over SSH) and finalize converts it
    ip: IpAddress | None
    stacks: list[StackId] | None
    build_key: Fingerprint | None = None  # SHA256 fingerprint of the SSH key the CT trusts


class FinalizeResult(_Result):
    vmid: Vmid
    node: NodeId
    template: bool
    stacks: list[StackId]
    build_key: Fingerprint | None = None


class WorkspaceResult(_Result):
    vmid: Vmid
    node: NodeId
    ip: IpAddress
    dev_user: _formatted("ctforge_dev_user")  # the user the owner's keys let in
    template_stacks: list[StackId]  # what the template brought (its effective stacks)
    installed: list[StackId]  # what this workspace got on top, in catalog order
    stacks: list[StackId]  # the workspace's effective stacks
    build_key: Fingerprint | None = None  # the build key root still trusts; None: removed


class WorkspacePowerResult(_Result):
    vmid: Vmid
    node: NodeId
    status: Literal["running", "stopped"]
    ip: IpAddress | None  # the IPv4 a started workspace answers SSH on; None when stopped


class DestroyResult(_Result):
    """destroy.yml reports nothing by set_stats (yet)."""


RESULTS: dict[str, type[_Result]] = {
    "provision.yml": ProvisionResult,
    "finalize.yml": FinalizeResult,
    "destroy.yml": DestroyResult,
    "workspace.yml": WorkspaceResult,
    "workspace_power.yml": WorkspacePowerResult,
}


# --- extravars that Ansible never renders ----------------------------------------------------------
class _UnsafeDocument(dict):
    """The extra vars' root mapping, written with Ansible's `!unsafe` tag."""


class _ExtravarsDumper(yaml.SafeDumper):
    pass


# The tag goes on the root mapping, not on each string: ansible-core 2.19 resolves a tagged scalar's type
# again as if it were plain, so `!unsafe "123"` would load as an int and `!unsafe ""` as None. Under a
# tagged mapping every value keeps its YAML type and every string in it, at any depth, is untrusted.
_ExtravarsDumper.add_representer(
    _UnsafeDocument, lambda dumper, value: dumper.represent_mapping("!unsafe", dict(value)))


def extravars_yaml(request: _Request) -> str:
    """The request as an extra-vars YAML document whose every string Ansible takes as text, never Jinja."""
    return "---\n" + yaml.dump(_UnsafeDocument(request.extravars()), Dumper=_ExtravarsDumper,
                               default_flow_style=False, sort_keys=True, allow_unicode=True, width=2**16)


def write_extravars(request: _Request, private_data_dir: Path | str) -> Path:
    """ansible-runner's env/extravars for a job (mode 0600); runner passes it on as `-e @env/extravars`."""
    path = Path(private_data_dir) / "env" / "extravars"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.write_text(extravars_yaml(request))
    return path


REQUESTS: dict[str, type[_Request]] = {
    "provision": ProvisionRequest,
    "finalize": FinalizeRequest,
    "destroy": DestroyRequest,
    "workspace": WorkspaceRequest,
    "workspace_power": WorkspacePowerRequest,
}


def main(argv: list[str] | None = None) -> int:
    """`python -m ctforge.requests KIND FILE`: validate a JSON/YAML request, print it as safe extra vars."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in REQUESTS:
        kinds = "|".join(REQUESTS)
        print(f"usage: python -m ctforge.requests {{{kinds}}} REQUEST.(json|yml)", file=sys.stderr)
        return 2
    text = Path(args[1]).read_text() if args[1] != "-" else sys.stdin.read()
    data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    try:
        request = REQUESTS[args[0]].model_validate(data)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    sys.stdout.write(extravars_yaml(request))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
