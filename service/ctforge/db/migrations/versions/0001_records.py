"""records: users, api tokens, templates, vmid claims

Revision ID: 0001
Revises: -
Create Date: 2026-12-01 23:18:48.987348
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("digest", name=op.f("uq_api_tokens_digest")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("base_ct_template", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("vmid", sa.Integer(), nullable=True),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("storage", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tech_stacks", sa.JSON(), nullable=False),
        sa.Column("inherited_tech_stacks", sa.JSON(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("staging_container_ip", sa.String(length=64), nullable=True),
        sa.Column("env_vars", sa.JSON(), nullable=False),
        sa.Column("needs_rebuild", sa.Boolean(), nullable=False),
        sa.Column("built_stacks", sa.JSON(), nullable=True),
        sa.Column("built_fingerprint", sa.String(length=80), nullable=True),
        sa.Column("build_key_fingerprint", sa.String(length=80), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'provisioning', 'staging', 'ready', 'error')",
            name=op.f("ck_templates_status"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_templates_owner_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["templates.id"],
            name=op.f("fk_templates_parent_id_templates"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_templates_owner_id_name")),
        sa.UniqueConstraint("vmid", name=op.f("uq_templates_vmid")),
    )
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_templates_is_default"), ["is_default"], unique=False)
        batch_op.create_index(batch_op.f("ix_templates_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_templates_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_templates_status"), ["status"], unique=False)

    op.create_table(
        "vmid_claims",
        sa.Column("vmid", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('template', 'workspace')", name=op.f("ck_vmid_claims_kind")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_vmid_claims_template_id_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vmid", name=op.f("pk_vmid_claims")),
        sa.UniqueConstraint("template_id", name=op.f("uq_vmid_claims_template_id")),
    )


def downgrade() -> None:
    op.drop_table("vmid_claims")
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_templates_status"))
        batch_op.drop_index(batch_op.f("ix_templates_parent_id"))
        batch_op.drop_index(batch_op.f("ix_templates_owner_id"))
        batch_op.drop_index(batch_op.f("ix_templates_is_default"))

    op.drop_table("templates")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
