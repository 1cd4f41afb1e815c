"""An alert rule against real data changes, on real services (a Celery worker evaluating through
the widget-data path, aiosmtpd, a loopback HTTP receiver), beat's clock injected into its task:
OK -> PENDING -> FIRING (after its `for`) -> RESOLVED -> ... -> ERROR; one notification per
FIRING/RESOLVED change however often the rule is evaluated, none while silenced; the watch
stream resumes from a revision; a query error is ERROR, never FIRING."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from dashboard.v1 import alert_pb2 as a
from dashboard.v1 import alert_pb2_grpc
from dashboard.v1 import report_pb2 as r
from dashboard.v1 import widget_pb2 as w
from server.broker.app import make_celery
from server.broker.names import TASK_DUE_ALERTS, TASK_EVALUATE_ALERT
from server.config import Settings
from server.db.migrate import sync_url
from tessera_client.webhooks import SIGNATURE_HEADER, verify
from tests.harness.exports import ExportKit, stubs_for
from tests.harness.notify_stack import notify_stack, until
from tests.harness.receivers import HttpReceiver, SmtpReceiver
from tests.harness.server import ServerHandle
from tests.harness.worker_metrics import worker_sample
from workers.testing import WorkerProcess

T = TypeVar("T")
READER = "tessera_reader"
S = a.AlertState


@pytest.fixture(scope="module")
def stack(
    settings: Settings, migrated: str
) -> Iterator[tuple[Settings, ServerHandle, SmtpReceiver, HttpReceiver, WorkerProcess]]:
    with notify_stack(settings, queues="materialize,maintenance", job_heartbeat_seconds=0.2) as running:
        yield running.settings, running.server, running.smtp, running.http, running.worker


@pytest.fixture
def table(migrated: str) -> Iterator[str]:
    """A data table the test changes (the reader role may read it)."""
    dsn = sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)
    schema = f"alerts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.boarding (id serial PRIMARY KEY, hours numeric NOT NULL)")
        conn.execute(f"INSERT INTO {schema}.boarding (hours) VALUES (2), (3.5)")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {READER}")
        conn.execute(f"GRANT SELECT ON {schema}.boarding TO {READER}")
    yield f"{schema}.boarding"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _sql(migrated: str, statement: str) -> None:
    with psycopg.connect(sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as c:
        c.execute(statement)  # type: ignore[arg-type]


def _until(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    return until(what, probe, timeout, interval=0.05)


def test_a_rule_moves_through_its_states_and_notifies_once_per_change(
    stack: Any, table: str, migrated: str, auth: Any, facility: str
) -> None:
    settings, server, smtp, http, worker = stack
    owner = auth("bedmanager@example.org", "editor", facility)
    with grpc.insecure_channel(server.address) as channel:
        kit = ExportKit(stubs_for(channel), owner, facility)
        alerts = alert_pb2_grpc.AlertServiceStub(channel)
        board, (widget,) = kit.board(
            "ED boarding",
            (
                "Boarding hours",
                f"SELECT hours FROM {table} ORDER BY id",
                w.GridPosition(x=0, y=0, width=6, height=3),
                {"table": w.TableConfig()},
            ),
        )
        hook = http.url("/alerts")
        rule = alerts.CreateAlertRule(
            a.CreateAlertRuleRequest(
                rule=a.AlertRule(
                    widget_id=widget.id,
                    title="ED boarding over 4 hours",
                    column="hours",
                    reducer=a.ALERT_REDUCER_MAX,
                    comparison=a.ALERT_COMPARISON_GREATER,
                    threshold=4,
                    for_duration=duration_pb2.Duration(seconds=120),
                    recipients=r.ReportRecipients(emails=["beds@example.org"], webhooks=[hook]),
                    severity=a.ALERT_SEVERITY_CRITICAL,
                )
            ),
            metadata=owner,
        )
        assert rule.dashboard_id == board.id and rule.interval.seconds == 60 and rule.webhook_secret
        dsn = sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT webhook_secret FROM alert_rules WHERE id = %s", (rule.id,)).fetchone()
        assert row is not None and row[0].startswith("sealed:v1:") and rule.webhook_secret not in row[0]
        assert not alerts.GetAlertRule(a.GetAlertRuleRequest(id=rule.id), metadata=owner).webhook_secret
        seen = alerts.PreviewAlertRule(a.PreviewAlertRuleRequest(rule=rule), metadata=owner)
        assert (seen.value, seen.holds, seen.row_count) == (3.5, False, 2)  # what the first evaluation will see
        celery = make_celery(settings)
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)

        def get() -> a.AlertRule:
            return alerts.GetAlertRule(a.GetAlertRuleRequest(id=rule.id), metadata=owner)

        def tick(minutes: int) -> a.AlertRule:
            """Beat's run at start + minutes; waits for the rule's evaluation at that time."""
            at = start + timedelta(minutes=minutes)
            celery.send_task(TASK_DUE_ALERTS, kwargs={"now": at.isoformat()}, queue="maintenance")
            return _until(
                f"the evaluation at +{minutes} min",
                lambda: (g := get()).last_evaluation_time.ToDatetime(tzinfo=UTC) == at and g,
            )

        assert tick(0).state == S.Value("ALERT_STATE_OK")
        _sql(migrated, f"INSERT INTO {table} (hours) VALUES (5.25)")
        pending = tick(1)
        assert pending.state == S.Value("ALERT_STATE_PENDING") and pending.last_value == 5.25
        assert tick(2).state == S.Value("ALERT_STATE_PENDING")  # held 60 s of its 120
        firing = tick(3)
        assert firing.state == S.Value("ALERT_STATE_FIRING")
        # The same evaluation again (a re-delivered task): no second transition, no second notification.
        again = (start + timedelta(minutes=3)).isoformat()
        celery.send_task(TASK_EVALUATE_ALERT, args=[rule.id, again], queue="materialize")
        assert tick(4).state == S.Value("ALERT_STATE_FIRING")
        _until("the FIRING e-mail", lambda: smtp.to("beds@example.org"))
        (mail,) = smtp.to("beds@example.org")
        assert mail["Subject"] == "[FIRING] CRITICAL: ED boarding over 4 hours"
        assert "max(hours) > 4" in mail.get_content() and "Value: 5.25" in mail.get_content()
        (call,) = http.at("/alerts")
        assert verify(rule.webhook_secret, call.body, call.headers[SIGNATURE_HEADER.lower()])
        assert json.loads(call.body)["to_state"] == "FIRING"

        # Silenced: the state still changes and is recorded; nobody is told.
        until = timestamp_pb2.Timestamp()
        until.FromDatetime(start + timedelta(hours=1))
        silenced = alerts.SilenceAlertRule(a.SilenceAlertRuleRequest(id=rule.id, until=until), metadata=owner)
        assert silenced.silenced_until == until
        _sql(migrated, f"DELETE FROM {table} WHERE hours > 4")
        assert tick(5).state == S.Value("ALERT_STATE_RESOLVED")
        alerts.SilenceAlertRule(a.SilenceAlertRuleRequest(id=rule.id), metadata=owner)  # the silence ends
        _sql(migrated, f"INSERT INTO {table} (hours) VALUES (7)")
        assert tick(6).state == S.Value("ALERT_STATE_PENDING")
        assert tick(8).state == S.Value("ALERT_STATE_FIRING")
        # A query that fails is ERROR, not FIRING, whatever the last value was.
        _sql(migrated, f"ALTER TABLE {table} RENAME COLUMN hours TO hrs")
        errored = tick(9)
        assert errored.state == S.Value("ALERT_STATE_ERROR") and errored.last_error

        events = alerts.ListAlertEvents(a.ListAlertEventsRequest(rule_id=rule.id), metadata=owner).events
        changes = [
            (S.Name(e.from_state), S.Name(e.to_state), a.NotificationOutcome.Name(e.notification))
            for e in reversed(events)
        ]
        assert [(f[12:], t[12:], n[21:]) for f, t, n in changes] == [
            ("UNSPECIFIED", "OK", "UNSPECIFIED"),
            ("OK", "PENDING", "UNSPECIFIED"),
            ("PENDING", "FIRING", "SENT"),
            ("FIRING", "RESOLVED", "SILENCED"),
            ("RESOLVED", "PENDING", "UNSPECIFIED"),
            ("PENDING", "FIRING", "SENT"),
            ("FIRING", "ERROR", "UNSPECIFIED"),
        ]
        assert [e.revision for e in reversed(events)] == list(range(1, 8))
        _until("the second FIRING e-mail", lambda: len(smtp.to("beds@example.org")) == 2)
        assert len(smtp.to("beds@example.org")) == 2 and len(http.at("/alerts")) == 2

        # The worker's metrics: the evaluations by outcome, the changes by state, the deliveries.
        def metric(name: str, **labels: str) -> float:
            return worker_sample(worker, name, **labels)

        assert metric("tessera_alert_evaluations_total", outcome="ok") >= 1
        assert metric("tessera_alert_evaluations_total", outcome="holds") >= 5
        assert metric("tessera_alert_evaluations_total", outcome="error") >= 1
        assert metric("tessera_alert_transitions_total", state="firing") == 2
        assert metric("tessera_alert_transitions_total", state="pending") == 2
        assert metric("tessera_alert_transitions_total", state="resolved") == 1
        assert metric("tessera_alert_transitions_total", state="error") == 1
        for channel in ("email", "webhook"):
            assert metric("tessera_notification_deliveries_total", channel=channel, outcome="delivered") == 2

        # The watch: the rule first, or, resumed from a revision, only the changes after it.
        first = next(iter(alerts.WatchAlertRule(a.WatchAlertRuleRequest(id=rule.id), metadata=owner, timeout=10)))
        assert first.rule.revision == 7 and first.rule.state == S.Value("ALERT_STATE_ERROR")
        resumed = alerts.WatchAlertRule(
            a.WatchAlertRuleRequest(id=rule.id, since_revision=5), metadata=owner, timeout=10
        )
        got = []
        for event in resumed:
            if event.HasField("heartbeat"):
                break
            got.append(event.change.revision)
        resumed.cancel()
        assert got == [6, 7]
