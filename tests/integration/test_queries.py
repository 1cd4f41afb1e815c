"""QueryService over a real channel, on the demo data source (schema `demo`, Row-Level Security
by facility): CRUD with versions, etags, masks and request ids; templates bound by several
widgets; typed parameters and their constraints (checked before anything runs); timeouts; the
row cap; facility isolation through RLS and the bound `:facility_id`; every type the demo data
uses compared with a direct psycopg query; PHI masking; managed materialized views; and
ValidateQuery. The SQL-injection corpus lives in test_query_injection.py."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from functools import partial
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.type import date_pb2
from psycopg.rows import dict_row

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.devtools.demo_data import install
from server.queries.frame import frame_to_rows
from server.queries.masking import partial_text
from tests.harness.rpc import expect_failure, failure_of

Code = grpc.StatusCode
NORTH, SOUTH = "north-general", "south-clinic"
READER = "tessera_reader"
Q = q.Query
P = q.ParameterSpec
T = q.ParameterType


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def dsn(migrated: str) -> str:
    """The demo data source (installed once; idempotent), as a libpq URL for direct queries."""
    install(migrated)
    return migrated.replace("postgresql+psycopg://", "postgresql://", 1)


def uid() -> str:
    return uuid.uuid4().hex[:10]


def direct(
    dsn: str, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, facility: str | None = None
) -> list[dict[str, Any]]:
    """`sql` on a connection of its own: as the superuser (RLS bypassed) without `facility`,
    or as the reader role with the facility setting, exactly as the server runs queries."""
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        if facility is not None:
            conn.execute(f"SET ROLE {READER}")
            conn.execute("SELECT set_config('tessera.facility_id', %s, false)", (facility,))
        return conn.execute(sql, params or None).fetchall()


def sv(value: str) -> c.ParameterValue:
    return c.ParameterValue(string_value=value)


def iv(value: int) -> c.ParameterValue:
    return c.ParameterValue(int_value=value)


def fv(value: float) -> c.ParameterValue:
    return c.ParameterValue(double_value=value)


def bv(value: bool) -> c.ParameterValue:
    return c.ParameterValue(bool_value=value)


def date_of(day: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def dv(day: dt.date) -> c.ParameterValue:
    return c.ParameterValue(date_value=date_of(day))


def tv(instant: dt.datetime) -> c.ParameterValue:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(instant)
    return c.ParameterValue(timestamp_value=stamp)


def rv(start: dt.date, end: dt.date) -> c.ParameterValue:
    return c.ParameterValue(date_range_value=c.DateRange(start=date_of(start), end=date_of(end)))


def lv(*values: c.ParameterValue) -> c.ParameterValue:
    return c.ParameterValue(list_value=c.ParameterValueList(values=list(values)))


def secs(value: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(value * 1e9))
    return out


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


Metadata = tuple[tuple[str, str], ...]


def create(queries: Any, md: Metadata, sql: str, **fields: Any) -> Q:
    fields.setdefault("name", f"query {uid()}")
    created: Q = queries.CreateQuery(q.CreateQueryRequest(query=Q(sql=sql, **fields)), metadata=md)
    return created


def run(queries: Any, md: Metadata, query_id: str, **values: c.ParameterValue) -> q.RunQueryResponse:
    response: q.RunQueryResponse = queries.RunQuery(
        q.RunQueryRequest(id=query_id, parameter_values=values), metadata=md
    )
    return response


def rows(response: q.RunQueryResponse) -> list[dict[str, object]]:
    return frame_to_rows(response.frame)


def column(response: q.RunQueryResponse, name: str) -> c.Column:
    return next(col for col in response.frame.columns if col.name == name)


@pytest.fixture
def editor(auth: Callable[..., Metadata]) -> Metadata:
    """An editor of NORTH without PHI access, a subject of its own."""
    return auth(f"editor-{uid()}", "editor", NORTH)


# --- create / get / list ------------------------------------------------------------------------


def test_create_and_get_a_sql_query(queries: Any, editor: Metadata, dsn: str) -> None:
    sql = "SELECT unit, count(*) AS n FROM demo.admissions WHERE age >= :min_age GROUP BY unit ORDER BY unit"
    created = create(
        queries,
        editor,
        sql,
        description="admissions per unit",
        tags=["clinical", "units"],
        parameters=[P(name="min_age", type=T.PARAMETER_TYPE_INT, default_value=iv(0), min=iv(0), max=iv(150))],
        options=q.QueryOptions(timeout=secs(5), row_limit=100),
        sensitive_columns=[q.SensitiveColumn(column="unit", strategy=q.MASKING_STRATEGY_REDACT)],
    )
    uuid.UUID(created.id)
    assert created.facility_id == NORTH
    assert created.kind == q.QUERY_KIND_SQL
    assert created.version == 1
    assert created.sql == sql
    assert list(created.tags) == ["clinical", "units"]
    assert created.parameters[0].default_value.int_value == 0
    assert created.options.timeout.seconds == 5 and created.options.row_limit == 100
    assert created.etag and created.HasField("create_time") and created.HasField("update_time")
    assert not created.view_name and not created.HasField("refresh_time")
    assert queries.GetQuery(q.GetQueryRequest(id=created.id), metadata=editor) == created


def test_create_requires_a_name_and_sql_and_checks_options(queries: Any, editor: Metadata) -> None:
    failure = expect_failure(
        lambda: queries.CreateQuery(q.CreateQueryRequest(query=Q()), metadata=editor), Code.INVALID_ARGUMENT
    )
    assert {"query.name", "query.sql"} <= set(failure.fields)
    expect_failure(
        lambda: create(queries, editor, "SELECT 1 AS one", options=q.QueryOptions(timeout=secs(599))),
        Code.INVALID_ARGUMENT,
        field="query.options.timeout",
    )
    expect_failure(
        lambda: create(queries, editor, "SELECT 1 AS one", options=q.QueryOptions(row_limit=1_000_000)),
        Code.INVALID_ARGUMENT,
        field="query.options.row_limit",
    )
    expect_failure(
        lambda: create(queries, editor, "SELECT 1 AS one", sensitive_columns=[q.SensitiveColumn(column="mrn")]),
        Code.INVALID_ARGUMENT,
        field="query.sensitive_columns[0].column",
    )
    expect_failure(
        lambda: create(queries, editor, "SELECT 1 AS one", view_key_columns=["one"]),
        Code.INVALID_ARGUMENT,
        field="query.view_key_columns",
    )


def test_a_query_is_created_in_one_of_the_callers_facilities(queries: Any, auth: Any, editor: Metadata) -> None:
    expect_failure(
        lambda: create(queries, editor, "SELECT 1 AS one", facility_id=SOUTH),
        Code.PERMISSION_DENIED,
        reason="FACILITY_NOT_ALLOWED",
    )
    both = auth(f"both-{uid()}", "editor", NORTH, SOUTH)
    expect_failure(lambda: create(queries, both, "SELECT 1 AS one"), Code.INVALID_ARGUMENT, reason="FACILITY_REQUIRED")
    assert create(queries, both, "SELECT 1 AS one", facility_id=SOUTH).facility_id == SOUTH


def test_a_retried_create_returns_the_first_query(queries: Any, facility: str, auth: Any, dsn: str) -> None:
    md = auth("retrier", "editor", facility)
    request = q.CreateQueryRequest(query=Q(name=f"once {uid()}", sql="SELECT 1 AS one"), request_id=str(uuid.uuid4()))
    first = queries.CreateQuery(request, metadata=md)
    again = queries.CreateQuery(request, metadata=md)
    assert again.id == first.id
    listed = queries.ListQueries(q.ListQueriesRequest(), metadata=md).queries
    assert [x.id for x in listed] == [first.id]
    other = q.CreateQueryRequest(query=Q(name="another", sql="SELECT 2 AS two"), request_id=request.request_id)
    expect_failure(lambda: queries.CreateQuery(other, metadata=md), Code.ALREADY_EXISTS, reason="REQUEST_ID_REUSED")

    # Concurrent twins (a view too, which is built before the row is written): one query, one view.
    twin = q.CreateQueryRequest(
        query=Q(
            name=f"twin {uid()}",
            sql="SELECT facility_id, count(*) AS n FROM demo.sites GROUP BY facility_id",
            kind=q.QUERY_KIND_MATERIALIZED_VIEW,
            view_key_columns=["facility_id"],
        ),
        request_id=str(uuid.uuid4()),
    )
    views_before = managed_views(dsn)
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = set(pool.map(lambda _: queries.CreateQuery(twin, metadata=md).id, range(4)))
    assert len(ids) == 1
    assert len(queries.ListQueries(q.ListQueriesRequest(), metadata=md).queries) == 2
    [made] = ids
    view_name = queries.GetQuery(q.GetQueryRequest(id=made), metadata=md).view_name
    assert sorted(managed_views(dsn)) == sorted([*views_before, view_name])
    queries.DeleteQuery(q.DeleteQueryRequest(id=made), metadata=md)


def test_list_pages_and_filters(queries: Any, auth: Any, facility: str) -> None:
    md = auth("lister", "editor", facility)
    made = {
        "Alpha beds": create(queries, md, "SELECT 1 AS one", name="Alpha beds", tags=["beds", "daily"]),
        "Beta beds": create(queries, md, "SELECT 2 AS two", name="Beta beds", tags=["beds"], template=True),
        "gamma 100%": create(queries, md, "SELECT 3 AS three", name="gamma 100%", tags=["daily"]),
        "delta_x": create(queries, md, "SELECT 4 AS four", name="delta_x", template=True),
        "view": create(
            queries,
            md,
            "SELECT facility_id, count(*) AS n FROM demo.sites GROUP BY facility_id",
            name="view",
            kind=q.QUERY_KIND_MATERIALIZED_VIEW,
            view_key_columns=["facility_id"],
        ),
    }
    seen: list[str] = []
    token, pages = "", 0
    while True:
        page = queries.ListQueries(q.ListQueriesRequest(page_size=2, page_token=token), metadata=md)
        assert len(page.queries) <= 2
        seen += [x.name for x in page.queries]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    # Newest change first.
    assert seen == ["view", "delta_x", "gamma 100%", "Beta beds", "Alpha beds"]

    def names(**filters: Any) -> set[str]:
        return {x.name for x in queries.ListQueries(q.ListQueriesRequest(**filters), metadata=md).queries}

    assert names(name_contains="BEDS") == {"Alpha beds", "Beta beds"}
    assert names(name_contains="%") == {"gamma 100%"}  # LIKE wildcards are plain text
    assert names(name_contains="_") == {"delta_x"}
    assert names(kind=q.QUERY_KIND_MATERIALIZED_VIEW) == {"view"}
    assert names(kind=q.QUERY_KIND_SQL) == set(made) - {"view"}
    assert names(tags=["beds"]) == {"Alpha beds", "Beta beds"}
    assert names(tags=["beds", "daily"]) == {"Alpha beds"}
    assert names(template=True) == {"Beta beds", "delta_x"}
    assert names(template=False) == {"Alpha beds", "gamma 100%", "view"}
    assert names(template=True, tags=["beds"]) == {"Beta beds"}

    first = queries.ListQueries(q.ListQueriesRequest(page_size=1, tags=["beds"]), metadata=md)
    expect_failure(
        lambda: queries.ListQueries(
            q.ListQueriesRequest(page_size=1, tags=["daily"], page_token=first.next_page_token), metadata=md
        ),
        Code.INVALID_ARGUMENT,
        field="page_token",
    )
    # Another facility's editor sees none of them.
    assert not queries.ListQueries(q.ListQueriesRequest(), metadata=auth("outsider", "editor", f"{facility}-x")).queries
    queries.DeleteQuery(q.DeleteQueryRequest(id=made["view"].id), metadata=md)


# --- update and versions ------------------------------------------------------------------------


def test_metadata_changes_keep_the_version_and_query_changes_write_new_ones(queries: Any, editor: Metadata) -> None:
    v1 = create(queries, editor, "SELECT 1 AS answer", tags=["a"])
    renamed = queries.UpdateQuery(
        q.UpdateQueryRequest(
            query=Q(id=v1.id, etag=v1.etag, name="renamed", description="d", tags=["b"], template=True),
            update_mask=mask("name", "description", "tags", "template"),
        ),
        metadata=editor,
    )
    assert renamed.version == 1 and renamed.name == "renamed" and list(renamed.tags) == ["b"] and renamed.template
    assert renamed.etag != v1.etag
    assert renamed.sql == v1.sql

    changes: list[tuple[str, Q]] = [
        ("sql", Q(sql="SELECT :n AS answer", parameters=[P(name="n", type=T.PARAMETER_TYPE_INT, default_value=iv(2))])),
        ("parameters", Q(parameters=[P(name="n", type=T.PARAMETER_TYPE_INT, default_value=iv(3))])),
        ("options", Q(options=q.QueryOptions(row_limit=7))),
        ("sensitive_columns", Q(sensitive_columns=[q.SensitiveColumn(column="answer")])),
    ]
    current = renamed
    for version, (path, change) in enumerate(changes, start=2):
        change.id, change.etag = current.id, current.etag
        paths = ("sql", "parameters") if path == "sql" else (path,)
        current = queries.UpdateQuery(q.UpdateQueryRequest(query=change, update_mask=mask(*paths)), metadata=editor)
        assert current.version == version, path
    assert current.name == "renamed"  # untouched by the masks

    # The same values again: no new version.
    same = queries.UpdateQuery(
        q.UpdateQueryRequest(query=Q(id=current.id, options=q.QueryOptions(row_limit=7)), update_mask=mask("options")),
        metadata=editor,
    )
    assert same.version == 5

    versions: list[q.QueryVersion] = []
    token = ""
    while True:
        page = queries.ListQueryVersions(
            q.ListQueryVersionsRequest(query_id=v1.id, page_size=2, page_token=token), metadata=editor
        )
        versions += page.versions
        token = page.next_page_token
        if not token:
            break
    assert [v.version for v in versions] == [5, 4, 3, 2, 1]
    old = queries.GetQueryVersion(q.GetQueryVersionRequest(query_id=v1.id, version=1), metadata=editor)
    assert old.snapshot.sql == "SELECT 1 AS answer" and not old.snapshot.parameters and old.snapshot.version == 1
    assert old.author_id and old.HasField("create_time")
    assert versions[-1] == old
    three = queries.GetQueryVersion(q.GetQueryVersionRequest(query_id=v1.id, version=3), metadata=editor)
    assert three.snapshot.parameters[0].default_value.int_value == 3 and not three.snapshot.options.row_limit
    expect_failure(
        lambda: queries.GetQueryVersion(q.GetQueryVersionRequest(query_id=v1.id, version=9), metadata=editor),
        Code.NOT_FOUND,
    )
    # Old versions still run as they were; the latest masks `answer` for this non-PHI editor.
    assert rows(queries.RunQuery(q.RunQueryRequest(id=v1.id, version=1), metadata=editor)) == [{"answer": 1}]
    ran = queries.RunQuery(q.RunQueryRequest(id=v1.id, version=3), metadata=editor)
    assert rows(ran) == [{"answer": 3}] and ran.query_version == 3
    latest = run(queries, editor, v1.id)
    assert latest.query_version == 5 and latest.masked and rows(latest) == [{"answer": "[REDACTED]"}]


def test_a_stale_etag_is_aborted_and_changes_nothing(queries: Any, editor: Metadata) -> None:
    created = create(queries, editor, "SELECT 1 AS one")
    queries.UpdateQuery(
        q.UpdateQueryRequest(query=Q(id=created.id, name="moved on"), update_mask=mask("name")), metadata=editor
    )
    before = queries.GetQuery(q.GetQueryRequest(id=created.id), metadata=editor)
    for change, paths in ((Q(name="stale"), ("name",)), (Q(sql="SELECT 2 AS two"), ("sql",))):
        change.id, change.etag = created.id, created.etag
        expect_failure(
            partial(queries.UpdateQuery, q.UpdateQueryRequest(query=change, update_mask=mask(*paths)), metadata=editor),
            Code.ABORTED,
        )
    expect_failure(
        lambda: queries.DeleteQuery(q.DeleteQueryRequest(id=created.id, etag=created.etag), metadata=editor),
        Code.ABORTED,
    )
    assert queries.GetQuery(q.GetQueryRequest(id=created.id), metadata=editor) == before


def test_update_masks_name_only_updatable_fields(queries: Any, editor: Metadata) -> None:
    created = create(queries, editor, "SELECT 1 AS one")
    for path in ("bogus", "id", "kind", "facility_id", "version", "options.row_limit"):
        failure = expect_failure(
            partial(
                queries.UpdateQuery,
                q.UpdateQueryRequest(query=Q(id=created.id, name="x"), update_mask=mask(path)),
                metadata=editor,
            ),
            Code.INVALID_ARGUMENT,
            field="update_mask",
        )
        assert path in failure.message
    expect_failure(
        lambda: queries.UpdateQuery(
            q.UpdateQueryRequest(query=Q(id=created.id, sql="DELETE FROM demo.sites"), update_mask=mask("sql")),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
        field="query.sql",
    )
    expect_failure(
        lambda: queries.UpdateQuery(
            q.UpdateQueryRequest(query=Q(id=created.id, sql="SELECT :x AS one"), update_mask=mask("sql")),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
        field="query.sql",
    )
    assert queries.GetQuery(q.GetQueryRequest(id=created.id), metadata=editor).version == 1


def test_only_the_owner_or_an_admin_changes_a_query(queries: Any, editor: Metadata, auth: Any) -> None:
    created = create(queries, editor, "SELECT 1 AS one")
    colleague = auth(f"colleague-{uid()}", "editor", NORTH)
    assert queries.GetQuery(q.GetQueryRequest(id=created.id), metadata=colleague).id == created.id
    assert rows(run(queries, colleague, created.id)) == [{"one": 1}]
    expect_failure(
        lambda: queries.UpdateQuery(
            q.UpdateQueryRequest(query=Q(id=created.id, name="mine"), update_mask=mask("name")), metadata=colleague
        ),
        Code.PERMISSION_DENIED,
        reason="NOT_QUERY_OWNER",
    )
    expect_failure(
        lambda: queries.DeleteQuery(q.DeleteQueryRequest(id=created.id), metadata=colleague), Code.PERMISSION_DENIED
    )
    admin = auth(f"admin-{uid()}", "admin", NORTH)
    updated = queries.UpdateQuery(
        q.UpdateQueryRequest(query=Q(id=created.id, name="by admin"), update_mask=mask("name")), metadata=admin
    )
    assert updated.name == "by admin" and updated.owner_id == created.owner_id


# --- delete, widgets and templates ----------------------------------------------------------------


def board(dashboards: Any, md: Metadata, facility: str) -> d.Dashboard:
    created: d.Dashboard = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title=f"board {uid()}")), metadata=md
    )
    return created


def bound_widget(
    widgets: Any, md: Metadata, dashboard_id: str, query_id: str, *, x: int = 0, **values: c.ParameterValue
) -> w.Widget:
    created: w.Widget = widgets.CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=dashboard_id,
                title=f"widget {uid()}",
                position=w.GridPosition(x=x, y=0, width=4, height=2),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=query_id, parameter_values=values),
            )
        ),
        metadata=md,
    )
    return created


def test_delete_is_refused_while_widgets_use_the_query_unless_forced(
    queries: Any, dashboards: Any, widgets: Any, auth: Any, facility: str, dsn: str
) -> None:
    md = auth("deleter", "editor", facility)
    query = create(queries, md, "SELECT 1 AS one")
    dash = board(dashboards, md, facility)
    widget = bound_widget(widgets, md, dash.id, query.id)
    version_before = dashboards.GetDashboard(d.GetDashboardRequest(id=dash.id), metadata=md).version

    failure = expect_failure(
        lambda: queries.DeleteQuery(q.DeleteQueryRequest(id=query.id), metadata=md),
        Code.FAILED_PRECONDITION,
        reason="QUERY_IN_USE",
    )
    assert failure.metadata["widget_count"] == "1"
    assert queries.GetQuery(q.GetQueryRequest(id=query.id), metadata=md).id == query.id

    queries.DeleteQuery(q.DeleteQueryRequest(id=query.id, force=True), metadata=md)
    expect_failure(lambda: queries.GetQuery(q.GetQueryRequest(id=query.id), metadata=md), Code.NOT_FOUND)
    unbound = widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=md)
    assert not unbound.query.query_id
    after = dashboards.GetDashboard(d.GetDashboardRequest(id=dash.id), metadata=md)
    assert after.version == version_before + 1
    snapshot = dashboards.GetDashboardVersion(
        d.GetDashboardVersionRequest(dashboard_id=dash.id, version=after.version), metadata=md
    )
    assert [x.query.query_id for x in snapshot.snapshot.widgets] == [""]
    assert not direct(dsn, "SELECT 1 FROM query_versions WHERE query_id = %s", (query.id,))
    expect_failure(lambda: queries.DeleteQuery(q.DeleteQueryRequest(id=query.id), metadata=md), Code.NOT_FOUND)


def test_a_template_serves_widgets_with_their_own_values_and_its_defaults(
    queries: Any, dashboards: Any, widgets: Any, editor: Metadata, dsn: str
) -> None:
    units = ["Cardiology", "Emergency", "Maternity", "Oncology", "Surgery"]
    template = create(
        queries,
        editor,
        "SELECT unit, count(*) AS n FROM demo.admissions WHERE unit = :unit AND age >= :min_age GROUP BY unit",
        template=True,
        parameters=[
            P(name="unit", type=T.PARAMETER_TYPE_ENUM, allowed_values=units, default_value=sv("Oncology")),
            P(name="min_age", type=T.PARAMETER_TYPE_INT, default_value=iv(0), min=iv(0)),
        ],
    )
    templates = queries.ListQueries(q.ListQueriesRequest(template=True, page_size=1000), metadata=editor).queries
    assert template.id in {x.id for x in templates}

    dash = board(dashboards, editor, NORTH)
    cardio = bound_widget(widgets, editor, dash.id, template.id, unit=sv("Cardiology"))
    surgery = bound_widget(widgets, editor, dash.id, template.id, x=4, unit=sv("Surgery"), min_age=iv(60))

    def expected(unit: str, min_age: int) -> int:
        found = direct(
            dsn,
            "SELECT count(*) AS n FROM demo.admissions WHERE unit = %s AND age >= %s",
            (unit, min_age),
            facility=NORTH,
        )
        return int(found[0]["n"])

    for widget, unit, min_age in ((cardio, "Cardiology", 0), (surgery, "Surgery", 60)):
        stored = widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor).query
        assert stored.query_id == template.id
        result = run(queries, editor, template.id, **dict(stored.parameter_values))
        assert rows(result) == [{"unit": unit, "n": expected(unit, min_age)}]
    # No values: the template's defaults.
    assert rows(run(queries, editor, template.id)) == [{"unit": "Oncology", "n": expected("Oncology", 0)}]
    queries.DeleteQuery(q.DeleteQueryRequest(id=template.id, force=True), metadata=editor)


# --- typed parameters -----------------------------------------------------------------------------

ALL_TYPES_SQL = """
SELECT :s AS s, :i AS i, :f AS f, :b AS b, :d AS d, :t AS t, :r_start AS r_start, :r_end AS r_end, :e AS e,
       cardinality(CAST(:sl AS text[])) AS sl_n, :sl = ARRAY['x', 'y''z'] AS sl_ok,
       (SELECT sum(x) FROM unnest(CAST(:il AS bigint[])) AS x) AS il_sum,
       (SELECT sum(x) FROM unnest(CAST(:fl AS float8[])) AS x) AS fl_sum,
       (CAST(:dl AS date[]))[2] AS dl_2, (CAST(:tl AS timestamptz[]))[1] AS tl_1,
       (CAST(:bl AS bool[]))[1] AS bl_1, CAST(:el AS text[]) = ARRAY['b', 'a'] AS el_ok
