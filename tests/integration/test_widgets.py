"""WidgetService over a real channel: CRUD for all seven widget types, the 12-column grid,
update masks, etags, request ids, the dashboard versions every change writes, restore,
roles, shares, public published dashboards, facility isolation, pagination, and the
cross-references a widget makes (queries, dashboard filters, drill-through targets)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import widget_pb2 as w
from tests.harness.rpc import RpcFailure, expect_failure, failure_of

Code = grpc.StatusCode

CONFIGS: dict[str, Any] = {
    "kpi": w.KpiConfig(
        value_column="beds",
        comparison_column="beds_last_week",
        format=w.NumberFormat(decimals=1, suffix=" beds", thousands_separator=True),
        thresholds=[w.Threshold(value=80, color="#ff0000"), w.Threshold(value=95.5, color="#990000")],
    ),
    "line": w.LineChartConfig(
        x_column="day",
        y_columns=["admissions", "discharges"],
        series_column="unit",
        x_title="Day",
        y_title="Patients",
        show_points=True,
    ),
    "area": w.AreaChartConfig(x_column="day", y_columns=["patients"], series_column="unit", stacked=True),
    "bar": w.BarChartConfig(
        category_column="unit",
        value_columns=["discharges", "transfers"],
        orientation=w.BAR_ORIENTATION_HORIZONTAL,
        stacked=True,
    ),
    "table": w.TableConfig(
        columns=[
            w.TableColumn(column="admitted_at", label="Admitted"),
            w.TableColumn(column="cost", format=w.NumberFormat(decimals=2, prefix="$")),
        ],
        page_size=25,
        sort_column="admitted_at",
        sort_descending=True,
    ),
    "heatmap": w.HeatmapConfig(x_column="hour", y_column="weekday", value_column="occupancy", color_scheme="viridis"),
    "map": w.MapConfig(latitude_column="lat", longitude_column="lon", value_column="beds", label_column="site"),
}
TYPES = {
    "kpi": w.WIDGET_TYPE_KPI,
    "line": w.WIDGET_TYPE_LINE,
    "area": w.WIDGET_TYPE_AREA,
    "bar": w.WIDGET_TYPE_BAR,
    "table": w.WIDGET_TYPE_TABLE,
    "heatmap": w.WIDGET_TYPE_HEATMAP,
    "map": w.WIDGET_TYPE_MAP,
}
VIEW, EDIT, MANAGE = 1, 2, 3


# --- helpers --------------------------------------------------------------------------------


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def pos(x: int, y: int, width: int = 4, height: int = 2) -> w.GridPosition:
    return w.GridPosition(x=x, y=y, width=width, height=height)


def widget_spec(
    dashboard_id: str,
    kind: str = "kpi",
    *,
    x: int = 0,
    y: int = 0,
    width: int = 4,
    height: int = 2,
    title: str = "",
    **fields: Any,
) -> w.Widget:
    return w.Widget(
        dashboard_id=dashboard_id,
        title=title or f"{kind} widget",
        position=pos(x, y, width, height),
        **{kind: CONFIGS[kind]},
        **fields,
    )


def make_board(dashboards, md, facility: str, title: str = "Board", **fields: Any) -> d.Dashboard:
    fields.setdefault("filters", [d.DashboardFilter(name="unit"), d.DashboardFilter(name="ward")])
    return dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title=title, **fields)), metadata=md
    )


def all_widgets(widgets, md, dashboard_id: str) -> list[w.Widget]:
    return list(
        widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=dashboard_id, page_size=1000), metadata=md).widgets
    )


def version_of(dashboards, md, dashboard_id: str) -> int:
    return int(dashboards.GetDashboard(d.GetDashboardRequest(id=dashboard_id), metadata=md).version)


def snapshot(dashboards, md, dashboard_id: str, version: int) -> d.DashboardVersion:
    return dashboards.GetDashboardVersion(
        d.GetDashboardVersionRequest(dashboard_id=dashboard_id, version=version), metadata=md
    )


def without_change_stamps(widget: w.Widget, **changes: Any) -> w.Widget:
    """A copy without etag and update_time (which every write changes), with `changes` applied."""
    copy = w.Widget()
    copy.CopyFrom(widget)
    copy.ClearField("etag")
    copy.ClearField("update_time")
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy


def refused(call: Callable[[], Any], code: grpc.StatusCode) -> tuple[RpcFailure, dict[str, str]]:
    """Like expect_failure, and also returns every BadRequest violation as {field: reason}."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    failure = failure_of(caught.value)
    assert failure.code == code, f"expected {code}, got {failure.code}: {failure.message}"
    assert failure.reason and failure.domain == "tessera.dashboard.v1"
    reasons: dict[str, str] = {}
    status = rpc_status.from_call(caught.value)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            reasons = {v.field: v.reason for v in bad.field_violations}
    return failure, reasons


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def editor(auth, facility):
    return auth("editor-1", "editor", facility)


@pytest.fixture
def board(dashboards, editor, facility) -> d.Dashboard:
    return make_board(dashboards, editor, facility)


@pytest.fixture
def add(widgets, editor) -> Callable[..., w.Widget]:
    """add(dashboard_id, kind="kpi", *, x, y, width, height, md=editor, request_id="", **fields)"""

    def create(dashboard_id: str, kind: str = "kpi", *, md: Any = None, request_id: str = "", **kw: Any) -> w.Widget:
        return widgets.CreateWidget(
            w.CreateWidgetRequest(widget=widget_spec(dashboard_id, kind, **kw), request_id=request_id),
            metadata=md or editor,
        )

    return create


