"""Definition changes say where they happened, so that kept answers drop only what they touch.

Migrations 0016 and 0017 announce `<kind>:<id>` on `tessera_definitions`. Kept ListDashboards
pages and kept dashboards (server/dashboards/kept.py) could only tell that *something* changed,
so every change dropped every kept page and every kept dashboard in every process. Now the
same triggers also send:

* `facility:<facility id>` for a change to a dashboard or a share (a share carries its
  dashboard's facility): a list only ever shows dashboards of the caller's facilities, so the
  pages of callers outside that facility stay;
* `board:<dashboard id>` for a change to a widget: the dashboard whose widgets changed.

A dashboard's own change (`dashboard:<id>`) already names its dashboard. A row that moves
(UPDATE of its facility or dashboard) sends both the old and the new one. NOTIFY folds identical
payloads of one transaction, so a bulk change in one facility costs one `facility:` message.

The `<kind>:<id>` payloads are unchanged: a server of the previous release that hears the new
kinds drops everything it keeps (what it does with any kind it does not know), so a rolling
upgrade costs kept answers, never correctness.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "tessera_definitions"
# table -> (payload kind, the column naming the thing that changed, the scope's kind and column)
SCOPED = {
    "dashboards": ("dashboard", "id", "facility", "facility_id"),
    "dashboard_shares": ("dashboard", "dashboard_id", "facility", "facility_id"),
    "widgets": ("widget", "id", "board", "dashboard_id"),
}
# 0017's: the refresh scheduler moving a widget's next_refresh_at alone announces nothing.
_QUIET_SCHEDULE = """
        IF TG_OP = 'UPDATE' THEN
            probe := NEW;
            probe.next_refresh_at := OLD.next_refresh_at;
            IF probe IS NOT DISTINCT FROM OLD THEN
                RETURN NULL;  -- the schedule moved, nothing else
            END IF;
        END IF;"""


def _announce(record: str, kind: str, column: str, scope: tuple[str, str] | None) -> str:
    sent = f"PERFORM pg_notify('{CHANNEL}', '{kind}:' || {record}.{column}::text);"
    if scope is not None:
        scope_kind, scope_column = scope
        sent += f" PERFORM pg_notify('{CHANNEL}', '{scope_kind}:' || {record}.{scope_column}::text);"
    return sent


def _function(table: str, scoped: bool) -> str:
    kind, column, scope_kind, scope_column = SCOPED[table]
    scope = (scope_kind, scope_column) if scoped else None
    quiet = table == "widgets"
    return f"""
        CREATE OR REPLACE FUNCTION tessera_notify_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
        {"DECLARE probe widgets;" if quiet else ""}
        BEGIN{_QUIET_SCHEDULE if quiet else ""}
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                {_announce("OLD", kind, column, scope)}
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                {_announce("NEW", kind, column, scope)}
            END IF;
            RETURN NULL;
        END
        $$
        """


def upgrade() -> None:
    for table in SCOPED:
        op.execute(_function(table, scoped=True))


def downgrade() -> None:
    for table in SCOPED:
        op.execute(_function(table, scoped=False))
