"""AlertService rules over a real channel (no worker): field-level refusals that write nothing,
edits with etags, lists, and previews of what an evaluation would read."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from dashboard.v1 import alert_pb2 as a
from dashboard.v1 import alert_pb2_grpc
from dashboard.v1 import common_pb2 as c
from dashboard.v1 import report_pb2 as r
from dashboard.v1 import widget_pb2 as w
from tests.harness.exports import ExportKit, stubs_for
from tests.reports.helpers import phi_board, violations


@pytest.fixture
def owner(auth: Any, facility: str) -> Any:
    return auth("ed@example.org", "editor", facility, permissions=("phi:read",))


@pytest.fixture
def setup(channel: grpc.Channel, owner: Any, facility: str) -> tuple[Any, dict[str, w.Widget]]:
    kit = ExportKit(stubs_for(channel), owner, facility)
    board = phi_board(kit)
    found = kit.stubs.widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=board.id), metadata=owner).widgets
    return alert_pb2_grpc.AlertServiceStub(channel), {x.title: x for x in found}


def _rule(widget_id: str, **fields: Any) -> a.AlertRule:
    values: dict[str, Any] = {
        "widget_id": widget_id,
        "column": "n",
        "reducer": a.ALERT_REDUCER_LAST,
        "comparison": a.ALERT_COMPARISON_GREATER_OR_EQUAL,
        "threshold": 10,
        "recipients": r.ReportRecipients(emails=["ward@example.org"]),
    }
    return a.AlertRule(**(values | fields))


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "no column": ({"column": " "}, "rule.column"),
    "no reducer": ({"reducer": a.ALERT_REDUCER_UNSPECIFIED}, "rule.reducer"),
    "no comparison": ({"comparison": a.ALERT_COMPARISON_UNSPECIFIED}, "rule.comparison"),
    "interval under a minute": ({"interval": duration_pb2.Duration(seconds=30)}, "rule.interval"),
    "nobody to tell": ({"recipients": r.ReportRecipients()}, "rule.recipients"),
    "plain http": (
        {"recipients": r.ReportRecipients(webhooks=["http://example.org/x"])},
        "rule.recipients.webhooks[0]",
    ),
    "link-local address": (
        {"recipients": r.ReportRecipients(webhooks=["https://169.254.169.254/hook"])},
        "rule.recipients.webhooks[0]",
    ),
    "IPv4-mapped private address": (
        {"recipients": r.ReportRecipients(webhooks=["https://[::ffff:192.168.1.1]/hook"])},
        "rule.recipients.webhooks[0]",
    ),
    "unknown filter": ({"filter_values": {"ward": c.ParameterValue(string_value="N")}}, 'rule.filter_values["ward"]'),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_rules_name_the_field_and_write_nothing(setup: Any, owner: Any, case: str) -> None:
    alerts, widgets = setup
    fields, field = BAD[case]
    with pytest.raises(grpc.RpcError) as refused:
        alerts.CreateAlertRule(a.CreateAlertRuleRequest(rule=_rule(widgets["Cases"].id, **fields)), metadata=owner)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(refused.value), violations(refused.value)
    listed = alerts.ListAlertRules(a.ListAlertRulesRequest(widget_id=widgets["Cases"].id), metadata=owner)
    assert list(listed.rules) == []


def test_edit_list_and_preview(setup: Any, owner: Any) -> None:
    alerts, widgets = setup
    made = alerts.CreateAlertRule(a.CreateAlertRuleRequest(rule=_rule(widgets["Cases"].id)), metadata=owner)
    assert made.state == a.ALERT_STATE_UNSPECIFIED and made.severity == a.ALERT_SEVERITY_WARNING
    change = a.AlertRule(id=made.id, etag=made.etag, threshold=20, severity=a.ALERT_SEVERITY_CRITICAL)
    mask = field_mask_pb2.FieldMask(paths=["threshold", "severity"])
    edited = alerts.UpdateAlertRule(a.UpdateAlertRuleRequest(rule=change, update_mask=mask), metadata=owner)
    assert (edited.threshold, edited.severity, edited.column) == (20, a.ALERT_SEVERITY_CRITICAL, "n")
    with pytest.raises(grpc.RpcError) as stale:
        alerts.UpdateAlertRule(a.UpdateAlertRuleRequest(rule=change, update_mask=mask), metadata=owner)
    assert stale.value.code() is grpc.StatusCode.ABORTED
    listed = alerts.ListAlertRules(a.ListAlertRulesRequest(widget_id=widgets["Cases"].id), metadata=owner)
    assert [x.id for x in listed.rules] == [made.id]

    # The KPI reads 17: >= 10 holds. A text column (here the PHI one) reduces to no number: ERROR.
    kpi = alerts.PreviewAlertRule(a.PreviewAlertRuleRequest(rule=_rule(widgets["Cases"].id)), metadata=owner)
    assert kpi.HasField("value") and (kpi.value, kpi.holds, kpi.error) == (17, True, "")
    phi = _rule(widgets["Patients"].id, column="patient", reducer=a.ALERT_REDUCER_MAX)
    masked = alerts.PreviewAlertRule(a.PreviewAlertRuleRequest(rule=phi), metadata=owner)
    assert not masked.HasField("value") and not masked.holds and "not numbers" in masked.error
    missing = alerts.PreviewAlertRule(
        a.PreviewAlertRuleRequest(rule=_rule(widgets["Cases"].id, column="nope")), metadata=owner
    )
    assert "no column 'nope'" in missing.error


def test_the_cli(server: Any, settings: Any, setup: Any, facility: str) -> None:
    import json

    from typer.testing import CliRunner

    from server.auth.tokens import mint_token
    from server.cli import app

    _, widgets = setup
    token = mint_token(settings, subject="ed@example.org", roles=["editor"], facilities=[facility])
    env = {"TESSERA_ADDRESS": server.address, "TESSERA_TOKEN": token, "COLUMNS": "200"}
    runner = CliRunner()

    def tessera(*args: str) -> Any:
        return runner.invoke(app, ["alerts", *args], env=env)

    kpi = widgets["Cases"].id
    refused = tessera(
        "create", kpi, "--column", "n", "--threshold", "5", "--interval", "10", "--email", "a@example.org"
    )
    assert refused.exit_code == 1 and "rule.interval" in refused.output
    made = tessera(
        "create", kpi, "--column", "n", "--threshold", "5", "--when", ">=", "--for", "120",
        "--email", "a@example.org", "--severity", "critical", "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    rule = json.loads(made.output)
    assert rule["webhookSecret"] and rule["comparison"] == "ALERT_COMPARISON_GREATER_OR_EQUAL"
    listed = tessera("list", "--widget", kpi)
    assert listed.exit_code == 0 and rule["id"] in listed.output and "CRITICAL" in listed.output
    shown = tessera("get", rule["id"])
    assert "last(n) >= 5 for 120s" in shown.output
    silenced = tessera("silence", rule["id"], "--minutes", "30")
    assert silenced.exit_code == 0 and "silenced until" in silenced.output
    assert tessera("events", rule["id"]).exit_code == 0
    assert tessera("delete", rule["id"]).exit_code == 0
    assert tessera("get", rule["id"]).exit_code == 1