@pytest.fixture(scope="session")
def sql(settings) -> Callable[..., list[tuple[Any, ...]]]:
    """sql(query, *params): runs one statement on the test database, returns its rows."""
    url = settings.database_url.replace("+psycopg", "")

    def run(query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    return run


@pytest.fixture
def share(sql) -> Callable[..., None]:
    def grant(board: d.Dashboard, subject: str, level: int) -> None:
        sql(
            "INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)"
            " VALUES (%s, %s, 'user', %s, %s, %s)",
            uuid.UUID(board.id),
            board.facility_id,
            subject,
            level,
            board.owner_id,
        )

    return grant


@pytest.fixture
def make_query(sql) -> Callable[..., str]:
    def create(facility: str, name: str = "census", versions: int = 1) -> str:
        ((query_id,),) = sql(
            "INSERT INTO widget_queries (facility_id, owner_id, name, kind, version) VALUES (%s, %s, %s, 1, %s)"
            " RETURNING id",
            facility,
            "editor-1",
            name,
            versions,
        )
        for version in range(1, versions + 1):
            sql(
                "INSERT INTO query_versions (query_id, version, sql, author_id) VALUES (%s, %s, %s, %s)",
                query_id,
                version,
                "SELECT 1 AS beds",
                "editor-1",
            )
        return str(query_id)

    return create


# --- the seven types ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_each_type_is_created_read_back_equal_and_listed_with_its_type(widgets, editor, board, add, kind):
    created = add(
        board.id,
        kind,
        title=f"The {kind}",
        description="what it shows",
        refresh_interval=duration_pb2.Duration(seconds=600),
    )
    assert uuid.UUID(created.id)
    assert created.dashboard_id == board.id
    assert created.type == TYPES[kind]
    assert created.WhichOneof("config") == kind
    assert getattr(created, kind) == CONFIGS[kind]
    assert created.title == f"The {kind}" and created.description == "what it shows"
    assert created.position == pos(0, 0)
    assert created.refresh_interval.seconds == 600
    assert created.etag and created.create_time.seconds > 0 and created.update_time.seconds > 0
    got = widgets.GetWidget(w.GetWidgetRequest(id=created.id), metadata=editor)
    assert got == created
    listed = all_widgets(widgets, editor, board.id)
    assert listed == [created]
    assert listed[0].type == TYPES[kind]


def test_all_seven_types_on_one_dashboard_are_listed_with_the_right_types(widgets, dashboards, editor, board, add):
    made = {kind: add(board.id, kind, x=0, y=2 * i, width=12) for i, kind in enumerate(CONFIGS)}
    listed = all_widgets(widgets, editor, board.id)
    assert [x.type for x in listed] == [TYPES[k] for k in CONFIGS]
    assert {x.id: x for x in listed} == {x.id: x for x in made.values()}
    assert version_of(dashboards, editor, board.id) == 1 + len(CONFIGS)


def test_refresh_interval_defaults_and_fractions_round_up(widgets, editor, board, add):
    default = add(board.id, x=0)
    assert default.refresh_interval == duration_pb2.Duration(seconds=300)
    fraction = add(board.id, x=4, refresh_interval=duration_pb2.Duration(seconds=10, nanos=1))
    assert fraction.refresh_interval == duration_pb2.Duration(seconds=11)
    top = add(board.id, x=8, refresh_interval=duration_pb2.Duration(seconds=86399, nanos=500_000_000))
    assert top.refresh_interval == duration_pb2.Duration(seconds=86400)
    assert widgets.GetWidget(w.GetWidgetRequest(id=fraction.id), metadata=editor).refresh_interval.seconds == 11


# --- required fields and the grid -----------------------------------------------------------


def test_create_names_every_missing_required_field_and_writes_nothing(widgets, dashboards, editor, board):
    _, reasons = refused(
        lambda: widgets.CreateWidget(w.CreateWidgetRequest(widget=w.Widget(dashboard_id=board.id)), metadata=editor),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"widget.title": "REQUIRED", "widget.position": "REQUIRED", "widget.config": "REQUIRED"}
    expect_failure(
        lambda: widgets.CreateWidget(w.CreateWidgetRequest(widget=widget_spec(board.id, title="   ")), metadata=editor),
        Code.INVALID_ARGUMENT,
        field="widget.title",
    )
    assert all_widgets(widgets, editor, board.id) == []
    assert version_of(dashboards, editor, board.id) == 1


BAD_POSITIONS = [
    ("x past the last column", pos(12, 0, 1, 1)),
    ("wider than the grid from x", pos(9, 0, 4, 1)),
    ("wider than 12", pos(0, 0, 13, 1)),
    ("zero width", pos(0, 0, 0, 1)),
    ("zero height", pos(0, 0, 1, 0)),
    ("taller than 24", pos(0, 0, 1, 25)),
    ("negative x", pos(-1, 0, 1, 1)),
    ("row past 1000", pos(0, 1001, 1, 1)),
]


@pytest.mark.parametrize(("name", "position"), BAD_POSITIONS, ids=[b[0] for b in BAD_POSITIONS])
def test_positions_outside_the_grid_are_refused(widgets, dashboards, editor, board, add, name, position):
    existing = add(board.id, x=0, y=5)
    failure, _ = refused(
        lambda: widgets.CreateWidget(
            w.CreateWidgetRequest(
                widget=w.Widget(dashboard_id=board.id, title="t", position=position, kpi=w.KpiConfig(value_column="v"))
            ),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
    )
    assert failure.fields and all(f.startswith("widget.position") for f in failure.fields), failure.violations
    # Moving an existing widget there is refused the same way.
    failure, _ = refused(
        lambda: widgets.UpdateWidget(
            w.UpdateWidgetRequest(widget=w.Widget(id=existing.id, position=position), update_mask=mask("position")),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
    )
    assert all(f.startswith("widget.position") for f in failure.fields)
    assert all_widgets(widgets, editor, board.id) == [existing]
    assert version_of(dashboards, editor, board.id) == 2


def test_the_largest_and_the_edge_positions_are_accepted(add, board):
    assert add(board.id, x=0, y=0, width=12, height=24).position == pos(0, 0, 12, 24)
    assert add(board.id, x=11, y=1000, width=1, height=1).position == pos(11, 1000, 1, 1)


def test_overlap_is_refused_and_nothing_is_written(widgets, dashboards, editor, board, add):
    first = add(board.id, x=0, y=0, width=4, height=2)
    for x, y, width, height in [(3, 1, 4, 2), (0, 0, 4, 2), (1, 0, 1, 1), (0, 0, 12, 24)]:
        failure, reasons = refused(
            lambda x=x, y=y, wd=width, h=height: add(board.id, x=x, y=y, width=wd, height=h), Code.INVALID_ARGUMENT
        )
        assert failure.reason == "WIDGET_OVERLAP"
        assert reasons == {"widget.position": "WIDGET_OVERLAP"}
        assert failure.metadata["overlapping_widget_id"] == first.id
    assert all_widgets(widgets, editor, board.id) == [first]
    assert version_of(dashboards, editor, board.id) == 2
    versions = dashboards.ListDashboardVersions(d.ListDashboardVersionsRequest(dashboard_id=board.id), metadata=editor)
    assert [v.version for v in versions.versions] == [2, 1]


def test_widgets_touching_edges_and_corners_are_allowed(widgets, editor, board, add):
    middle = add(board.id, x=4, y=2, width=4, height=2)
    right = add(board.id, x=8, y=2, width=4, height=2)
    left = add(board.id, x=0, y=2, width=4, height=2)
    above = add(board.id, x=4, y=0, width=4, height=2)
    below = add(board.id, x=4, y=4, width=4, height=2)
    corner = add(board.id, x=8, y=4, width=1, height=1)
    assert {x.id for x in all_widgets(widgets, editor, board.id)} == {
        w_.id for w_ in (middle, right, left, above, below, corner)
    }


def test_moving_a_widget_onto_another_is_refused(widgets, dashboards, editor, board, add):
    a = add(board.id, x=0, y=0, width=6, height=2)
    b = add(board.id, x=6, y=0, width=6, height=2)
    version = version_of(dashboards, editor, board.id)
    failure, reasons = refused(
        lambda: widgets.UpdateWidget(
            w.UpdateWidgetRequest(
                widget=w.Widget(id=b.id, position=pos(5, 0, 6, 2), etag=b.etag), update_mask=mask("position")
            ),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
    )
    assert failure.reason == "WIDGET_OVERLAP" and reasons == {"widget.position": "WIDGET_OVERLAP"}
    assert failure.metadata["overlapping_widget_id"] == a.id
    assert widgets.GetWidget(w.GetWidgetRequest(id=b.id), metadata=editor) == b
    assert version_of(dashboards, editor, board.id) == version
    # Moving within its own footprint, and growing into free space, are fine.
    moved = widgets.UpdateWidget(
        w.UpdateWidgetRequest(
            widget=w.Widget(id=b.id, position=pos(6, 1, 6, 3), etag=b.etag), update_mask=mask("position")
        ),
        metadata=editor,
    )
    assert moved.position == pos(6, 1, 6, 3)
    assert version_of(dashboards, editor, board.id) == version + 1


def test_concurrent_creates_on_the_same_cells_let_exactly_one_in(widgets, dashboards, editor, board):
    def attempt(i: int) -> str:
        try:
            return widgets.CreateWidget(
                w.CreateWidgetRequest(widget=widget_spec(board.id, x=i % 2, y=0, width=6, title=f"racer {i}")),
                metadata=editor,
            ).id
        except grpc.RpcError as error:
            assert failure_of(error).reason == "WIDGET_OVERLAP"
            return ""

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    winners = [r for r in results if r]
    assert len(winners) == 1
    assert [x.id for x in all_widgets(widgets, editor, board.id)] == winners
    assert version_of(dashboards, editor, board.id) == 2


# --- update masks, etags --------------------------------------------------------------------


def test_update_mask_changes_only_the_masked_fields(widgets, dashboards, editor, board, add):
    original = add(
        board.id,
        "line",
        title="before",
        description="keep me",
        refresh_interval=duration_pb2.Duration(seconds=60),
        cross_filters=[w.CrossFilter(source_column="unit", filter_name="unit")],
    )
    body = w.Widget(
        id=original.id,
        etag=original.etag,
        title="after",
        description="ignored",
        position=pos(8, 8),
        refresh_interval=duration_pb2.Duration(seconds=900),
        kpi=w.KpiConfig(value_column="ignored"),
    )
    updated = widgets.UpdateWidget(w.UpdateWidgetRequest(widget=body, update_mask=mask("title")), metadata=editor)
    assert without_change_stamps(updated) == without_change_stamps(original, title="after")
    assert updated.etag != original.etag
    assert version_of(dashboards, editor, board.id) == 3

    moved = widgets.UpdateWidget(
        w.UpdateWidgetRequest(
            widget=w.Widget(id=original.id, position=pos(4, 4), title="ignored"), update_mask=mask("position")
        ),
        metadata=editor,
    )
    assert moved.position == pos(4, 4) and moved.title == "after" and moved.type == w.WIDGET_TYPE_LINE

    cleared = widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=original.id), update_mask=mask("description", "cross_filters")),
        metadata=editor,
    )
    assert cleared.description == "" and list(cleared.cross_filters) == []
    assert cleared.line == CONFIGS["line"] and cleared.refresh_interval.seconds == 60
    assert widgets.GetWidget(w.GetWidgetRequest(id=original.id), metadata=editor) == cleared


def test_a_config_member_name_in_the_mask_replaces_the_config_and_the_type(widgets, editor, board, add):
    widget = add(board.id, "kpi")
    as_table = widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, table=CONFIGS["table"]), update_mask=mask("table")),
        metadata=editor,
    )
    assert as_table.type == w.WIDGET_TYPE_TABLE and as_table.WhichOneof("config") == "table"
    assert as_table.table == CONFIGS["table"] and not as_table.HasField("kpi")
    as_map = widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, map=CONFIGS["map"]), update_mask=mask("config")),
        metadata=editor,
    )
    assert as_map.type == w.WIDGET_TYPE_MAP and as_map.map == CONFIGS["map"]
    # Naming the config without giving one would leave the widget without a type.
    _, reasons = refused(
        lambda: widgets.UpdateWidget(
            w.UpdateWidgetRequest(widget=w.Widget(id=widget.id), update_mask=mask("heatmap")), metadata=editor
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"widget.config": "REQUIRED"}
    assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor) == as_map


