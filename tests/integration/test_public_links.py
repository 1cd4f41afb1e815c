"""Public links over a real channel: create (published only, ttl rules, token shown once and
stored only as a hash), list, revoke, and authentication by link: a link reads its dashboard's
published version and its widget data (PHI masked), and nothing else."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.db.migrate import sync_url
from server.devtools.demo_data import install as install_demo_data
from server.queries.frame import frame_to_rows
from tests.harness.rpc import expect_failure

Code = grpc.StatusCode
NORTH = "north-general"


def link_md(token: str) -> tuple[tuple[str, str], ...]:
    return (("x-tessera-link", token),)


@pytest.fixture(scope="module")
def demo(migrated: str) -> str:
    install_demo_data(migrated)
    return migrated


@pytest.fixture(scope="module")
def dsn(migrated: str) -> str:
    return sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)


def sql(dsn: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, args)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def nora(auth):
    return auth("nora", "editor", NORTH, permissions=("phi:read",))


def make_board(dashboards, md, facility: str, title: str = "Public", publish: bool = True) -> d.Dashboard:
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title=title)), metadata=md
    )
    if publish:
        board = dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=md)
    return board


def make_widget(widgets, md, board_id: str, query_id: str) -> w.Widget:
    widget = w.Widget(
        dashboard_id=board_id,
        title="patients",
        position=w.GridPosition(x=0, y=0, width=4, height=2),
        table=w.TableConfig(),
        query=w.QueryBinding(query_id=query_id),
    )
    return widgets.CreateWidget(w.CreateWidgetRequest(widget=widget), metadata=md)


def create_link(shares, md, board_id: str, **fields: Any) -> s.PublicLink:
    return shares.CreatePublicLink(s.CreatePublicLinkRequest(dashboard_id=board_id, **fields), metadata=md)


def test_create_list_revoke(shares, dashboards, auth, facility, dsn):
    owner = auth("owner", "editor", facility)
    board = make_board(dashboards, owner, facility)
    link = create_link(shares, owner, board.id)
    assert link.token and len(link.token) >= 40 and link.dashboard_id == board.id and link.created_by == "owner"
    week = link.expire_time.seconds - link.create_time.seconds
    assert abs(week - 7 * 86400) < 5
    stored = sql(dsn, "SELECT token_hash FROM public_links WHERE id = %s", uuid.UUID(link.id))
    assert bytes(stored[0][0]) == hashlib.sha256(link.token.encode()).digest()

    short = create_link(shares, owner, board.id, ttl=duration_pb2.Duration(seconds=60))
    assert short.expire_time.seconds - short.create_time.seconds in (59, 60, 61)
    listed = shares.ListPublicLinks(s.ListPublicLinksRequest(dashboard_id=board.id), metadata=owner)
    assert [x.id for x in listed.links] == [short.id, link.id]
    assert all(not x.token for x in listed.links)
    first = shares.ListPublicLinks(s.ListPublicLinksRequest(dashboard_id=board.id, page_size=1), metadata=owner)
    second = shares.ListPublicLinks(
        s.ListPublicLinksRequest(dashboard_id=board.id, page_size=1, page_token=first.next_page_token), metadata=owner
    )
    assert [x.id for x in first.links] + [x.id for x in second.links] == [short.id, link.id]

    revoked = shares.RevokePublicLink(s.RevokePublicLinkRequest(id=link.id), metadata=owner)
    assert revoked.revoke_time.seconds > 0 and not revoked.token
    again = shares.RevokePublicLink(s.RevokePublicLinkRequest(id=link.id), metadata=owner)
    assert again.revoke_time == revoked.revoke_time  # idempotent


def test_create_rules(shares, dashboards, auth, facility):
    owner = auth("owner", "editor", facility)
    draft = make_board(dashboards, owner, facility, publish=False)
    expect_failure(lambda: create_link(shares, owner, draft.id), Code.FAILED_PRECONDITION, reason="NOT_PUBLISHED")
    board = make_board(dashboards, owner, facility)
    expect_failure(
        lambda: create_link(shares, owner, board.id, ttl=duration_pb2.Duration(seconds=59)),
        Code.INVALID_ARGUMENT,
        field="ttl",
    )
    expect_failure(
        lambda: create_link(shares, owner, board.id, ttl=duration_pb2.Duration(seconds=366 * 86400)),
        Code.INVALID_ARGUMENT,
        field="ttl",
    )
    # MANAGE only: an EDIT holder, a viewer, another facility's admin.
    editor = auth("eddie", "editor", facility)
    shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, user_id="eddie", level=s.SHARE_LEVEL_EDIT), metadata=owner
    )
    expect_failure(lambda: create_link(shares, editor, board.id), Code.PERMISSION_DENIED)
    expect_failure(
        lambda: shares.ListPublicLinks(s.ListPublicLinksRequest(dashboard_id=board.id), metadata=editor),
        Code.PERMISSION_DENIED,
    )
    link = create_link(shares, owner, board.id)
    expect_failure(
        lambda: shares.RevokePublicLink(s.RevokePublicLinkRequest(id=link.id), metadata=editor), Code.PERMISSION_DENIED
    )
    stranger = auth("root-b", "admin", "another-facility")
    expect_failure(lambda: create_link(shares, stranger, board.id), Code.NOT_FOUND)
    expect_failure(
        lambda: shares.RevokePublicLink(s.RevokePublicLinkRequest(id=link.id), metadata=stranger),
        Code.NOT_FOUND,
        reason="PUBLIC_LINK_NOT_FOUND",
    )
    expect_failure(
        lambda: shares.RevokePublicLink(s.RevokePublicLinkRequest(id=str(uuid.uuid4())), metadata=owner),
        Code.NOT_FOUND,
        reason="PUBLIC_LINK_NOT_FOUND",
    )


def test_link_reads_its_dashboard_only_and_phi_is_masked(shares, dashboards, widgets, queries, nora, auth, demo, dsn):
    query = queries.CreateQuery(
        q.CreateQueryRequest(
            query=q.Query(
                facility_id=NORTH,
                name=f"patients {uuid.uuid4().hex[:6]}",
                sql="SELECT patient_name, unit FROM demo.admissions ORDER BY id LIMIT 3",
                sensitive_columns=[q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_REDACT)],
            )
        ),
        metadata=nora,
    )
    board = make_board(dashboards, nora, NORTH, publish=False)
    widget = make_widget(widgets, nora, board.id, query.id)
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=nora)
    other = make_board(dashboards, nora, NORTH, title="Other")
    link = create_link(shares, nora, board.id)
    md = link_md(link.token)

    # The PHI reader warms the cache first; the link must still get a masked entry.
    real = widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=nora, timeout=30)
    assert not real.masked
    assert "[REDACTED]" not in {r["patient_name"] for r in frame_to_rows(real.frame)}
    data = widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=md, timeout=30)
    assert data.masked
    assert {r["patient_name"] for r in frame_to_rows(data.frame)} == {"[REDACTED]"}
    batch = widgets.BatchGetWidgetData(
        w.BatchGetWidgetDataRequest(requests=[w.GetWidgetDataRequest(widget_id=widget.id)]), metadata=md, timeout=30
    )
    assert batch.data[0].masked

    got = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=md)
    assert got.id == board.id and got.version == got.published_version
    assert [x.id for x in widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=board.id), metadata=md).widgets] == [
        widget.id
    ]
    assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=md).id == widget.id

    # Another dashboard, even a published one of the same facility: NOT_FOUND.
    expect_failure(lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=other.id), metadata=md), Code.NOT_FOUND)
    listed = dashboards.ListDashboards(d.ListDashboardsRequest(), metadata=md)
    assert [x.id for x in listed.dashboards] == [board.id]
    # No SQL: no listing or running queries.
    expect_failure(lambda: queries.ListQueries(q.ListQueriesRequest(), metadata=md), Code.PERMISSION_DENIED)
    # A saved query is not something a link may even see (require_query): NOT_FOUND, as for any
    # resource outside what the caller may see.
    expect_failure(lambda: queries.RunQuery(q.RunQueryRequest(id=query.id), metadata=md), Code.NOT_FOUND)
    expect_failure(lambda: queries.GetQuery(q.GetQueryRequest(id=query.id), metadata=md), Code.NOT_FOUND)
    # No writes of any kind.
    expect_failure(
        lambda: dashboards.UpdateDashboard(
            d.UpdateDashboardRequest(dashboard=d.Dashboard(id=board.id, title="x"), update_mask={"paths": ["title"]}),
            metadata=md,
        ),
        Code.PERMISSION_DENIED,
    )
    expect_failure(
        lambda: dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=board.id), metadata=md), Code.PERMISSION_DENIED
    )
    expect_failure(
        lambda: dashboards.CreateDashboard(d.CreateDashboardRequest(dashboard=d.Dashboard(title="x")), metadata=md),
        Code.PERMISSION_DENIED,
    )
    expect_failure(
        lambda: widgets.DeleteWidget(w.DeleteWidgetRequest(id=widget.id), metadata=md), Code.PERMISSION_DENIED
    )
    expect_failure(lambda: create_link(shares, md, board.id), Code.PERMISSION_DENIED)
    expect_failure(
        lambda: shares.ShareDashboard(
            s.ShareDashboardRequest(dashboard_id=board.id, user_id="x", level=s.SHARE_LEVEL_VIEW), metadata=md
        ),
        Code.PERMISSION_DENIED,
    )
    expect_failure(lambda: shares.ListAuditEvents(s.ListAuditEventsRequest(), metadata=md), Code.PERMISSION_DENIED)

    # Revoked: UNAUTHENTICATED, the same answer as an unknown token.
    shares.RevokePublicLink(s.RevokePublicLinkRequest(id=link.id), metadata=nora)
    expect_failure(
        lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=md),
        Code.UNAUTHENTICATED,
        reason="LINK_INVALID",
    )


def test_expired_and_unknown_links_are_unauthenticated(shares, dashboards, auth, facility, dsn):
    owner = auth("owner", "editor", facility)
    board = make_board(dashboards, owner, facility)
    link = create_link(shares, owner, board.id)
    assert dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=link_md(link.token)).id == board.id
    sql(dsn, "UPDATE public_links SET expire_at = now() - interval '1 second' WHERE id = %s", uuid.UUID(link.id))
    for token in (link.token, "nope", "x" * 1000, link.token + "x"):
        expect_failure(
            lambda token=token: dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=link_md(token)),
            Code.UNAUTHENTICATED,
            reason="LINK_INVALID",
        )
    # A bearer token wins over a link: the link header never widens a user's access.
    fresh = create_link(shares, owner, board.id)
    stranger = auth("s", "viewer", "another-facility")
    expect_failure(
        lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=stranger + link_md(fresh.token)),
        Code.NOT_FOUND,
    )
