"""Scheduled report subscriptions and their deliveries; threshold alert rules and their state changes.

A subscription exports a dashboard on a cron schedule as its owner; each due time is claimed by
inserting its delivery (unique per subscription and due time), so it fires once however many beat
ticks or workers see it. An alert's state change is one row keyed by (rule, revision), written
with the rule's compare-and-set update, so a transition (and its notification) happens once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("report_subscriptions", "report_deliveries", "alert_rules")


def _times() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    jsonb_empty = sa.text("'{}'::jsonb")
    op.create_table(
        "report_subscriptions",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("dashboard_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("owner", postgresql.JSONB(), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("format", sa.SmallInteger(), nullable=False),
        sa.Column("options", postgresql.JSONB(), server_default=jsonb_empty, nullable=False),
        sa.Column("filter_values", postgresql.JSONB(), server_default=jsonb_empty, nullable=False),
        sa.Column("emails", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("webhooks", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("include_phi", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("webhook_secret", sa.Text(), nullable=False),
        sa.Column("state", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("stop_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True)),
        sa.Column("last_run_at", sa.DateTime(timezone=True)),
        sa.Column("revision", sa.BigInteger(), server_default="1", nullable=False),
        *_times(),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name="fk_report_subscriptions_dashboard_id_dashboards",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_report_subscriptions"),
    )
    op.create_index(
        "ix_report_subscriptions_due",
        "report_subscriptions",
        ["next_run_at"],
        postgresql_where=sa.text("state = 1"),
    )
    op.create_index(
        "ix_report_subscriptions_dashboard",
        "report_subscriptions",
        ["dashboard_id", sa.literal_column("created_at DESC"), "id"],
    )
    op.create_index(
        "ix_report_subscriptions_facility",
        "report_subscriptions",
        ["facility_id", sa.literal_column("created_at DESC"), "id"],
    )
    op.create_table(
        "report_deliveries",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("subscription_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("trigger", sa.SmallInteger(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("export_id", postgresql.UUID(as_uuid=True)),
        sa.Column("recipients", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("error", postgresql.JSONB()),
        *_times(),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["report_subscriptions.id"],
            name="fk_report_deliveries_subscription_id_report_subscriptions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["export_id"], ["export_jobs.id"], name="fk_report_deliveries_export_id_export_jobs", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_report_deliveries"),
    )
    op.create_index(
        "ix_report_deliveries_subscription",
        "report_deliveries",
        ["subscription_id", sa.literal_column("created_at DESC"), "id"],
    )
    op.create_index(
        "uq_report_deliveries_due",
        "report_deliveries",
        ["subscription_id", "due_at"],
        unique=True,
        postgresql_where=sa.text("trigger = 1"),
    )
    op.create_index(
        "ix_report_deliveries_open", "report_deliveries", ["created_at"], postgresql_where=sa.text("ended_at IS NULL")
    )
    _alerts()
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_touch_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION tessera_touch_updated_at()"
        )


def _alerts() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("widget_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("dashboard_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("owner", postgresql.JSONB(), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("column_name", sa.Text(), nullable=False),
        sa.Column("reducer", sa.SmallInteger(), nullable=False),
        sa.Column("comparison", sa.SmallInteger(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("for_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("interval_seconds", sa.Integer(), server_default="60", nullable=False),
        sa.Column("filter_values", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("emails", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("webhooks", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("severity", sa.SmallInteger(), server_default="2", nullable=False),
        sa.Column("webhook_secret", sa.Text(), nullable=False),
        sa.Column("state", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("state_at", sa.DateTime(timezone=True)),
        sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_value", sa.Float()),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("last_evaluated_at", sa.DateTime(timezone=True)),
        sa.Column("next_evaluation_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("silenced_until", sa.DateTime(timezone=True)),
        sa.Column("edit_revision", sa.BigInteger(), server_default="1", nullable=False),
        *_times(),
        sa.ForeignKeyConstraint(
            ["widget_id"], ["widgets.id"], name="fk_alert_rules_widget_id_widgets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
    )
    op.create_index("ix_alert_rules_due", "alert_rules", ["next_evaluation_at"])
    op.create_index("ix_alert_rules_widget", "alert_rules", ["widget_id", sa.literal_column("created_at DESC"), "id"])
    op.create_index(
        "ix_alert_rules_facility", "alert_rules", ["facility_id", sa.literal_column("created_at DESC"), "id"]
    )
    op.create_table(
        "alert_events",
        sa.Column("rule_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("from_state", sa.SmallInteger(), nullable=False),
        sa.Column("to_state", sa.SmallInteger(), nullable=False),
        sa.Column("value", sa.Float()),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("notification", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True)),
        sa.Column("recipients", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], name="fk_alert_events_rule_id_alert_rules", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("rule_id", "revision", name="pk_alert_events"),
    )


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_table("alert_rules")
    op.drop_table("report_deliveries")
    op.drop_table("report_subscriptions")