def test_update_mask_naming_a_field_that_cannot_change_is_invalid(widgets, editor, board, add):
    widget = add(board.id)
    for path in ("type", "dashboard_id", "id", "etag", "create_time", "position.x", "no_such_field"):
        expect_failure(
            lambda p=path: widgets.UpdateWidget(
                w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, title="t"), update_mask=mask(p)), metadata=editor
            ),
            Code.INVALID_ARGUMENT,
            field="update_mask",
        )
    assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor) == widget


def test_a_widget_cannot_move_to_another_dashboard(widgets, dashboards, editor, facility, board, add):
    widget = add(board.id)
    other = make_board(dashboards, editor, facility, "other")
    expect_failure(
        lambda: widgets.UpdateWidget(
            w.UpdateWidgetRequest(
                widget=w.Widget(id=widget.id, dashboard_id=other.id, title="moved"), update_mask=mask("title")
            ),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
        field="widget.dashboard_id",
        reason="IMMUTABLE_FIELD",
    )
    assert all_widgets(widgets, editor, other.id) == []
    assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor) == widget
    # Sending its own dashboard back (as a full read-modify-write does) is fine.
    body = w.Widget()
    body.CopyFrom(widget)
    body.title = "renamed"
    renamed = widgets.UpdateWidget(w.UpdateWidgetRequest(widget=body), metadata=editor)
    assert renamed.title == "renamed" and renamed.dashboard_id == board.id


