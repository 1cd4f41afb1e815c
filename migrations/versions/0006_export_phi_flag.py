"""Export jobs record whether their file shows PHI unmasked.

A file rendered for a `phi:read` requester holds PHI only when one of its widgets' queries
declares a sensitive column that went out unmasked; downloads are refused to a requester who lost
`phi:read` exactly for such files (before, for every file such a requester had made).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "export_jobs", sa.Column("phi_unmasked", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    # Files made before this column existed: assume PHI when their requester could read it.
    op.execute("UPDATE export_jobs SET phi_unmasked = true WHERE principal->'permissions' ? 'phi:read'")


def downgrade() -> None:
    op.drop_column("export_jobs", "phi_unmasked")
