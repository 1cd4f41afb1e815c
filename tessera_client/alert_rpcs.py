"""The rpcs of AlertService (threshold alerts), typed like tessera_client.rpcs; a unit test checks
this table against the service descriptor."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2

from dashboard.v1 import alert_pb2 as a
from tessera_client.rpcs import ALERT_SERVICE, IDEMPOTENT, KEYED, SAFE, UNSAFE, Rpc, ServerStream, Unary

S = ALERT_SERVICE

CREATE_ALERT_RULE = Unary(S, "CreateAlertRule", a.CreateAlertRuleRequest, a.AlertRule, KEYED)
GET_ALERT_RULE = Unary(S, "GetAlertRule", a.GetAlertRuleRequest, a.AlertRule, SAFE)
LIST_ALERT_RULES = Unary(S, "ListAlertRules", a.ListAlertRulesRequest, a.ListAlertRulesResponse, SAFE)
UPDATE_ALERT_RULE = Unary(S, "UpdateAlertRule", a.UpdateAlertRuleRequest, a.AlertRule, UNSAFE)
DELETE_ALERT_RULE = Unary(S, "DeleteAlertRule", a.DeleteAlertRuleRequest, empty_pb2.Empty, UNSAFE)
SILENCE_ALERT_RULE = Unary(S, "SilenceAlertRule", a.SilenceAlertRuleRequest, a.AlertRule, IDEMPOTENT)
PREVIEW_ALERT_RULE = Unary(S, "PreviewAlertRule", a.PreviewAlertRuleRequest, a.PreviewAlertRuleResponse, SAFE)
LIST_ALERT_EVENTS = Unary(S, "ListAlertEvents", a.ListAlertEventsRequest, a.ListAlertEventsResponse, SAFE)
WATCH_ALERT_RULE = ServerStream(S, "WatchAlertRule", a.WatchAlertRuleRequest, a.WatchAlertRuleResponse, SAFE)

ALERT_RPCS: tuple[Rpc[Any, Any], ...] = tuple(value for value in list(globals().values()) if isinstance(value, Rpc))