def test_masked_required_fields_must_be_present(widgets, editor, board, add):
    widget = add(board.id)
    _, reasons = refused(
        lambda: widgets.UpdateWidget(
            w.UpdateWidgetRequest(widget=w.Widget(id=widget.id), update_mask=mask("title", "position")),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"widget.title": "REQUIRED", "widget.position": "REQUIRED"}
    # An empty mask replaces every writable field, so every required one must be there.
    _, reasons = refused(
        lambda: widgets.UpdateWidget(w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, title="x")), metadata=editor),
        Code.INVALID_ARGUMENT,
    )
    assert set(reasons) == {"widget.position", "widget.config"}
    assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor) == widget


def test_an_update_that_changes_nothing_writes_no_version(widgets, dashboards, editor, board, add):
    widget = add(board.id, title="same")
    again = widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, title="same", etag=widget.etag), update_mask=mask("title")),
        metadata=editor,
    )
    assert again == widget
    assert version_of(dashboards, editor, board.id) == 2


def test_stale_etag_is_aborted_and_nothing_changes(widgets, dashboards, editor, board, add):
    widget = add(board.id, title="v1")
    current = widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, title="v2", etag=widget.etag), update_mask=mask("title")),
        metadata=editor,
    )
    version = version_of(dashboards, editor, board.id)
    expect_failure(
        lambda: widgets.UpdateWidget(
            w.UpdateWidgetRequest(
                widget=w.Widget(id=widget.id, title="lost update", etag=widget.etag), update_mask=mask("title")
            ),
            metadata=editor,
        ),
        Code.ABORTED,
        reason="ETAG_MISMATCH",
    )
    expect_failure(
        lambda: widgets.DeleteWidget(w.DeleteWidgetRequest(id=widget.id, etag=widget.etag), metadata=editor),
        Code.ABORTED,
        reason="ETAG_MISMATCH",
    )
    assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor) == current
    assert version_of(dashboards, editor, board.id) == version
    # The current etag works.
    widgets.DeleteWidget(w.DeleteWidgetRequest(id=widget.id, etag=current.etag), metadata=editor)


# --- request ids ----------------------------------------------------------------------------


def test_request_id_makes_create_idempotent(widgets, dashboards, editor, board):
    request = w.CreateWidgetRequest(widget=widget_spec(board.id, title="once"), request_id=str(uuid.uuid4()))
    first = widgets.CreateWidget(request, metadata=editor)
    second = widgets.CreateWidget(request, metadata=editor)
    assert second == first
    assert version_of(dashboards, editor, board.id) == 2

    racing = w.CreateWidgetRequest(widget=widget_spec(board.id, title="race", y=4), request_id=str(uuid.uuid4()))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: widgets.CreateWidget(racing, metadata=editor), range(8)))
    assert len({r.id for r in results}) == 1
    titles = [x.title for x in all_widgets(widgets, editor, board.id)]
    assert sorted(titles) == ["once", "race"]
    assert version_of(dashboards, editor, board.id) == 3

    different = w.CreateWidgetRequest(widget=widget_spec(board.id, title="other", y=8), request_id=request.request_id)
    expect_failure(
        lambda: widgets.CreateWidget(different, metadata=editor), Code.ALREADY_EXISTS, reason="REQUEST_ID_REUSED"
    )
    assert len(all_widgets(widgets, editor, board.id)) == 2
    assert version_of(dashboards, editor, board.id) == 3


def test_request_ids_belong_to_their_caller(widgets, editor, auth, facility, board):
    # The same request id from another caller is another request, not a reuse.
    admin = auth("admin-1", "admin", facility)
    request_id = str(uuid.uuid4())
    theirs = widgets.CreateWidget(
        w.CreateWidgetRequest(widget=widget_spec(board.id, x=0), request_id=request_id), metadata=admin
    )
    mine = widgets.CreateWidget(
        w.CreateWidgetRequest(widget=widget_spec(board.id, x=4), request_id=request_id), metadata=editor
    )
    assert theirs.id != mine.id
    assert len(all_widgets(widgets, editor, board.id)) == 2


# --- delete, versions, restore, GetDashboard -----------------------------------------------


def test_delete_removes_the_widget_and_writes_a_version(widgets, dashboards, editor, board, add):
    keep = add(board.id, x=0)
    gone = add(board.id, x=4)
    widgets.DeleteWidget(w.DeleteWidgetRequest(id=gone.id), metadata=editor)
    expect_failure(
        lambda: widgets.GetWidget(w.GetWidgetRequest(id=gone.id), metadata=editor),
        Code.NOT_FOUND,
        reason="WIDGET_NOT_FOUND",
    )
    expect_failure(
        lambda: widgets.DeleteWidget(w.DeleteWidgetRequest(id=gone.id), metadata=editor),
        Code.NOT_FOUND,
        reason="WIDGET_NOT_FOUND",
    )
    expect_failure(
        lambda: widgets.UpdateWidget(
            w.UpdateWidgetRequest(widget=w.Widget(id=gone.id, title="x"), update_mask=mask("title")), metadata=editor
        ),
        Code.NOT_FOUND,
    )
    assert all_widgets(widgets, editor, board.id) == [keep]
    assert version_of(dashboards, editor, board.id) == 4
    # The freed cells can be used again.
    assert add(board.id, x=4).position == pos(4, 0)


