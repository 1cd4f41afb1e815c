"""The refresh scheduler moving `widgets.next_refresh_at` is not a change to the widget.

The generic trigger bumped `updated_at` (and so the widget's etag) on every UPDATE, so an edit
racing the every-minute scheduler could be refused as stale. Widgets get a trigger that touches
`updated_at` only when something other than the schedule changed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION tessera_touch_widget() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            probe widgets;
        BEGIN
            probe := NEW;
            probe.next_refresh_at := OLD.next_refresh_at;
            probe.updated_at := OLD.updated_at;
            IF probe IS DISTINCT FROM OLD THEN
                NEW.updated_at := now();
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute("DROP TRIGGER widgets_touch_updated_at ON widgets")
    op.execute(
        "CREATE TRIGGER widgets_touch_updated_at BEFORE UPDATE ON widgets "
        "FOR EACH ROW EXECUTE FUNCTION tessera_touch_widget()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER widgets_touch_updated_at ON widgets")
    op.execute(
        "CREATE TRIGGER widgets_touch_updated_at BEFORE UPDATE ON widgets "
        "FOR EACH ROW EXECUTE FUNCTION tessera_touch_updated_at()"
    )
    op.execute("DROP FUNCTION tessera_touch_widget()")
