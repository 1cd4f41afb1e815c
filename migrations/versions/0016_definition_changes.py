"""Definition changes announced: every change to what a widget-data read resolves (a widget, its
dashboard and shares, its query and query versions) sends a NOTIFY on `tessera_definitions`, so
that server processes keeping resolutions in memory (server/widgetdata/definitions.py) drop them
at once. Payload: `<table>:<id>` (`widget:`, `dashboard:`, `query:`), per statement row.

Idempotent (CREATE OR REPLACE, triggers dropped first): a database that ran this migration under
its earlier number (0014, landed and reverted once) already has these functions and triggers.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "tessera_definitions"
# table -> (payload kind, the column naming the thing that changed)
WATCHED = {
    "widgets": ("widget", "id"),
    "dashboards": ("dashboard", "id"),
    "dashboard_shares": ("dashboard", "dashboard_id"),
    "widget_queries": ("query", "id"),
    "query_versions": ("query", "query_id"),
}


def upgrade() -> None:
    for table, (kind, column) in WATCHED.items():
        # NOTIFY folds identical payloads of one transaction into one, so a bulk change costs
        # one notification per changed thing, not per row.
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION tessera_notify_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP IN ('UPDATE', 'DELETE') THEN
                    PERFORM pg_notify('{CHANNEL}', '{kind}:' || OLD.{column}::text);
                END IF;
                IF TG_OP IN ('INSERT', 'UPDATE') THEN
                    PERFORM pg_notify('{CHANNEL}', '{kind}:' || NEW.{column}::text);
                END IF;
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(f"DROP TRIGGER IF EXISTS tessera_notify_{table} ON {table}")
        op.execute(
            f"CREATE TRIGGER tessera_notify_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION tessera_notify_{table}()"
        )
        # TRUNCATE has no rows: everything kept goes.
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION tessera_notify_{table}_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('{CHANNEL}', 'all:');
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(f"DROP TRIGGER IF EXISTS tessera_notify_{table}_truncate ON {table}")
        op.execute(
            f"CREATE TRIGGER tessera_notify_{table}_truncate AFTER TRUNCATE ON {table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION tessera_notify_{table}_truncate()"
        )


def downgrade() -> None:
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS tessera_notify_{table}_truncate ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS tessera_notify_{table}_truncate()")
        op.execute(f"DROP TRIGGER IF EXISTS tessera_notify_{table} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS tessera_notify_{table}()")
