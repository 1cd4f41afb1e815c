"""Managed materialized views get their own owner role, which user SQL cannot reach.

Before: views were owned by `tessera_reader`, the role user SQL runs as, so a query could read
any facility's view directly (views have no Row-Level Security). Now `tessera_view_owner` owns
the `tessera_mv` schema and its views and reads the data sources through membership in
`tessera_reader`; the reader itself has no access to `tessera_mv`. The server reads a view only
with its own SQL (`SELECT ... WHERE facility_id = :facility_id`) as the owner role.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "tessera_reader"
OWNER = "tessera_view_owner"


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            CREATE ROLE {OWNER} NOLOGIN INHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$
        """
    )
    op.execute(f"GRANT {READER} TO {OWNER}")
    op.execute(f"GRANT {OWNER} TO CURRENT_USER")
    op.execute(f"REVOKE ALL ON SCHEMA tessera_mv FROM {READER}")
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA tessera_mv TO {OWNER}")
    op.execute(
        f"""
        DO $$
        DECLARE v record;
        BEGIN
            FOR v IN SELECT matviewname FROM pg_matviews WHERE schemaname = 'tessera_mv' LOOP
                EXECUTE format('ALTER MATERIALIZED VIEW tessera_mv.%I OWNER TO {OWNER}', v.matviewname);
            END LOOP;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DO $$
        DECLARE v record;
        BEGIN
            FOR v IN SELECT matviewname FROM pg_matviews WHERE schemaname = 'tessera_mv' LOOP
                EXECUTE format('ALTER MATERIALIZED VIEW tessera_mv.%I OWNER TO {READER}', v.matviewname);
            END LOOP;
        END $$
        """
    )
    op.execute(f"REVOKE ALL ON SCHEMA tessera_mv FROM {OWNER}")
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA tessera_mv TO {READER}")
    op.execute(f"REVOKE {OWNER} FROM CURRENT_USER")
    op.execute(f"REVOKE {READER} FROM {OWNER}")