def test_deleting_the_dashboard_deletes_its_widgets(widgets, dashboards, editor, board, add):
    widget = add(board.id)
    dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=board.id), metadata=editor)
    expect_failure(lambda: widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor), Code.NOT_FOUND)
    expect_failure(
        lambda: widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=board.id), metadata=editor), Code.NOT_FOUND
    )
    expect_failure(lambda: add(board.id, x=4), Code.NOT_FOUND, reason="DASHBOARD_NOT_FOUND")


def test_every_change_writes_a_version_with_exactly_the_widgets_of_that_moment(widgets, dashboards, editor, board, add):
    a = add(board.id, "kpi", x=0, title="a")  # v2
    b = add(board.id, "bar", x=4, title="b")  # v3
    a2 = widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=a.id, title="a2"), update_mask=mask("title")), metadata=editor
    )  # v4
    widgets.DeleteWidget(w.DeleteWidgetRequest(id=b.id), metadata=editor)  # v5
    expected = {1: [], 2: [a], 3: [a, b], 4: [a2, b], 5: [a2]}
    for version, present in expected.items():
        found = snapshot(dashboards, editor, board.id, version)
        assert list(found.snapshot.widgets) == present, version
        assert found.reason == (d.VERSION_REASON_CREATE if version == 1 else d.VERSION_REASON_WIDGET_CHANGE)
        assert found.author_id == "editor-1"
    assert version_of(dashboards, editor, board.id) == 5


def test_restore_brings_back_deleted_widgets_and_undoes_moves(widgets, dashboards, editor, board, add):
    a = add(board.id, "line", x=0, y=0, title="a")
    b = add(board.id, "map", x=4, y=0, title="b")  # v3: the state to return to
    widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=a.id, position=pos(0, 6, 12, 4)), update_mask=mask("position")),
        metadata=editor,
    )
    widgets.DeleteWidget(w.DeleteWidgetRequest(id=b.id), metadata=editor)
    c = add(board.id, "table", x=0, y=0, title="c")  # on the cells `a` left
    assert version_of(dashboards, editor, board.id) == 6

    restored = dashboards.RestoreDashboardVersion(
        d.RestoreDashboardVersionRequest(dashboard_id=board.id, version=3), metadata=editor
    )
    assert restored.version == 7
    listed = all_widgets(widgets, editor, board.id)
    assert [(x.id, x.title, x.position) for x in listed] == [(a.id, "a", pos(0, 0)), (b.id, "b", pos(4, 0))]
    assert listed[0].line == CONFIGS["line"] and listed[1].map == CONFIGS["map"]
    assert [x.id for x in restored.widgets] == [a.id, b.id]
    expect_failure(lambda: widgets.GetWidget(w.GetWidgetRequest(id=c.id), metadata=editor), Code.NOT_FOUND)
    again = widgets.GetWidget(w.GetWidgetRequest(id=b.id), metadata=editor)
    assert again.title == "b" and again.type == w.WIDGET_TYPE_MAP
    v7 = snapshot(dashboards, editor, board.id, 7)
    assert v7.reason == d.VERSION_REASON_RESTORE and v7.restored_from == 3
    assert [x.id for x in v7.snapshot.widgets] == [a.id, b.id]
    # The restored widgets are ordinary widgets again: they update with their new etag.
    renamed = widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=b.id, title="b again", etag=again.etag), update_mask=mask("title")),
        metadata=editor,
    )
    assert renamed.title == "b again"


def test_get_dashboard_includes_the_widgets_ordered_by_position(dashboards, editor, board, add):
    made = [
        add(board.id, "map", x=6, y=4, width=6),
        add(board.id, "kpi", x=6, y=0, width=6),
        add(board.id, "table", x=0, y=4, width=6),
        add(board.id, "line", x=0, y=0, width=6),
        add(board.id, "heatmap", x=0, y=2, width=12),
    ]
    got = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=editor)
    assert [(x.position.y, x.position.x) for x in got.widgets] == [(0, 0), (0, 6), (2, 0), (4, 0), (4, 6)]
    assert {x.id: x for x in got.widgets} == {x.id: x for x in made}


# --- pagination -----------------------------------------------------------------------------


def test_list_paginates_by_position_with_page_size_two(widgets, dashboards, editor, facility, board, add):
    spots = [(8, 2), (0, 0), (4, 2), (6, 0), (0, 2)]
    for x, y in spots:
        add(board.id, x=x, y=y, width=2)
    seen, token, pages = [], "", 0
    while True:
        page = widgets.ListWidgets(
            w.ListWidgetsRequest(dashboard_id=board.id, page_size=2, page_token=token), metadata=editor
        )
        assert len(page.widgets) <= 2
        pages += 1
        seen += [(x.position.y, x.position.x) for x in page.widgets]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == sorted((y, x) for x, y in spots)

    first = widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=board.id, page_size=2), metadata=editor)
    other = make_board(dashboards, editor, facility, "other")
    expect_failure(
        lambda: widgets.ListWidgets(
            w.ListWidgetsRequest(dashboard_id=other.id, page_size=2, page_token=first.next_page_token),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
        field="page_token",
    )
    expect_failure(
        lambda: widgets.ListWidgets(
            w.ListWidgetsRequest(dashboard_id=board.id, page_token="garbage!"), metadata=editor
        ),
        Code.INVALID_ARGUMENT,
        field="page_token",
    )


# --- roles, shares, tenancy -----------------------------------------------------------------


def write_calls(widgets, md, board_id: str, widget: w.Widget) -> Iterator[Callable[[], Any]]:
    yield lambda: widgets.CreateWidget(
        w.CreateWidgetRequest(widget=widget_spec(board_id, x=8, y=20, title="pwned")), metadata=md
    )
    yield lambda: widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, title="pwned"), update_mask=mask("title")), metadata=md
    )
    yield lambda: widgets.DeleteWidget(w.DeleteWidgetRequest(id=widget.id), metadata=md)


@pytest.mark.parametrize("level", [VIEW, EDIT, MANAGE])
def test_a_viewer_with_a_share_reads_but_never_writes(
    widgets, dashboards, editor, auth, facility, board, add, share, level
):
    widget = add(board.id)
    viewer = auth("viewer-1", "viewer", facility)
    share(board, "viewer-1", level)
    assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=viewer) == widget
    assert all_widgets(widgets, viewer, board.id) == [widget]
    for call in write_calls(widgets, viewer, board.id, widget):
        expect_failure(call, Code.PERMISSION_DENIED, reason="INSUFFICIENT_ACCESS")
    assert all_widgets(widgets, editor, board.id) == [widget]
    assert version_of(dashboards, editor, board.id) == 2


