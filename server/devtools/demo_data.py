"""The demo data source: a small hospital schema with Row-Level Security by facility.

It is what `tessera dev` shows and what the query tests run against. The RLS policy is the
proof that the facility scope the server sets (`tessera.facility_id`, SET LOCAL per
execution) is enforced by the database itself, beneath whatever the SQL says.
"""

from __future__ import annotations

import psycopg

from server.db.migrate import sync_url

FACILITIES = ("north-general", "south-clinic")

STATEMENTS = [
    "CREATE SCHEMA IF NOT EXISTS demo",
    """
    CREATE TABLE IF NOT EXISTS demo.sites (
        facility_id text NOT NULL,
        site text NOT NULL,
        lat double precision NOT NULL,
        lon double precision NOT NULL,
        beds integer NOT NULL,
        PRIMARY KEY (facility_id, site)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS demo.admissions (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        facility_id text NOT NULL,
        unit text NOT NULL,
        admitted_at timestamptz NOT NULL,
        discharged_at timestamptz,
        patient_name text NOT NULL,
        mrn text NOT NULL,
        age integer NOT NULL,
        cost numeric(12, 2) NOT NULL,
        details jsonb NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX IF NOT EXISTS admissions_facility_time ON demo.admissions (facility_id, admitted_at)",
]

POLICY = """
    ALTER TABLE demo.{table} ENABLE ROW LEVEL SECURITY;
    ALTER TABLE demo.{table} FORCE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS facility_isolation ON demo.{table};
    -- '*' is the scope the server uses to build shared materialized views (never a user's).
    CREATE POLICY facility_isolation ON demo.{table}
        USING (facility_id = current_setting('tessera.facility_id', true)
               OR current_setting('tessera.facility_id', true) = '*');
"""

SEED = """
INSERT INTO demo.sites (facility_id, site, lat, lon, beds) VALUES
    ('north-general', 'North General Main', 53.4808, -2.2426, 420),
    ('north-general', 'North General Annex', 53.4631, -2.2913, 120),
    ('south-clinic', 'South Clinic', 50.9097, -1.4044, 80)
ON CONFLICT DO NOTHING;
INSERT INTO demo.admissions (facility_id, unit, admitted_at, discharged_at, patient_name, mrn, age, cost, details)
SELECT f.facility_id,
       (ARRAY['Cardiology', 'Oncology', 'Emergency', 'Maternity', 'Surgery'])[1 + (g % 5)],
       now() - make_interval(hours => g * 7 % (24 * 60)),
       CASE WHEN g % 4 = 0 THEN NULL
            ELSE now() - make_interval(hours => g * 7 % (24 * 60)) + make_interval(hours => 12 + g % 150) END,
       (ARRAY['Ana García', 'Björn Ødegård', '王小明', 'Chidi Okafor', 'Zoë Brontë', 'محمد علي'])[1 + (g % 6)],
       'MRN' || lpad((g * 7919 % 1000000)::text, 7, '0'),
       1 + (g * 37 % 95),
       round((500 + (g * 7919 % 250000) / 10.0)::numeric, 2),
       jsonb_build_object('triage', 1 + g % 5)
FROM generate_series(1, 1500) AS g
CROSS JOIN (VALUES ('north-general'), ('south-clinic')) AS f(facility_id)
WHERE NOT EXISTS (SELECT 1 FROM demo.admissions LIMIT 1);
"""

GRANTS = """
    GRANT USAGE ON SCHEMA demo TO tessera_reader;
    GRANT SELECT ON ALL TABLES IN SCHEMA demo TO tessera_reader;
"""


def install(database_url: str) -> None:
    """Creates the demo schema, its RLS policies, grants and rows (idempotent)."""
    dsn = sync_url(database_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in STATEMENTS:
            conn.execute(statement)
        for table in ("sites", "admissions"):
            conn.execute(POLICY.format(table=table))
        # The seeding session may be subject to the policy (a non-superuser owner): give it every facility.
        conn.execute("SELECT set_config('tessera.facility_id', '*', false)")
        conn.execute(SEED)
        conn.execute(GRANTS)
