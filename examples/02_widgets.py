"""Usage example 2: widgets of every type on a dashboard's grid.

On the demo data (`tessera dev`), builds an admissions dashboard with one widget of each of the
seven types (KPI, line, area, bar, table, heatmap, map), each bound to a saved query; wires a
cross-filter (clicking a bar sets the dashboard's `unit` filter, which the table's query takes)
and a drill-through to a detail dashboard; shows an overlapping widget refused; reads every
widget's data, then the table again as a click on a bar would filter it. PHI columns of the
table are masked for callers without `phi:read`. Deletes everything unless --keep.
"""

from __future__ import annotations

from _common import ExampleFailed, arguments, connect, expect, explain, main, run_tag, say, step

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from tessera_client import ApiError, Client, parameter_value, rows

Q = {
    "kpi": """SELECT count(*) FILTER (WHERE admitted_at > now() - interval '7 days') AS this_week,
                     count(*) FILTER (WHERE admitted_at <= now() - interval '7 days'
                                        AND admitted_at > now() - interval '14 days') AS last_week
              FROM demo.admissions""",
    "line": """SELECT admitted_at::date AS day, count(*) AS admissions
               FROM demo.admissions GROUP BY 1 ORDER BY 1""",
    "area": """SELECT admitted_at::date AS day, unit, count(*) AS admissions
               FROM demo.admissions GROUP BY 1, 2 ORDER BY 1, 2""",
    "bar": """SELECT unit, count(*) AS admissions, round(avg(age), 1) AS mean_age
              FROM demo.admissions GROUP BY unit ORDER BY unit""",
    "table": """SELECT patient_name, mrn, unit, age, admitted_at FROM demo.admissions
                WHERE :unit = '' OR unit = :unit ORDER BY admitted_at DESC, id LIMIT 25""",
    "heatmap": """SELECT unit, extract(isodow FROM admitted_at)::int AS weekday, count(*) AS admissions
                  FROM demo.admissions GROUP BY 1, 2 ORDER BY 1, 2""",
    "map": "SELECT site, lat, lon, beds FROM demo.sites ORDER BY site",
}


def saved_query(client: Client, kind: str, tag: str) -> q.Query:
    fields: dict[str, object] = {}
    if kind == "table":
        fields["parameters"] = [
            q.ParameterSpec(name="unit", type=q.PARAMETER_TYPE_STRING, default_value=parameter_value(""))
        ]
        fields["sensitive_columns"] = [
            q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_REDACT),
            q.SensitiveColumn(column="mrn", strategy=q.MASKING_STRATEGY_PARTIAL),
        ]
    return client.queries.create(name=f"admissions {kind}", sql=Q[kind], tags=[tag], **fields)


