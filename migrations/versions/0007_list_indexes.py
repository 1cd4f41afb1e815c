"""Indexes for lists at scale and for the due-widget sweep.

* Title search (`title_contains`, ILIKE '%...%') through a pg_trgm GIN index instead of a scan,
  where the server has the extension (Debian's and most packaged PostgreSQL do; the embedded one
  `tessera dev` starts on a machine without PostgreSQL does not: there the search scans, as before).
* The visibility predicate of lists (owner, user and role shares, public published): shares
  looked up by (grantee_type, grantee, facility_id) with the dashboard id in the index.
* The due-widget sweep claims widgets with a query, longest overdue first: a partial index over
  exactly those, so a claim does not scan the widgets that have no query.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    available = op.get_bind().execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"))
    if available.first() is not None:
        # Another migration may create it too (full-text search): IF NOT EXISTS either way.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX IF NOT EXISTS ix_dashboards_title_trgm ON dashboards USING gin (title gin_trgm_ops)")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_dashboard_shares_grantee_facility"
        " ON dashboard_shares (grantee_type, grantee, facility_id, dashboard_id)"
    )
    # Its prefix: the new index answers everything the old one did.
    op.execute("DROP INDEX IF EXISTS ix_dashboard_shares_grantee")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_widgets_due ON widgets (next_refresh_at NULLS FIRST) WHERE query_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_widgets_due")
    op.execute("CREATE INDEX IF NOT EXISTS ix_dashboard_shares_grantee ON dashboard_shares (grantee_type, grantee)")
    op.execute("DROP INDEX IF EXISTS ix_dashboard_shares_grantee_facility")
    op.execute("DROP INDEX IF EXISTS ix_dashboards_title_trgm")
    # The extension stays: other objects (another migration's indexes) may use it.
