"""Export jobs remember who asked, as the worker must act as them.

An export renders widget data with the requester's facility scope and PHI masking, so the job keeps
a snapshot of the principal (subject, role, facilities, permissions, public link) taken when it was
created; the worker re-checks dashboard access with it before rendering. `correlation_id` ties the
job's log lines to the rpc that created it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "export_jobs",
        sa.Column("principal", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.add_column("export_jobs", sa.Column("correlation_id", sa.Text(), server_default="", nullable=False))
    # The worker finds files to delete by expiry; only rows that still have one matter.
    op.drop_index("ix_export_jobs_expire", table_name="export_jobs")
    op.create_index(
        "ix_export_jobs_expire",
        "export_jobs",
        ["expire_at"],
        postgresql_where=sa.text("storage_url IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_export_jobs_expire", table_name="export_jobs")
    op.create_index("ix_export_jobs_expire", "export_jobs", ["expire_at"])
    op.drop_column("export_jobs", "correlation_id")
    op.drop_column("export_jobs", "principal")