def test_an_editor_writes_with_an_edit_share_but_not_with_a_view_share(widgets, auth, facility, board, add, share):
    widget = add(board.id)
    reader, writer = auth("editor-r", "editor", facility), auth("editor-w", "editor", facility)
    share(board, "editor-r", VIEW)
    share(board, "editor-w", EDIT)
    for call in write_calls(widgets, reader, board.id, widget):
        expect_failure(call, Code.PERMISSION_DENIED)
    made = add(board.id, x=8, md=writer)
    assert made.dashboard_id == board.id
    renamed = widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, title="by writer"), update_mask=mask("title")),
        metadata=writer,
    )
    assert renamed.title == "by writer"
    widgets.DeleteWidget(w.DeleteWidgetRequest(id=made.id), metadata=writer)


def test_a_viewer_who_cannot_see_the_dashboard_gets_not_found(widgets, dashboards, editor, auth, facility, board, add):
    widget = add(board.id, title="secret title")
    viewer = auth("viewer-1", "viewer", facility)
    failure = expect_failure(
        lambda: widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=viewer),
        Code.NOT_FOUND,
        reason="WIDGET_NOT_FOUND",
    )
    assert board.id not in failure.message
    expect_failure(
        lambda: widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=board.id), metadata=viewer), Code.NOT_FOUND
    )
    for call in write_calls(widgets, viewer, board.id, widget):
        failure = expect_failure(call, Code.NOT_FOUND)
        assert "secret" not in failure.message
    assert all_widgets(widgets, editor, board.id) == [widget]
    assert version_of(dashboards, editor, board.id) == 2


def test_another_facilitys_admin_gets_not_found_and_sees_nothing(widgets, dashboards, editor, auth, board, add):
    widget = add(board.id, title="secret title")
    stranger = auth("admin-b", "admin", "another-facility")
    calls = [
        lambda: widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=stranger),
        lambda: widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=board.id), metadata=stranger),
        *write_calls(widgets, stranger, board.id, widget),
    ]
    for call in calls:
        failure = expect_failure(call, Code.NOT_FOUND)
        assert "secret" not in failure.message and "pwned" not in failure.message
    assert all_widgets(widgets, editor, board.id) == [widget]
    assert version_of(dashboards, editor, board.id) == 2
    # Nor through its own dashboards.
    own = make_board(dashboards, stranger, "another-facility")
    assert all_widgets(widgets, stranger, own.id) == []


def test_public_published_dashboard_shows_a_viewer_only_the_published_widgets(
    widgets, dashboards, editor, auth, facility, add
):
    board = make_board(dashboards, editor, facility, "public", visibility=d.VISIBILITY_PUBLIC)
    shown = add(board.id, "kpi", x=0, title="published title")
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=editor)
    draft = add(board.id, "bar", x=4, title="draft")
    widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=shown.id, title="draft title"), update_mask=mask("title")),
        metadata=editor,
    )
    viewer = auth("viewer-1", "viewer", facility)

    assert all_widgets(widgets, viewer, board.id) == [shown]
    assert widgets.GetWidget(w.GetWidgetRequest(id=shown.id), metadata=viewer) == shown
    expect_failure(
        lambda: widgets.GetWidget(w.GetWidgetRequest(id=draft.id), metadata=viewer),
        Code.NOT_FOUND,
        reason="WIDGET_NOT_FOUND",
    )
    seen = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=viewer)
    assert list(seen.widgets) == [shown]
    # The viewer sees the dashboard, so writing what they see is PERMISSION_DENIED...
    for call in write_calls(widgets, viewer, board.id, shown):
        expect_failure(call, Code.PERMISSION_DENIED)
    # ...but a widget they cannot see does not exist for them.
    for call in list(write_calls(widgets, viewer, board.id, draft))[1:]:
        expect_failure(call, Code.NOT_FOUND, reason="WIDGET_NOT_FOUND")
    # A widget deleted after publishing is still part of the published version.
    widgets.DeleteWidget(w.DeleteWidgetRequest(id=shown.id), metadata=editor)
    assert widgets.GetWidget(w.GetWidgetRequest(id=shown.id), metadata=viewer) == shown
    assert all_widgets(widgets, viewer, board.id) == [shown]
    # The owner sees the current state.
    assert [x.id for x in all_widgets(widgets, editor, board.id)] == [draft.id]


def test_published_widgets_paginate_for_a_published_only_reader(widgets, dashboards, editor, auth, facility, add):
    board = make_board(dashboards, editor, facility, "public", visibility=d.VISIBILITY_PUBLIC)
    for i in range(5):
        add(board.id, x=(i % 3) * 4, y=i // 3 * 2)
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=editor)
    add(board.id, x=0, y=10)
    viewer = auth("viewer-1", "viewer", facility)
    seen, token = [], ""
    while True:
        page = widgets.ListWidgets(
            w.ListWidgetsRequest(dashboard_id=board.id, page_size=2, page_token=token), metadata=viewer
        )
        seen += [(x.position.y, x.position.x) for x in page.widgets]
        token = page.next_page_token
        if not token:
            break
    assert seen == [(0, 0), (0, 4), (0, 8), (2, 0), (2, 4)]


# --- query bindings -------------------------------------------------------------------------


def test_binding_a_query_of_the_facility_round_trips(widgets, editor, facility, board, add, make_query):
    query_id = make_query(facility, versions=2)
    latest = add(board.id, x=0, query=w.QueryBinding(query_id=query_id))
    assert latest.query.query_id == query_id and latest.query.query_version == 0
    pinned = add(
        board.id,
        x=4,
        query=w.QueryBinding(
            query_id=query_id,
            query_version=2,
            parameter_values={"unit_id": c.ParameterValue(int_value=7)},
            filter_bindings={"unit_name": "unit"},
        ),
    )
    got = widgets.GetWidget(w.GetWidgetRequest(id=pinned.id), metadata=editor)
    assert got == pinned
    assert got.query.query_version == 2 and got.query.parameter_values["unit_id"].int_value == 7
    assert dict(got.query.filter_bindings) == {"unit_name": "unit"}


