"""Demo data for `tessera dev`: dashboards with every widget type, in facility north-general.
Idempotent: nothing is added when the demo dashboards exist."""

from __future__ import annotations

import logging

from google.protobuf import duration_pb2
from sqlalchemy import select

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import widget_pb2 as w
from server.app import build_app
from server.auth.principal import Principal, Role
from server.config import Settings
from server.db.schema import dashboards

log = logging.getLogger("tessera.demo")
FACILITY = "north-general"
DEMO = Principal(subject="dev-admin", role=Role.ADMIN, facilities=frozenset({FACILITY, "south-clinic"}))


def _widgets() -> list[w.Widget]:
    pos = w.GridPosition
    return [
        w.Widget(
            title="Beds occupied",
            position=pos(x=0, y=0, width=3, height=2),
            kpi=w.KpiConfig(
                value_column="occupied",
                comparison_column="occupied_last_week",
                format=w.NumberFormat(decimals=0, suffix=" beds"),
            ),
        ),
        w.Widget(
            title="Average length of stay",
            position=pos(x=3, y=0, width=3, height=2),
            kpi=w.KpiConfig(value_column="alos_days", format=w.NumberFormat(decimals=1, suffix=" d")),
        ),
        w.Widget(
            title="Admissions per day",
            position=pos(x=6, y=0, width=6, height=4),
            line=w.LineChartConfig(x_column="day", y_columns=["admissions"], x_title="Day", y_title="Admissions"),
            refresh_interval=duration_pb2.Duration(seconds=600),
        ),
        w.Widget(
            title="Census by unit",
            position=pos(x=0, y=2, width=6, height=4),
            area=w.AreaChartConfig(x_column="day", y_columns=["patients"], series_column="unit", stacked=True),
        ),
        w.Widget(
            title="Discharges by unit",
            position=pos(x=0, y=6, width=6, height=4),
            bar=w.BarChartConfig(category_column="unit", value_columns=["discharges"]),
        ),
        w.Widget(
            title="Occupancy by hour and weekday",
            position=pos(x=6, y=4, width=6, height=4),
            heatmap=w.HeatmapConfig(
                x_column="hour", y_column="weekday", value_column="occupancy", color_scheme="blues"
            ),
        ),
        w.Widget(
            title="Sites",
            position=pos(x=6, y=8, width=6, height=4),
            map=w.MapConfig(latitude_column="lat", longitude_column="lon", value_column="beds", label_column="site"),
        ),
        w.Widget(
            title="Recent admissions",
            position=pos(x=0, y=10, width=6, height=6),
            table=w.TableConfig(
                columns=[
                    w.TableColumn(column="admitted_at", label="Admitted"),
                    w.TableColumn(column="unit", label="Unit"),
                ],
                page_size=25,
            ),
        ),
    ]


async def load_demo(settings: Settings) -> None:
    app = build_app(settings)
    try:
        async with app.db.read() as conn:
            exists = (
                await conn.execute(select(dashboards.c.id).where(dashboards.c.metadata["demo"].as_boolean()).limit(1))
            ).first()
        if exists:
            log.info("demo data already loaded")
            return
        board = d.Dashboard(
            facility_id=FACILITY,
            title="Hospital operations",
            description="Beds, admissions and discharges.",
            tags=["operations", "demo"],
            visibility=d.VISIBILITY_PUBLIC,
            filters=[d.DashboardFilter(name="unit", label="Unit")],
        )
        board.metadata.update({"demo": True, "owner_team": "operations"})
        created = await app.dashboards.create(DEMO, board, "", b"")
        for widget in _widgets():
            widget.dashboard_id = created.id
            await app.widgets.create(DEMO, widget, "", b"")
        await app.dashboards.publish(DEMO, created.id, 0, "")
        other = d.Dashboard(facility_id=FACILITY, title="Infection control (draft)", tags=["quality", "demo"])
        other.metadata.update({"demo": True})
        await app.dashboards.create(DEMO, other, "", b"")
        south = d.Dashboard(facility_id="south-clinic", title="South clinic overview", tags=["demo"])
        south.metadata.update({"demo": True})
        await app.dashboards.create(DEMO, south, "", b"")
        log.info("demo data loaded", extra={"dashboard_id": created.id})
    finally:
        await app.close()
