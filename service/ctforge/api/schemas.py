"""The API's request and response bodies, in families: TemplateCreate, TemplateUpdate,
TemplatePublic, TemplatesPublic{data, count}. Every request body refuses unknown fields, and every
string field has the pattern it must match, so the OpenAPI schema says what is accepted.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ctforge.formats import MAPPINGS, SCALARS, SSH_PUBLIC_KEY, STACK_ID, STORAGE_ID, VMID_MAX, VMID_MIN
from ctforge.records.users import USER_NAME

Status = Literal["pending", "provisioning", "staging", "ready", "error", "destroyed"]
MAX_STACKS = 64
MAX_ENV_VARS = 128

# A display name: letters, digits, spaces and . _ + -, starting and ending with a letter or digit.
TEMPLATE_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9 ._+-]{0,62}[A-Za-z0-9])?"


# What each pattern means, for the 422 message a person reads instead of the regular expression.
PATTERN_RULES: dict[str, str] = {
    "name": "1 to 64 letters, digits, spaces and . _ + -, starting and ending with a letter or digit",
    "description": "text without control characters other than tab and newline, at most 8192 characters",
    "base_ct_template": "an appliance name (debian-12-standard) or a volume id (local:vztmpl/...)",
    "tech_stacks": "a stack id: lower-case letters, digits and _, starting with a letter",
    "env_vars": "a variable name (letters, digits, _; not starting with a digit) and a one-line value",
    "node": "a Proxmox node name: letters, digits and -",
    "storage": "a Proxmox storage id",
    "owner": "a user name: lower-case letters, digits, '.', '_' and '-'",
}


def whole(pattern: str) -> str:
    """A pattern matched whole, in the syntax JSON Schema and pydantic's regex engine share (`$` there
    matches only at the very end: a trailing newline is refused)."""
    return f"^(?:{pattern})$"


def _no_repeats(items: list[str]) -> list[str]:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"lists {item!r} more than once")
        seen.add(item)
    return items


TemplateName = Annotated[str, Field(pattern=whole(TEMPLATE_NAME), max_length=64)]
Description = Annotated[str, Field(pattern=whole(r"[^\x00-\x08\x0b-\x1f\x7f]*"), max_length=8192)]
Appliance = Annotated[str, Field(pattern=whole(SCALARS["ctforge_base_ct_template"]), max_length=255)]
StackId = Annotated[str, Field(pattern=whole(STACK_ID), max_length=64)]
StackList = Annotated[list[StackId], Field(max_length=MAX_STACKS, json_schema_extra={"uniqueItems": True}),
                      AfterValidator(_no_repeats)]
EnvName = Annotated[str, Field(pattern=whole(MAPPINGS["ctforge_env_vars"]["key"]), max_length=128)]
EnvValue = Annotated[str, Field(pattern=whole(r"[^\x00-\x1f\x7f]*"), max_length=4096)]
EnvVars = Annotated[dict[EnvName, EnvValue], Field(max_length=MAX_ENV_VARS)]
Node = Annotated[str, Field(pattern=whole(SCALARS["ctforge_node"]), max_length=64)]
Storage = Annotated[str, Field(pattern=whole(STORAGE_ID), max_length=64)]
Vmid = Annotated[int, Field(ge=VMID_MIN, le=VMID_MAX)]
UserName = Annotated[str, Field(pattern=whole(USER_NAME), max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Message(BaseModel):
    detail: str


# --- stacks -------------------------------------------------------------------------------------

class StackPublic(BaseModel):
    id: str
    name: str
    description: str
    icon: str
    tags: list[str]
    role: str
    requires: list[str]
    verify: str


class StacksPublic(BaseModel):
    data: list[StackPublic]
    count: int


# --- templates ----------------------------------------------------------------------------------

class TemplateCreate(_Body):
    name: TemplateName
    description: Description = ""
    parent_id: uuid.UUID | None = None
    base_ct_template: Appliance | None = Field(
        None, description="The appliance a base template starts from; a child inherits its parent's.")
    tech_stacks: StackList = Field(default_factory=list, description="The template's own stacks.")
    env_vars: EnvVars = Field(default_factory=dict)
    is_default: bool = Field(False, description="Shown to every user; only an admin may set it.")
    node: Node | None = None
    storage: Storage | None = None
    vmid: Vmid | None = Field(None, description="A VMID of the template range; default: the lowest free one.")


class TemplateUpdate(_Body):
    """Only the fields sent are changed; a field sent as null is refused (leave it out instead)."""

    name: TemplateName = None  # type: ignore[assignment]
    description: Description = None  # type: ignore[assignment]
    parent_id: uuid.UUID = None  # type: ignore[assignment]
    tech_stacks: StackList = None  # type: ignore[assignment]
    env_vars: EnvVars = None  # type: ignore[assignment]
    is_default: bool = None  # type: ignore[assignment]


class TemplatePublic(BaseModel):
    id: uuid.UUID
    owner: str
    parent_id: uuid.UUID | None
    base_ct_template: str
    name: str
    description: str
    vmid: int | None
    node: str | None
    storage: str | None
    status: Status
    tech_stacks: list[str]
    inherited_tech_stacks: list[str]
    effective_stacks: list[str]
    is_default: bool
    error_message: str | None
    staging_container_ip: str | None
    env_vars: dict[str, str]
    needs_rebuild: bool
    built_stacks: list[str] | None
    built_fingerprint: str | None
    build_key_fingerprint: str | None
    ready_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TemplatesPublic(BaseModel):
    data: list[TemplatePublic]
    count: int


class EffectiveStacks(BaseModel):
    template_id: uuid.UUID
    inherited: list[str]
    own: list[str]
    effective: list[str]


class TemplateNode(BaseModel):
    id: uuid.UUID
    name: str
    owner: str
    status: Status
    vmid: int | None
    is_default: bool
    effective_stacks: list[str]
    children: list[TemplateNode]


class TemplateTree(BaseModel):
    data: list[TemplateNode]
    count: int = Field(description="Templates in the tree, at every depth.")


# --- VMIDs --------------------------------------------------------------------------------------

class VmidRangePublic(BaseModel):
    kind: Literal["template", "workspace"]
    first: int
    last: int
    size: int
    claimed: int


class VmidClaimPublic(BaseModel):
    vmid: int
    kind: str
    template_id: uuid.UUID | None
    template_name: str | None
    workspace_id: uuid.UUID | None = None
    workspace_name: str | None = None
    owner: str | None
    on_cluster: bool | None = Field(description="Whether Proxmox lists the VMID; null: Proxmox not asked.")
    claimed_at: datetime


class GuestPublic(BaseModel):
    vmid: int
    node: str
    type: str
    name: str | None
    template: bool
    status: str | None
    claimed: bool
    in_range: Literal["template", "workspace"] | None


class ProxmoxPublic(BaseModel):
    configured: bool
    reachable: bool | None
    error: str | None
    guests: list[GuestPublic]


class VmidsPublic(BaseModel):
    ranges: list[VmidRangePublic]
    data: list[VmidClaimPublic]
    count: int
    proxmox: ProxmoxPublic


# --- the service --------------------------------------------------------------------------------

class Health(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: list[Check]


class Version(BaseModel):
    version: str
    api: str
    database_revision: str | None


# --- webhooks (issue #13: telling others) -------------------------------------------------------

# The events a subscription may ask for (ctforge.notify.EVENTS; a test keeps the two in step); a
# ping goes to one subscriber when an admin asks for it, whatever its list.
WebhookEvent = Literal["job.finished", "template.status"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
# http or https, a host name, IPv4 or [IPv6] address, an optional port, then printable ASCII; no
# user:password@ (a credential in the URL would show in every listing: the secret signs instead).
WEBHOOK_URL = r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:[/?][\x21-\x7e]*)?"
WEBHOOK_SECRET = r"[\x21-\x7e]{16,128}"
PATTERN_RULES["url"] = (
    "an http:// or https:// URL: a host name or address, an optional port, then a path without "
    "spaces; no user:password@"
)
PATTERN_RULES["secret"] = "16 to 128 printable ASCII characters without spaces"

WebhookUrl = Annotated[str, Field(pattern=whole(WEBHOOK_URL), max_length=2048)]
WebhookSecret = Annotated[str, Field(pattern=whole(WEBHOOK_SECRET))]
WebhookEvents = Annotated[list[WebhookEvent], Field(max_length=8, json_schema_extra={"uniqueItems": True}),
                          AfterValidator(_no_repeats)]


class WebhookCreate(_Body):
    url: WebhookUrl
    secret: WebhookSecret | None = Field(
        None, description="The HMAC key the subscriber verifies with; default: one is made and shown once.")
    events: WebhookEvents = Field(default_factory=list, description="The events to send; empty: every event.")


class WebhookPublic(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="Shown this once: no listing shows it again.")


class WebhooksPublic(BaseModel):
    data: list[WebhookPublic]
    count: int


class WebhookDeliveryPublic(BaseModel):
    id: int
    subscription_id: uuid.UUID
    event: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(
        description="When it is sent next; null once delivered or failed.")
    created_at: datetime
    delivered_at: datetime | None
    body: str = Field(description="The exact JSON text signed and sent.")


class WebhookDeliveriesPublic(BaseModel):
    data: list[WebhookDeliveryPublic]
    count: int


# --- jobs -------------------------------------------------------------------------------------------
JobKind = Literal["provision", "finalize", "build", "retry", "rebuild", "destroy", "create", "start", "stop"]
JobStatus = Literal["queued", "running", "successful", "failed", "canceled", "timeout"]


class JobPublic(BaseModel):
    id: uuid.UUID
    kind: JobKind
    template_id: uuid.UUID | None
    template_name: str = Field(description="The template acted on, or the one a workspace comes from.")
    workspace_id: uuid.UUID | None = Field(description="Set on a workspace's job (create, start, stop, ...).")
    workspace_name: str | None
    status: JobStatus
    started_by: str
    steps: list[str] = Field(description="The playbooks the job runs, in order.")
    playbook: str | None = Field(description="The playbook running now, or the last one run.")
    rc: int | None
    failed_step: str | None = Field(description="The build step that failed: clone, start, ip, ssh, ...")
    error: str | None
    artifacts_dir: str | None
    cancel_requested_by: str | None
    event_count: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class JobEventPublic(BaseModel):
    seq: int
    event: str
    playbook: str | None
    task: str | None
    host: str | None
    failed: bool
    stdout: str
    data: dict[str, Any]
    created_at: datetime


class JobEventsPublic(BaseModel):
    data: list[JobEventPublic]
    next: int = Field(description="The `after` that continues the listing (the last seq given).")
    done: bool = Field(description="Whether the job has ended and every event of it was listed.")


# --- workspaces -------------------------------------------------------------------------------------

WorkspaceStatus = Literal["pending", "provisioning", "running", "stopped", "error"]
WorkspaceName = Annotated[str, Field(pattern=whole(SCALARS["ctforge_workspace_name"]), max_length=63,
                                     description="The workspace CT's hostname: one DNS label in lower case.")]
SshPublicKey = Annotated[str, Field(pattern=whole(SSH_PUBLIC_KEY), max_length=17000)]
ProjectPath = Annotated[str, Field(pattern=whole(r"[A-Za-z0-9._@+-]+(?:/[A-Za-z0-9._@+-]+)*"),
                                   max_length=512)]
MAX_PROJECT_FILES = 64
MAX_KEYS = 32


class WorkspaceCreate(_Body):
    name: WorkspaceName
    stacks: StackList = Field(default_factory=list, description="The stacks the work needs.")
    project_files: Annotated[dict[ProjectPath, Annotated[str, Field(max_length=1_000_000)]],
                             Field(max_length=MAX_PROJECT_FILES)] = Field(
        default_factory=dict,
        description="A project's manifest files (path in the checkout → text: package.json, pyproject.toml, "
                    "docker-compose.yml, .nvmrc, ...), read as `ctforge stacks detect` reads a checkout; "
                    "the stacks found are added to `stacks`.")
    ssh_public_keys: Annotated[list[SshPublicKey], Field(min_length=1, max_length=MAX_KEYS),
                               AfterValidator(_no_repeats)] = Field(
        description="Your OpenSSH public keys: the workspace lets you in as the dev user with them.")
    template_id: uuid.UUID | None = Field(
        None, description="The ready template to clone; default: the one that covers the most of the stacks.")


class WorkspacePublic(BaseModel):
    id: uuid.UUID
    owner: str
    name: str
    template_id: uuid.UUID
    template_name: str
    status: WorkspaceStatus
    vmid: int | None
    node: str | None
    ip: str | None
    dev_user: str | None = Field(description="The user your keys let in (ssh DEV_USER@IP); null until known.")
    requested_stacks: list[str] = Field(description="What the work needs, with what it requires.")
    template_stacks: list[str] = Field(description="The stacks the workspace got from its template.")
    installed_stacks: list[str] = Field(description="The stacks installed on top of the template's.")
    ssh_public_keys: list[str]
    detected: dict[str, Any] = Field(description="What project_files gave away: stacks, evidence, unknown.")
    error_message: str | None
    running_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WorkspacesPublic(BaseModel):
    data: list[WorkspacePublic]
    count: int


class WorkspaceCreated(BaseModel):
    workspace: WorkspacePublic
    job: JobPublic


class WorkspacePlan(BaseModel):
    """Which template a workspace for these stacks would come from, and what it would install."""

    template_id: uuid.UUID
    template_name: str
    wanted: list[str]
    covered: list[str]
    install: list[str]
    extra: list[str] = Field(description="Stacks the template carries that the request did not ask for.")
    detected: dict[str, Any]
