"""Issue 17, dashboard portability: what a document costs against doing the same by hand, in the
same run. ExportDashboardDocument of a 48-widget dashboard (12 queries) against GetDashboard of it
(the read every export starts with); ImportDashboard of its document (every check, one
transaction) against building the same dashboard rpc by rpc (CreateQuery x 12, CreateDashboard,
CreateWidget x 48), and CloneDashboard against the same baseline. Imports and clones go into the
source's facility with the title conflict policy RENAME (the title lookup included)."""

from __future__ import annotations

from typing import Any

from bench.harness import Bench, sample, summary
from dashboard.v1 import dashboard_pb2, dashboard_pb2_grpc, query_pb2, query_pb2_grpc, widget_pb2, widget_pb2_grpc

QUERIES, WIDGETS = 12, 48
# Every import and clone lands beside the source: renamed, so each pays the title check too.
RENAME = dashboard_pb2.TITLE_CONFLICT_POLICY_RENAME


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    boards = dashboard_pb2_grpc.DashboardServiceStub(bench.channel)
    queries = query_pb2_grpc.QueryServiceStub(bench.channel)
    widgets = widget_pb2_grpc.WidgetServiceStub(bench.channel)
    md = bench.metadata("editor")

    def build() -> str:
        """The dashboard by hand: what a client does without ImportDashboard."""
        made = [
            queries.CreateQuery(
                query_pb2.CreateQueryRequest(
                    query=query_pb2.Query(name=f"bench q{i}", sql=f"SELECT {i} AS n, unit FROM demo.admissions")
                ),
                metadata=md,
            ).id
            for i in range(QUERIES)
        ]
        board = boards.CreateDashboard(
            dashboard_pb2.CreateDashboardRequest(dashboard=dashboard_pb2.Dashboard(title="bench portability")),
            metadata=md,
        )
        for i in range(WIDGETS):
            widgets.CreateWidget(
                widget_pb2.CreateWidgetRequest(
                    widget=widget_pb2.Widget(
                        dashboard_id=board.id,
                        title=f"w{i}",
                        position=widget_pb2.GridPosition(x=(i % 4) * 3, y=(i // 4) * 2, width=3, height=2),
                        bar=widget_pb2.BarChartConfig(category_column="unit", value_columns=["n"]),
                        query=widget_pb2.QueryBinding(query_id=made[i % QUERIES]),
                    )
                ),
                metadata=md,
            )
        return str(board.id)

    source = build()
    document = boards.ExportDashboardDocument(dashboard_pb2.ExportDashboardDocumentRequest(id=source), metadata=md)
    reads, writes = (200, 10) if full else (40, 3)

    def get() -> None:
        boards.GetDashboard(dashboard_pb2.GetDashboardRequest(id=source), metadata=md)

    def export() -> None:
        boards.ExportDashboardDocument(dashboard_pb2.ExportDashboardDocumentRequest(id=source), metadata=md)

    def import_() -> None:
        boards.ImportDashboard(
            dashboard_pb2.ImportDashboardRequest(document=document, title_conflict=RENAME), metadata=md
        )

    def clone() -> None:
        boards.CloneDashboard(dashboard_pb2.CloneDashboardRequest(id=source, title_conflict=RENAME), metadata=md)

    by_hand = summary(sample(build, writes, warmup=1))
    results = []
    for name, fn, baseline, what, iterations in (
        ("export", export, summary(sample(get, reads)), "GetDashboard of the same dashboard", reads),
        ("import", import_, by_hand, "the same dashboard built rpc by rpc (61 calls)", writes),
        ("clone", clone, by_hand, "the same dashboard built rpc by rpc (61 calls)", writes),
    ):
        measured = summary(sample(fn, iterations, warmup=1))
        results.append(
            {
                "workload": f"portability.{name}",
                "widgets": WIDGETS,
                "queries": QUERIES,
                "rpc": measured,
                "baseline": {"what": what, **baseline},
                "ratio_p50": round(measured["p50_ms"] / baseline["p50_ms"], 2),
            }
        )
    return results
