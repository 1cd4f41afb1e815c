"""Tenant isolation and roles for every AlertService rpc (the list is checked against the service
descriptor): a rule and its history exist only for its owner and the admins of its facility;
everyone else, another facility's admin included, gets NOT_FOUND and changes nothing; a viewer
notifies nobody but themselves; a rule on a widget of another facility is NOT_FOUND."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from dashboard.v1 import alert_pb2 as a
from dashboard.v1 import alert_pb2_grpc
from dashboard.v1 import report_pb2 as r
from dashboard.v1 import share_pb2 as s
from tests.harness.exports import ExportKit, stubs_for
from tests.reports.helpers import phi_board

Code = grpc.StatusCode
ON_A_RULE: dict[str, Callable[[str], Message]] = {
    "GetAlertRule": lambda rule: a.GetAlertRuleRequest(id=rule),
    "UpdateAlertRule": lambda rule: a.UpdateAlertRuleRequest(
        rule=a.AlertRule(id=rule, title="taken over"), update_mask=field_mask_pb2.FieldMask(paths=["title"])
    ),
    "SilenceAlertRule": lambda rule: a.SilenceAlertRuleRequest(id=rule),
    "ListAlertEvents": lambda rule: a.ListAlertEventsRequest(rule_id=rule),
    "WatchAlertRule": lambda rule: a.WatchAlertRuleRequest(id=rule),
    "DeleteAlertRule": lambda rule: a.DeleteAlertRuleRequest(id=rule),
}
WITHOUT_A_RULE = ("CreateAlertRule", "ListAlertRules", "PreviewAlertRule")


def _rule(widget_id: str, **recipients: Any) -> a.AlertRule:
    return a.AlertRule(
        widget_id=widget_id,
        column="n",
        reducer=a.ALERT_REDUCER_LAST,
        comparison=a.ALERT_COMPARISON_GREATER,
        threshold=10,
        recipients=r.ReportRecipients(**recipients),
    )


def _call(stub: Any, name: str, request: Message, md: Any) -> Code:
    try:
        answer = getattr(stub, name)(request, metadata=md, timeout=10)
        if name.startswith("Watch"):
            next(iter(answer))
            answer.cancel()
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return Code.OK


def test_every_rpc_is_covered() -> None:
    methods = {m.name for m in a.DESCRIPTOR.services_by_name["AlertService"].methods}
    assert methods == set(ON_A_RULE) | set(WITHOUT_A_RULE)


@pytest.fixture
def world(channel: grpc.Channel, auth: Any, facility: str) -> dict[str, Any]:
    owner = auth("owner@example.org", "editor", facility)
    kit = ExportKit(stubs_for(channel), owner, facility)
    board = phi_board(kit)
    kit.stubs.shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, role=s.ROLE_VIEWER, level=s.SHARE_LEVEL_VIEW), metadata=owner
    )
    widgets = kit.stubs.widgets.ListWidgets(
        __import__("dashboard.v1.widget_pb2", fromlist=["x"]).ListWidgetsRequest(dashboard_id=board.id),
        metadata=owner,
    ).widgets
    kpi = next(w for w in widgets if w.title == "Cases")
    alerts = alert_pb2_grpc.AlertServiceStub(channel)

    def fresh() -> str:
        made = alerts.CreateAlertRule(
            a.CreateAlertRuleRequest(rule=_rule(kpi.id, emails=["ward@example.org"])), metadata=owner
        )
        return str(made.id)

    return {
        "alerts": alerts,
        "widget": kpi,
        "fresh": fresh,
        "owner": owner,
        "admin": auth("admin@example.org", "admin", facility),
        "strangers": {
            "viewer of the facility": auth("viewer@example.org", "viewer", facility),
            "another editor": auth("other@example.org", "editor", facility),
            "another facility's admin": auth("admin@elsewhere.org", "admin", f"{facility}-b"),
        },
    }


def test_strangers_get_not_found_and_change_nothing(world: dict[str, Any]) -> None:
    alerts, rule = world["alerts"], world["fresh"]()
    before = alerts.GetAlertRule(a.GetAlertRuleRequest(id=rule), metadata=world["owner"])
    for who, md in world["strangers"].items():
        for name, make in ON_A_RULE.items():
            assert _call(alerts, name, make(rule), md) is Code.NOT_FOUND, (who, name)
        listed = alerts.ListAlertRules(a.ListAlertRulesRequest(), metadata=md)
        assert rule not in {x.id for x in listed.rules}, who
    assert alerts.GetAlertRule(a.GetAlertRuleRequest(id=rule), metadata=world["owner"]) == before


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_the_owner_and_the_facility_admin_may_do_everything(world: dict[str, Any], who: str) -> None:
    alerts, rule = world["alerts"], world["fresh"]()
    for name, make in ON_A_RULE.items():
        assert _call(alerts, name, make(rule), world[who]) is Code.OK, (who, name)


def test_creating_needs_the_widget_and_a_viewer_notifies_only_themselves(world: dict[str, Any]) -> None:
    alerts, widget, strangers = world["alerts"], world["widget"], world["strangers"]

    def create(md: Any, **recipients: Any) -> Code:
        return _call(alerts, "CreateAlertRule", a.CreateAlertRuleRequest(rule=_rule(widget.id, **recipients)), md)

    def preview(md: Any) -> Code:
        return _call(alerts, "PreviewAlertRule", a.PreviewAlertRuleRequest(rule=_rule(widget.id)), md)

    elsewhere = strangers["another facility's admin"]
    assert create(elsewhere, emails=["admin@elsewhere.org"]) is Code.NOT_FOUND
    assert preview(elsewhere) is Code.NOT_FOUND
    viewer = strangers["viewer of the facility"]
    assert create(viewer, emails=["viewer@example.org"]) is Code.OK
    assert preview(viewer) is Code.OK
    assert create(viewer, emails=["boss@example.org"]) is Code.PERMISSION_DENIED
    assert create(viewer, webhooks=["https://hooks.example.org/x"]) is Code.PERMISSION_DENIED
    assert create((), emails=["x@example.org"]) is Code.UNAUTHENTICATED
