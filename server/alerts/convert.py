"""Rows of alert_rules and alert_events to their proto messages."""

from __future__ import annotations

from typing import Any

from dashboard.v1 import alert_pb2, common_pb2, report_pb2
from server.protojson import etag, from_json, ts

__all__ = ["event_from_row", "rule_etag", "rule_from_row"]


def rule_etag(row: Any) -> str:
    return etag(row.id, row.edit_revision)


def rule_from_row(row: Any) -> alert_pb2.AlertRule:
    """The rule as callers see it: never its webhook secret (sealed at rest; the create answer
    alone carries it)."""
    out = alert_pb2.AlertRule(
        id=str(row.id),
        widget_id=str(row.widget_id),
        dashboard_id=str(row.dashboard_id),
        facility_id=row.facility_id,
        owner_id=row.owner_id,
        title=row.title,
        column=row.column_name,
        reducer=row.reducer,
        comparison=row.comparison,
        threshold=row.threshold,
        recipients=report_pb2.ReportRecipients(emails=list(row.emails), webhooks=list(row.webhooks)),
        severity=row.severity,
        state=row.state,
        last_value=row.last_value or 0.0,
        last_error=row.last_error,
        revision=row.revision,
        etag=rule_etag(row),
    )
    out.for_duration.FromSeconds(row.for_seconds)
    out.interval.FromSeconds(row.interval_seconds)
    for name, value in (row.filter_values or {}).items():
        out.filter_values[name].CopyFrom(from_json(value, common_pb2.ParameterValue()))
    for field, value in (
        ("state_time", row.state_at),
        ("last_evaluation_time", row.last_evaluated_at),
        ("next_evaluation_time", row.next_evaluation_at),
        ("silenced_until", row.silenced_until),
        ("create_time", row.created_at),
    ):
        stamp = ts(value)
        if stamp is not None:
            getattr(out, field).CopyFrom(stamp)
    return out


def event_from_row(row: Any) -> alert_pb2.AlertEvent:
    out = alert_pb2.AlertEvent(
        rule_id=str(row.rule_id),
        revision=row.revision,
        from_state=row.from_state,
        to_state=row.to_state,
        value=row.value or 0.0,
        error=row.error,
        notification=row.notification,
        recipients=[report_pb2.RecipientOutcome(**item) for item in row.recipients or []],
    )
    stamp = ts(row.at)
    if stamp is not None:
        out.time.CopyFrom(stamp)
    return out
