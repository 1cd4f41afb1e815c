"""The client against the real server (in-thread, real PostgreSQL and Redis, real channel):
every service through its helpers, pagination, request ids, etags, errors with their details,
Python parameter values, widget data and its cache, batches, shares and public links, token
refresh, and the asyncio client."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from tessera_client import (
    AbortedError,
    AlreadyExistsError,
    AsyncClient,
    CachedToken,
    Client,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    date_range,
    rows,
    rpcs,
)
from tests.client.conftest import Mint
from tests.harness.server import ServerHandle

Clients = Callable[..., Client]


@pytest.fixture
def editor(clients: Clients, mint: Mint, facility: str) -> Client:
    return clients(token=mint("edna", "editor", facility))


def test_dashboards_create_page_update_publish_restore_delete(editor: Client, facility: str) -> None:
    tag = f"t{uuid.uuid4().hex[:8]}"
    made = [editor.dashboards.create(title=f"Board {i}", tags=[tag], facility_id=facility) for i in range(5)]
    listed = list(editor.dashboards.list(tags=[tag], order_by="title", page_size=2))
    assert [b.title for b in listed] == [f"Board {i}" for i in range(5)], "three pages, in order"

    board = made[0]
    board.title, board.description = "Renamed", "ignored: not in the mask"
    updated = editor.dashboards.update(board, ["title"])
    assert (updated.title, updated.description, updated.version) == ("Renamed", "", 2)
    with pytest.raises(AbortedError) as stale:
        editor.dashboards.update(board, ["title"])  # board still carries version 1's etag
    assert stale.value.reason == "ETAG_MISMATCH"

    published = editor.dashboards.publish(board.id)
    assert published.published_version == 2
    assert [v.version for v in editor.dashboards.versions(board.id, page_size=1)] == [2, 1]
    assert editor.dashboards.version(board.id, 1).snapshot.title == "Board 0"
    restored = editor.dashboards.restore(board.id, 1)
    assert (restored.title, restored.version) == ("Board 0", 3)

    editor.dashboards.delete(board.id, etag=restored.etag)
    with pytest.raises(NotFoundError) as missing:
        editor.dashboards.get(board.id)
    assert missing.value.reason == "DASHBOARD_NOT_FOUND" and missing.value.metadata["resource_id"] == board.id
    assert missing.value.correlation_id, "every error names its log line"


def test_request_ids_make_a_retried_create_return_the_first_result(editor: Client, facility: str) -> None:
    request_id = str(uuid.uuid4())
    first = editor.dashboards.create(title="Once", facility_id=facility, request_id=request_id)
    again = editor.dashboards.create(title="Once", facility_id=facility, request_id=request_id)
    assert again.id == first.id
    with pytest.raises(AlreadyExistsError):
        editor.dashboards.create(title="Another request", facility_id=facility, request_id=request_id)
    # Without one, the client makes one per call: two calls, two dashboards.
    assert (
        editor.dashboards.create(title="x", facility_id=facility).id
        != editor.dashboards.create(title="x", facility_id=facility).id
    )


def test_invalid_input_names_every_field(editor: Client, facility: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        editor.dashboards.create(title="t", facility_id=facility, tags=["Bad Tag"], layout=d.GridLayout(gap=-1))
    fields = caught.value.fields
    assert "dashboard.tags[0]" in fields and "dashboard.layout.gap" in fields, caught.value.field_violations
    assert all(description for _, description in caught.value.field_violations)
    with pytest.raises(TypeError, match="GetDashboard takes GetDashboardRequest"):
        editor.call(rpcs.GET_DASHBOARD, d.Dashboard())  # type: ignore[arg-type]


def test_parameterised_queries_take_python_values(editor: Client, facility: str) -> None:
    query = editor.queries.create(
        name="typed",
        facility_id=facility,
        sql="SELECT :n * 2 AS doubled, :units AS units, :span_start AS first_day, :span_end AS last_day",
        parameters=[
            q.ParameterSpec(name="n", type=q.PARAMETER_TYPE_INT, required=True, max=c.ParameterValue(int_value=100)),
            q.ParameterSpec(name="units", type=q.PARAMETER_TYPE_STRING, list=True),
            q.ParameterSpec(name="span", type=q.PARAMETER_TYPE_DATE_RANGE),
        ],
    )
    result = editor.queries.run(
        query.id,
        parameters={"n": 21, "units": ["ICU", "ER"], "span": date_range(dt.date(2026, 1, 1), dt.date(2026, 1, 31))},
    )
    [row] = rows(result.frame)
    assert row["doubled"] == 42, row
    assert row["units"] == "{ICU,ER}", "a list binds as a PostgreSQL array"
    assert (row["first_day"], row["last_day"]) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    with pytest.raises(InvalidArgumentError) as caught:
        editor.queries.run(query.id, parameters={"n": 101})
    assert caught.value.field_violations == [('parameter_values["n"]', 'parameter "n" must be at most 100 (got 101)')]
    checked = editor.queries.validate("SELECT :a AS a", [q.ParameterSpec(name="a", type=q.PARAMETER_TYPE_INT)])
    assert checked.valid and list(checked.placeholders) == ["a"]
    assert [v.version for v in editor.queries.versions(query.id)] == [1]
    assert query.id in {found.id for found in editor.queries.list(name_contains="typed")}


def _board_with_widgets(client: Client, facility: str, count: int) -> tuple[d.Dashboard, list[w.Widget]]:
    board = client.dashboards.create(title="Data", facility_id=facility)
    made = []
    for i in range(count):
        query = client.queries.create(name=f"q{i}", facility_id=facility, sql=f"SELECT {i} AS n, 'row' AS label")
        made.append(
            client.widgets.create(
                dashboard_id=board.id,
                title=f"w{i}",
                position=w.GridPosition(x=0, y=i * 2, width=4, height=2),
                kpi=w.KpiConfig(value_column="n"),
                query=w.QueryBinding(query_id=query.id),
            )
        )
    return board, made


def test_widget_data_shows_a_miss_then_a_hit_and_batches_keep_order(editor: Client, facility: str) -> None:
    board, made = _board_with_widgets(editor, facility, 3)
    first = editor.widgets.data(made[0].id)
    again = editor.widgets.data(made[0].id)
    assert first.source == w.DATA_SOURCE_COMPUTED and again.source == w.DATA_SOURCE_MEMORY
    assert rows(again.frame) == [{"n": 0, "label": "row"}]
    assert editor.widgets.data(made[0].id, force_refresh=True).source == w.DATA_SOURCE_COMPUTED

    batch = editor.widgets.batch_data([made[2].id, made[1].id, made[0].id])
    assert [data.widget_id for data in batch] == [made[2].id, made[1].id, made[0].id]
    assert [rows(data.frame)[0]["n"] for data in batch] == [2, 1, 0]
    everything = editor.widgets.dashboard_data(board.id)
    assert set(everything) == {widget.id for widget in made}
    assert [widget.id for widget in editor.widgets.list(board.id, page_size=2)] == [widget.id for widget in made]


def test_shares_and_public_links(editor: Client, clients: Clients, mint: Mint, facility: str) -> None:
    board, made = _board_with_widgets(editor, facility, 1)
    bob = clients(token=mint("bob", "viewer", facility))
    with pytest.raises(NotFoundError):
        bob.dashboards.get(board.id)
    editor.shares.share(board.id, user_id="bob", level=s.SHARE_LEVEL_VIEW)
    editor.shares.share(board.id, user_id="bob", level=s.SHARE_LEVEL_VIEW)  # idempotent: an upsert
    editor.shares.share(board.id, role=s.ROLE_VIEWER, level=s.SHARE_LEVEL_VIEW)
    grantees = sorted(share.WhichOneof("grantee") for share in editor.shares.list(board.id))
    assert grantees == ["role", "user_id"]
    assert bob.dashboards.get(board.id).id == board.id
    with pytest.raises(PermissionDeniedError):
        bob.dashboards.update(d.Dashboard(id=board.id, title="no"), ["title"])
    editor.shares.unshare(board.id, user_id="bob")
    editor.shares.unshare(board.id, role=s.ROLE_VIEWER)
    with pytest.raises(NotFoundError):
        bob.dashboards.get(board.id)

    editor.dashboards.publish(board.id)
    link = editor.shares.create_link(board.id, ttl_seconds=3600)
    assert link.token and [found.id for found in editor.shares.links(board.id)] == [link.id]
    reader = clients(link_token=link.token)
    assert reader.dashboards.get(board.id).title == "Data"
    assert rows(reader.widgets.data(made[0].id).frame) == [{"n": 0, "label": "row"}]
    assert editor.shares.revoke_link(link.id).HasField("revoke_time")
    with pytest.raises(UnauthenticatedError) as refused:
        reader.dashboards.get(board.id)
    assert refused.value.reason == "LINK_INVALID"
    with pytest.raises(ValueError, match="exactly one of user_id and role"):
        editor.shares.share(board.id, level=s.SHARE_LEVEL_VIEW)


def test_an_expired_token_is_replaced_and_the_call_succeeds(clients: Clients, mint: Mint, facility: str) -> None:
    issued = iter([mint("edna", "editor", facility, ttl_seconds=-120), mint("edna", "editor", facility)])
    token = CachedToken(lambda: next(issued))
    client = clients(token=token)
    board = client.dashboards.create(title="Fresh token", facility_id=facility)
    assert board.owner_id == "edna" and token.fetches == 2
    with pytest.raises(UnauthenticatedError) as caught:
        clients(token=mint("edna", "editor", facility, ttl_seconds=-120)).dashboards.get(board.id)
    assert caught.value.reason == "TOKEN_EXPIRED"


def test_the_async_client_on_the_real_server(server: ServerHandle, mint: Mint, facility: str) -> None:
    token = mint("ada", "editor", facility)
    tag = f"t{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[str], Any]:
        async with AsyncClient(server.address, token=token) as client:
            await client.wait_ready()
            for i in range(3):
                request = d.CreateDashboardRequest(
                    dashboard=d.Dashboard(title=f"A{i}", tags=[tag], facility_id=facility)
                )
                await client.call(rpcs.CREATE_DASHBOARD, request)
            listing = d.ListDashboardsRequest(tags=[tag], order_by="title", page_size=2)
            titles = [b.title async for b in client.pages(rpcs.LIST_DASHBOARDS, listing, "dashboards")]
            with pytest.raises(NotFoundError) as missing:
                await client.call(rpcs.GET_DASHBOARD, d.GetDashboardRequest(id=str(uuid.uuid4())))
            return titles, missing.value

    titles, missing = asyncio.run(scenario())
    assert titles == ["A0", "A1", "A2"]
    assert missing.reason == "DASHBOARD_NOT_FOUND"
