"""Query execution: the least-privilege role user SQL runs as, and the schema of managed
materialized views.

`tessera_reader` (NOLOGIN) is what every user query runs as (`SET LOCAL ROLE` inside a READ ONLY
transaction): it may read the data schemas it is granted and nothing of the application's own
tables (dashboards, audit log, ...). Operators grant it SELECT on their data schemas, e.g.
`GRANT USAGE ON SCHEMA clinical TO tessera_reader; GRANT SELECT ON ALL TABLES IN SCHEMA clinical
TO tessera_reader;` and write Row-Level Security policies on
`current_setting('tessera.facility_id', true)`, which the server sets for every execution.

Roles are cluster-wide: the role survives a downgrade (other databases may use it); only this
database's grants are removed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "tessera_reader"


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            CREATE ROLE {READER} NOLOGIN NOINHERIT;
        -- Another database's migration may create it at the same moment.
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$
        """
    )
    # The application's login role switches to the reader for each query.
    op.execute(f"GRANT {READER} TO CURRENT_USER")
    # Nothing of the application schema is readable by user SQL.
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {READER}")
    op.execute("CREATE SCHEMA tessera_mv")
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA tessera_mv TO {READER}")


def downgrade() -> None:
    op.execute("DROP SCHEMA tessera_mv CASCADE")
    op.execute(f"REVOKE {READER} FROM CURRENT_USER")
