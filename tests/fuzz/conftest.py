"""The fuzz run's shared pieces: principals, ids that exist, and the status-code report printed
at the end of the session (and written to build/fuzz-report.json)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from tests.fuzz.runner import Fuzzer, Report
from tests.harness.parallel import report_line
from tests.harness.server import ServerHandle

REPORT = Report()
REPORT_FILE = Path("build/fuzz-report.json")


def examples_per_rpc() -> int:
    """48 per rpc in CI (with the empty requests, over 2,000 calls); TESSERA_FUZZ_EXAMPLES for a
    long run (`python -m bench --only fuzz` sets it)."""
    return int(os.environ.get("TESSERA_FUZZ_EXAMPLES", "48"))


@pytest.fixture(scope="session")
def fuzz_report() -> Report:
    """The report this module's summary writes (pytest imports conftest under its own name, so
    tests reach it through this fixture rather than by import)."""
    return REPORT


@pytest.fixture(scope="session")
def fuzz_facility() -> str:
    return f"fuzz-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def fuzz_principals(auth: Any, fuzz_facility: str) -> dict[str, tuple[tuple[str, str], ...]]:
    return {
        "admin": auth("fuzz-admin", "admin", fuzz_facility, permissions=("phi:read",)),
        "viewer": auth("fuzz-viewer", "viewer", fuzz_facility),
        "anonymous": (),
    }


@pytest.fixture(scope="session")
def fuzz_ids(channel: grpc.Channel, fuzz_principals: dict[str, Any], fuzz_facility: str) -> dict[str, list[str]]:
    """Real resources of the fuzz facility, so that plausible requests reach the handlers."""
    from dashboard.v1 import (
        dashboard_pb2_grpc,
        export_pb2_grpc,
        query_pb2_grpc,
        share_pb2_grpc,
        widget_pb2_grpc,
    )

    md = fuzz_principals["admin"]
    queries = query_pb2_grpc.QueryServiceStub(channel)
    boards = dashboard_pb2_grpc.DashboardServiceStub(channel)
    widgets = widget_pb2_grpc.WidgetServiceStub(channel)
    shares = share_pb2_grpc.ShareServiceStub(channel)
    exports = export_pb2_grpc.ExportServiceStub(channel)
    query = queries.CreateQuery(
        q.CreateQueryRequest(
            query=q.Query(
                facility_id=fuzz_facility,
                name="fuzz",
                sql="SELECT n AS v, 'x' AS label FROM generate_series(1, :n) AS n",
                parameters=[q.ParameterSpec(name="n", type=q.PARAMETER_TYPE_INT)],
            )
        ),
        metadata=md,
    )
    board = boards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=fuzz_facility, title="Fuzz", tags=["fuzz"])),
        metadata=md,
    )
    widget = widgets.CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=board.id,
                title="n",
                position=w.GridPosition(x=0, y=0, width=4, height=2),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=query.id),
                refresh_interval=duration_pb2.Duration(seconds=300),
            )
        ),
        metadata=md,
    )
    boards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=md)
    shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, user_id="fuzz-viewer", level=s.SHARE_LEVEL_VIEW),
        metadata=md,
    )
    link = shares.CreatePublicLink(s.CreatePublicLinkRequest(dashboard_id=board.id), metadata=md)
    export = exports.CreateExport(e.CreateExportRequest(dashboard_id=board.id, format=e.EXPORT_FORMAT_PDF), metadata=md)
    job = widgets.MaterializeDashboard(w.MaterializeDashboardRequest(dashboard_id=board.id), metadata=md)
    return {
        "facility": [fuzz_facility],
        "dashboard": [board.id],
        "widget": [widget.id],
        "query": [query.id],
        "export": [export.id],
        "job": [job.id, export.id],
        "link": [link.id],
        "user": ["fuzz-viewer", "fuzz-admin"],
        "link_token": [link.token],
        "any": [board.id, widget.id, query.id],
    }


@pytest.fixture(scope="session")
def fuzzer(server: ServerHandle, fuzz_principals: dict[str, Any], fuzz_ids: dict[str, list[str]]) -> Iterator[Fuzzer]:
    # Also a public link's holder: reads of one published dashboard, nothing else.
    principals = {**fuzz_principals, "link": (("x-tessera-link", fuzz_ids["link_token"][0]),)}
    # A channel of its own: these calls are not data reads the audit-completeness check follows.
    with grpc.insecure_channel(server.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield Fuzzer(channel, principals, REPORT)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # In the process that ran the fuzz tests (a worker, when the suite runs on several).
    if not REPORT.total:
        return
    REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text(
        json.dumps(
            {
                "requests": REPORT.total,
                "codes": dict(REPORT.codes),
                "by_rpc": {k: dict(v) for k, v in REPORT.by_rpc.items()},
            },
            indent=2,
            sort_keys=True,
        )
    )
    histogram = ", ".join(f"{code} {count}" for code, count in REPORT.codes.most_common())
    report_line(session.config, f"fuzz: {REPORT.total} requests over {len(REPORT.by_rpc)} rpcs: {histogram}")
