"""The refresh scheduler moving `widgets.next_refresh_at` announces nothing.

Migration 0016's trigger sent `widget:<id>` on every UPDATE of a widget, the scheduler's too: with
widgets due every minute, each sweep dropped every due widget's kept definition (and a kept
dashboard, server/dashboards/kept.py) though nothing they hold had changed. Nothing kept in a
server process reads `next_refresh_at` (only the sweep does, from the table), so an UPDATE that
changes that column alone sends nothing; any other change is announced as before.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "tessera_definitions"


def _function(quiet_schedule: bool) -> str:
    skip = (
        """
        IF TG_OP = 'UPDATE' THEN
            probe := NEW;
            probe.next_refresh_at := OLD.next_refresh_at;
            IF probe IS NOT DISTINCT FROM OLD THEN
                RETURN NULL;  -- the schedule moved, nothing else
            END IF;
        END IF;"""
        if quiet_schedule
        else ""
    )
    return f"""
        CREATE OR REPLACE FUNCTION tessera_notify_widgets() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            probe widgets;
        BEGIN{skip}
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                PERFORM pg_notify('{CHANNEL}', 'widget:' || OLD.id::text);
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                PERFORM pg_notify('{CHANNEL}', 'widget:' || NEW.id::text);
            END IF;
            RETURN NULL;
        END
        $$
        """


def upgrade() -> None:
    op.execute(_function(quiet_schedule=True))


def downgrade() -> None:
    op.execute(_function(quiet_schedule=False))
