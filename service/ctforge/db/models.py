"""The service's tables, as SQLAlchemy 2 models. The migrations in db/migrations/ create them;
tests/test_db.py checks that the two agree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STATUSES = ("pending", "provisioning", "staging", "ready", "error", "destroyed")
# smoke: the throwaway clone of a finalize, held by its job for the length of the run
CLAIM_KINDS = ("template", "workspace", "smoke")
# create, start, stop: a workspace's (destroy and retry serve both)
JOB_KINDS = ("provision", "finalize", "build", "retry", "rebuild", "destroy", "create", "start", "stop")
JOB_STATUSES = ("queued", "running", "successful", "failed", "canceled", "timeout")
JOB_DONE = frozenset({"successful", "failed", "canceled", "timeout"})
DELIVERY_STATUSES = ("pending", "delivered", "failed")
WORKSPACE_STATUSES = ("pending", "provisioning", "running", "stopped", "error")

# Constraint names that Alembic can address on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored as UTC and read back aware (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("a naive datetime reached the database: use ctforge.db.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")


class ApiToken(Base):
    """A bearer token, kept as the SHA-256 of its text: the text itself is shown once, at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the token's first characters, to tell tokens apart
    label: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="tokens")


class Template(Base):
    __tablename__ = "templates"
    __table_args__ = (
        UniqueConstraint("owner_id", "name"),
        CheckConstraint(_in("status", STATUSES), name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("templates.id", ondelete="RESTRICT"), index=True)
    base_ct_template: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    vmid: Mapped[int | None] = mapped_column(Integer, unique=True)
    node: Mapped[str | None] = mapped_column(String(64))
    storage: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    tech_stacks: Mapped[list[str]] = mapped_column(default=list)
    inherited_tech_stacks: Mapped[list[str]] = mapped_column(default=list)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    staging_container_ip: Mapped[str | None] = mapped_column(String(64))
    env_vars: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the CT was built from, set when it became ready; an edit of a ready record raises the flag.
    needs_rebuild: Mapped[bool] = mapped_column(Boolean, default=False)
    built_stacks: Mapped[list[str] | None] = mapped_column(JSON)
    built_fingerprint: Mapped[str | None] = mapped_column(String(80))
    build_key_fingerprint: Mapped[str | None] = mapped_column(String(80))
    ready_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    parent: Mapped[Template | None] = relationship(remote_side=[id])


class VmidClaim(Base):
    """Which record holds which VMID: the primary key is the claim, so no VMID has two owners."""

    __tablename__ = "vmid_claims"
    __table_args__ = (CheckConstraint(_in("kind", CLAIM_KINDS), name="kind"),)

    vmid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("templates.id", ondelete="CASCADE"), unique=True)
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), unique=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Workspace(Base):
    """A container a developer works in: a clone of a ready template, plus the stacks it lacked."""

    __tablename__ = "workspaces"
    __table_args__ = (
        UniqueConstraint("owner_id", "name"),
        CheckConstraint(_in("status", WORKSPACE_STATUSES), name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    # a template with workspaces keeps its record: its CT is what their linked clones stand on
    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("templates.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    vmid: Mapped[int | None] = mapped_column(Integer, unique=True)
    node: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    dev_user: Mapped[str | None] = mapped_column(String(32))  # whom the owner logs in as; None until known
    requested_stacks: Mapped[list[str]] = mapped_column(default=list)  # asked for, and detected
    template_stacks: Mapped[list[str]] = mapped_column(default=list)  # the template's effective stacks
    installed_stacks: Mapped[list[str]] = mapped_column(default=list)  # installed on top of them
    ssh_public_keys: Mapped[list[str]] = mapped_column(default=list)  # the owner's, for the dev user
    detected: Mapped[dict[str, Any]] = mapped_column(default=dict)  # from project files: evidence, unknown
    error_message: Mapped[str | None] = mapped_column(Text)
    running_at: Mapped[datetime | None]  # when it last became running
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    template: Mapped[Template] = relationship(lazy="joined", innerjoin=True)


class Worker(Base):
    """A service process that runs jobs; its heartbeat tells the others it is alive."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Job(Base):
    """One lifecycle action on a template or a workspace: the playbooks it runs, who asked, and how
    it ended. A workspace's job names the workspace and the template it comes from."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("kind", JOB_KINDS), name="kind"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("templates.id", ondelete="SET NULL"), index=True)
    template_name: Mapped[str] = mapped_column(String(64))  # kept when the record is deleted
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="SET NULL"), index=True)
    workspace_name: Mapped[str | None] = mapped_column(String(64))  # kept when the workspace goes
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    started_by: Mapped[str] = mapped_column(String(64))
    # the playbooks still to run, in order ("provision", "finalize", "destroy")
    steps: Mapped[list[str]] = mapped_column(default=list)
    playbook: Mapped[str | None] = mapped_column(String(32))  # the one running, or the last one run
    rc: Mapped[int | None] = mapped_column(Integer)
    failed_step: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    artifacts_dir: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(64), index=True)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class JobEvent(Base):
    """One Ansible event of a job, in the order the run sent them: appended, never changed."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... within the job
    event: Mapped[str] = mapped_column(String(64))
    playbook: Mapped[str | None] = mapped_column(String(32))
    task: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    stdout: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSubscription(Base):
    """A URL that gets a signed JSON event when a job ends or a template changes status."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))  # the HMAC key, shared with the subscriber
    events: Mapped[list[str]] = mapped_column(default=list)  # empty: every event
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one subscriber, and what came of sending it: the delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)  # the exact bytes signed and sent
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