def test_binding_an_unknown_or_foreign_query_is_refused(
    widgets, dashboards, editor, auth, facility, board, add, make_query
):
    foreign = make_query("another-facility")
    unknown = str(uuid.uuid4())
    answers = []
    for query_id in (foreign, unknown):
        failure, reasons = refused(
            lambda q=query_id: add(board.id, query=w.QueryBinding(query_id=q)), Code.INVALID_ARGUMENT
        )
        assert reasons == {"widget.query.query_id": "QUERY_NOT_FOUND"}
        assert failure.reason == "QUERY_NOT_FOUND"
        answers.append(failure.violations)
    assert answers[0] == answers[1], "a foreign query must look exactly like a missing one"
    own = make_query(facility)
    failure, reasons = refused(
        lambda: add(board.id, query=w.QueryBinding(query_id=own, query_version=2)), Code.INVALID_ARGUMENT
    )
    assert reasons == {"widget.query.query_version": "QUERY_VERSION_NOT_FOUND"}
    assert all_widgets(widgets, editor, board.id) == []
    assert version_of(dashboards, editor, board.id) == 1

    widget = add(board.id, query=w.QueryBinding(query_id=own))
    for query_id in (foreign, unknown):
        expect_failure(
            lambda q=query_id: widgets.UpdateWidget(
                w.UpdateWidgetRequest(
                    widget=w.Widget(id=widget.id, query=w.QueryBinding(query_id=q)), update_mask=mask("query")
                ),
                metadata=editor,
            ),
            Code.INVALID_ARGUMENT,
            field="widget.query.query_id",
        )
    assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor) == widget


def test_the_typed_columns_are_authoritative_over_spec(widgets, editor, facility, board, add, make_query, sql):
    first, second = make_query(facility, "first"), make_query(facility, "second", versions=3)
    widget = add(board.id, title="spec title", query=w.QueryBinding(query_id=first))
    sql(
        "UPDATE widgets SET title = %s, query_id = %s, query_version = 3 WHERE id = %s",
        "column title",
        uuid.UUID(second),
        uuid.UUID(widget.id),
    )
    got = widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor)
    assert got.title == "column title"
    assert got.query.query_id == second and got.query.query_version == 3
    sql("UPDATE widgets SET query_id = NULL, query_version = NULL WHERE id = %s", uuid.UUID(widget.id))
    got = widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor)
    assert got.query.query_id == "" and got.query.query_version == 0


# --- cross-references: filters and drill-through --------------------------------------------


