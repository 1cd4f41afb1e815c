"""Tag filters and title search scoped to the caller's facility inside one GIN index.

ix_dashboards_tags and ix_dashboards_title_trgm (0007) index every facility: a tag or a title
word common across facilities returns every facility's matches (10,000 TIDs for one word over
100,000 dashboards) before the facility's index narrows them by a BitmapAnd. A GIN index over
(facility_id, tags) and (facility_id, title trigrams), through btree_gin's text operator class,
answers only the facility's matches (200 for that word). A list of one facility names it with
`=`, which GIN can use; callers of several facilities (`IN`) keep the older indexes.

Where the server lacks btree_gin or pg_trgm (the embedded PostgreSQL of `tessera dev`), the
index that needs it is left out, as 0007 does.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _available(name: str) -> bool:
    found = op.get_bind().execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = :name"), {"name": name})
    return found.first() is not None


def upgrade() -> None:
    if not _available("btree_gin"):
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.execute("CREATE INDEX IF NOT EXISTS ix_dashboards_facility_tags_gin ON dashboards USING gin (facility_id, tags)")
    if _available("pg_trgm"):
        # Another migration may create the extension too: IF NOT EXISTS either way.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_dashboards_facility_title_trgm_gin"
            " ON dashboards USING gin (facility_id, title gin_trgm_ops)"
        )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_dashboards_facility_title_trgm_gin")
    op.execute("DROP INDEX IF EXISTS ix_dashboards_facility_tags_gin")
    # The extensions stay: other objects may use them.
