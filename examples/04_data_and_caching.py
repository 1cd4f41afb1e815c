"""Usage example 4: data retrieval and caching.

Every WidgetData says where it came from: COMPUTED (a cache miss: the query ran), MEMORY (tier 1,
Redis), DATABASE (tier 2, PostgreSQL) or STALE (served while a refresh runs). This example shows
a miss then a hit, that other filter values are other cache entries, a forced refresh, a batch
read of the whole dashboard, and a background materialization (a Celery worker must be
running, as `tessera dev` does) that warms the cache for new filter values, followed with a
live progress line from the job's watch stream. Deletes everything unless --keep.
"""

from __future__ import annotations

from _common import arguments, connect, expect, main, run_tag, say, step

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from tessera_client import parameter_value, rows

SQL = """SELECT unit, count(*) AS admissions FROM demo.admissions
         WHERE age >= :min_age GROUP BY unit ORDER BY unit"""


def source(data: w.WidgetData) -> str:
    return str(w.DataSource.Name(data.source)).removeprefix("DATA_SOURCE_")


def run() -> None:
    args = arguments(__doc__ or "", lambda p: p.add_argument("--wait", type=float, default=120, help="job timeout, s"))
    tag = run_tag()
    with connect(args) as client:
        step("A dashboard whose widgets take the `min_age` filter")
        age_filter = d.DashboardFilter(name="min_age", label="Minimum age", default_value=parameter_value(0))
        board = client.dashboards.create(title="Cache demo", tags=[tag], filters=[age_filter])
        query = client.queries.create(
            name="Admissions per unit by age",
            sql=SQL,
            tags=[tag],
            parameters=[q.ParameterSpec(name="min_age", type=q.PARAMETER_TYPE_INT, default_value=parameter_value(0))],
        )
        per_unit = client.widgets.create(
            dashboard_id=board.id,
            title="Per unit",
            position=w.GridPosition(x=0, y=0, width=6, height=3),
            bar=w.BarChartConfig(category_column="unit", value_columns=["admissions"]),
            query=w.QueryBinding(query_id=query.id, filter_bindings={"min_age": "min_age"}),
        )
        table = client.widgets.create(
            dashboard_id=board.id,
            title="Per unit (table)",
            position=w.GridPosition(x=6, y=0, width=6, height=3),
            table=w.TableConfig(),
            query=w.QueryBinding(query_id=query.id, filter_bindings={"min_age": "min_age"}),
        )

        step("First read: a miss, the query runs; second read: a hit from memory")
        first = client.widgets.data(per_unit.id)
        second = client.widgets.data(per_unit.id)
        for label, data in (("first", first), ("second", second)):
            say(f"{label:<6} source {source(data):<8} computed {data.compute_time.ToJsonString()}")
        expect(first.source == w.DATA_SOURCE_COMPUTED, "the first read computes")
        expect(second.source == w.DATA_SOURCE_MEMORY, "the second read is a cache hit")
        expect(second.compute_time == first.compute_time and second.frame == first.frame, "the same entry")
        say(f"fresh until {second.expire_time.ToJsonString()}")

        step("Other filter values are another cache entry")
        older = client.widgets.data(per_unit.id, filters={"min_age": 65})
        older_again = client.widgets.data(per_unit.id, filters={"min_age": 65})
        say(f"min_age 65: {source(older)}, then {source(older_again)}")
        expect(older.source == w.DATA_SOURCE_COMPUTED and older_again.source == w.DATA_SOURCE_MEMORY, "own entry")
        all_ages = sum(int(str(r["admissions"])) for r in rows(first.frame))
        seniors = sum(int(str(r["admissions"])) for r in rows(older.frame))
        say(f"{all_ages} admissions in all, {seniors} aged 65 or more")

        step("force_refresh skips the cache")
        forced = client.widgets.data(per_unit.id, force_refresh=True)
        say(f"source {source(forced)}, computed {forced.compute_time.ToJsonString()}")
        expect(forced.source == w.DATA_SOURCE_COMPUTED, "a forced refresh computes")

        step("The whole dashboard in one batch call")
        batch = client.widgets.dashboard_data(board.id)
        for widget_id, data in batch.items():
            say(f"{widget_id}: {source(data)}, {data.frame.row_count} rows")
        expect(batch[table.id].source == w.DATA_SOURCE_MEMORY, "same query and values: the same cache entry")

        step("Materialize the dashboard for min_age 40 in the background (a worker does it)")

        def progress(job: w.MaterializationJob) -> None:
            state = c.JobState.Name(job.state).removeprefix("JOB_STATE_")
            say(f"revision {job.revision:>2}  {job.progress.percent:>3}%  {state}  {job.progress.message}")

        job = client.widgets.materialize_and_wait(
            board.id, filters={"min_age": 40}, on_progress=progress, timeout=args.wait
        )
        say(f"job {job.id}: {job.progress.completed_steps} of {job.progress.total_steps} widgets")
        warmed = client.widgets.data(per_unit.id, filters={"min_age": 40})
        say(f"reading min_age 40 now: {source(warmed)}")
        expect(warmed.source == w.DATA_SOURCE_MEMORY, "the worker warmed the cache")

        if not args.keep:
            step("Clean up")
            client.dashboards.delete(board.id)
            client.queries.delete(query.id)
            say("deleted 1 dashboard and 1 query")


if __name__ == "__main__":
    main(run)
