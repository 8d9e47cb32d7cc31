"""The service's settings: one pydantic-settings class, read from `CTFORGE_*` and `PROXMOX_*`.

    CTFORGE_STATE_DIR=/var/lib/ctforge        the database file (SQLite) and, later, job directories
    CTFORGE_DATABASE_URL=postgresql+psycopg://ctforge@db/ctforge   (default: SQLite in the state dir)
    CTFORGE_TEMPLATE_VMIDS=500-999            CTFORGE_WORKSPACE_VMIDS=100-499
    CTFORGE_LISTEN=127.0.0.1                  CTFORGE_PORT=8100
    PROXMOX_HOST, PROXMOX_PORT, PROXMOX_USER, PROXMOX_TOKEN_ID, PROXMOX_TOKEN_SECRET,
    PROXMOX_VALIDATE_CERTS, PROXMOX_NODE      the same variables the playbooks read

A wrong value stops the start with the variable's name and the reason. `get_settings()` is cached;
tests build `Settings(...)` themselves or call `get_settings.cache_clear()`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ctforge import messages
from ctforge.catalog import DEFAULT_CATALOG_DIR, DEFAULT_ROLES_DIR, REPO_ROOT
from ctforge.formats import SCALARS, VMID_MAX, VMID_MIN, anchored

DEFAULT_STATE_DIR = Path("/var/lib/ctforge")
DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 8100
DEFAULT_INVENTORY = REPO_ROOT / "inventories" / "minipve.yml"
KINDS = ("template", "workspace")


class VmidRange(BaseModel):
    """An inclusive range of VMIDs, written `500-999`."""

    first: int
    last: int

    def __contains__(self, vmid: object) -> bool:
        return isinstance(vmid, int) and self.first <= vmid <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def overlaps(self, other: VmidRange) -> bool:
        return self.first <= other.last and other.first <= self.last


def parse_range(text: str) -> VmidRange:
    """`FIRST-LAST` as a VmidRange; ValueError with the reason for anything else."""
    match = re.fullmatch(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*", text)
    if match is None:
        raise ValueError(messages.VMID_RANGE_SYNTAX.format(value=text))
    first, last = int(match[1]), int(match[2])
    if not VMID_MIN <= first <= last <= VMID_MAX:
        raise ValueError(messages.VMID_RANGE_BOUNDS.format(value=text, low=VMID_MIN, high=VMID_MAX))
    return VmidRange(first=first, last=last)


def _range_setting(value: object) -> object:
    return parse_range(value) if isinstance(value, str) else value


RangeSetting = Annotated[VmidRange, NoDecode, BeforeValidator(_range_setting)]  # FIRST-LAST, not JSON


class ProxmoxSettings(BaseSettings):
    """The Proxmox VE API the service asks which VMIDs are in use; unset host: claims alone decide."""

    model_config = SettingsConfigDict(env_prefix="PROXMOX_", extra="ignore", regex_engine="python-re")

    host: str | None = None
    port: int = Field(8006, ge=1, le=65535)
    user: str = "root@pam"
    token_id: str = ""
    token_secret: SecretStr = SecretStr("")
    validate_certs: bool = True
    node: Annotated[str, Field(pattern=anchored(SCALARS["ctforge_node"]))] | None = None
    timeout: float = Field(10.0, gt=0)

    @field_validator("host")
    @classmethod
    def _blank_is_unset(cls, host: str | None) -> str | None:
        return host or None

    @property
    def url(self) -> str | None:
        return f"https://{self.host}:{self.port}/api2/json" if self.host else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CTFORGE_", extra="ignore")

    state_dir: Path = DEFAULT_STATE_DIR
    database_url: str | None = None
    template_vmids: RangeSetting = VmidRange(first=500, last=999)
    workspace_vmids: RangeSetting = VmidRange(first=100, last=499)
    listen: str = DEFAULT_LISTEN
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    catalog_dir: Path = DEFAULT_CATALOG_DIR
    roles_dir: Path = DEFAULT_ROLES_DIR
    # How long one answer of /cluster/resources serves VMID allocation: 500 creates, one API call.
    proxmox_cache_seconds: float = Field(2.0, ge=0)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # The bodies that carry a project's manifest files (POST /workspaces and /workspaces/plan): a
    # lock file alone is often a few hundred KiB.
    max_project_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    proxmox: ProxmoxSettings = Field(default_factory=ProxmoxSettings)
    # The control inventory of every run (the Proxmox endpoint comes from PROXMOX_* there); each job
    # adds an inventory of its own with the staging CT.
    inventory: Path = DEFAULT_INVENTORY
    # Jobs: how many playbook runs at once in this process, and when one is ended as hung.
    job_workers: int = Field(4, ge=1, le=64)
    job_timeout_seconds: int = Field(3600, ge=10)
    job_keep_days: float = Field(14.0, gt=0)  # a finished job's private_data_dir, then removed
    # A process writes its heartbeat this often; one silent for job_reap_seconds is taken for dead,
    # and its running jobs are failed ("service restarted during the run") by whoever sees it.
    job_heartbeat_seconds: float = Field(5.0, gt=0)
    job_reap_seconds: float = Field(30.0, gt=0)
    job_poll_seconds: float = Field(1.0, gt=0)  # how often a worker looks for jobs queued elsewhere
    # The apt proxy the CTs use while stacks install (ctforge_apt_proxy); unset: the inventory's.
    apt_proxy: str | None = None
    # How long a run waits for a CT's SSH (ctforge_ssh_timeout); unset: the playbooks' 180 s.
    ssh_timeout_seconds: int | None = Field(None, ge=1)
    # Webhooks: a failed delivery is sent again after backoff, 2x longer each time, this many times.
    webhook_attempts: int = Field(8, ge=1)
    webhook_backoff_seconds: float = Field(2.0, gt=0)
    webhook_backoff_max_seconds: float = Field(300.0, gt=0)
    webhook_timeout_seconds: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _ranges_apart(self) -> Self:
        if self.template_vmids.overlaps(self.workspace_vmids):
            raise ValueError(messages.VMID_RANGES_OVERLAP.format(
                templates=self.template_vmids, workspaces=self.workspace_vmids))
        return self

    @property
    def url(self) -> str:
        """The database URL: the setting, or the SQLite file in the state directory."""
        return self.database_url or f"sqlite:///{self.state_dir / 'ctforge.db'}"

    def vmid_range(self, kind: str) -> VmidRange:
        return self.workspace_vmids if kind == "workspace" else self.template_vmids

    @property
    def jobs_dir(self) -> Path:
        """Where each job's private_data_dir lives."""
        return self.state_dir / "jobs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
