"""Tenant isolation and roles for every ReportService rpc (the list is checked against the
service descriptor): a subscription and its deliveries exist only for their owner and the admins
of their facility; everyone else, another facility's admin included, gets NOT_FOUND; a viewer
subscribes nobody but themselves; a caller without a token is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from dashboard.v1 import report_pb2 as r
from dashboard.v1 import report_pb2_grpc
from dashboard.v1 import share_pb2 as s
from tests.harness.exports import ExportKit, stubs_for
from tests.reports.helpers import phi_board, reason, subscription

Code = grpc.StatusCode
# rpc -> the request it sends about the subscription (sub id) and one of its deliveries (delivery id)
ON_A_SUBSCRIPTION: dict[str, Callable[[str, str], Message]] = {
    "GetReportSubscription": lambda sub, _: r.GetReportSubscriptionRequest(id=sub),
    "UpdateReportSubscription": lambda sub, _: r.UpdateReportSubscriptionRequest(
        subscription=r.ReportSubscription(id=sub, title="taken over"),
        update_mask=field_mask_pb2.FieldMask(paths=["title"]),
    ),
    "PauseReportSubscription": lambda sub, _: r.PauseReportSubscriptionRequest(id=sub),
    "ResumeReportSubscription": lambda sub, _: r.ResumeReportSubscriptionRequest(id=sub),
    "SendReportNow": lambda sub, _: r.SendReportNowRequest(id=sub),
    "ListReportDeliveries": lambda sub, _: r.ListReportDeliveriesRequest(subscription_id=sub),
    "GetReportDelivery": lambda _, delivery: r.GetReportDeliveryRequest(id=delivery),
    "WatchReportDelivery": lambda _, delivery: r.WatchReportDeliveryRequest(id=delivery),
    "DeleteReportSubscription": lambda sub, _: r.DeleteReportSubscriptionRequest(id=sub),
}
WITHOUT_A_RESOURCE = ("CreateReportSubscription", "ListReportSubscriptions")


def test_every_rpc_is_covered() -> None:
    methods = {m.name for m in r.DESCRIPTOR.services_by_name["ReportService"].methods}
    assert methods == set(ON_A_SUBSCRIPTION) | set(WITHOUT_A_RESOURCE)


def _call(stub: Any, name: str, request: Message, md: Any) -> Code:
    try:
        answer = getattr(stub, name)(request, metadata=md, timeout=10)
        if name.startswith("Watch"):
            next(iter(answer))  # the first message (a heartbeat: nobody delivers here) is enough
            answer.cancel()
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return Code.OK


@pytest.fixture
def world(channel: grpc.Channel, auth: Any, facility: str) -> dict[str, Any]:
    owner = auth("owner@example.org", "editor", facility)
    kit = ExportKit(stubs_for(channel), owner, facility)
    board = phi_board(kit)
    reports = report_pb2_grpc.ReportServiceStub(channel)
    kit.stubs.shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, role=s.ROLE_VIEWER, level=s.SHARE_LEVEL_VIEW), metadata=owner
    )

    def fresh() -> tuple[str, str]:
        sub = reports.CreateReportSubscription(
            r.CreateReportSubscriptionRequest(subscription=subscription(board.id, emails=("ward@example.org",))),
            metadata=owner,
        )
        delivery = reports.SendReportNow(r.SendReportNowRequest(id=sub.id), metadata=owner)
        return sub.id, delivery.id

    return {
        "reports": reports,
        "board": board,
        "fresh": fresh,
        "owner": owner,
        "strangers": {
            "viewer of the facility": auth("viewer@example.org", "viewer", facility),
            "another editor": auth("other@example.org", "editor", facility),
            "another facility's admin": auth("admin@elsewhere.org", "admin", f"{facility}-b"),
        },
        "admin": auth("admin@example.org", "admin", facility),
    }


def test_strangers_get_not_found_and_change_nothing(world: dict[str, Any]) -> None:
    reports = world["reports"]
    sub, delivery = world["fresh"]()
    before = reports.GetReportSubscription(r.GetReportSubscriptionRequest(id=sub), metadata=world["owner"])
    for who, md in world["strangers"].items():
        for name, make in ON_A_SUBSCRIPTION.items():
            assert _call(reports, name, make(sub, delivery), md) is Code.NOT_FOUND, (who, name)
        listed = reports.ListReportSubscriptions(r.ListReportSubscriptionsRequest(), metadata=md)
        assert sub not in {x.id for x in listed.subscriptions}, who
    after = reports.GetReportSubscription(r.GetReportSubscriptionRequest(id=sub), metadata=world["owner"])
    assert after == before
    deliveries = reports.ListReportDeliveries(
        r.ListReportDeliveriesRequest(subscription_id=sub), metadata=world["owner"]
    )
    assert [d.id for d in deliveries.deliveries] == [delivery]  # no stranger sent one


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_the_owner_and_the_facility_admin_may_do_everything(world: dict[str, Any], who: str) -> None:
    reports = world["reports"]
    sub, delivery = world["fresh"]()
    for name, make in ON_A_SUBSCRIPTION.items():
        assert _call(reports, name, make(sub, delivery), world[who]) is Code.OK, (who, name)


def test_creating_needs_the_dashboard_and_a_viewer_subscribes_only_themselves(world: dict[str, Any]) -> None:
    reports, board = world["reports"], world["board"]
    strangers = world["strangers"]

    def create(md: Any, **recipients: Any) -> Code:
        request = r.CreateReportSubscriptionRequest(subscription=subscription(board.id, **recipients))
        return _call(reports, "CreateReportSubscription", request, md)

    assert create(strangers["another facility's admin"], emails=("admin@elsewhere.org",)) is Code.NOT_FOUND
    viewer = strangers["viewer of the facility"]
    assert create(viewer, emails=("viewer@example.org",)) is Code.OK
    assert create(viewer, emails=("viewer@example.org", "boss@example.org")) is Code.PERMISSION_DENIED
    assert create(viewer, webhooks=("https://hooks.example.org/x",)) is Code.PERMISSION_DENIED
    assert create((), emails=("x@example.org",)) is Code.UNAUTHENTICATED
    try:
        reports.CreateReportSubscription(
            r.CreateReportSubscriptionRequest(subscription=subscription(board.id, emails=("boss@example.org",))),
            metadata=viewer,
        )
    except grpc.RpcError as error:
        assert reason(error) == "SUBSCRIBE_OTHERS_DENIED"
