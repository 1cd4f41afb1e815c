"""ReportService subscriptions over a real channel (no worker needed): the lifecycle, field-level
refusals that write nothing, and who may subscribe whom and touch whose subscription."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf import field_mask_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import report_pb2 as r
from dashboard.v1 import report_pb2_grpc
from dashboard.v1 import share_pb2 as s
from tests.harness.exports import ExportKit, stubs_for
from tests.reports.helpers import phi_board, reason, subscription, violations


@pytest.fixture(scope="module")
def reports(channel: grpc.Channel) -> report_pb2_grpc.ReportServiceStub:
    return report_pb2_grpc.ReportServiceStub(channel)


@pytest.fixture
def owner(auth: Any, facility: str) -> Any:
    return auth("ed@example.org", "editor", facility)


@pytest.fixture
def kit(channel: grpc.Channel, owner: Any, facility: str) -> ExportKit:
    return ExportKit(stubs_for(channel), owner, facility)


def _create(reports: Any, md: Any, sub: r.ReportSubscription) -> r.ReportSubscription:
    return reports.CreateReportSubscription(r.CreateReportSubscriptionRequest(subscription=sub), metadata=md)


def test_lifecycle(reports: Any, kit: ExportKit, owner: Any) -> None:
    board = phi_board(kit)
    made = _create(reports, owner, subscription(board.id, emails=("ward@example.org",)))
    assert made.state == r.SUBSCRIPTION_STATE_ACTIVE and made.owner_id == "ed@example.org"
    assert made.facility_id == kit.facility and len(made.webhook_secret) >= 32
    due = made.next_run_time.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert (due.weekday(), due.hour, due.minute) == (0, 7, 0) and due > datetime.now(UTC)

    got = reports.GetReportSubscription(r.GetReportSubscriptionRequest(id=made.id), metadata=owner)
    assert got.webhook_secret == "" and got.etag == made.etag  # the secret is shown once
    listed = reports.ListReportSubscriptions(r.ListReportSubscriptionsRequest(dashboard_id=board.id), metadata=owner)
    assert [x.id for x in listed.subscriptions] == [made.id]

    change = r.ReportSubscription(
        id=made.id, etag=made.etag, schedule=r.ReportSchedule(cron="30 6 * * *", time_zone="America/New_York")
    )
    mask = field_mask_pb2.FieldMask(paths=["schedule"])
    updated = reports.UpdateReportSubscription(
        r.UpdateReportSubscriptionRequest(subscription=change, update_mask=mask), metadata=owner
    )
    local = updated.next_run_time.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (6, 30) and updated.recipients.emails == ["ward@example.org"]
    with pytest.raises(grpc.RpcError) as stale:  # the old etag
        reports.UpdateReportSubscription(
            r.UpdateReportSubscriptionRequest(subscription=change, update_mask=mask), metadata=owner
        )
    assert stale.value.code() is grpc.StatusCode.ABORTED

    paused = reports.PauseReportSubscription(r.PauseReportSubscriptionRequest(id=made.id), metadata=owner)
    assert paused.state == r.SUBSCRIPTION_STATE_PAUSED and not paused.HasField("next_run_time")
    resumed = reports.ResumeReportSubscription(r.ResumeReportSubscriptionRequest(id=made.id), metadata=owner)
    assert resumed.state == r.SUBSCRIPTION_STATE_ACTIVE and resumed.HasField("next_run_time")

    reports.DeleteReportSubscription(r.DeleteReportSubscriptionRequest(id=made.id), metadata=owner)
    with pytest.raises(grpc.RpcError) as gone:
        reports.GetReportSubscription(r.GetReportSubscriptionRequest(id=made.id), metadata=owner)
    assert gone.value.code() is grpc.StatusCode.NOT_FOUND


BAD = {
    "cron": (
        {"schedule": r.ReportSchedule(cron="61 * * * *", time_zone="UTC")},
        "subscription.schedule.cron",
        "INVALID_CRON",
    ),
    "time zone": (
        {"schedule": r.ReportSchedule(cron="0 7 * * *", time_zone="Mars/Olympus_Mons")},
        "subscription.schedule.time_zone",
        "UNKNOWN_TIME_ZONE",
    ),
    "no recipient": ({"recipients": r.ReportRecipients()}, "subscription.recipients", "REQUIRED"),
    "plain http off loopback": (
        {"recipients": r.ReportRecipients(webhooks=["http://example.org/hook"])},
        "subscription.recipients.webhooks[0]",
        "WEBHOOK_URL_REFUSED",
    ),
    "cloud metadata address": (
        {"recipients": r.ReportRecipients(webhooks=["https://169.254.169.254/latest/meta-data"])},
        "subscription.recipients.webhooks[0]",
        "WEBHOOK_URL_REFUSED",
    ),
    "private address": (
        {"recipients": r.ReportRecipients(webhooks=["https://10.1.2.3/hook"])},
        "subscription.recipients.webhooks[0]",
        "WEBHOOK_URL_REFUSED",
    ),
    "unique-local IPv6 address": (
        {"recipients": r.ReportRecipients(webhooks=["https://[fd00::1]/hook"])},
        "subscription.recipients.webhooks[0]",
        "WEBHOOK_URL_REFUSED",
    ),
    "unknown filter": (
        {"filter_values": {"ward": c.ParameterValue(string_value="North")}},
        'subscription.filter_values["ward"]',
        "",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_names_the_field_and_writes_nothing(reports: Any, kit: ExportKit, owner: Any, case: str) -> None:
    board = phi_board(kit)
    fields, field, why = BAD[case]
    base = subscription(board.id, emails=("ward@example.org",))
    for name, value in fields.items():
        if name == "filter_values":
            for key, item in value.items():
                base.filter_values[key].CopyFrom(item)
        else:
            getattr(base, name).CopyFrom(value)
    with pytest.raises(grpc.RpcError) as refused:
        _create(reports, owner, base)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    found = violations(refused.value)
    assert field in found, found
    assert not why or found[field] == why
    listed = reports.ListReportSubscriptions(r.ListReportSubscriptionsRequest(dashboard_id=board.id), metadata=owner)
    assert list(listed.subscriptions) == []


def test_an_unpublished_dashboard_is_refused(reports: Any, kit: ExportKit, owner: Any) -> None:
    draft = kit.stubs.dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=kit.facility, title="Draft")), metadata=owner
    )
    with pytest.raises(grpc.RpcError) as refused:
        _create(reports, owner, subscription(draft.id, emails=("ward@example.org",)))
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason(refused.value) == "DASHBOARD_NOT_PUBLISHED"


def test_who_may_subscribe_whom_and_touch_what(
    reports: Any, kit: ExportKit, owner: Any, auth: Any, facility: str
) -> None:
    board = phi_board(kit)
    made = _create(reports, owner, subscription(board.id, emails=("ward@example.org",)))
    viewer = auth("vi@example.org", "viewer", facility)
    kit.stubs.shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, user_id="vi@example.org", level=s.SHARE_LEVEL_VIEW),
        metadata=owner,
    )

    # A viewer subscribes themselves, and nobody else (no other address, no webhook).
    mine = _create(reports, viewer, subscription(board.id, emails=("vi@example.org",)))
    assert mine.owner_id == "vi@example.org"
    for others in ({"emails": ("boss@example.org",)}, {"webhooks": ("https://hooks.example.org/x",)}):
        with pytest.raises(grpc.RpcError) as refused:
            _create(reports, viewer, subscription(board.id, **others))  # type: ignore[arg-type]
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert reason(refused.value) == "SUBSCRIBE_OTHERS_DENIED"

    # Someone else's subscription does not exist for a viewer, another editor or another facility's admin.
    strangers = [viewer, auth("other@example.org", "editor", facility), auth("adm@example.org", "admin", "fac-other")]
    for md in strangers:
        for call, request in (
            (reports.GetReportSubscription, r.GetReportSubscriptionRequest(id=made.id)),
            (reports.PauseReportSubscription, r.PauseReportSubscriptionRequest(id=made.id)),
            (reports.DeleteReportSubscription, r.DeleteReportSubscriptionRequest(id=made.id)),
            (reports.SendReportNow, r.SendReportNowRequest(id=made.id)),
            (
                reports.UpdateReportSubscription,
                r.UpdateReportSubscriptionRequest(subscription=r.ReportSubscription(id=made.id, title="mine now")),
            ),
        ):
            with pytest.raises(grpc.RpcError) as hidden:
                call(request, metadata=md)
            assert hidden.value.code() is grpc.StatusCode.NOT_FOUND, (call, md)
        listed = reports.ListReportSubscriptions(r.ListReportSubscriptionsRequest(), metadata=md)
        assert made.id not in {x.id for x in listed.subscriptions}

    # The facility's admin sees and may pause it.
    admin = auth("chief@example.org", "admin", facility)
    paused = reports.PauseReportSubscription(r.PauseReportSubscriptionRequest(id=made.id), metadata=admin)
    assert paused.state == r.SUBSCRIPTION_STATE_PAUSED and paused.owner_id == "ed@example.org"

    # PHI in the file needs the owner's phi:read.
    with pytest.raises(grpc.RpcError) as phi:
        _create(reports, owner, subscription(board.id, emails=("ward@example.org",), include_phi=True))
    assert phi.value.code() is grpc.StatusCode.PERMISSION_DENIED and reason(phi.value) == "PHI_PERMISSION_REQUIRED"


def test_the_cli(server: Any, settings: Any, kit: ExportKit, facility: str) -> None:
    from typer.testing import CliRunner

    from server.auth.tokens import mint_token
    from server.cli import app

    board = phi_board(kit)
    token = mint_token(settings, subject="ed@example.org", roles=["editor"], facilities=[facility])
    env = {"TESSERA_ADDRESS": server.address, "TESSERA_TOKEN": token, "COLUMNS": "200"}
    runner = CliRunner()

    def tessera(*args: str) -> Any:
        return runner.invoke(app, ["reports", *args], env=env)

    refused = tessera("create", board.id, "--cron", "0 7 * *", "--tz", "Europe/Paris", "--email", "a@example.org")
    assert refused.exit_code == 1 and "subscription.schedule.cron" in refused.output
    made = tessera(
        "create", board.id, "--cron", "0 7 * * 1", "--tz", "Europe/Paris", "--email", "a@example.org", "--json"
    )
    assert made.exit_code == 0, made.output
    sub = json.loads(made.output)
    assert sub["webhookSecret"] and sub["schedule"] == {"cron": "0 7 * * 1", "timeZone": "Europe/Paris"}
    listed = tessera("list", "--dashboard", board.id)
    assert listed.exit_code == 0 and sub["id"] in listed.output and "ACTIVE" in listed.output
    paused = tessera("pause", sub["id"])
    assert paused.exit_code == 0 and "PAUSED" in paused.output
    got = json.loads(tessera("get", sub["id"], "--json").output)
    assert got["state"] == "SUBSCRIPTION_STATE_PAUSED" and "webhookSecret" not in got
    assert tessera("delete", sub["id"]).exit_code == 0
    assert tessera("get", sub["id"]).exit_code == 1
