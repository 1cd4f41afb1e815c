"""Usage example 3: creating parameterised queries.

Checks SQL before saving it (one read-only statement, every placeholder declared); saves a query
with typed parameters (an integer with bounds, a list of enum values, a required date range);
runs it with Python values bound by the driver, never spliced into the SQL; shows bad values
refused with the parameter named; changes the SQL (version 2) and still runs version 1; and
reuses a template query on a widget whose parameters come from the dashboard's filters.
Deletes everything unless --keep.
"""

from __future__ import annotations

import datetime as dt

from _common import ExampleFailed, arguments, connect, expect, explain, main, run_tag, say, step

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from tessera_client import InvalidArgumentError, date_range, parameter_value, rows

UNITS = ["Cardiology", "Emergency", "Maternity", "Oncology", "Surgery"]
SQL = """
SELECT unit, count(*) AS admissions, round(avg(age), 1) AS mean_age
FROM demo.admissions
WHERE age >= :min_age
  AND unit = ANY(:units)
  AND admitted_at::date BETWEEN :period_start AND :period_end
GROUP BY unit
ORDER BY unit
"""
PARAMETERS = [
    q.ParameterSpec(
        name="min_age",
        type=q.PARAMETER_TYPE_INT,
        default_value=parameter_value(0),
        min=parameter_value(0),
        max=parameter_value(120),
        description="Youngest patient counted",
    ),
    q.ParameterSpec(
        name="units", type=q.PARAMETER_TYPE_ENUM, list=True, allowed_values=UNITS, default_value=parameter_value(UNITS)
    ),
    q.ParameterSpec(name="period", type=q.PARAMETER_TYPE_DATE_RANGE, required=True),
]


def run() -> None:
    args = arguments(__doc__ or "")
    tag = run_tag()
    today = dt.date.today()
    last_month = date_range(today - dt.timedelta(days=30), today)
    with connect(args) as client:
        step("Check SQL before saving it")
        checked = client.queries.validate(SQL, PARAMETERS)
        say(f"valid: {checked.valid}; placeholders {list(checked.placeholders)}")
        expect(checked.valid, "the query is valid")
        bad = client.queries.validate("DELETE FROM demo.admissions WHERE age > :age")
        for problem in bad.problems:
            say(f"refused at line {problem.line}, column {problem.column}: {problem.message}")
        expect(not bad.valid, "a write is refused")

        step("Save it with typed parameters")
        query = client.queries.create(
            name="Admissions by unit", description="per unit, in a period", sql=SQL, parameters=PARAMETERS, tags=[tag]
        )
        for spec in query.parameters:
            kind = q.ParameterType.Name(spec.type).removeprefix("PARAMETER_TYPE_").lower()
            say(f":{spec.name} {kind}{'[]' if spec.list else ''}{' required' if spec.required else ''}")

        step("Run it with Python values: ints, lists and date ranges")
        result = client.queries.run(
            query.id, parameters={"min_age": 65, "units": ["Cardiology", "Surgery"], "period": last_month}
        )
        for row in rows(result.frame):
            say(f"{row['unit']:<11} {row['admissions']:>4} admissions, mean age {row['mean_age']}")
        say(f"query version {result.query_version}, {result.elapsed.ToMilliseconds()} ms")
        expect({row["unit"] for row in rows(result.frame)} <= {"Cardiology", "Surgery"}, "only the units asked for")
        expect(all(float(str(row["mean_age"])) >= 65 for row in rows(result.frame)), "only patients 65 and over")

        step("Bad values are refused, naming the parameter")
        for values in ({"min_age": 500, "period": last_month}, {"units": ["Radiology"], "period": last_month}, {}):
            try:
                client.queries.run(query.id, parameters=values)
            except InvalidArgumentError as error:
                explain(error)
            else:
                raise ExampleFailed(f"{values} was accepted")

        step("A value is data, never SQL: the driver binds it")
        by_unit = client.queries.create(
            name="Admissions of a unit",
            sql="SELECT count(*) AS admissions FROM demo.admissions WHERE unit = :unit",
            parameters=[q.ParameterSpec(name="unit", type=q.PARAMETER_TYPE_STRING, required=True)],
            tags=[tag],
        )
        honest = rows(client.queries.run(by_unit.id, parameters={"unit": "Surgery"}).frame)[0]["admissions"]
        sneaky = rows(client.queries.run(by_unit.id, parameters={"unit": "Surgery' OR '1'='1"}).frame)[0]["admissions"]
        say(f"unit 'Surgery': {honest} admissions; unit \"Surgery' OR '1'='1\": {sneaky}")
        expect(honest and sneaky == 0, "the quote is part of the value")

        step("Change the SQL: version 2; version 1 still runs")
        query.sql = SQL.replace("round(avg(age), 1) AS mean_age", "max(age) AS oldest")
        changed = client.queries.update(query, ["sql"])
        latest = client.queries.run(query.id, parameters={"period": last_month})
        pinned = client.queries.run(query.id, parameters={"period": last_month}, version=1)
        say(f"v{changed.version} columns {[c.name for c in latest.frame.columns]}")
        say(f"v1 columns {[c.name for c in pinned.frame.columns]}")
        expect(changed.version == 2 and pinned.query_version == 1, "versions are kept")

        step("A template query reused by a widget, its parameters taken from dashboard filters")
        template = client.queries.create(name="Admissions template", sql=SQL, parameters=PARAMETERS, template=True)
        board = client.dashboards.create(
            title="Older patients",
            tags=[tag],
            filters=[
                d.DashboardFilter(name="period", label="Period", default_value=last_month),
                d.DashboardFilter(name="age", label="Minimum age", default_value=parameter_value(80)),
            ],
        )
        widget = client.widgets.create(
            dashboard_id=board.id,
            title="80 and over, by unit",
            position=w.GridPosition(x=0, y=0, width=6, height=3),
            bar=w.BarChartConfig(category_column="unit", value_columns=["admissions"]),
            query=w.QueryBinding(
                query_id=template.id,
                parameter_values={"units": parameter_value(["Emergency", "Oncology"])},
                filter_bindings={"min_age": "age", "period": "period"},
            ),
        )
        default = client.widgets.data(widget.id)
        younger = client.widgets.data(widget.id, filters={"age": 18})
        total = sum(int(str(r["admissions"])) for r in rows(default.frame))
        total_younger = sum(int(str(r["admissions"])) for r in rows(younger.frame))
        say(f"80+: {total} admissions; 18+ (filter changed): {total_younger}")
        expect(total < total_younger, "the filter value reached the query")
        templates = [found.name for found in client.queries.list(template=True, name_contains="template")]
        expect("Admissions template" in templates, "templates are listed")

        if not args.keep:
            step("Clean up")
            client.dashboards.delete(board.id)
            for query_id in (query.id, by_unit.id, template.id):
                client.queries.delete(query_id)
            say("deleted 1 dashboard and 3 queries")


if __name__ == "__main__":
    main(run)
