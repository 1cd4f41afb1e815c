"""Rows of report_subscriptions and report_deliveries to their proto messages."""

from __future__ import annotations

from typing import Any

from dashboard.v1 import common_pb2, export_pb2, report_pb2
from server.protojson import etag, from_json, ts

__all__ = ["delivery_from_row", "subscription_etag", "subscription_from_row"]

ACTIVE = report_pb2.SUBSCRIPTION_STATE_ACTIVE
PAUSED = report_pb2.SUBSCRIPTION_STATE_PAUSED
STOPPED = report_pb2.SUBSCRIPTION_STATE_STOPPED
ENDED_DELIVERY = frozenset(
    {
        report_pb2.DELIVERY_STATE_DELIVERED,
        report_pb2.DELIVERY_STATE_PARTIALLY_DELIVERED,
        report_pb2.DELIVERY_STATE_FAILED,
    }
)


def subscription_etag(row: Any) -> str:
    return etag(row.id, row.revision)


def subscription_from_row(row: Any) -> report_pb2.ReportSubscription:
    """The subscription as callers see it: never its webhook secret (sealed at rest; the create
    answer alone carries it)."""
    out = report_pb2.ReportSubscription(
        id=str(row.id),
        dashboard_id=str(row.dashboard_id),
        facility_id=row.facility_id,
        owner_id=row.owner_id,
        title=row.title,
        schedule=report_pb2.ReportSchedule(cron=row.cron, time_zone=row.time_zone),
        format=row.format,
        options=from_json(row.options, export_pb2.ExportOptions()),
        recipients=report_pb2.ReportRecipients(emails=list(row.emails), webhooks=list(row.webhooks)),
        include_phi=row.include_phi,
        state=row.state,
        stop_reason=row.stop_reason,
        etag=subscription_etag(row),
    )
    for name, value in (row.filter_values or {}).items():
        out.filter_values[name].CopyFrom(from_json(value, common_pb2.ParameterValue()))
    for field, value in (
        ("next_run_time", row.next_run_at),
        ("last_run_time", row.last_run_at),
        ("create_time", row.created_at),
        ("update_time", row.updated_at),
    ):
        stamp = ts(value)
        if stamp is not None:
            getattr(out, field).CopyFrom(stamp)
    return out


def delivery_from_row(row: Any) -> report_pb2.ReportDelivery:
    out = report_pb2.ReportDelivery(
        id=str(row.id),
        subscription_id=str(row.subscription_id),
        trigger=row.trigger,
        state=row.state,
        export_id=str(row.export_id) if row.export_id else "",
        recipients=[report_pb2.RecipientOutcome(**item) for item in row.recipients or []],
    )
    if row.error:
        out.error.CopyFrom(from_json(row.error, common_pb2.JobError()))
    for field, value in (("due_time", row.due_at), ("create_time", row.created_at), ("end_time", row.ended_at)):
        stamp = ts(value)
        if stamp is not None:
            getattr(out, field).CopyFrom(stamp)
    return out
