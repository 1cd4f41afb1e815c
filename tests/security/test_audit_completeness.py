"""Audit completeness (issue 6, adversarial suite): every data read is in the audit log, with its
row count and `phi_unmasked` exactly as the response was; and the log cannot be altered through
an application role.

The session's channel records every data read with its own truth about PHI
(tests/security/phi_reads.py); the session ends by checking all of them against the log. Here a
spread of reads (PHI and not, masked and not, miss and hit, batch, RunQuery, public link) is
checked at once, then everything the session has read so far.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.auth.principal import PHI_READ
from server.db.migrate import sync_url
from server.devtools.demo_data import install as install_demo_data
from tests.harness.kit import board_with_queries
from tests.security.phi_reads import PhiReadRecorder

NORTH = "north-general"


@pytest.fixture(scope="module")
def dsn(migrated: str) -> str:
    install_demo_data(migrated)
    return sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)


def test_every_data_read_is_in_the_audit_log_exactly(
    server: Any,
    phi_reads: PhiReadRecorder,
    dsn: str,
    queries: Any,
    dashboards: Any,
    widgets: Any,
    shares: Any,
    auth: Any,
) -> None:
    phi = auth(f"complete-{uuid.uuid4().hex[:6]}", "admin", NORTH, permissions=(PHI_READ,))
    plain = auth(f"complete-{uuid.uuid4().hex[:6]}", "admin", NORTH)
    specs = [
        ("SELECT patient_name, mrn, unit FROM demo.admissions ORDER BY id LIMIT 4", ["patient_name", "mrn"]),
        ("SELECT unit, count(*) AS n FROM demo.admissions GROUP BY unit", []),
        ("SELECT mrn FROM demo.admissions ORDER BY id LIMIT 2", ["mrn"]),
    ]
    board, made = board_with_queries(queries, dashboards, widgets, phi, NORTH, *specs)
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=phi)
    link = shares.CreatePublicLink(s.CreatePublicLinkRequest(dashboard_id=board.id), metadata=phi)

    mine: set[str] = set()

    def cid() -> tuple[tuple[str, str], ...]:
        value = f"complete-{uuid.uuid4().hex}"
        mine.add(value)
        return (("x-correlation-id", value),)

    for md in (plain, phi, phi, plain, (("x-tessera-link", link.token),)):  # misses, then hits
        for _, widget in made:
            widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=md + cid(), timeout=30)
        widgets.BatchGetWidgetData(
            w.BatchGetWidgetDataRequest(requests=[w.GetWidgetDataRequest(widget_id=x.id) for _, x in made]),
            metadata=md + cid(),
            timeout=30,
        )
    for query, _ in made:
        for md in (phi, plain):
            queries.RunQuery(q.RunQueryRequest(id=query.id), metadata=md + cid(), timeout=30)

    flush = lambda: server.run(server.running.app.audit.flush())  # noqa: E731
    here = phi_reads.verify(flush, only=mine)
    assert not here.problems, here.problems[:5]
    assert here.calls == 5 * 4 + 6 and here.events == 5 * 6 + 6
    # phi:read sees two PHI widgets unmasked, twice, single and batched; RunQuery twice.
    assert here.phi_unmasked == 2 * 2 * 2 + 2
    session = phi_reads.verify(flush)
    assert not session.problems, session.problems[:5]
    print(
        f"\n[audit completeness] this test: {here.calls} data reads, {here.events} events, "
        f"{here.phi_unmasked} with PHI unmasked; the session so far: {session.calls} data reads, "
        f"{session.events} events, {session.phi_unmasked} with PHI unmasked, {session.unresolved} unresolved; "
        "all in the audit log exactly"
    )


def test_an_application_role_cannot_alter_the_log(dsn: str) -> None:
    """Through a login role with the privileges an application has on every table (but not
    owning them, as in a deployment where migrations run as the owner): UPDATE, DELETE and
    TRUNCATE of audit_log are refused, and so are the ways around the triggers (disabling them,
    replica mode). INSERT and SELECT work."""
    role = f"tessera_app_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        admin.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {}").format(
                sql.Identifier(role)
            )
        )
        admin.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(sql.Identifier(role)))
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info.update(user=role, password=password)
    try:
        with psycopg.connect(**info, autocommit=True) as app:
            event_id = app.execute(
                "INSERT INTO audit_log (actor, method, outcome) VALUES ('app-role', 'test/Immutable', 1) RETURNING id"
            ).fetchone()[0]
            for statement in (
                "UPDATE audit_log SET actor = 'someone-else' WHERE id = %(id)s",
                "DELETE FROM audit_log WHERE id = %(id)s",
                "TRUNCATE audit_log",
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
                "SET session_replication_role = replica",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    app.execute(statement, {"id": event_id})
            assert app.execute("SELECT actor FROM audit_log WHERE id = %s", (event_id,)).fetchone() == ("app-role",)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
