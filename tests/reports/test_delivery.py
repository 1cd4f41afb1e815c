"""Report deliveries end to end on real services: a server, a real Celery worker (Chromium),
an SMTP server (aiosmtpd) and an HTTP receiver on loopback. The e-mail carries a PDF that pdfinfo
opens; the webhook's signature verifies and a failing receiver is retried; a due time fires
exactly once across two beat ticks and a worker restart; PHI is masked unless asked for and
allowed; an owner who lost the dashboard stops the subscription; every delivery is audited."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any, TypeVar

import grpc
import psycopg
import pytest

from dashboard.v1 import report_pb2 as r
from dashboard.v1 import report_pb2_grpc
from dashboard.v1 import share_pb2 as s
from server.broker.app import make_celery
from server.broker.names import TASK_DUE_REPORTS
from server.config import Settings
from server.db.migrate import sync_url
from tessera_client.webhooks import SIGNATURE_HEADER, verify
from tests.harness.exports import ExportKit, stubs_for
from tests.harness.notify_stack import NotifyStack, notify_stack, until
from tests.harness.worker_metrics import worker_sample
from tests.reports.helpers import SECRET_NAME, phi_board, subscription

T = TypeVar("T")
ENDED = {r.DELIVERY_STATE_DELIVERED, r.DELIVERY_STATE_PARTIALLY_DELIVERED, r.DELIVERY_STATE_FAILED}
WAIT = 90.0


Stack = NotifyStack


@pytest.fixture(scope="module")
def stack(settings: Settings, migrated: str) -> Iterator[Stack]:
    with notify_stack(settings, queues="exports,maintenance", job_heartbeat_seconds=0.5) as running:
        yield running


@pytest.fixture
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.server.address) as ch:
        yield ch


@pytest.fixture
def reports(channel: grpc.Channel) -> Any:
    return report_pb2_grpc.ReportServiceStub(channel)


@pytest.fixture
def owner(auth: Any, facility: str) -> Any:
    return auth("qa@example.org", "editor", facility, permissions=("phi:read",))


@pytest.fixture
def kit(channel: grpc.Channel, owner: Any, facility: str) -> ExportKit:
    return ExportKit(stubs_for(channel), owner, facility)


def _pdf_text(data: bytes) -> tuple[str, str]:
    """pdfinfo's and pdftotext's reading of a PDF."""
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(data)
        handle.flush()
        info = subprocess.run(["pdfinfo", handle.name], capture_output=True, text=True, check=True).stdout
        words = subprocess.run(["pdftotext", handle.name, "-"], capture_output=True, text=True, check=True).stdout
    return info, words


def _attachment(message: Any) -> bytes:
    (part,) = list(message.iter_attachments())
    assert part.get_content_type() == "application/pdf"
    data: bytes = part.get_content()
    return data


def _deliveries(reports: Any, md: Any, sub_id: str) -> list[r.ReportDelivery]:
    answer = reports.ListReportDeliveries(r.ListReportDeliveriesRequest(subscription_id=sub_id), metadata=md)
    return list(answer.deliveries)


def _sql(settings: Settings, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    url = sync_url(settings.database_url).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        return conn.execute(statement, args).fetchall()  # type: ignore[arg-type]


def _audit(settings: Settings, sub_id: str) -> list[tuple[Any, ...]]:
    url = sync_url(settings.database_url).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT actor, phi_unmasked, details FROM audit_log"
            " WHERE method = 'tessera.reports.deliver' AND resource_id = %s ORDER BY id",
            (sub_id,),
        ).fetchall()


def test_send_now_mails_a_pdf_and_signs_the_webhook(stack: Stack, reports: Any, kit: ExportKit, owner: Any) -> None:
    board = phi_board(kit)
    stack.http.failures["/flaky"] = 1  # the first request fails: the delivery retries it
    hooks = (stack.http.url("/flaky"),)
    made = reports.CreateReportSubscription(
        r.CreateReportSubscriptionRequest(
            subscription=subscription(board.id, emails=("ipc@example.org",), webhooks=hooks)
        ),
        metadata=owner,
    )
    (stored,) = _sql(stack.settings, "SELECT webhook_secret FROM report_subscriptions WHERE id = %s", made.id)
    assert stored[0].startswith("sealed:v1:dev:") and made.webhook_secret not in stored[0], "sealed at rest"
    delivery = reports.SendReportNow(r.SendReportNowRequest(id=made.id), metadata=owner)
    assert delivery.trigger == r.DELIVERY_TRIGGER_MANUAL

    events = list(
        reports.WatchReportDelivery(r.WatchReportDeliveryRequest(id=delivery.id), metadata=owner, timeout=WAIT)
    )
    assert events[-1].HasField("delivery"), events[-1]
    exports = [ev.export for ev in events if ev.HasField("export")]
    assert exports and [x.revision for x in exports] == sorted({x.revision for x in exports})
    done = events[-1].delivery
    assert done.state == r.DELIVERY_STATE_DELIVERED, done
    assert done.export_id == exports[-1].id
    outcomes = {o.recipient: o for o in done.recipients}
    assert outcomes["mailto:ipc@example.org"].delivered
    assert outcomes[hooks[0]].delivered and outcomes[hooks[0]].attempts == 2

    (mail,) = stack.smtp.to("ipc@example.org")
    assert mail["From"] == "reports@tessera.test" and "Weekly infection control" in mail["Subject"]
    assert "Protected health information: masked" in mail.get_body(("plain",)).get_content()
    info, words = _pdf_text(_attachment(mail))
    assert "Pages:" in info and "Infection control" in words
    assert SECRET_NAME not in words  # the owner holds phi:read, but the subscription did not ask for PHI

    calls = stack.http.at("/flaky")
    assert len(calls) == 2
    # The worker's metrics count each recipient's delivery (the webhook's two attempts as one).
    for channel in ("email", "webhook"):
        labels = {"channel": channel, "outcome": "delivered"}
        assert worker_sample(stack.worker, "tessera_notification_deliveries_total", **labels) >= 1, channel
        assert worker_sample(stack.worker, "tessera_notification_delivery_duration_seconds_count", **labels) >= 1
    for call in calls:
        assert verify(made.webhook_secret, call.body, call.headers[SIGNATURE_HEADER.lower()])
        assert not verify("another secret", call.body, call.headers[SIGNATURE_HEADER.lower()])
    body = json.loads(calls[-1].body)
    assert body["delivery_id"] == delivery.id and body["export_id"] == done.export_id
    assert body["file"]["content_type"] == "application/pdf" and body["content_base64"]

    ((actor, phi, details),) = _audit(stack.settings, made.id)
    assert actor == "qa@example.org" and phi is False
    assert details["recipients"] == ["mailto:ipc@example.org", hooks[0]]
    assert details["delivered"] == details["recipients"] and details["delivery_id"] == delivery.id


def test_a_due_time_fires_once_across_ticks_and_a_worker_restart(
    stack: Stack, reports: Any, kit: ExportKit, owner: Any
) -> None:
    board = phi_board(kit, "Daily census")
    made = reports.CreateReportSubscription(
        r.CreateReportSubscriptionRequest(
            subscription=subscription(
                board.id,
                emails=("census@example.org",),
                schedule=r.ReportSchedule(cron="0 7 * * *", time_zone="Europe/Paris"),
                include_phi=True,
            )
        ),
        metadata=owner,
    )
    first = made.next_run_time.ToDatetime(tzinfo=UTC)
    celery = make_celery(stack.settings)

    def tick(at: Any) -> None:  # what beat sends, with the test's clock
        celery.send_task(TASK_DUE_REPORTS, kwargs={"now": at.isoformat()}, queue="maintenance")

    tick(first + timedelta(seconds=20))
    tick(first + timedelta(seconds=40))
    until("the first delivery", lambda: [d for d in _deliveries(reports, owner, made.id) if d.state in ENDED])
    stack.restart_worker()
    tick(first + timedelta(seconds=50))  # the same due time, after the restart
    tick(first + timedelta(days=1, seconds=10))  # the next one
    both = until(
        "the second delivery",
        lambda: (
            (found := _deliveries(reports, owner, made.id))
            and len(found) == 2
            and all(d.state in ENDED for d in found)
            and found
        ),
    )
    assert sorted(d.due_time.ToDatetime(tzinfo=UTC) for d in both) == [first, first + timedelta(days=1)]
    assert {d.state for d in both} == {r.DELIVERY_STATE_DELIVERED}
    mails = stack.smtp.to("census@example.org")
    assert len(mails) == 2
    _, words = _pdf_text(_attachment(mails[0]))
    assert SECRET_NAME in words  # asked for, and the owner holds phi:read
    audited = _audit(stack.settings, made.id)
    assert len(audited) == 2 and all(phi for _, phi, _ in audited)
    after = reports.GetReportSubscription(r.GetReportSubscriptionRequest(id=made.id), metadata=owner)
    assert after.next_run_time.ToDatetime(tzinfo=UTC) == first + timedelta(days=2)


def test_an_owner_who_lost_the_dashboard_stops_the_subscription(
    stack: Stack, reports: Any, kit: ExportKit, auth: Any, facility: str
) -> None:
    board = phi_board(kit, "Shared board")
    kit.stubs.shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, user_id="guest@example.org", level=s.SHARE_LEVEL_VIEW),
        metadata=kit.md,
    )
    guest = auth("guest@example.org", "editor", facility)
    made = reports.CreateReportSubscription(
        r.CreateReportSubscriptionRequest(subscription=subscription(board.id, emails=("guest@example.org",))),
        metadata=guest,
    )
    kit.stubs.shares.UnshareDashboard(
        s.UnshareDashboardRequest(dashboard_id=board.id, user_id="guest@example.org"), metadata=kit.md
    )
    delivery = reports.SendReportNow(r.SendReportNowRequest(id=made.id), metadata=guest)
    ended = until(
        "the refused delivery",
        lambda: (
            (got := reports.GetReportDelivery(r.GetReportDeliveryRequest(id=delivery.id), metadata=guest)).state
            in ENDED
            and got
        ),
    )
    assert ended.state == r.DELIVERY_STATE_FAILED and ended.error.reason == "OWNER_LOST_ACCESS"
    stopped = reports.GetReportSubscription(r.GetReportSubscriptionRequest(id=made.id), metadata=guest)
    assert stopped.state == r.SUBSCRIPTION_STATE_STOPPED and "can no longer read the dashboard" in stopped.stop_reason
    assert not stopped.HasField("next_run_time") and not stack.smtp.to("guest@example.org")
    ((actor, _, details),) = _audit(stack.settings, made.id)
    assert actor == "guest@example.org" and details["error"] == "OWNER_LOST_ACCESS"
