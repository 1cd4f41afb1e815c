"""Threshold alerts with keyword arguments (`client.alerts`): rules on a widget's data, previews,
silences, history, and following a rule's state changes (resuming after a dropped stream)."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from google.protobuf import field_mask_pb2, timestamp_pb2

from dashboard.v1 import alert_pb2 as a
from dashboard.v1 import report_pb2 as r
from tessera_client import alert_rpcs as ar
from tessera_client.errors import UnavailableError
from tessera_client.rpcs import Req, Resp, ServerStream, Unary
from tessera_client.values import ParameterInput, duration, parameter_map

__all__ = ["Alerts"]

REDUCERS = {name: getattr(a, f"ALERT_REDUCER_{name.upper()}") for name in ("last", "min", "max", "mean", "sum")}
COMPARISONS = {
    ">": a.ALERT_COMPARISON_GREATER,
    ">=": a.ALERT_COMPARISON_GREATER_OR_EQUAL,
    "<": a.ALERT_COMPARISON_LESS,
    "<=": a.ALERT_COMPARISON_LESS_OR_EQUAL,
    "==": a.ALERT_COMPARISON_EQUAL,
    "!=": a.ALERT_COMPARISON_NOT_EQUAL,
}
SEVERITIES = {name: getattr(a, f"ALERT_SEVERITY_{name.upper()}") for name in ("info", "warning", "critical")}


class _Caller(Protocol):
    def call(self, rpc: Unary[Req, Resp], request: Req) -> Resp: ...

    def pages(self, rpc: Unary[Req, Resp], request: Req, items: str) -> Iterator[Any]: ...

    def stream(self, rpc: ServerStream[Req, Resp], request: Req, *, timeout: float | None = None) -> Iterator[Resp]: ...


def rule(
    widget_id: str,
    *,
    column: str,
    reducer: str = "last",
    comparison: str = ">",
    threshold: float,
    for_seconds: float = 0,
    interval_seconds: float = 0,
    filters: Mapping[str, ParameterInput] | None = None,
    emails: Sequence[str] = (),
    webhooks: Sequence[str] = (),
    severity: str = "warning",
    title: str = "",
) -> a.AlertRule:
    """An AlertRule from readable values: reducer last|min|max|mean|sum, comparison > >= < <= == !=,
    severity info|warning|critical (ValueError for anything else)."""
    try:
        reduce, compare, level = REDUCERS[reducer], COMPARISONS[comparison], SEVERITIES[severity]
    except KeyError as missing:
        raise ValueError(f"unknown value {missing}") from None
    return a.AlertRule(
        widget_id=widget_id,
        title=title,
        column=column,
        reducer=reduce,
        comparison=compare,
        threshold=threshold,
        for_duration=duration(for_seconds),
        interval=duration(interval_seconds),
        filter_values=parameter_map(filters),
        recipients=r.ReportRecipients(emails=list(emails), webhooks=list(webhooks)),
        severity=level,
    )


class Alerts:
    def __init__(self, client: _Caller) -> None:
        self._client = client

    def create(self, alert: a.AlertRule, *, request_id: str = "") -> a.AlertRule:
        """Its `webhook_secret` is shown only in this answer (`tessera_client.alerts.rule` builds one)."""
        return self._client.call(ar.CREATE_ALERT_RULE, a.CreateAlertRuleRequest(rule=alert, request_id=request_id))

    def preview(self, alert: a.AlertRule) -> a.PreviewAlertRuleResponse:
        return self._client.call(ar.PREVIEW_ALERT_RULE, a.PreviewAlertRuleRequest(rule=alert))

    def get(self, rule_id: str) -> a.AlertRule:
        return self._client.call(ar.GET_ALERT_RULE, a.GetAlertRuleRequest(id=rule_id))

    def list(self, *, widget_id: str = "", page_size: int = 0) -> Iterator[a.AlertRule]:
        request = a.ListAlertRulesRequest(widget_id=widget_id, page_size=page_size)
        return self._client.pages(ar.LIST_ALERT_RULES, request, "rules")

    def update(self, alert: a.AlertRule, fields: Sequence[str] = ()) -> a.AlertRule:
        mask = field_mask_pb2.FieldMask(paths=list(fields)) if fields else None
        return self._client.call(ar.UPDATE_ALERT_RULE, a.UpdateAlertRuleRequest(rule=alert, update_mask=mask))

    def delete(self, rule_id: str, *, etag: str = "") -> None:
        self._client.call(ar.DELETE_ALERT_RULE, a.DeleteAlertRuleRequest(id=rule_id, etag=etag))

    def silence(self, rule_id: str, until: dt.datetime | None) -> a.AlertRule:
        """Holds notifications back until `until` (an aware datetime); None ends the silence."""
        request = a.SilenceAlertRuleRequest(id=rule_id)
        if until is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(until)
            request.until.CopyFrom(stamp)
        return self._client.call(ar.SILENCE_ALERT_RULE, request)

    def events(self, rule_id: str, *, page_size: int = 0) -> Iterator[a.AlertEvent]:
        request = a.ListAlertEventsRequest(rule_id=rule_id, page_size=page_size)
        return self._client.pages(ar.LIST_ALERT_EVENTS, request, "events")

    def follow(
        self, rule_id: str, *, since_revision: int = 0, resumes: int = 5
    ) -> Iterator[a.AlertEvent | a.AlertRule]:
        """The rule (unless resuming), then its state changes as they happen, without end; a
        dropped stream is reopened from the last revision seen. Heartbeats are not yielded."""
        seen = since_revision
        for _ in builtins.range(resumes + 1):
            request = a.WatchAlertRuleRequest(id=rule_id, since_revision=seen)
            try:
                for event in self._client.stream(ar.WATCH_ALERT_RULE, request):
                    if event.HasField("rule"):
                        seen = max(seen, event.rule.revision)
                        yield event.rule
                    elif event.HasField("change"):
                        seen = event.change.revision
                        yield event.change
            except UnavailableError:
                continue
            return
