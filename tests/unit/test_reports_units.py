"""Report subscriptions' pure pieces: schedules across daylight-saving changes, webhook URL
rules, signatures, and the client's rpc table against the ReportService descriptor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboard.v1 import report_pb2
from server.config import Mode, Settings
from server.notify.webhook import check_url
from server.reports.schedule import next_due, schedule_problems
from tessera_client import report_rpcs, rpcs
from tessera_client.webhooks import sign, verify


def test_next_due_follows_the_wall_clock_of_its_zone() -> None:
    # Paris leaves summer time on 2026-10-25: 07:00 local is 05:00 UTC before, 06:00 UTC after.
    before = next_due("0 7 * * *", "Europe/Paris", datetime(2026, 10, 24, 6, 0, tzinfo=UTC))
    after = next_due("0 7 * * *", "Europe/Paris", before)
    assert before == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)
    assert next_due("0 7 * * *", "Europe/Paris", datetime(2026, 10, 23, 12, tzinfo=UTC)) == datetime(
        2026, 10, 24, 5, 0, tzinfo=UTC
    )
    assert after == datetime(2026, 10, 26, 6, 0, tzinfo=UTC)
    # Strictly after: a due time is never its own successor.
    assert next_due("*/15 * * * *", "UTC", datetime(2026, 1, 1, 0, 15, tzinfo=UTC)) == datetime(
        2026, 1, 1, 0, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("cron", "zone", "fields"),
    [
        ("0 7 * * 1", "Europe/Paris", set()),
        ("0 25 * * *", "UTC", {"s.cron"}),
        ("@reboot", "UTC", {"s.cron"}),
        ("0 0 30 2 *", "UTC", {"s.cron"}),
        ("0 7 * * *", "Europe/Atlantis", {"s.time_zone"}),
        ("", "", {"s.cron", "s.time_zone"}),
    ],
)
def test_schedule_problems_name_their_field(cron: str, zone: str, fields: set[str]) -> None:
    assert {p.field for p in schedule_problems(cron, zone, "s")} == fields


def test_webhook_urls_are_https_or_loopback_http_outside_production() -> None:
    dev = Settings(jwt_secret="x" * 32)
    assert check_url("https://hooks.example.org/tessera", dev) is None
    assert check_url("http://127.0.0.1:8080/hook", dev) is None
    assert check_url("http://[::1]/hook", dev) is None
    assert check_url("http://hooks.example.org/hook", dev) is not None
    assert check_url("https://user:pw@hooks.example.org/", dev) is not None
    assert check_url("ftp://hooks.example.org/", dev) is not None
    no_loopback = dev.model_copy(update={"webhook_allow_loopback_http": False})
    assert check_url("http://127.0.0.1:8080/hook", no_loopback) is not None
    production = dev.model_copy(update={"mode": Mode.PRODUCTION})
    assert check_url("http://127.0.0.1:8080/hook", production) is not None


def test_signatures_bind_the_secret_the_body_and_the_time() -> None:
    header = sign("s3cret", b'{"a":1}', timestamp=1_800_000_000)
    assert header.startswith("t=1800000000,v1=")
    assert verify("s3cret", b'{"a":1}', header, now=1_800_000_010)
    assert not verify("s3cret", b'{"a":2}', header, now=1_800_000_010)
    assert not verify("other", b'{"a":1}', header, now=1_800_000_010)
    assert not verify("s3cret", b'{"a":1}', header, now=1_800_001_000)  # replayed too late
    assert not verify("s3cret", b'{"a":1}', "v1=abc", now=1_800_000_010)


def test_the_client_table_is_every_report_rpc_with_its_types() -> None:
    service = report_pb2.DESCRIPTOR.services_by_name["ReportService"]
    declared = {r.method: r for r in report_rpcs.REPORT_RPCS}
    assert set(declared) == {m.name for m in service.methods}
    for method in service.methods:
        rpc = declared[method.name]
        assert rpc.service == service.full_name and rpc.service in rpcs.STUBS
        assert rpc.request_type.DESCRIPTOR.full_name == method.input_type.full_name
        assert rpc.response_type.DESCRIPTOR.full_name == method.output_type.full_name
        assert isinstance(rpc, rpcs.ServerStream) == method.server_streaming
        keyed = "request_id" in rpc.request_type.DESCRIPTOR.fields_by_name
        assert (rpc.idempotency is rpcs.KEYED) == keyed, method.name


def test_the_client_table_is_every_alert_rpc_with_its_types() -> None:
    from dashboard.v1 import alert_pb2
    from tessera_client import alert_rpcs

    service = alert_pb2.DESCRIPTOR.services_by_name["AlertService"]
    declared = {r.method: r for r in alert_rpcs.ALERT_RPCS}
    assert set(declared) == {m.name for m in service.methods}
    for method in service.methods:
        rpc = declared[method.name]
        assert rpc.service == service.full_name and rpc.service in rpcs.STUBS
        assert rpc.request_type.DESCRIPTOR.full_name == method.input_type.full_name
        assert rpc.response_type.DESCRIPTOR.full_name == method.output_type.full_name
        assert isinstance(rpc, rpcs.ServerStream) == method.server_streaming
        assert (rpc.idempotency is rpcs.KEYED) == ("request_id" in rpc.request_type.DESCRIPTOR.fields_by_name)
