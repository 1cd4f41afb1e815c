"""Search and favorites (issue 17).

* Full-text search: one weighted tsvector per searchable row (title A, tags B, description C;
  English stemming), built by two IMMUTABLE SQL functions and indexed by expression GIN indexes,
  so nothing is stored twice and no table is rewritten. The search statement calls the same
  functions, which PostgreSQL inlines on both sides, so the planner matches the indexes.
* Misspelt words: pg_trgm GIN indexes on widget titles and query names (dashboard titles have
  one since 0007), where the server has the extension (as in 0007).
* Favorites: one row per principal and dashboard, gone with the dashboard.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# array_to_string is only STABLE (element output functions); for text[] it is immutable in fact.
DOCUMENT = """
CREATE OR REPLACE FUNCTION tessera_search_document(title text, tags text[], description text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
      || setweight(to_tsvector('english'::regconfig, coalesce(array_to_string(tags, ' '), '')), 'B')
      || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'C')
$$
"""
WIDGET = """
CREATE OR REPLACE FUNCTION tessera_search_widget(title text, spec jsonb)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
      || setweight(to_tsvector('english'::regconfig, coalesce(spec ->> 'description', '')), 'C')
$$
"""


def upgrade() -> None:
    op.execute(DOCUMENT)
    op.execute(WIDGET)
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_dashboards_search ON dashboards"
        " USING gin (tessera_search_document(title, tags, description))"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_widget_queries_search ON widget_queries"
        " USING gin (tessera_search_document(name, tags, description))"
    )
    op.execute("CREATE INDEX IF NOT EXISTS ix_widgets_search ON widgets USING gin (tessera_search_widget(title, spec))")
    available = op.get_bind().execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"))
    if available.first() is not None:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX IF NOT EXISTS ix_widgets_title_trgm ON widgets USING gin (title gin_trgm_ops)")
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_widget_queries_name_trgm ON widget_queries USING gin (name gin_trgm_ops)"
        )
    op.create_table(
        "dashboard_favorites",
        sa.Column("principal_id", sa.Text(), nullable=False),
        sa.Column("dashboard_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name=op.f("fk_dashboard_favorites_dashboard_id_dashboards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("principal_id", "dashboard_id", name=op.f("pk_dashboard_favorites")),
    )
    op.create_index(
        "ix_dashboard_favorites_principal_created",
        "dashboard_favorites",
        ["principal_id", sa.text("created_at DESC"), "dashboard_id"],
    )
    op.create_index("ix_dashboard_favorites_dashboard", "dashboard_favorites", ["dashboard_id"])


def downgrade() -> None:
    op.drop_table("dashboard_favorites")
    op.execute("DROP INDEX IF EXISTS ix_widget_queries_name_trgm")
    op.execute("DROP INDEX IF EXISTS ix_widgets_title_trgm")
    op.execute("DROP INDEX IF EXISTS ix_widgets_search")
    op.execute("DROP INDEX IF EXISTS ix_widget_queries_search")
    op.execute("DROP INDEX IF EXISTS ix_dashboards_search")
    op.execute("DROP FUNCTION IF EXISTS tessera_search_widget(text, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS tessera_search_document(text, text[], text)")
