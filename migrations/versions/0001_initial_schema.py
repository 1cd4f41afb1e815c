"""Initial schema: the tables of the original specification plus versions, jobs, links,
idempotency keys and the append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 23:38:07.464060
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen here: later migrations must not change what this one did.
TOUCHED_TABLES = (
    "dashboards",
    "widget_queries",
    "widgets",
    "dashboard_shares",
    "jobs",
    "export_jobs",
)

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("facility_id", sa.Text(), server_default="", nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("resource_type", sa.Text(), server_default="", nullable=False),
        sa.Column("resource_id", sa.Text(), server_default="", nullable=False),
        sa.Column("resource_version", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("phi_unmasked", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("correlation_id", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_actor",
        "audit_log",
        ["actor", sa.literal_column("at DESC")],
        unique=False,
    )
    op.create_index("ix_audit_log_at", "audit_log", [sa.literal_column("at DESC")], unique=False)
    op.create_index(
        "ix_audit_log_facility",
        "audit_log",
        ["facility_id", sa.literal_column("at DESC")],
        unique=False,
    )
    op.create_index(
        "ix_audit_log_resource",
        "audit_log",
        ["resource_id", sa.literal_column("at DESC")],
        unique=False,
    )
    op.create_table(
        "dashboards",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("visibility", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column(
            "layout",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "filters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("published_version", sa.BigInteger(), nullable=True),
        sa.Column("publish_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "published_version IS NULL OR published_version BETWEEN 1 AND version",
            name=op.f("ck_dashboards_published_version"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_dashboards_version_positive")),
        sa.CheckConstraint("visibility IN (1, 2)", name=op.f("ck_dashboards_visibility")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboards")),
    )
    op.create_index(
        "ix_dashboards_facility_created",
        "dashboards",
        ["facility_id", sa.literal_column("created_at DESC"), "id"],
        unique=False,
    )
    op.create_index(
        "ix_dashboards_facility_owner",
        "dashboards",
        ["facility_id", "owner_id"],
        unique=False,
    )
    op.create_index(
        "ix_dashboards_facility_title",
        "dashboards",
        ["facility_id", "title", "id"],
        unique=False,
    )
    op.create_index(
        "ix_dashboards_facility_updated",
        "dashboards",
        ["facility_id", sa.literal_column("updated_at DESC"), "id"],
        unique=False,
    )
    op.create_index(
        "ix_dashboards_tags",
        "dashboards",
        ["tags"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(), nullable=False),
        sa.Column("resource_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("actor", "method", "request_id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"], unique=False)
    op.create_table(
        "widget_queries",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("is_template", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("view_name", sa.Text(), nullable=True),
        sa.Column("refresh_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN (1, 2)", name=op.f("ck_widget_queries_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_widget_queries")),
        sa.UniqueConstraint("view_name", name=op.f("uq_widget_queries_view_name")),
    )
    op.create_index(
        "ix_widget_queries_facility_updated",
        "widget_queries",
        ["facility_id", sa.literal_column("updated_at DESC"), "id"],
        unique=False,
    )
    op.create_index(
        "ix_widget_queries_tags",
        "widget_queries",
        ["tags"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "dashboard_shares",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("dashboard_id", sa.UUID(), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("grantee_type", sa.Text(), nullable=False),
        sa.Column("grantee", sa.Text(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "grantee_type IN ('user', 'role')",
            name=op.f("ck_dashboard_shares_grantee_type"),
        ),
        sa.CheckConstraint("level BETWEEN 1 AND 3", name=op.f("ck_dashboard_shares_level")),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name=op.f("fk_dashboard_shares_dashboard_id_dashboards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_shares")),
        sa.UniqueConstraint(
            "dashboard_id",
            "grantee_type",
            "grantee",
            name=op.f("uq_dashboard_shares_dashboard_id_grantee_type_grantee"),
        ),
    )
    op.create_index(
        "ix_dashboard_shares_grantee",
        "dashboard_shares",
        ["grantee_type", "grantee"],
        unique=False,
    )
    op.create_table(
        "dashboard_versions",
        sa.Column("dashboard_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sa.SmallInteger(), nullable=False),
        sa.Column("restored_from", sa.BigInteger(), nullable=True),
        sa.Column("author_id", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name=op.f("fk_dashboard_versions_dashboard_id_dashboards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dashboard_id", "version", name=op.f("pk_dashboard_versions")),
    )
    op.create_table(
        "export_jobs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("dashboard_id", sa.UUID(), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("dashboard_version", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.SmallInteger(), nullable=False),
        sa.Column(
            "options",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "filter_values",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("state", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("stage", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column(
            "progress",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("file", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("storage_url", sa.Text(), nullable=True),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("revision", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("expire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name=op.f("fk_export_jobs_dashboard_id_dashboards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_jobs")),
    )
    op.create_index(
        "ix_export_jobs_dashboard",
        "export_jobs",
        ["dashboard_id", sa.literal_column("created_at DESC"), "id"],
        unique=False,
    )
    op.create_index("ix_export_jobs_expire", "export_jobs", ["expire_at"], unique=False)
    op.create_index(
        "ix_export_jobs_requester",
        "export_jobs",
        ["requested_by", sa.literal_column("created_at DESC"), "id"],
        unique=False,
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("dashboard_id", sa.UUID(), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("state", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "progress",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "widgets",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("revision", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name=op.f("fk_jobs_dashboard_id_dashboards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(
        "ix_jobs_dashboard",
        "jobs",
        ["dashboard_id", sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_table(
        "public_links",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("dashboard_id", sa.UUID(), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("expire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name=op.f("fk_public_links_dashboard_id_dashboards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_public_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_public_links_token_hash")),
    )
    op.create_index("ix_public_links_dashboard", "public_links", ["dashboard_id"], unique=False)
    op.create_table(
        "query_versions",
        sa.Column("query_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "options",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "sensitive_columns",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("author_id", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["query_id"],
            ["widget_queries.id"],
            name=op.f("fk_query_versions_query_id_widget_queries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("query_id", "version", name=op.f("pk_query_versions")),
    )
    op.create_table(
        "widgets",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("dashboard_id", sa.UUID(), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.UUID(), nullable=True),
        sa.Column("query_version", sa.BigInteger(), nullable=True),
        sa.Column(
            "refresh_interval_seconds",
            sa.Integer(),
            server_default="300",
            nullable=False,
        ),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("next_refresh_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("type BETWEEN 1 AND 7", name=op.f("ck_widgets_type")),
        sa.CheckConstraint(
            "x >= 0 AND width >= 1 AND x + width <= 12",
            name=op.f("ck_widgets_inside_grid"),
        ),
        sa.CheckConstraint("y >= 0 AND height BETWEEN 1 AND 24", name=op.f("ck_widgets_height")),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name=op.f("fk_widgets_dashboard_id_dashboards"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["query_id"],
            ["widget_queries.id"],
            name=op.f("fk_widgets_query_id_widget_queries"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_widgets")),
    )
    op.create_index(
        "ix_widgets_dashboard_position",
        "widgets",
        ["dashboard_id", "y", "x"],
        unique=False,
    )
    op.create_index("ix_widgets_next_refresh", "widgets", ["next_refresh_at"], unique=False)
    op.create_index("ix_widgets_query", "widgets", ["query_id"], unique=False)
    op.create_table(
        "widget_data_cache",
        sa.Column("cache_key", sa.Text(), nullable=False),
        sa.Column("widget_id", sa.UUID(), nullable=True),
        sa.Column("query_id", sa.UUID(), nullable=False),
        sa.Column("query_version", sa.BigInteger(), nullable=False),
        sa.Column("facility_id", sa.Text(), nullable=False),
        sa.Column("masking_level", sa.SmallInteger(), nullable=False),
        sa.Column("frame", sa.LargeBinary(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["query_id"],
            ["widget_queries.id"],
            name=op.f("fk_widget_data_cache_query_id_widget_queries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["widget_id"],
            ["widgets.id"],
            name=op.f("fk_widget_data_cache_widget_id_widgets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cache_key", name=op.f("pk_widget_data_cache")),
    )
    op.create_index(
        "ix_widget_data_cache_expires",
        "widget_data_cache",
        ["expires_at"],
        unique=False,
    )
    op.create_index("ix_widget_data_cache_widget", "widget_data_cache", ["widget_id"], unique=False)

    # updated_at is the database's job, so no code path can forget it.
    op.execute(
        """
        CREATE FUNCTION tessera_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := now();
            RETURN NEW;
        END $$
        """
    )
    for table in TOUCHED_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_touch_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION tessera_touch_updated_at()"
        )
    # Versions are immutable snapshots; the audit log is append-only. The database refuses
    # otherwise, whatever the application does.
    op.execute(
        """
        CREATE FUNCTION tessera_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER dashboard_versions_immutable BEFORE UPDATE ON dashboard_versions "
        "FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION tessera_refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP TRIGGER dashboard_versions_immutable ON dashboard_versions")
    op.execute("DROP FUNCTION tessera_refuse_change()")
    for table in TOUCHED_TABLES:
        op.execute(f"DROP TRIGGER {table}_touch_updated_at ON {table}")
    op.execute("DROP FUNCTION tessera_touch_updated_at()")
    op.drop_index("ix_widget_data_cache_widget", table_name="widget_data_cache")
    op.drop_index("ix_widget_data_cache_expires", table_name="widget_data_cache")
    op.drop_table("widget_data_cache")
    op.drop_index("ix_widgets_query", table_name="widgets")
    op.drop_index("ix_widgets_next_refresh", table_name="widgets")
    op.drop_index("ix_widgets_dashboard_position", table_name="widgets")
    op.drop_table("widgets")
    op.drop_table("query_versions")
    op.drop_index("ix_public_links_dashboard", table_name="public_links")
    op.drop_table("public_links")
    op.drop_index("ix_jobs_dashboard", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_export_jobs_requester", table_name="export_jobs")
    op.drop_index("ix_export_jobs_expire", table_name="export_jobs")
    op.drop_index("ix_export_jobs_dashboard", table_name="export_jobs")
    op.drop_table("export_jobs")
    op.drop_table("dashboard_versions")
    op.drop_index("ix_dashboard_shares_grantee", table_name="dashboard_shares")
    op.drop_table("dashboard_shares")
    op.drop_index("ix_widget_queries_tags", table_name="widget_queries", postgresql_using="gin")
    op.drop_index("ix_widget_queries_facility_updated", table_name="widget_queries")
    op.drop_table("widget_queries")
    op.drop_index("ix_idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_dashboards_tags", table_name="dashboards", postgresql_using="gin")
    op.drop_index("ix_dashboards_facility_updated", table_name="dashboards")
    op.drop_index("ix_dashboards_facility_title", table_name="dashboards")
    op.drop_index("ix_dashboards_facility_owner", table_name="dashboards")
    op.drop_index("ix_dashboards_facility_created", table_name="dashboards")
    op.drop_table("dashboards")
    op.drop_index("ix_audit_log_resource", table_name="audit_log")
    op.drop_index("ix_audit_log_facility", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_table("audit_log")