"""
ALL_TYPES_SPECS = [
    P(name="s", type=T.PARAMETER_TYPE_STRING, required=True, min_length=1, max_length=10, pattern=r"[a-z]+\d?"),
    P(name="i", type=T.PARAMETER_TYPE_INT, required=True, min=iv(-5), max=iv(5)),
    P(name="f", type=T.PARAMETER_TYPE_FLOAT, required=True, min=fv(0.5), max=fv(2.5)),
    P(name="b", type=T.PARAMETER_TYPE_BOOL, required=True),
    P(name="d", type=T.PARAMETER_TYPE_DATE, required=True, min=dv(dt.date(2020, 1, 1)), max=dv(dt.date(2030, 1, 1))),
    P(
        name="t",
        type=T.PARAMETER_TYPE_TIMESTAMP,
        required=True,
        max=tv(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)),
    ),
    P(name="r", type=T.PARAMETER_TYPE_DATE_RANGE, required=True, min=dv(dt.date(2020, 1, 1))),
    P(name="e", type=T.PARAMETER_TYPE_ENUM, required=True, allowed_values=["a", "b"]),
    P(name="sl", type=T.PARAMETER_TYPE_STRING, list=True, max_items=3),
    P(name="il", type=T.PARAMETER_TYPE_INT, list=True, max=iv(100)),
    P(name="fl", type=T.PARAMETER_TYPE_FLOAT, list=True),
    P(name="dl", type=T.PARAMETER_TYPE_DATE, list=True),
    P(name="tl", type=T.PARAMETER_TYPE_TIMESTAMP, list=True),
    P(name="bl", type=T.PARAMETER_TYPE_BOOL, list=True),
    P(name="el", type=T.PARAMETER_TYPE_ENUM, list=True, allowed_values=["a", "b"]),
]
INSTANT = dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.UTC)
VALID: dict[str, c.ParameterValue] = {
    "s": sv("abc1"),
    "i": iv(-5),
    "f": fv(2.5),
    "b": bv(True),
    "d": dv(dt.date(2024, 2, 29)),
    "t": tv(INSTANT),
    "r": rv(dt.date(2024, 1, 1), dt.date(2024, 1, 31)),
    "e": sv("b"),
    "sl": lv(sv("x"), sv("y'z")),
    "il": lv(iv(1), iv(2), iv(100)),
    "fl": lv(fv(0.25), fv(0.5)),
    "dl": lv(dv(dt.date(2024, 1, 1)), dv(dt.date(2024, 12, 31))),
    "tl": lv(tv(INSTANT)),
    "bl": lv(bv(False), bv(True)),
    "el": lv(sv("b"), sv("a")),
}


def test_every_parameter_type_is_bound_as_its_type(queries: Any, editor: Metadata) -> None:
    query = create(queries, editor, ALL_TYPES_SQL, parameters=ALL_TYPES_SPECS)
    [row] = rows(run(queries, editor, query.id, **VALID))
    assert row == {
        "s": "abc1",
        "i": -5,
        "f": 2.5,
        "b": True,
        "d": dt.date(2024, 2, 29),
        "t": INSTANT,
        "r_start": dt.date(2024, 1, 1),
        "r_end": dt.date(2024, 1, 31),
        "e": "b",
        "sl_n": 2,
        "sl_ok": True,
        "il_sum": Decimal(103),
        "fl_sum": 0.75,
        "dl_2": dt.date(2024, 12, 31),
        "tl_1": INSTANT,
        "bl_1": False,
        "el_ok": True,
    }
    # Optional lists without values are NULL.
    values = {k: v for k, v in VALID.items() if not k.endswith("l")}
    [row] = rows(run(queries, editor, query.id, **values))
    assert row["sl_n"] is None and row["il_sum"] is None and row["dl_2"] is None


# A query that fails if it runs at all: each refused value must be reported as the parameter's
# problem, which proves that the values were checked before any SQL was sent.
BOOM_SQL = ALL_TYPES_SQL.replace("SELECT", "SELECT 1 / (SELECT count(*) - count(*) FROM demo.sites) AS boom,", 1)

BAD_VALUES: list[tuple[str, dict[str, c.ParameterValue | None], str]] = [
    ("missing required", {"s": None}, "s"),
    ("string for int", {"i": sv("1")}, "i"),
    ("int below min", {"i": iv(-6)}, "i"),
    ("int above max", {"i": iv(6)}, "i"),
    ("float above max", {"f": fv(2.50001)}, "f"),
    ("float below min", {"f": iv(0)}, "f"),
    ("string for bool", {"b": sv("true")}, "b"),
    ("int for bool", {"b": iv(1)}, "b"),
    ("too long", {"s": sv("abcdefghijk")}, "s"),
    ("too short", {"s": sv("")}, "s"),
    ("pattern", {"s": sv("abc12")}, "s"),
    ("injection against a pattern", {"s": sv("a' OR 1=1 --")}, "s"),
    ("date before min", {"d": dv(dt.date(2019, 12, 31))}, "d"),
    ("string for date", {"d": sv("2024-01-01")}, "d"),
    ("timestamp after max", {"t": tv(dt.datetime(2030, 1, 1, 0, 0, 1, tzinfo=dt.UTC))}, "t"),
    ("range reversed", {"r": rv(dt.date(2024, 2, 1), dt.date(2024, 1, 1))}, "r"),
    ("range before min", {"r": rv(dt.date(2019, 1, 1), dt.date(2024, 1, 1))}, "r"),
    ("enum not allowed", {"e": sv("c")}, "e"),
    ("enum case", {"e": sv("A")}, "e"),
    ("list given a scalar", {"sl": sv("x")}, "sl"),
    ("scalar given a list", {"s": lv(sv("x"))}, "s"),
    ("too many items", {"sl": lv(sv("a"), sv("b"), sv("c"), sv("d"))}, "sl"),
    ("list item wrong type", {"il": lv(iv(1), sv("2"))}, "il"),
    ("list item above max", {"il": lv(iv(101))}, "il"),
    ("list item not allowed", {"el": lv(sv("a"), sv("z"))}, "el"),
    ("nested list", {"il": lv(lv(iv(1)))}, "il"),
    ("unknown parameter", {"nope": iv(1)}, "nope"),
    ("facility_id is reserved", {"facility_id": sv(SOUTH)}, "facility_id"),
]


def test_bad_parameter_values_are_refused_before_anything_runs(queries: Any, editor: Metadata) -> None:
    query = create(queries, editor, BOOM_SQL, parameters=ALL_TYPES_SPECS)
    # With valid values the query does run, and fails: what running it would look like.
    ran = expect_failure(lambda: run(queries, editor, query.id, **VALID), Code.INVALID_ARGUMENT, reason="QUERY_FAILED")
    assert ran.metadata["sqlstate"] == "22012"  # division_by_zero
    for label, change, name in BAD_VALUES:
        values = {k: v for k, v in {**VALID, **change}.items() if v is not None}
        failure = expect_failure(
            partial(run, queries, editor, query.id, **values),
            Code.INVALID_ARGUMENT,
        )
        assert failure.reason != "QUERY_FAILED" and "sqlstate" not in failure.metadata, label
        assert f'parameter_values["{name}"]' in [f.split(".")[0] for f in failure.fields], (label, failure.violations)
        assert "division" not in failure.message, label


def test_parameter_declarations_are_checked_at_save_time(queries: Any, editor: Metadata) -> None:
    cases: list[tuple[str, list[P], str]] = [
        ("SELECT :e AS e", [P(name="e", type=T.PARAMETER_TYPE_ENUM)], "query.parameters[0].allowed_values"),
        (
            "SELECT :i AS i",
            [P(name="i", type=T.PARAMETER_TYPE_INT, min=iv(5), max=iv(1))],
            "query.parameters[0].min",
        ),
        (
            "SELECT :i AS i",
            [P(name="i", type=T.PARAMETER_TYPE_INT, default_value=sv("x"))],
            "query.parameters[0].default_value",
        ),
        (
            "SELECT :s AS s",
            [P(name="s", type=T.PARAMETER_TYPE_STRING, pattern="(a)\\1")],
            "query.parameters[0].pattern",
        ),
        ("SELECT :facility_id AS f", [P(name="facility_id", type=T.PARAMETER_TYPE_STRING)], "query.parameters[0].name"),
        ("SELECT 1 AS one", [P(name="unused", type=T.PARAMETER_TYPE_INT)], "query.sql"),
        ("SELECT :undeclared AS x", [], "query.sql"),
        ("SELECT :r AS r", [P(name="r", type=T.PARAMETER_TYPE_DATE_RANGE)], "query.sql"),
    ]
    for sql, parameters, field in cases:
        expect_failure(
            partial(create, queries, editor, sql, parameters=parameters),
            Code.INVALID_ARGUMENT,
            field=field,
        )


# --- limits ----------------------------------------------------------------------------------


def test_a_timeout_is_deadline_exceeded_and_the_next_run_works(queries: Any, editor: Metadata) -> None:
    slow = create(
        queries,
        editor,
        "SELECT count(*) AS n FROM generate_series(1, 100000) AS a CROSS JOIN generate_series(1, 100000) AS b",
        options=q.QueryOptions(timeout=secs(0.2)),
    )
    fast = create(queries, editor, "SELECT count(*) AS n FROM demo.sites")
    for _ in range(2):
        failure = expect_failure(lambda: run(queries, editor, slow.id), Code.DEADLINE_EXCEEDED, reason="QUERY_TIMEOUT")
        assert failure.metadata["timeout_seconds"] == "0.2"
        assert rows(run(queries, editor, fast.id)) == [{"n": 2}]


def test_the_row_cap_truncates_and_says_so(queries: Any, editor: Metadata) -> None:
    sql = "SELECT g FROM generate_series(1, 50000) AS g"
    capped = create(queries, editor, sql, options=q.QueryOptions(row_limit=10_000))
    default = create(queries, editor, sql)
    for query in (capped, default):
        result = run(queries, editor, query.id)
        assert result.frame.row_count == 10_000 and result.frame.truncated
        assert list(column(result, "g").int64_values.values) == list(range(1, 10_001))
    lowered = queries.RunQuery(q.RunQueryRequest(id=capped.id, row_limit=5), metadata=editor)
    assert lowered.frame.row_count == 5 and lowered.frame.truncated
    # A run may lower the query's cap, never raise it.
    raised = queries.RunQuery(q.RunQueryRequest(id=capped.id, row_limit=20_000), metadata=editor)
    assert raised.frame.row_count == 10_000 and raised.frame.truncated
    exact = create(queries, editor, "SELECT g FROM generate_series(1, 10000) AS g")
    result = run(queries, editor, exact.id)
    assert result.frame.row_count == 10_000 and not result.frame.truncated


# --- facility isolation ----------------------------------------------------------------------


def test_rls_and_the_bound_facility_keep_other_facilities_rows_out(
    queries: Any, auth: Any, editor: Metadata, dsn: str
) -> None:
    counts = {
        f: int(direct(dsn, "SELECT count(*) AS n FROM demo.admissions WHERE facility_id = %s", (f,))[0]["n"])
        for f in (NORTH, SOUTH)
    }
    assert counts[NORTH] > 0 and counts[SOUTH] > 0
    by_rls = create(queries, editor, "SELECT facility_id, count(*) AS n FROM demo.admissions GROUP BY facility_id")
    by_param = create(queries, editor, "SELECT count(*) AS n FROM demo.admissions WHERE facility_id = :facility_id")
    asks_for_south = create(
        queries, editor, "SELECT count(*) AS n FROM demo.admissions WHERE facility_id = 'south-clinic'"
    )
    assert rows(run(queries, editor, by_rls.id)) == [{"facility_id": NORTH, "n": counts[NORTH]}]
    assert rows(run(queries, editor, by_param.id)) == [{"n": counts[NORTH]}]
    assert rows(run(queries, editor, asks_for_south.id)) == [{"n": 0}]

    south = auth(f"south-{uid()}", "editor", SOUTH)
    for call in (
        lambda: queries.GetQuery(q.GetQueryRequest(id=by_rls.id), metadata=south),
        lambda: run(queries, south, by_rls.id),
        lambda: queries.ListQueryVersions(q.ListQueryVersionsRequest(query_id=by_rls.id), metadata=south),
        lambda: queries.UpdateQuery(
            q.UpdateQueryRequest(query=Q(id=by_rls.id, name="x"), update_mask=mask("name")), metadata=south
        ),
        lambda: queries.DeleteQuery(q.DeleteQueryRequest(id=by_rls.id), metadata=south),
        lambda: queries.RefreshMaterializedView(q.RefreshMaterializedViewRequest(id=by_rls.id), metadata=south),
    ):
        expect_failure(call, Code.NOT_FOUND, reason="QUERY_NOT_FOUND")
    assert by_rls.id not in {
        x.id for x in queries.ListQueries(q.ListQueriesRequest(page_size=1000), metadata=south).queries
    }
    expect_failure(
        lambda: run(queries, editor, by_param.id, facility_id=sv(SOUTH)),
        Code.INVALID_ARGUMENT,
        field='parameter_values["facility_id"]',
    )

    # A principal of both facilities may run a query in either; the scope follows the request.
    both = auth(f"both-{uid()}", "editor", NORTH, SOUTH)
    in_south = queries.RunQuery(q.RunQueryRequest(id=by_param.id, facility_id=SOUTH), metadata=both)
    assert rows(in_south) == [{"n": counts[SOUTH]}]
    in_south = queries.RunQuery(q.RunQueryRequest(id=by_rls.id, facility_id=SOUTH), metadata=both)
    assert rows(in_south) == [{"facility_id": SOUTH, "n": counts[SOUTH]}]
    assert rows(queries.RunQuery(q.RunQueryRequest(id=by_param.id), metadata=both)) == [{"n": counts[NORTH]}]
    # ... but nobody runs in a facility they do not belong to.
    expect_failure(
        lambda: queries.RunQuery(q.RunQueryRequest(id=by_param.id, facility_id=SOUTH), metadata=editor),
        Code.PERMISSION_DENIED,
        reason="FACILITY_NOT_ALLOWED",
    )


def test_viewers_never_run_or_write_queries(queries: Any, auth: Any, editor: Metadata) -> None:
    query = create(queries, editor, "SELECT 1 AS one")
    viewer = auth(f"viewer-{uid()}", "viewer", NORTH, permissions=("phi:read",))
    for call in (
        lambda: run(queries, viewer, query.id),
        lambda: create(queries, viewer, "SELECT 1 AS one"),
        lambda: queries.GetQuery(q.GetQueryRequest(id=query.id), metadata=viewer),
        lambda: queries.ListQueries(q.ListQueriesRequest(), metadata=viewer),
        lambda: queries.ValidateQuery(q.ValidateQueryRequest(sql="SELECT 1"), metadata=viewer),
    ):
        expect_failure(call, Code.PERMISSION_DENIED, reason="ROLE_REQUIRED")


# --- types -----------------------------------------------------------------------------------

TYPES_SQL = """
SELECT a.id, a.facility_id, a.unit, a.age, a.cost, a.admitted_at, a.discharged_at, a.details, a.patient_name,
       a.admitted_at::date AS admitted_on, a.age / 7.0::float8 AS age_weeks, a.age > 50 AS senior,
       a.cost * 3 AS tripled, 123456789012345678901234567890.123456789012345678901234567890 AS big,
       0.1::float8 AS tenth, (-9223372036854775808)::int8 AS min_int8, 1e-20::float8 AS tiny,
       'Zoë Brontë · 王小明 · محمد — "q" ''s'' \\ end' AS accents,
       md5(a.id::text)::uuid AS u, NULL::int AS null_int, NULL::text AS null_text, NULL::numeric AS null_numeric,
       CASE WHEN a.id % 2 = 0 THEN NULL ELSE a.details END AS sometimes_json,
       jsonb_build_object('n', 1.10, 'big', 12345678901234567890, 'exact', 0.1000000000000000000001,
                          'nested', jsonb_build_array(1, 'two', NULL))
           AS built
