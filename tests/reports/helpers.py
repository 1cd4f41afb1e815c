"""What report tests build through the public API: a published dashboard (with a PHI column),
subscriptions, and reading a rpc error's details."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import report_pb2 as r
from dashboard.v1 import widget_pb2 as w
from tests.harness.exports import ExportKit

SECRET_NAME = "Alice Quartermaine"


def phi_board(kit: ExportKit, title: str = "Infection control") -> Any:
    """A published dashboard: a KPI and a table whose `patient` column is declared PHI."""
    position = w.GridPosition
    board, _ = kit.board(
        title,
        ("Cases", "SELECT 17 AS n", position(x=0, y=0, width=4, height=2), {"kpi": w.KpiConfig(value_column="n")}),
        (
            "Patients",
            f"SELECT '{SECRET_NAME}' AS patient, 3 AS days",
            position(x=4, y=0, width=8, height=3),
            {"table": w.TableConfig(), "query_fields": {"sensitive_columns": [q.SensitiveColumn(column="patient")]}},
        ),
    )
    return board


def subscription(
    board_id: str, *, emails: tuple[str, ...] = (), webhooks: tuple[str, ...] = (), **fields: Any
) -> r.ReportSubscription:
    values: dict[str, Any] = {
        "dashboard_id": board_id,
        "title": "Weekly infection control",
        "schedule": r.ReportSchedule(cron="0 7 * * 1", time_zone="Europe/Paris"),
        "format": e.EXPORT_FORMAT_PDF,
        "recipients": r.ReportRecipients(emails=list(emails), webhooks=list(webhooks)),
    }
    return r.ReportSubscription(**(values | fields))


def violations(error: grpc.RpcError) -> dict[str, str]:
    """The BadRequest field violations of an rpc error: field -> reason."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    out: dict[str, str] = {}
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out |= {v.field: v.reason for v in bad.field_violations}
    return out


def reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""
