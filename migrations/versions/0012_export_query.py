"""Data exports (CSV, XLSX) of a saved query's run: such a job names a query, its version and
parameter values, and no dashboard.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No foreign key: a deleted query leaves its exports to expire (nobody can see them then).
    op.add_column("export_jobs", sa.Column("query_id", postgresql.UUID(as_uuid=True), nullable=True))
    op.add_column("export_jobs", sa.Column("query_version", sa.BigInteger(), nullable=True))
    op.add_column(
        "export_jobs",
        sa.Column("parameter_values", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.alter_column("export_jobs", "dashboard_id", nullable=True)
    op.create_check_constraint(
        "ck_export_jobs_dashboard_or_query", "export_jobs", "(dashboard_id IS NULL) <> (query_id IS NULL)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM export_jobs WHERE dashboard_id IS NULL")
    op.drop_constraint("ck_export_jobs_dashboard_or_query", "export_jobs", type_="check")
    op.alter_column("export_jobs", "dashboard_id", nullable=False)
    op.drop_column("export_jobs", "parameter_values")
    op.drop_column("export_jobs", "query_version")
    op.drop_column("export_jobs", "query_id")
