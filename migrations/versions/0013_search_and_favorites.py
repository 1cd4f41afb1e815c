"""Search and favorites (issue 17).

* Full-text search: one weighted tsvector per searchable row (title A, tags B, description C;
  English stemming) in a generated, stored column `search_document` (two IMMUTABLE SQL functions
  build it), with a GIN index. Stored, not an expression index: ranking reads each match's
  vector, and recomputing it (English stemming) cost about 40 us a row, 80 ms for a word in the
  2,000 descriptions of one facility. Adding the columns rewrites the three tables once.
* Misspelt words: pg_trgm GIN indexes on widget titles and query names (dashboard titles have
  one since 0007), where the server has the extension (as in 0007).
* The new GIN indexes are built without a pending list (`fastupdate = off`): a write updates the
  index at once (a little slower), and no search ever scans a list of pending entries (which cost
  10 ms per search over 1,000,000 freshly inserted widgets until a vacuum).
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


# The widgets' touch trigger (0004) compares the new row with the old one but for the schedule; in a
# BEFORE trigger a generated column is not computed yet, so it is left out of the comparison too
# (it follows title and spec, which are compared).
TOUCH_WIDGET = """
CREATE OR REPLACE FUNCTION tessera_touch_widget() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    probe widgets;
BEGIN
    probe := NEW;
    probe.next_refresh_at := OLD.next_refresh_at;
    probe.updated_at := OLD.updated_at;
    {generated}
    IF probe IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$
"""


def upgrade() -> None:
    op.execute(DOCUMENT)
    op.execute(WIDGET)
    for table, document in (
        ("dashboards", "tessera_search_document(title, tags, description)"),
        ("widget_queries", "tessera_search_document(name, tags, description)"),
        ("widgets", "tessera_search_widget(title, spec)"),
    ):
        op.execute(f"ALTER TABLE {table} ADD COLUMN search_document tsvector GENERATED ALWAYS AS ({document}) STORED")
        op.execute(
            f"CREATE INDEX ix_{table}_search_document ON {table} USING gin (search_document) WITH (fastupdate = off)"
        )
    op.execute(TOUCH_WIDGET.format(generated="probe.search_document := OLD.search_document;"))
    available = op.get_bind().execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"))
    if available.first() is not None:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_widgets_title_trgm ON widgets"
            " USING gin (title gin_trgm_ops) WITH (fastupdate = off)"
        )
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_widget_queries_name_trgm ON widget_queries"
            " USING gin (name gin_trgm_ops) WITH (fastupdate = off)"
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
    for table in ("widgets", "widget_queries", "dashboards"):
        op.drop_column(table, "search_document")  # its index goes with it
    op.execute(TOUCH_WIDGET.format(generated=""))
    op.execute("DROP FUNCTION IF EXISTS tessera_search_widget(text, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS tessera_search_document(text, text[], text)")
