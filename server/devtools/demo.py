"""Demo data for `tessera dev`: a hospital data source with RLS, saved queries (a template, a
materialized view, PHI columns) and dashboards with every widget type, in facility north-general.
Idempotent: nothing is added when the demo dashboards exist."""

from __future__ import annotations

import logging

from google.protobuf import duration_pb2
from google.type import date_pb2
from sqlalchemy import select

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.app import build_app
from server.auth.principal import Principal, Role
from server.config import Settings
from server.db.schema import dashboards
from server.devtools.demo_data import install as install_demo_data

log = logging.getLogger("tessera.demo")
FACILITY = "north-general"
DEMO = Principal(subject="dev-admin", role=Role.ADMIN, facilities=frozenset({FACILITY, "south-clinic"}))


def _queries() -> dict[str, q.Query]:
    """The demo queries, over server/devtools/demo_data.py's schema (RLS by facility)."""
    day = q.ParameterSpec
    return {
        "beds": q.Query(
            name="Beds occupied",
            sql="SELECT count(*) FILTER (WHERE discharged_at IS NULL) AS occupied,\n"
            "       count(*) FILTER (WHERE discharged_at IS NULL AND admitted_at < now() - interval '7 days')"
            " AS occupied_last_week\nFROM demo.admissions WHERE facility_id = :facility_id",
            tags=["operations"],
        ),
        "alos": q.Query(
            name="Average length of stay",
            sql="SELECT round(avg(extract(epoch FROM discharged_at - admitted_at) / 86400)::numeric, 1) AS alos_days\n"
            "FROM demo.admissions WHERE discharged_at IS NOT NULL",
        ),
        "admissions": q.Query(
            name="Admissions per day",
            template=True,
            sql="SELECT CAST(date_trunc('day', admitted_at) AS date) AS day, count(*) AS admissions\n"
            "FROM demo.admissions\n"
            "WHERE CAST(admitted_at AS date) BETWEEN :period_start AND :period_end\n"
            "  AND (CAST(:unit AS text) IS NULL OR unit = :unit)\nGROUP BY 1 ORDER BY 1",
            parameters=[
                day(
                    name="period",
                    type=q.PARAMETER_TYPE_DATE_RANGE,
                    required=True,
                    default_value=c.ParameterValue(
                        date_range_value=c.DateRange(
                            start=date_pb2.Date(year=2000, month=1, day=1), end=date_pb2.Date(year=2100, month=1, day=1)
                        )
                    ),
                ),
                day(
                    name="unit",
                    type=q.PARAMETER_TYPE_ENUM,
                    allowed_values=["Cardiology", "Oncology", "Emergency", "Maternity", "Surgery"],
                ),
            ],
        ),
        "census": q.Query(
            name="Census by unit",
            sql="SELECT CAST(date_trunc('day', admitted_at) AS date) AS day, unit, count(*) AS patients\n"
            "FROM demo.admissions GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        "discharges": q.Query(
            name="Discharges by unit (materialized)",
            kind=q.QUERY_KIND_MATERIALIZED_VIEW,
            sql="SELECT facility_id, unit, count(*) AS discharges FROM demo.admissions\n"
            "WHERE discharged_at IS NOT NULL GROUP BY facility_id, unit",
            view_key_columns=["facility_id", "unit"],
        ),
        "heatmap": q.Query(
            name="Admissions by hour and weekday",
            sql="SELECT extract(hour FROM admitted_at)::int AS hour, to_char(admitted_at, 'Dy') AS weekday,\n"
            "       count(*) AS occupancy FROM demo.admissions GROUP BY 1, 2",
        ),
        "sites": q.Query(name="Sites", sql="SELECT site, lat, lon, beds FROM demo.sites"),
        "recent": q.Query(
            name="Recent admissions",
            sql="SELECT admitted_at, unit, patient_name, mrn, age, cost FROM demo.admissions\n"
            "ORDER BY admitted_at DESC LIMIT 200",
            sensitive_columns=[
                q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_PARTIAL),
                q.SensitiveColumn(column="mrn", strategy=q.MASKING_STRATEGY_HASH),
            ],
        ),
    }


def _widgets(queries: dict[str, str]) -> list[w.Widget]:
    pos = w.GridPosition

    def bound(name: str) -> w.QueryBinding:
        return w.QueryBinding(query_id=queries[name])

    return [
        w.Widget(
            title="Beds occupied",
            position=pos(x=0, y=0, width=3, height=2),
            query=bound("beds"),
            kpi=w.KpiConfig(
                value_column="occupied",
                comparison_column="occupied_last_week",
                format=w.NumberFormat(decimals=0, suffix=" beds"),
            ),
        ),
        w.Widget(
            title="Average length of stay",
            position=pos(x=3, y=0, width=3, height=2),
            query=bound("alos"),
            kpi=w.KpiConfig(value_column="alos_days", format=w.NumberFormat(decimals=1, suffix=" d")),
        ),
        w.Widget(
            title="Admissions per day",
            position=pos(x=6, y=0, width=6, height=4),
            query=w.QueryBinding(query_id=queries["admissions"], filter_bindings={"unit": "unit"}),
            line=w.LineChartConfig(x_column="day", y_columns=["admissions"], x_title="Day", y_title="Admissions"),
            refresh_interval=duration_pb2.Duration(seconds=600),
        ),
        w.Widget(
            title="Census by unit",
            position=pos(x=0, y=2, width=6, height=4),
            query=bound("census"),
            area=w.AreaChartConfig(x_column="day", y_columns=["patients"], series_column="unit", stacked=True),
        ),
        w.Widget(
            title="Discharges by unit",
            position=pos(x=0, y=6, width=6, height=4),
            query=bound("discharges"),
            bar=w.BarChartConfig(category_column="unit", value_columns=["discharges"]),
            cross_filters=[w.CrossFilter(source_column="unit", filter_name="unit")],
        ),
        w.Widget(
            title="Admissions by hour and weekday",
            position=pos(x=6, y=4, width=6, height=4),
            query=bound("heatmap"),
            heatmap=w.HeatmapConfig(
                x_column="hour", y_column="weekday", value_column="occupancy", color_scheme="blues"
            ),
        ),
        w.Widget(
            title="Sites",
            position=pos(x=6, y=8, width=6, height=4),
            query=bound("sites"),
            map=w.MapConfig(latitude_column="lat", longitude_column="lon", value_column="beds", label_column="site"),
        ),
        w.Widget(
            title="Recent admissions",
            position=pos(x=0, y=10, width=6, height=6),
            query=bound("recent"),
            table=w.TableConfig(
                columns=[
                    w.TableColumn(column="admitted_at", label="Admitted"),
                    w.TableColumn(column="unit", label="Unit"),
                    w.TableColumn(column="patient_name", label="Patient"),
                    w.TableColumn(column="mrn", label="MRN"),
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
        install_demo_data(settings.database_url)
        queries: dict[str, str] = {}
        for key, query in _queries().items():
            query.facility_id = FACILITY
            queries[key] = (await app.queries.create(DEMO, query, "", b"")).id
        created = await app.dashboards.create(DEMO, board, "", b"")
        for widget in _widgets(queries):
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