FROM demo.admissions AS a
ORDER BY a.id
LIMIT 60
"""


def test_every_type_of_the_demo_data_round_trips_exactly(queries: Any, editor: Metadata, dsn: str) -> None:
    query = create(queries, editor, TYPES_SQL)
    result = run(queries, editor, query.id)
    expected = direct(dsn, TYPES_SQL, facility=NORTH)
    got = rows(result)
    assert len(got) == len(expected) == 60
    assert [col.name for col in result.frame.columns] == list(expected[0])
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == theirs
        for name, value in theirs.items():
            if isinstance(value, Decimal):
                assert str(mine[name]) == str(value), name  # the scale too: 512.30 stays 512.30
            if isinstance(value, float):
                assert repr(mine[name]) == repr(value), name
    assert any(r["discharged_at"] is None for r in got) and any(r["discharged_at"] is not None for r in got)
    types = {col.name: col.type for col in result.frame.columns}
    assert types == {
        "id": c.COLUMN_TYPE_INT64,
        "facility_id": c.COLUMN_TYPE_STRING,
        "unit": c.COLUMN_TYPE_STRING,
        "age": c.COLUMN_TYPE_INT64,
        "cost": c.COLUMN_TYPE_DECIMAL,
        "admitted_at": c.COLUMN_TYPE_TIMESTAMP_TZ,
        "discharged_at": c.COLUMN_TYPE_TIMESTAMP_TZ,
        "details": c.COLUMN_TYPE_JSON,
        "patient_name": c.COLUMN_TYPE_STRING,
        "admitted_on": c.COLUMN_TYPE_DATE,
        "age_weeks": c.COLUMN_TYPE_FLOAT64,
        "senior": c.COLUMN_TYPE_BOOL,
        "tripled": c.COLUMN_TYPE_DECIMAL,
        "big": c.COLUMN_TYPE_DECIMAL,
        "tenth": c.COLUMN_TYPE_FLOAT64,
        "min_int8": c.COLUMN_TYPE_INT64,
        "tiny": c.COLUMN_TYPE_FLOAT64,
        "accents": c.COLUMN_TYPE_STRING,
        "u": c.COLUMN_TYPE_UUID,
        "null_int": c.COLUMN_TYPE_INT64,
        "null_text": c.COLUMN_TYPE_STRING,
        "null_numeric": c.COLUMN_TYPE_DECIMAL,
        "sometimes_json": c.COLUMN_TYPE_JSON,
        "built": c.COLUMN_TYPE_JSON,
    }
    assert column(result, "cost").db_type == "numeric" and column(result, "admitted_at").db_type == "timestamptz"
    assert list(column(result, "null_int").nulls) == [True] * 60
    assert str(got[0]["big"]) == "123456789012345678901234567890.123456789012345678901234567890"
    # Canonical JSON: sorted keys, no spaces; a number a double carries exactly is written the
    # shortest way (1.10 -> 1.1), one it cannot keeps PostgreSQL's digits.
    assert column(result, "built").string_values.values[0] == (
        '{"big":12345678901234567890,"exact":0.1000000000000000000001,"n":1.1,"nested":[1,"two",null]}'
    )


# --- PHI ---------------------------------------------------------------------------------------

PHI_SQL = (
    "SELECT a.id, a.unit, a.patient_name, a.mrn FROM demo.admissions AS a "
    "CROSS JOIN generate_series(1, 2) AS twice ORDER BY a.id, twice LIMIT 40"
)


def test_phi_columns_are_masked_without_the_phi_permission(queries: Any, editor: Metadata, auth: Any, dsn: str) -> None:
    query = create(
        queries,
        editor,
        PHI_SQL,
        sensitive_columns=[
            q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_PARTIAL),
            q.SensitiveColumn(column="mrn", strategy=q.MASKING_STRATEGY_HASH),
        ],
    )
    real = direct(dsn, PHI_SQL, facility=NORTH)
    masked = run(queries, editor, query.id)
    assert masked.masked
    assert {col.name: col.masked for col in masked.frame.columns} == {
        "id": False,
        "unit": False,
        "patient_name": True,
        "mrn": True,
    }
    got = rows(masked)
    assert [r["id"] for r in got] == [r["id"] for r in real]
    assert [r["unit"] for r in got] == [r["unit"] for r in real]
    assert [r["patient_name"] for r in got] == [partial_text(str(r["patient_name"])) for r in real]
    hashes: dict[str, str] = {}
    for mine, theirs in zip(got, real, strict=True):
        digest = str(mine["mrn"])
        assert re.fullmatch(r"[0-9a-f]{16}", digest) and str(theirs["mrn"]) not in digest
        assert hashes.setdefault(str(theirs["mrn"]), digest) == digest  # equal MRNs, equal hashes
    assert len(set(hashes.values())) == len(hashes) == 20  # different MRNs, different hashes
    assert not any(str(r["patient_name"]) in str(masked) for r in real if len(str(r["patient_name"])) > 4)

    doctor = auth(f"doctor-{uid()}", "editor", NORTH, permissions=("phi:read",))
    clear = run(queries, doctor, query.id)
    assert not clear.masked and not any(col.masked for col in clear.frame.columns)
    assert rows(clear) == real


def test_a_failing_query_does_not_echo_values_to_a_caller_without_phi_access(
    queries: Any, editor: Metadata, auth: Any, dsn: str
) -> None:
    query = create(queries, editor, "SELECT patient_name::int AS n FROM demo.admissions ORDER BY id LIMIT 1")
    name = str(
        direct(dsn, "SELECT patient_name FROM demo.admissions ORDER BY id LIMIT 1", facility=NORTH)[0]["patient_name"]
    )
    with pytest.raises(grpc.RpcError) as caught:
        run(queries, editor, query.id)
    failure = failure_of(caught.value)
    assert failure.code == Code.INVALID_ARGUMENT and failure.reason == "QUERY_FAILED"
    assert failure.metadata["sqlstate"] == "22P02"
    assert name not in str(caught.value.details()) and name not in repr(failure)
    call: Any = caught.value
    trailer = b"".join(v if isinstance(v, bytes) else str(v).encode() for _, v in call.trailing_metadata() or ())
    assert name.encode() not in trailer  # the status details (ErrorInfo, BadRequest) included

    doctor = auth(f"doctor-{uid()}", "editor", NORTH, permissions=("phi:read",))
    failure = expect_failure(lambda: run(queries, doctor, query.id), Code.INVALID_ARGUMENT, reason="QUERY_FAILED")
    assert name in failure.message


# --- materialized views ------------------------------------------------------------------------

VIEW_SQL = "SELECT facility_id, unit, count(*) AS admissions FROM demo.admissions GROUP BY facility_id, unit"
# The same, with what a naive splice into CREATE MATERIALIZED VIEW would get wrong: a ':name'
# inside a literal, 100% in a literal, a trailing comment and a trailing semicolon.
TRICKY_VIEW_SQL = (
    "SELECT facility_id, unit, count(*) AS admissions FROM demo.admissions\n"
    "WHERE unit <> 'no :such unit' AND unit NOT LIKE '100%'\n"
    "GROUP BY facility_id, unit; -- per unit"
)


def unit_counts(dsn: str, facility: str) -> dict[str, int]:
    found = direct(
        dsn, "SELECT unit, count(*) AS n FROM demo.admissions WHERE facility_id = %s GROUP BY unit", (facility,)
    )
    return {str(r["unit"]): int(r["n"]) for r in found}


def view_counts(response: q.RunQueryResponse) -> dict[str, int]:
    found = rows(response)
    assert {r["facility_id"] for r in found} <= {NORTH, SOUTH}
    return {str(r["unit"]): int(str(r["admissions"])) for r in found}


def test_a_materialized_view_is_built_read_per_facility_refreshed_and_dropped(
    queries: Any, editor: Metadata, auth: Any, dsn: str
) -> None:
    view = create(
        queries, editor, TRICKY_VIEW_SQL, kind=q.QUERY_KIND_MATERIALIZED_VIEW, view_key_columns=["facility_id", "unit"]
    )
    assert view.kind == q.QUERY_KIND_MATERIALIZED_VIEW and view.view_name and view.HasField("refresh_time")
    assert list(view.view_key_columns) == ["facility_id", "unit"]
    [info] = direct(
        dsn,
        "SELECT m.matviewowner, i.indexdef FROM pg_matviews m JOIN pg_indexes i "
        "ON i.schemaname = m.schemaname AND i.tablename = m.matviewname "
        "WHERE m.schemaname = 'tessera_mv' AND m.matviewname = %s",
        (view.view_name,),
    )
    assert info["matviewowner"] == "tessera_view_owner" and "UNIQUE" in info["indexdef"]
    # The role user SQL runs as cannot reach the view at all (views have no Row-Level Security).
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        direct(dsn, f'SELECT * FROM tessera_mv."{view.view_name}"', facility=NORTH)

    result = run(queries, editor, view.id)
    assert {r["facility_id"] for r in rows(result)} == {NORTH}
    assert view_counts(result) == unit_counts(dsn, NORTH)
    # The view holds its query's facility's rows only: run in another facility, it has none.
    both = auth(f"both-{uid()}", "editor", NORTH, SOUTH)
    assert view_counts(queries.RunQuery(q.RunQueryRequest(id=view.id, facility_id=SOUTH), metadata=both)) == {}
    assert view_counts(queries.RunQuery(q.RunQueryRequest(id=view.id), metadata=both)) == unit_counts(dsn, NORTH)

    unit = f"Unit {uid()}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO demo.admissions (facility_id, unit, admitted_at, patient_name, mrn, age, cost) "
                "SELECT %s, %s, now(), 'New Patient', 'MRN-NEW-' || g, 40, 100 FROM generate_series(1, 3) AS g",
                (NORTH, unit),
            )
        assert unit not in view_counts(run(queries, editor, view.id))  # not refreshed yet
        refreshed = queries.RefreshMaterializedView(q.RefreshMaterializedViewRequest(id=view.id), metadata=editor)
        assert refreshed.refresh_time.ToDatetime() > view.refresh_time.ToDatetime()
        assert refreshed.version == view.version
        after = view_counts(run(queries, editor, view.id))
        assert after[unit] == 3 and after == unit_counts(dsn, NORTH)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM demo.admissions WHERE unit = %s", (unit,))

    # Changing the SQL rebuilds the view (a new version); deleting the query drops it.
    updated = queries.UpdateQuery(
        q.UpdateQueryRequest(
            query=Q(id=view.id, sql=VIEW_SQL.replace("count(*)", "sum(age)")), update_mask=mask("sql")
        ),
        metadata=editor,
    )
    assert updated.version == 2 and updated.view_name == view.view_name
    sums = {str(r["unit"]): int(str(r["admissions"])) for r in rows(run(queries, editor, view.id))}
    expected = direct(
        dsn, "SELECT unit, sum(age) AS s FROM demo.admissions WHERE facility_id = %s GROUP BY unit", (NORTH,)
    )
    assert sums == {str(r["unit"]): int(r["s"]) for r in expected}
    queries.DeleteQuery(q.DeleteQueryRequest(id=view.id), metadata=editor)
    assert not direct(dsn, "SELECT 1 FROM pg_matviews WHERE matviewname = %s", (view.view_name,))


def managed_views(dsn: str) -> list[str]:
    return [
        str(r["matviewname"])
        for r in direct(dsn, "SELECT matviewname FROM pg_matviews WHERE schemaname = 'tessera_mv'")
    ]


def test_materialized_view_mistakes_are_refused(queries: Any, editor: Metadata, dsn: str) -> None:
    before = managed_views(dsn)
    kind = q.QUERY_KIND_MATERIALIZED_VIEW
    expect_failure(
        lambda: create(
            queries,
            editor,
            "SELECT unit, count(*) AS n FROM demo.admissions GROUP BY unit",
            kind=kind,
            view_key_columns=["unit"],
        ),
        Code.INVALID_ARGUMENT,
        field="query.sql",
        reason="VIEW_NEEDS_FACILITY",
    )
    expect_failure(
        lambda: create(queries, editor, VIEW_SQL, kind=kind, view_key_columns=["facility_id", "ward"]),
        Code.INVALID_ARGUMENT,
        field="query.view_key_columns",
    )
    expect_failure(
        lambda: create(queries, editor, VIEW_SQL, kind=kind),
        Code.INVALID_ARGUMENT,
        field="query.view_key_columns",
    )
    expect_failure(
        lambda: create(queries, editor, VIEW_SQL, kind=kind, view_key_columns=["facility_id"]),
        Code.INVALID_ARGUMENT,
        field="query.view_key_columns",
        reason="VIEW_KEY_NOT_UNIQUE",
    )
    expect_failure(
        lambda: create(
            queries, editor, VIEW_SQL.replace("unit,", "ward,", 1), kind=kind, view_key_columns=["facility_id"]
        ),
        Code.INVALID_ARGUMENT,
        field="query.sql",
        reason="VIEW_BUILD_FAILED",
    )
    expect_failure(
        lambda: create(
            queries,
            editor,
            VIEW_SQL.replace("GROUP BY", "WHERE age > :age GROUP BY"),
            kind=kind,
            view_key_columns=["facility_id", "unit"],
            parameters=[P(name="age", type=T.PARAMETER_TYPE_INT)],
        ),
        Code.INVALID_ARGUMENT,
        field="query.parameters",
    )
    expect_failure(
        lambda: create(
            queries,
            editor,
            VIEW_SQL.replace("GROUP BY", "WHERE facility_id = :facility_id GROUP BY"),
            kind=kind,
            view_key_columns=["facility_id", "unit"],
        ),
        Code.INVALID_ARGUMENT,
        field="query.parameters",
    )
    assert managed_views(dsn) == before
    plain = create(queries, editor, "SELECT 1 AS one")
    expect_failure(
        lambda: queries.RefreshMaterializedView(q.RefreshMaterializedViewRequest(id=plain.id), metadata=editor),
        Code.FAILED_PRECONDITION,
        reason="NOT_A_VIEW",
    )


def test_a_failed_rebuild_keeps_the_view_and_a_refresh_the_data_refuses_is_failed_precondition(
    queries: Any, editor: Metadata, dsn: str
) -> None:
    unit = f"Unit {uid()}"
    view = create(
        queries,
        editor,
        f"SELECT facility_id, unit, age FROM demo.admissions WHERE unit = '{unit}'",
        kind=q.QUERY_KIND_MATERIALIZED_VIEW,
        view_key_columns=["facility_id", "unit"],
    )
    expect_failure(
        lambda: queries.UpdateQuery(
            q.UpdateQueryRequest(query=Q(id=view.id, sql="SELECT unit FROM demo.admissions"), update_mask=mask("sql")),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
        reason="VIEW_NEEDS_FACILITY",
    )
    assert queries.GetQuery(q.GetQueryRequest(id=view.id), metadata=editor).version == 1
    assert rows(run(queries, editor, view.id)) == []  # the old view still answers
    insert = (
        "INSERT INTO demo.admissions (facility_id, unit, admitted_at, patient_name, mrn, age, cost) "
        "VALUES (%s, %s, now(), 'Key Clash', 'MRN-CLASH', %s, 1)"
    )
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(insert, (NORTH, unit, 30))
            conn.execute(insert, (NORTH, unit, 31))  # two rows, one key: REFRESH ... CONCURRENTLY refuses
        failure = expect_failure(
            lambda: queries.RefreshMaterializedView(q.RefreshMaterializedViewRequest(id=view.id), metadata=editor),
            Code.FAILED_PRECONDITION,
            reason="VIEW_REFRESH_FAILED",
        )
        assert "MRN-CLASH" not in failure.message and "Key Clash" not in failure.message
        assert rows(run(queries, editor, view.id)) == []
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM demo.admissions WHERE unit = %s", (unit,))
    queries.DeleteQuery(q.DeleteQueryRequest(id=view.id), metadata=editor)


def test_a_view_cannot_carry_another_facilitys_rows_or_echo_them_in_errors(
    queries: Any, editor: Metadata, auth: Any, dsn: str
) -> None:
    # The author labels SOUTH's rows as NORTH's: the view is built in NORTH's scope, so RLS lets
    # none of SOUTH's rows in.
    relabelled = create(
        queries,
        editor,
        f"SELECT '{NORTH}' AS facility_id, count(*) AS n, max(patient_name) AS someone "
        f"FROM demo.admissions WHERE facility_id = '{SOUTH}'",
        kind=q.QUERY_KIND_MATERIALIZED_VIEW,
        view_key_columns=["facility_id"],
    )
    assert rows(run(queries, editor, relabelled.id)) == [{"facility_id": NORTH, "n": 0, "someone": None}]
    queries.DeleteQuery(q.DeleteQueryRequest(id=relabelled.id), metadata=editor)
    # Another facility's view (or its statistics) cannot be named by a query of either kind.
    south = auth(f"south-{uid()}", "editor", SOUTH)
    theirs = create(
        queries,
        south,
        "SELECT facility_id, mrn, patient_name FROM demo.admissions",
        kind=q.QUERY_KIND_MATERIALIZED_VIEW,
        view_key_columns=["facility_id", "mrn"],
    )
    for sql in (
        f'SELECT * FROM tessera_mv."{theirs.view_name}"',
        f'SELECT * FROM "tessera_mv"."{theirs.view_name}"',
        f'SELECT * FROM TESSERA_MV."{theirs.view_name}"',
        "SELECT attname, most_common_vals::text AS v FROM pg_catalog.pg_stats",
    ):
        failure = expect_failure(partial(create, queries, editor, sql), Code.INVALID_ARGUMENT, field="query.sql")
        assert re.search(
            r"may not be read by a query.*\(line 1, column \d+\)", failure.message + str(failure.violations)
        )
    expect_failure(
        lambda: create(
            queries,
            editor,
            f'SELECT facility_id, count(*) AS n FROM tessera_mv."{theirs.view_name}" GROUP BY facility_id',
            kind=q.QUERY_KIND_MATERIALIZED_VIEW,
            view_key_columns=["facility_id"],
        ),
        Code.INVALID_ARGUMENT,
        field="query.sql",
    )
    queries.DeleteQuery(q.DeleteQueryRequest(id=theirs.id), metadata=south)

    # A build error quotes no data.
    names = {str(r["name"]) for r in direct(dsn, "SELECT DISTINCT patient_name AS name FROM demo.admissions")}
    failure = expect_failure(
        lambda: create(
            queries,
            editor,
            "SELECT facility_id, patient_name::int AS n FROM demo.admissions",
            kind=q.QUERY_KIND_MATERIALIZED_VIEW,
            view_key_columns=["facility_id", "n"],
        ),
        Code.INVALID_ARGUMENT,
        field="query.sql",
        reason="VIEW_BUILD_FAILED",
    )
    assert failure.metadata["sqlstate"] == "22P02"
    assert not any(name in failure.message or name in str(failure.violations) for name in names)


# --- ValidateQuery ---------------------------------------------------------------------------------


def test_validate_reports_problems_with_positions_and_the_placeholders(queries: Any, editor: Metadata) -> None:
    ok = queries.ValidateQuery(
        q.ValidateQueryRequest(
            sql="SELECT unit FROM demo.admissions\nWHERE age > :age AND admitted_at::date <= :day::date",
            parameters=[P(name="age", type=T.PARAMETER_TYPE_INT), P(name="day", type=T.PARAMETER_TYPE_DATE)],
        ),
        metadata=editor,
    )
    assert ok.valid and not ok.problems and list(ok.placeholders) == ["age", "day"]

    bad = queries.ValidateQuery(
        q.ValidateQueryRequest(
            sql="SELECT unit\nFROM demo.admissions\nWHERE age > :age AND pg_sleep(1) IS NULL AND unit = :other"
        ),
        metadata=editor,
    )
    assert not bad.valid
    by_message = {p.message: (p.line, p.column) for p in bad.problems}
    assert any("pg_sleep" in m and pos == (3, 22) for m, pos in by_message.items()), by_message
    assert any(":age" in m and pos == (3, 13) for m, pos in by_message.items()), by_message
    assert list(bad.placeholders) == ["age", "other"]

    unused = queries.ValidateQuery(
        q.ValidateQueryRequest(sql="SELECT 1", parameters=[P(name="e", type=T.PARAMETER_TYPE_ENUM)]),
        metadata=editor,
    )
    assert not unused.valid
    assert any("allowed_values" in p.message for p in unused.problems)
    assert any("not used" in p.message for p in unused.problems)

    syntax = queries.ValidateQuery(
        q.ValidateQueryRequest(sql="SELECT unit\nFROM demo.admissions WHERE"), metadata=editor
    )
    assert not syntax.valid and syntax.problems[0].line == 2