def run() -> None:
    args = arguments(__doc__ or "")
    tag = run_tag()
    with connect(args) as client:
        step("Two dashboards: an overview with a `unit` filter, and a unit detail to drill into")
        unit_filter = d.DashboardFilter(name="unit", label="Unit", default_value=parameter_value(""))
        overview = client.dashboards.create(title="Admissions overview", tags=[tag], filters=[unit_filter])
        detail = client.dashboards.create(title="Unit detail", tags=[tag], filters=[unit_filter])
        say(f"overview {overview.id}, detail {detail.id}")

        step("Seven saved queries, one per widget")
        queries = {kind: saved_query(client, kind, tag) for kind in Q}
        say(", ".join(f"{kind}: v{query.version}" for kind, query in queries.items()))

        def place(x: int, y: int, width: int, height: int) -> w.GridPosition:
            return w.GridPosition(x=x, y=y, width=width, height=height)

        def bind(kind: str, **binding: object) -> w.QueryBinding:
            return w.QueryBinding(query_id=queries[kind].id, **binding)  # type: ignore[arg-type]

        step("One widget of each type on the 12-column grid")
        specs = {
            "kpi": w.Widget(
                title="Admissions this week",
                position=place(0, 0, 3, 2),
                query=bind("kpi"),
                kpi=w.KpiConfig(
                    value_column="this_week",
                    comparison_column="last_week",
                    format=w.NumberFormat(thousands_separator=True, suffix=" patients"),
                    thresholds=[w.Threshold(value=0, color="#2e7d32"), w.Threshold(value=200, color="#c62828")],
                ),
            ),
            "line": w.Widget(
                title="Admissions per day",
                position=place(3, 0, 9, 2),
                query=bind("line"),
                line=w.LineChartConfig(x_column="day", y_columns=["admissions"], y_title="patients", show_points=True),
            ),
            "area": w.Widget(
                title="Admissions per day and unit",
                position=place(0, 2, 6, 3),
                query=bind("area"),
                area=w.AreaChartConfig(x_column="day", y_columns=["admissions"], series_column="unit", stacked=True),
            ),
            "bar": w.Widget(
                title="Admissions per unit",
                position=place(6, 2, 6, 3),
                query=bind("bar"),
                bar=w.BarChartConfig(
                    category_column="unit", value_columns=["admissions"], orientation=w.BAR_ORIENTATION_HORIZONTAL
                ),
                cross_filters=[w.CrossFilter(source_column="unit", filter_name="unit")],
                drill_through=w.DrillThrough(target_dashboard_id=detail.id, column_to_filter={"unit": "unit"}),
            ),
            "table": w.Widget(
                title="Latest admissions",
                position=place(0, 5, 12, 4),
                query=bind("table", filter_bindings={"unit": "unit"}),
                table=w.TableConfig(
                    columns=[
                        w.TableColumn(column="patient_name", label="Patient"),
                        w.TableColumn(column="mrn", label="MRN"),
                        w.TableColumn(column="unit", label="Unit"),
                        w.TableColumn(column="age", label="Age"),
                    ],
                    page_size=25,
                    sort_column="admitted_at",
                    sort_descending=True,
                ),
            ),
            "heatmap": w.Widget(
                title="Admissions by weekday",
                position=place(0, 9, 6, 3),
                query=bind("heatmap"),
                heatmap=w.HeatmapConfig(
                    x_column="weekday", y_column="unit", value_column="admissions", color_scheme="blues"
                ),
            ),
            "map": w.Widget(
                title="Sites and beds",
                position=place(6, 9, 6, 3),
                query=bind("map"),
                map=w.MapConfig(
                    latitude_column="lat", longitude_column="lon", value_column="beds", label_column="site"
                ),
            ),
        }
        made: dict[str, w.Widget] = {}
        for kind, spec in specs.items():
            spec.dashboard_id = overview.id
            made[kind] = client.widgets.create(spec)
            p = made[kind].position
            type_name = w.WidgetType.Name(made[kind].type).removeprefix("WIDGET_TYPE_")
            say(f"{type_name:<8} {made[kind].title!r} at x={p.x} y={p.y} {p.width}x{p.height}")
        expect({m.type for m in made.values()} == set(range(1, 8)), "all seven widget types")

        step("A widget overlapping another is refused")
        try:
            client.widgets.create(
                dashboard_id=overview.id, title="Overlap", position=place(1, 1, 4, 2), kpi=w.KpiConfig(value_column="n")
            )
        except ApiError as error:
            explain(error)
        else:
            raise ExampleFailed("an overlapping widget was accepted")

        step("The dashboard, widgets in grid order")
        board = client.dashboards.get(overview.id)
        say(f"{board.title}: version {board.version}, {len(board.widgets)} widgets")
        expect([x.title for x in board.widgets][:2] == ["Admissions this week", "Admissions per day"], "grid order")

        step("Every widget's data in one batch call")
        for kind, data in zip(made, client.widgets.batch_data([m.id for m in made.values()]), strict=True):
            columns = ", ".join(column.name for column in data.frame.columns)
            say(f"{kind:<8} {data.frame.row_count:>4} rows  [{columns}]{'  (PHI masked)' if data.masked else ''}")
            expect(data.frame.row_count > 0, f"the {kind} widget has data (is the demo data loaded?)")

        step("A click on the 'Surgery' bar: the cross-filter narrows the table")
        click = w.CrossFilterValue(
            filter_name="unit", value=parameter_value("Surgery"), source_widget_id=made["bar"].id
        )
        filtered = client.widgets.data(made["table"].id, cross_filters=[click])
        units = {row["unit"] for row in rows(filtered.frame)}
        first = rows(filtered.frame)[0]
        say(f"{filtered.frame.row_count} rows, units {sorted(units)}; first: {first['patient_name']} {first['mrn']}")
        expect(units == {"Surgery"}, "only Surgery admissions")

        drill = made["bar"].drill_through
        say(f"drill-through: a bar opens dashboard {drill.target_dashboard_id} with {dict(drill.column_to_filter)}")

        if not args.keep:
            step("Clean up")
            for board_id in (overview.id, detail.id):
                client.dashboards.delete(board_id)
            for query in queries.values():
                client.queries.delete(query.id)
            say("deleted 2 dashboards and 7 queries")


if __name__ == "__main__":
    main(run)
