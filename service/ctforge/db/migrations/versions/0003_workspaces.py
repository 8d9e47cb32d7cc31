"""workspaces; jobs and VMID claims of a workspace; the job kinds create, start, stop

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 07:01:25.517776
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


KINDS_0002 = "kind IN ('provision', 'finalize', 'build', 'retry', 'rebuild', 'destroy')"
KINDS_0003 = (
    "kind IN ('provision', 'finalize', 'build', 'retry', 'rebuild', 'destroy', 'create', 'start', 'stop')"
)


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("vmid", sa.Integer(), nullable=True),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("requested_stacks", sa.JSON(), nullable=False),
        sa.Column("template_stacks", sa.JSON(), nullable=False),
        sa.Column("installed_stacks", sa.JSON(), nullable=False),
        sa.Column("ssh_public_keys", sa.JSON(), nullable=False),
        sa.Column("detected", sa.JSON(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("running_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'provisioning', 'running', 'stopped', 'error')",
            name=op.f("ck_workspaces_status"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_workspaces_owner_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_workspaces_template_id_templates"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_workspaces_owner_id_name")),
        sa.UniqueConstraint("vmid", name=op.f("uq_workspaces_vmid")),
    )
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workspaces_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_workspaces_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_workspaces_template_id"), ["template_id"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workspace_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("workspace_name", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_workspace_id_workspaces"),
            "workspaces",
            ["workspace_id"],
            ["id"],
            ondelete="SET NULL",
        )
        # autogenerate does not compare CHECK constraints
        batch_op.drop_constraint(batch_op.f("ck_jobs_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_kind"), KINDS_0003)

    with op.batch_alter_table("vmid_claims", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workspace_id", sa.Uuid(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_vmid_claims_workspace_id"), ["workspace_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_vmid_claims_workspace_id_workspaces"),
            "workspaces",
            ["workspace_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("vmid_claims", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_vmid_claims_workspace_id_workspaces"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_vmid_claims_workspace_id"), type_="unique")
        batch_op.drop_column("workspace_id")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_kind"), KINDS_0002)
        batch_op.drop_constraint(batch_op.f("fk_jobs_workspace_id_workspaces"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_jobs_workspace_id"))
        batch_op.drop_column("workspace_name")
        batch_op.drop_column("workspace_id")

    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workspaces_template_id"))
        batch_op.drop_index(batch_op.f("ix_workspaces_status"))
        batch_op.drop_index(batch_op.f("ix_workspaces_owner_id"))

    op.drop_table("workspaces")