def test_cross_filters_and_filter_bindings_must_name_declared_filters(widgets, dashboards, editor, board, add):
    ok = add(
        board.id,
        x=0,
        cross_filters=[w.CrossFilter(source_column="unit", filter_name="unit")],
        query=w.QueryBinding(filter_bindings={"unit_id": "unit", "ward_id": "ward"}),
    )
    assert ok.cross_filters[0].filter_name == "unit"
    failure, reasons = refused(
        lambda: add(
            board.id,
            x=4,
            cross_filters=[
                w.CrossFilter(source_column="unit", filter_name="unit"),
                w.CrossFilter(source_column="bed", filter_name="bed"),
            ],
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"widget.cross_filters[1].filter_name": "UNKNOWN_FILTER"}
    assert failure.reason == "UNKNOWN_FILTER"
    failure, reasons = refused(
        lambda: add(board.id, x=4, query=w.QueryBinding(filter_bindings={"unit_id": "unit", "day": "when"})),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {'widget.query.filter_bindings["day"]': "UNKNOWN_FILTER"}
    assert all_widgets(widgets, editor, board.id) == [ok]
    assert version_of(dashboards, editor, board.id) == 2


def make_target(dashboards, md, facility: str, *names: str, **fields: Any) -> d.Dashboard:
    return make_board(dashboards, md, facility, "target", filters=[d.DashboardFilter(name=n) for n in names], **fields)


def test_drill_through_target_must_be_a_dashboard_of_the_same_facility(
    widgets, dashboards, editor, auth, facility, board, add
):
    target = make_target(dashboards, editor, facility, "unit", "day")
    drill = w.DrillThrough(target_dashboard_id=target.id, column_to_filter={"unit_name": "unit", "date": "day"})
    made = add(board.id, x=0, drill_through=drill)
    assert made.drill_through == drill
    assert widgets.GetWidget(w.GetWidgetRequest(id=made.id), metadata=editor).drill_through == drill
    # Its own dashboard is a fine target too.
    assert add(
        board.id, x=4, drill_through=w.DrillThrough(target_dashboard_id=board.id, column_to_filter={"w": "ward"})
    )

    foreign_admin = auth("admin-b", "admin", "another-facility")
    foreign = make_target(dashboards, foreign_admin, "another-facility", "unit")
    answers = []
    for target_id in (foreign.id, str(uuid.uuid4())):
        failure, reasons = refused(
            lambda t=target_id: add(
                board.id, x=8, drill_through=w.DrillThrough(target_dashboard_id=t, column_to_filter={"u": "unit"})
            ),
            Code.INVALID_ARGUMENT,
        )
        assert reasons == {"widget.drill_through.target_dashboard_id": "DASHBOARD_NOT_FOUND"}
        assert failure.reason == "DASHBOARD_NOT_FOUND"
        assert foreign.id not in failure.message
        answers.append((failure.message, failure.violations))
    assert answers[0] == answers[1], "another facility's dashboard must look exactly like a missing one"
    assert len(all_widgets(widgets, editor, board.id)) == 2


def test_drill_through_to_another_facility_is_refused_even_for_an_admin_of_both(
    widgets, dashboards, auth, facility, add
):
    admin = auth("admin-2", "admin", facility, "second-facility")
    board = make_board(dashboards, admin, facility)
    elsewhere = make_target(dashboards, admin, "second-facility", "unit")
    _, reasons = refused(
        lambda: add(board.id, md=admin, drill_through=w.DrillThrough(target_dashboard_id=elsewhere.id)),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"widget.drill_through.target_dashboard_id": "DASHBOARD_NOT_FOUND"}


def test_drill_through_target_must_be_visible_to_the_caller(widgets, dashboards, editor, auth, facility, board, add):
    colleague = auth("editor-2", "editor", facility)
    private = make_target(dashboards, colleague, facility, "unit")
    _, reasons = refused(
        lambda: add(board.id, drill_through=w.DrillThrough(target_dashboard_id=private.id)), Code.INVALID_ARGUMENT
    )
    assert reasons == {"widget.drill_through.target_dashboard_id": "DASHBOARD_NOT_FOUND"}
    # A facility admin sees every dashboard of the facility, so may point at it.
    admin = auth("admin-1", "admin", facility)
    assert add(board.id, md=admin, drill_through=w.DrillThrough(target_dashboard_id=private.id)).drill_through


def test_drill_through_filters_are_those_of_the_target(widgets, dashboards, editor, auth, facility, board, add):
    # `ward` is declared on the widget's own dashboard but not on the target.
    target = make_target(dashboards, editor, facility, "unit", "day")
    _, reasons = refused(
        lambda: add(
            board.id,
            drill_through=w.DrillThrough(
                target_dashboard_id=target.id, column_to_filter={"unit_name": "unit", "ward_name": "ward", "x": "nope"}
            ),
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {
        'widget.drill_through.column_to_filter["ward_name"]': "UNKNOWN_FILTER",
        'widget.drill_through.column_to_filter["x"]': "UNKNOWN_FILTER",
    }
    # A reader of only the published version of a colleague's public dashboard is checked
    # against that version's filters, not against the draft's.
    colleague = auth("editor-2", "editor", facility)
    public = make_target(dashboards, colleague, facility, "unit", visibility=d.VISIBILITY_PUBLIC)
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=public.id), metadata=colleague)
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(
                id=public.id, filters=[d.DashboardFilter(name="unit"), d.DashboardFilter(name="draft")]
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["filters"]),
        ),
        metadata=colleague,
    )
    _, reasons = refused(
        lambda: add(
            board.id, drill_through=w.DrillThrough(target_dashboard_id=public.id, column_to_filter={"d": "draft"})
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {'widget.drill_through.column_to_filter["d"]': "UNKNOWN_FILTER"}
    made = add(board.id, drill_through=w.DrillThrough(target_dashboard_id=public.id, column_to_filter={"u": "unit"}))
    assert made.drill_through.target_dashboard_id == public.id


def test_every_reference_problem_is_reported_at_once_and_nothing_is_written(
    widgets, dashboards, editor, facility, board, add, make_query
):
    foreign = make_query("another-facility")
    target = make_target(dashboards, editor, facility, "unit")
    failure, reasons = refused(
        lambda: add(
            board.id,
            query=w.QueryBinding(query_id=foreign, filter_bindings={"p": "nope"}),
            cross_filters=[w.CrossFilter(source_column="c", filter_name="nope")],
            drill_through=w.DrillThrough(target_dashboard_id=target.id, column_to_filter={"c": "ward"}),
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {
        "widget.query.query_id": "QUERY_NOT_FOUND",
        'widget.query.filter_bindings["p"]': "UNKNOWN_FILTER",
        "widget.cross_filters[0].filter_name": "UNKNOWN_FILTER",
        'widget.drill_through.column_to_filter["c"]': "UNKNOWN_FILTER",
    }
    assert failure.reason == "INVALID_ARGUMENT"
    assert all_widgets(widgets, editor, board.id) == []
    assert version_of(dashboards, editor, board.id) == 1


def test_update_checks_references_only_for_the_masked_paths(widgets, dashboards, editor, facility, board, add):
    target = make_target(dashboards, editor, facility, "unit")
    widget = add(
        board.id,
        cross_filters=[w.CrossFilter(source_column="w", filter_name="ward")],
        query=w.QueryBinding(filter_bindings={"ward_id": "ward"}),
        drill_through=w.DrillThrough(target_dashboard_id=target.id, column_to_filter={"u": "unit"}),
    )
    # The filters the widget names disappear from both dashboards...
    for board_id in (board.id, target.id):
        dashboards.UpdateDashboard(
            d.UpdateDashboardRequest(
                dashboard=d.Dashboard(id=board_id, filters=[d.DashboardFilter(name="other")]),
                update_mask=field_mask_pb2.FieldMask(paths=["filters"]),
            ),
            metadata=editor,
        )
    # ...which does not block changes to other fields...
    renamed = widgets.UpdateWidget(
        w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, title="renamed"), update_mask=mask("title")),
        metadata=editor,
    )
    assert renamed.title == "renamed"
    version = version_of(dashboards, editor, board.id)
    # ...but changing a field that names them checks them again.
    cases = [
        (
            "cross_filters",
            w.Widget(id=widget.id, cross_filters=[w.CrossFilter(source_column="x", filter_name="ward")]),
            "widget.cross_filters[0].filter_name",
        ),
        (
            "query",
            w.Widget(id=widget.id, query=w.QueryBinding(filter_bindings={"ward_id": "ward", "o": "other"})),
            'widget.query.filter_bindings["ward_id"]',
        ),
        (
            "drill_through",
            w.Widget(
                id=widget.id,
                drill_through=w.DrillThrough(
                    target_dashboard_id=target.id, column_to_filter={"u": "unit", "o": "other"}
                ),
            ),
            'widget.drill_through.column_to_filter["u"]',
        ),
        (
            "drill_through",
            w.Widget(id=widget.id, drill_through=w.DrillThrough(target_dashboard_id=str(uuid.uuid4()))),
            "widget.drill_through.target_dashboard_id",
        ),
    ]
    for path, body, field in cases:
        _, reasons = refused(
            lambda b=body, p=path: widgets.UpdateWidget(
                w.UpdateWidgetRequest(widget=b, update_mask=mask(p)), metadata=editor
            ),
            Code.INVALID_ARGUMENT,
        )
        assert list(reasons) == [field]
    assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=editor) == renamed
    assert version_of(dashboards, editor, board.id) == version
    # Declared filters are accepted, and clearing a reference needs nothing.
    fixed = widgets.UpdateWidget(
        w.UpdateWidgetRequest(
            widget=w.Widget(id=widget.id, cross_filters=[w.CrossFilter(source_column="x", filter_name="other")]),
            update_mask=mask("cross_filters", "drill_through", "query"),
        ),
        metadata=editor,
    )
    assert fixed.cross_filters[0].filter_name == "other"
    assert not fixed.HasField("drill_through") and not fixed.HasField("query")
