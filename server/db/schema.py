"""The tables, as SQLAlchemy Core metadata. Alembic migrations are the only way the schema
changes; tests prove the migrated database matches this metadata."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


def _uuid_pk() -> Column[object]:
    return Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _created() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _search_document(expression: str) -> Column[object]:
    # Full-text search (migration 0013): the row's weighted tsvector (title A, tags B, description
    # C), generated and stored by PostgreSQL, never written here.
    return Column("search_document", TSVECTOR, Computed(expression, persisted=True))


def _search_index(table: str) -> Index:
    return Index(
        f"ix_{table}_search_document",
        "search_document",
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    )


def _updated() -> Column[object]:
    # Maintained by the tessera_touch_updated_at trigger.
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


dashboards = Table(
    "dashboards",
    metadata,
    _uuid_pk(),
    Column("facility_id", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # 1 = private, 2 = public (dashboard.v1.Visibility).
    Column("visibility", SmallInteger, nullable=False, server_default="1"),
    Column("layout", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("filters", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("version", BigInteger, nullable=False, server_default="1"),
    Column("published_version", BigInteger),
    Column("publish_time", DateTime(timezone=True)),
    _search_document("tessera_search_document(title, tags, description)"),
    _created(),
    _updated(),
    CheckConstraint("visibility IN (1, 2)", name="visibility"),
    CheckConstraint("version >= 1", name="version_positive"),
    CheckConstraint("published_version IS NULL OR published_version BETWEEN 1 AND version", name="published_version"),
    Index("ix_dashboards_facility_updated", "facility_id", text("updated_at DESC"), "id"),
    Index("ix_dashboards_facility_created", "facility_id", text("created_at DESC"), "id"),
    Index("ix_dashboards_facility_title", "facility_id", "title", "id"),
    Index("ix_dashboards_facility_owner", "facility_id", "owner_id"),
    Index("ix_dashboards_tags", "tags", postgresql_using="gin"),
    # title_contains (ILIKE '%...%') through trigrams (migration 0007).
    Index("ix_dashboards_title_trgm", "title", postgresql_using="gin", postgresql_ops={"title": "gin_trgm_ops"}),
    # The same two scoped to one facility inside the index (btree_gin; migration 0015).
    Index("ix_dashboards_facility_tags_gin", "facility_id", "tags", postgresql_using="gin"),
    Index(
        "ix_dashboards_facility_title_trgm_gin",
        "facility_id",
        "title",
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    ),
    _search_index("dashboards"),
)

widget_queries = Table(
    "widget_queries",
    metadata,
    _uuid_pk(),
    Column("facility_id", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    # 1 = SQL, 2 = MATERIALIZED_VIEW (dashboard.v1.QueryKind).
    Column("kind", SmallInteger, nullable=False),
    Column("is_template", Boolean, nullable=False, server_default="false"),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("version", BigInteger, nullable=False, server_default="1"),
    Column("view_name", Text),
    Column("refresh_time", DateTime(timezone=True)),
    _search_document("tessera_search_document(name, tags, description)"),
    _created(),
    _updated(),
    CheckConstraint("kind IN (1, 2)", name="kind"),
    UniqueConstraint("view_name"),
    Index("ix_widget_queries_facility_updated", "facility_id", text("updated_at DESC"), "id"),
    Index("ix_widget_queries_tags", "tags", postgresql_using="gin"),
    _search_index("widget_queries"),
    Index(
        "ix_widget_queries_name_trgm",
        "name",
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
        postgresql_ops={"name": "gin_trgm_ops"},
    ),
)

query_versions = Table(
    "query_versions",
    metadata,
    Column("query_id", UUID(as_uuid=True), ForeignKey("widget_queries.id", ondelete="CASCADE"), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("sql", Text, nullable=False),
    Column("parameters", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("options", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("sensitive_columns", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("author_id", Text, nullable=False),
    _created(),
    PrimaryKeyConstraint("query_id", "version"),
)

widgets = Table(
    "widgets",
    metadata,
    _uuid_pk(),
    Column("dashboard_id", UUID(as_uuid=True), ForeignKey("dashboards.id", ondelete="CASCADE"), nullable=False),
    Column("facility_id", Text, nullable=False),
    Column("title", Text, nullable=False),
    # dashboard.v1.WidgetType.
    Column("type", SmallInteger, nullable=False),
    Column("x", Integer, nullable=False),
    Column("y", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("query_id", UUID(as_uuid=True), ForeignKey("widget_queries.id", ondelete="RESTRICT")),
    Column("query_version", BigInteger),
    Column("refresh_interval_seconds", Integer, nullable=False, server_default="300"),
    # The rest of the widget (config, description, bindings, drill-through, cross-filters) as proto JSON.
    Column("spec", JSONB, nullable=False),
    Column("revision", BigInteger, nullable=False, server_default="1"),
    Column("next_refresh_at", DateTime(timezone=True)),
    _search_document("tessera_search_widget(title, spec)"),
    _created(),
    _updated(),
    CheckConstraint("type BETWEEN 1 AND 7", name="type"),
    CheckConstraint("x >= 0 AND width >= 1 AND x + width <= 12", name="inside_grid"),
    CheckConstraint("y >= 0 AND height BETWEEN 1 AND 24", name="height"),
    Index("ix_widgets_dashboard_position", "dashboard_id", "y", "x"),
    Index("ix_widgets_query", "query_id"),
    Index("ix_widgets_next_refresh", "next_refresh_at"),
    # The due-widget sweep: widgets with a query, never refreshed first, then longest overdue.
    Index(
        "ix_widgets_due",
        text("next_refresh_at NULLS FIRST"),
        postgresql_where=text("query_id IS NOT NULL"),
    ),
    _search_index("widgets"),
    Index(
        "ix_widgets_title_trgm",
        "title",
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
        postgresql_ops={"title": "gin_trgm_ops"},
    ),
)

widget_data_cache = Table(
    "widget_data_cache",
    metadata,
    Column("cache_key", Text, primary_key=True),
    Column("widget_id", UUID(as_uuid=True), ForeignKey("widgets.id", ondelete="CASCADE")),
    Column("query_id", UUID(as_uuid=True), ForeignKey("widget_queries.id", ondelete="CASCADE"), nullable=False),
    Column("query_version", BigInteger, nullable=False),
    Column("facility_id", Text, nullable=False),
    Column("masking_level", SmallInteger, nullable=False),
    # Serialized dashboard.v1.DataFrame: the same bytes tier 1 stores.
    Column("frame", LargeBinary, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_widget_data_cache_expires", "expires_at"),
    Index("ix_widget_data_cache_widget", "widget_id"),
)

dashboard_versions = Table(
    "dashboard_versions",
    metadata,
    Column("dashboard_id", UUID(as_uuid=True), ForeignKey("dashboards.id", ondelete="CASCADE"), nullable=False),
    Column("version", BigInteger, nullable=False),
    # dashboard.v1.Dashboard (with widgets) as proto JSON; immutable (a trigger refuses UPDATE).
    Column("snapshot", JSONB, nullable=False),
    # dashboard.v1.VersionReason.
    Column("reason", SmallInteger, nullable=False),
    Column("restored_from", BigInteger),
    Column("author_id", Text, nullable=False),
    _created(),
    PrimaryKeyConstraint("dashboard_id", "version"),
)

dashboard_shares = Table(
    "dashboard_shares",
    metadata,
    _uuid_pk(),
    Column("dashboard_id", UUID(as_uuid=True), ForeignKey("dashboards.id", ondelete="CASCADE"), nullable=False),
    Column("facility_id", Text, nullable=False),
    # 'user' or 'role'.
    Column("grantee_type", Text, nullable=False),
    Column("grantee", Text, nullable=False),
    # dashboard.v1.ShareLevel.
    Column("level", SmallInteger, nullable=False),
    Column("granted_by", Text, nullable=False),
    _created(),
    _updated(),
    CheckConstraint("grantee_type IN ('user', 'role')", name="grantee_type"),
    CheckConstraint("level BETWEEN 1 AND 3", name="level"),
    UniqueConstraint("dashboard_id", "grantee_type", "grantee"),
    # Lists: the dashboards shared with a caller in their facilities, from the index alone.
    Index("ix_dashboard_shares_grantee_facility", "grantee_type", "grantee", "facility_id", "dashboard_id"),
)

public_links = Table(
    "public_links",
    metadata,
    _uuid_pk(),
    Column("dashboard_id", UUID(as_uuid=True), ForeignKey("dashboards.id", ondelete="CASCADE"), nullable=False),
    Column("facility_id", Text, nullable=False),
    # sha256 of the token; the token itself is never stored.
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("expire_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("created_by", Text, nullable=False),
    _created(),
    Index("ix_public_links_dashboard", "dashboard_id"),
)

jobs = Table(
    "jobs",
    metadata,
    _uuid_pk(),
    Column("kind", Text, nullable=False),
    Column("dashboard_id", UUID(as_uuid=True), ForeignKey("dashboards.id", ondelete="CASCADE"), nullable=False),
    Column("facility_id", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    # dashboard.v1.JobState.
    Column("state", SmallInteger, nullable=False, server_default="1"),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("progress", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("widgets", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("error", JSONB),
    Column("revision", BigInteger, nullable=False, server_default="1"),
    _created(),
    _updated(),
    Column("ended_at", DateTime(timezone=True)),
    Index("ix_jobs_dashboard", "dashboard_id", text("created_at DESC")),
)

export_jobs = Table(
    "export_jobs",
    metadata,
    _uuid_pk(),
    # NULL for a CSV/XLSX of a saved query's run (then query_id is set: exactly one of the two).
    Column("dashboard_id", UUID(as_uuid=True), ForeignKey("dashboards.id", ondelete="CASCADE")),
    Column("facility_id", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("dashboard_version", BigInteger, nullable=False),
    # dashboard.v1.ExportFormat.
    Column("format", SmallInteger, nullable=False),
    Column("options", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("filter_values", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("state", SmallInteger, nullable=False, server_default="1"),
    Column("stage", SmallInteger, nullable=False, server_default="1"),
    Column("progress", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("file", JSONB),
    Column("storage_url", Text),
    Column("error", JSONB),
    Column("revision", BigInteger, nullable=False, server_default="1"),
    Column("expire_at", DateTime(timezone=True)),
    # The requester as the worker must act (server/exports/principals.py).
    Column("principal", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("correlation_id", Text, nullable=False, server_default=""),
    # The file shows a sensitive column unmasked (set when it is stored).
    Column("phi_unmasked", Boolean, nullable=False, server_default=text("false")),
    _created(),
    _updated(),
    Column("ended_at", DateTime(timezone=True)),
    # CSV and XLSX: the widget whose data the file holds (it may live only in a version's snapshot).
    Column("widget_id", UUID(as_uuid=True)),
    # CSV and XLSX of a saved query's run: the query, the version run and the parameter values.
    Column("query_id", UUID(as_uuid=True)),
    Column("query_version", BigInteger),
    Column("parameter_values", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    CheckConstraint("(dashboard_id IS NULL) <> (query_id IS NULL)", name="ck_export_jobs_dashboard_or_query"),
    Index("ix_export_jobs_dashboard", "dashboard_id", text("created_at DESC"), "id"),
    Index("ix_export_jobs_requester", "requested_by", text("created_at DESC"), "id"),
    Index("ix_export_jobs_expire", "expire_at", postgresql_where=text("storage_url IS NOT NULL")),
)

# Scheduled report subscriptions (server/reports): a dashboard exported on a cron schedule as its
# owner and delivered to e-mail and webhook recipients.
report_subscriptions = Table(
    "report_subscriptions",
    metadata,
    _uuid_pk(),
    Column("dashboard_id", UUID(as_uuid=True), ForeignKey("dashboards.id", ondelete="CASCADE"), nullable=False),
    Column("facility_id", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    # The owner as the worker renders (server/exports/principals.py), refreshed on every change.
    Column("owner", JSONB, nullable=False),
    Column("title", Text, nullable=False, server_default=""),
    Column("cron", Text, nullable=False),
    Column("time_zone", Text, nullable=False),
    # dashboard.v1.ExportFormat.
    Column("format", SmallInteger, nullable=False),
    Column("options", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("filter_values", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("emails", ARRAY(Text), nullable=False, server_default="{}"),
    Column("webhooks", ARRAY(Text), nullable=False, server_default="{}"),
    Column("include_phi", Boolean, nullable=False, server_default=text("false")),
    Column("webhook_secret", Text, nullable=False),
    # dashboard.v1.SubscriptionState.
    Column("state", SmallInteger, nullable=False, server_default="1"),
    Column("stop_reason", Text, nullable=False, server_default=""),
    Column("next_run_at", DateTime(timezone=True)),
    Column("last_run_at", DateTime(timezone=True)),
    Column("revision", BigInteger, nullable=False, server_default="1"),
    _created(),
    _updated(),
    Index("ix_report_subscriptions_due", "next_run_at", postgresql_where=text("state = 1")),
    Index("ix_report_subscriptions_dashboard", "dashboard_id", text("created_at DESC"), "id"),
    Index("ix_report_subscriptions_facility", "facility_id", text("created_at DESC"), "id"),
)

report_deliveries = Table(
    "report_deliveries",
    metadata,
    _uuid_pk(),
    Column(
        "subscription_id",
        UUID(as_uuid=True),
        ForeignKey("report_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("facility_id", Text, nullable=False),
    # dashboard.v1.DeliveryTrigger.
    Column("trigger", SmallInteger, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    # dashboard.v1.DeliveryState.
    Column("state", SmallInteger, nullable=False, server_default="1"),
    Column("export_id", UUID(as_uuid=True), ForeignKey("export_jobs.id", ondelete="SET NULL")),
    # [{recipient, delivered, attempts, error}], written as each recipient is done.
    Column("recipients", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("error", JSONB),
    _created(),
    _updated(),
    Column("ended_at", DateTime(timezone=True)),
    Index("ix_report_deliveries_subscription", "subscription_id", text("created_at DESC"), "id"),
    # The claim: one delivery per scheduled due time, whoever claims it and however often.
    Index(
        "uq_report_deliveries_due",
        "subscription_id",
        "due_at",
        unique=True,
        postgresql_where=text("trigger = 1"),
    ),
    Index("ix_report_deliveries_open", "created_at", postgresql_where=text("ended_at IS NULL")),
)

# Threshold alert rules on a widget's data (server/alerts) and their state changes.
alert_rules = Table(
    "alert_rules",
    metadata,
    _uuid_pk(),
    Column("widget_id", UUID(as_uuid=True), ForeignKey("widgets.id", ondelete="CASCADE"), nullable=False),
    Column("dashboard_id", UUID(as_uuid=True), nullable=False),
    Column("facility_id", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    # The owner as the worker reads the data (server/exports/principals.py).
    Column("owner", JSONB, nullable=False),
    Column("title", Text, nullable=False, server_default=""),
    Column("column_name", Text, nullable=False),
    # dashboard.v1.AlertReducer, AlertComparison, AlertSeverity.
    Column("reducer", SmallInteger, nullable=False),
    Column("comparison", SmallInteger, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("for_seconds", Integer, nullable=False, server_default="0"),
    Column("interval_seconds", Integer, nullable=False, server_default="60"),
    Column("filter_values", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("emails", ARRAY(Text), nullable=False, server_default="{}"),
    Column("webhooks", ARRAY(Text), nullable=False, server_default="{}"),
    Column("severity", SmallInteger, nullable=False, server_default="2"),
    Column("webhook_secret", Text, nullable=False),
    # dashboard.v1.AlertState; revision counts state changes (the watch resumes from it).
    Column("state", SmallInteger, nullable=False, server_default="0"),
    Column("state_at", DateTime(timezone=True)),
    Column("revision", BigInteger, nullable=False, server_default="0"),
    Column("last_value", Float),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("last_evaluated_at", DateTime(timezone=True)),
    Column("next_evaluation_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("silenced_until", DateTime(timezone=True)),
    # Bumped by every edit (the etag); state changes do not touch it.
    Column("edit_revision", BigInteger, nullable=False, server_default="1"),
    _created(),
    _updated(),
    Index("ix_alert_rules_due", "next_evaluation_at"),
    Index("ix_alert_rules_widget", "widget_id", text("created_at DESC"), "id"),
    Index("ix_alert_rules_facility", "facility_id", text("created_at DESC"), "id"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("rule_id", UUID(as_uuid=True), ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    # The rule's revision this change made: one row per transition, claimed with the rule's update.
    Column("revision", BigInteger, nullable=False),
    Column("from_state", SmallInteger, nullable=False),
    Column("to_state", SmallInteger, nullable=False),
    Column("value", Float),
    Column("error", Text, nullable=False, server_default=""),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # dashboard.v1.NotificationOutcome; notified_at is claimed by the one sender.
    Column("notification", SmallInteger, nullable=False, server_default="0"),
    Column("notified_at", DateTime(timezone=True)),
    Column("recipients", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    PrimaryKeyConstraint("rule_id", "revision"),
)

# A principal's favorite dashboards (migration 0013); gone with the dashboard.
dashboard_favorites = Table(
    "dashboard_favorites",
    metadata,
    Column("principal_id", Text, nullable=False),
    Column("dashboard_id", UUID(as_uuid=True), ForeignKey("dashboards.id", ondelete="CASCADE"), nullable=False),
    Column("facility_id", Text, nullable=False),
    _created(),
    PrimaryKeyConstraint("principal_id", "dashboard_id"),
    Index("ix_dashboard_favorites_principal_created", "principal_id", text("created_at DESC"), "dashboard_id"),
    Index("ix_dashboard_favorites_dashboard", "dashboard_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("actor", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("request_id", UUID(as_uuid=True), nullable=False),
    # sha256 of the serialized request, to refuse a reused key with a different request.
    Column("request_hash", LargeBinary, nullable=False),
    Column("resource_id", UUID(as_uuid=True), nullable=False),
    _created(),
    PrimaryKeyConstraint("actor", "method", "request_id"),
    Index("ix_idempotency_keys_created", "created_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("facility_id", Text, nullable=False, server_default=""),
    Column("method", Text, nullable=False),
    Column("resource_type", Text, nullable=False, server_default=""),
    Column("resource_id", Text, nullable=False, server_default=""),
    Column("resource_version", BigInteger),
    # dashboard.v1.AuditOutcome.
    Column("outcome", SmallInteger, nullable=False),
    Column("row_count", BigInteger),
    Column("phi_unmasked", Boolean, nullable=False, server_default="false"),
    Column("correlation_id", Text, nullable=False, server_default=""),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("ix_audit_log_at", text("at DESC")),
    Index("ix_audit_log_actor", "actor", text("at DESC")),
    Index("ix_audit_log_resource", "resource_id", text("at DESC")),
    Index("ix_audit_log_facility", "facility_id", text("at DESC")),
)

# Tables whose updated_at the tessera_touch_updated_at trigger maintains.
TOUCHED_TABLES = (
    "dashboards",
    "widget_queries",
    "widgets",
    "dashboard_shares",
    "jobs",
    "export_jobs",
)

__all__ = [
    "TOUCHED_TABLES",
    "audit_log",
    "dashboard_favorites",
    "dashboard_shares",
    "dashboard_versions",
    "dashboards",
    "export_jobs",
    "idempotency_keys",
    "jobs",
    "metadata",
    "public_links",
    "query_versions",
    "widget_data_cache",
    "widget_queries",
    "widgets",
]
