"""GetWidgetData and BatchGetWidgetData over real channels, on real PostgreSQL and Redis: how a
request resolves (access, versions, the order in which values merge, validation before any
lookup), where data comes from (memory / database / computed / stale), single-flight under a
stampede across two server instances, TTL expiry and max_age, stale-while-revalidate,
invalidation (new query version, view refresh, invalidate()), masking and facility isolation of
entries, a dead lock holder, and a Redis that dies and comes back while requests keep arriving."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
import pytest
import redis
from google.protobuf import duration_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from dashboard.v1 import widget_pb2_grpc
from server.auth.principal import Principal, Role
from server.config import Settings
from server.db.migrate import sync_url
from server.devtools.demo_data import install as install_demo_data
from server.queries.execute import _ROWS_NAME as ROWS_NAME
from server.queries.frame import frame_to_rows
from server.widgetdata import stats
from server.widgetdata.invalidations import channel_name, query_message
from server.widgetdata.key import data_key, generation_key, lock_key
from tests.harness.kit import Kit
from tests.harness.redis_cluster import sync_client
from tests.harness.redis_process import REDIS_SERVER, RedisProcess
from tests.harness.rpc import expect_failure, failure_of
from tests.harness.server import ServerHandle, start_in_thread

Code = grpc.StatusCode
MEMORY, DATABASE, COMPUTED, STALE = (
    w.DATA_SOURCE_MEMORY,
    w.DATA_SOURCE_DATABASE,
    w.DATA_SOURCE_COMPUTED,
    w.DATA_SOURCE_STALE,
)
NORTH, SOUTH = "north-general", "south-clinic"


def s(text: str) -> c.ParameterValue:
    return c.ParameterValue(string_value=text)


def string_param(name: str, default: str | None = None) -> q.ParameterSpec:
    spec = q.ParameterSpec(name=name, type=q.PARAMETER_TYPE_STRING)
    if default is not None:
        spec.default_value.CopyFrom(s(default))
    return spec


def rows(data: w.WidgetData) -> list[dict[str, Any]]:
    return frame_to_rows(data.frame)


@pytest.fixture(scope="module")
def demo(migrated: str) -> str:
    install_demo_data(migrated)
    return migrated


@pytest.fixture
def kit(queries, dashboards, widgets, auth, facility) -> Kit:
    return Kit(queries, dashboards, widgets, auth("alice", "editor", facility), facility)


@pytest.fixture
def north(queries, dashboards, widgets, auth, demo) -> Kit:
    return Kit(queries, dashboards, widgets, auth("nora", "editor", NORTH, permissions=("phi:read",)), NORTH)


@pytest.fixture(scope="module")
def dsn(migrated: str) -> Iterator[str]:
    url = sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)
    yield url
    # This module's widgets (several run seconds-long queries, some on purpose failing ones) are
    # not left due: a later module's worker claiming due widgets would spend its time on them.
    sql(url, "UPDATE widgets SET next_refresh_at = now() + interval '1 day' WHERE next_refresh_at IS NULL")


def sql(dsn: str, statement: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, args)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def cache_rows(dsn: str, query_id: str, *servers: ServerHandle) -> list[tuple[Any, ...]]:
    """The query's tier-2 rows, once `servers` have written what they computed (a server writes
    tier 2 just after its answer)."""
    for handle in servers:
        handle.run(handle.running.app.widget_data.cache.written())
    return sql(
        dsn,
        "SELECT cache_key, masking_level, facility_id, query_version FROM widget_data_cache WHERE query_id = %s",
        query_id,
    )


# --- resolution -------------------------------------------------------------------------------


def test_values_merge_in_order_and_are_validated_before_any_lookup(kit: Kit, auth, widgets) -> None:
    query = kit.query(
        "SELECT :p1 AS p1, :p2 AS p2, :p3 AS p3, :p4 AS p4, :p5 AS p5, :p6 AS p6, :n AS n",
        *(string_param(f"p{i}", "default") for i in range(1, 7)),
        q.ParameterSpec(
            name="n",
            type=q.PARAMETER_TYPE_INT,
            min=c.ParameterValue(int_value=0),
            max=c.ParameterValue(int_value=10),
            default_value=c.ParameterValue(int_value=1),
        ),
    )
    board = kit.board(
        d.DashboardFilter(name="f3", default_value=s("f3-default")),
        d.DashboardFilter(name="f4", default_value=s("f4-default")),
        d.DashboardFilter(name="f5"),
        d.DashboardFilter(name="f6"),
    )
    widget = kit.widget(
        board,
        query,
        parameter_values={f"p{i}": s("widget") for i in range(2, 7)},
        filter_bindings={"p3": "f3", "p4": "f4", "p5": "f5", "p6": "f6"},
    )
    request: dict[str, Any] = {
        "filter_values": {"f4": s("f4-request"), "f5": s("f5-request"), "f6": s("f6-request")},
        "cross_filters": [
            w.CrossFilterValue(filter_name="f5", value=s("cross")),
            w.CrossFilterValue(filter_name="f6", value=s("cross")),
        ],
        "parameter_values": {"p6": s("param")},
    }
    first = kit.data(widget.id, **request)
    expected = {"p1": "default", "p2": "widget", "p3": "f3-default", "p4": "f4-request", "p5": "cross", "p6": "param"}
    assert rows(first) == [{**expected, "n": 1}]
    assert first.source == COMPUTED and first.widget_id == widget.id and first.query_version == 1
    assert not first.masked
    # The widget's refresh interval (default 300 s) is the TTL.
    assert first.expire_time.seconds - first.compute_time.seconds == 300
    second = kit.data(widget.id, **request)
    assert second.source == MEMORY and second.frame == first.frame and second.compute_time == first.compute_time

    # A selection made in this very widget does not filter it.
    own = w.CrossFilterValue(filter_name="f5", value=s("own"), source_widget_id=widget.id)
    assert (
        rows(kit.data(widget.id, filter_values={"f5": s("f5-request")}, cross_filters=[own]))[0]["p5"] == "f5-request"
    )

    lookups = stats.memory_hits + stats.memory_misses
    expect_failure(
        lambda: kit.data(widget.id, parameter_values={"n": c.ParameterValue(int_value=99)}),
        Code.INVALID_ARGUMENT,
        field='parameter_values["n"]',
    )
    expect_failure(
        lambda: kit.data(widget.id, parameter_values={"nope": s("x")}),
        Code.INVALID_ARGUMENT,
        field='parameter_values["nope"]',
    )
    expect_failure(
        lambda: kit.data(widget.id, filter_values={"unknown": s("x")}),
        Code.INVALID_ARGUMENT,
        field='filter_values["unknown"]',
        reason="UNKNOWN_FILTER",
    )
    assert stats.memory_hits + stats.memory_misses == lookups, "invalid requests must not reach the cache"

    bare = kit.widget(board, None)
    expect_failure(lambda: kit.data(bare.id), Code.FAILED_PRECONDITION, reason="WIDGET_HAS_NO_QUERY")
    stranger = auth("mallory", "admin", f"fac-{uuid.uuid4().hex[:10]}")
    expect_failure(lambda: kit.data(widget.id, md=stranger), Code.NOT_FOUND, reason="WIDGET_NOT_FOUND")
    expect_failure(lambda: kit.data(str(uuid.uuid4())), Code.NOT_FOUND, reason="WIDGET_NOT_FOUND")


def test_published_snapshot_versions_and_batches(kit: Kit, auth, dashboards, widgets) -> None:
    query = kit.query("SELECT :v AS v", string_param("v", "query"))
    board = kit.board(visibility=d.VISIBILITY_PUBLIC)
    widget = kit.widget(board, query, parameter_values={"v": s("published")})
    other = kit.widget(board, query, parameter_values={"v": s("other")})
    published = dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=kit.md).published_version
    changed = w.Widget(id=widget.id, query=w.QueryBinding(query_id=query.id, parameter_values={"v": s("draft")}))
    widgets.UpdateWidget(w.UpdateWidgetRequest(widget=changed, update_mask={"paths": ["query"]}), metadata=kit.md)

    reader = auth("rita", "viewer", kit.facility)  # READ_PUBLISHED: the dashboard is public and published
    assert rows(kit.data(widget.id, md=reader)) == [{"v": "published"}]
    assert rows(kit.data(widget.id)) == [{"v": "draft"}]
    assert rows(kit.data(widget.id, dashboard_version=published)) == [{"v": "published"}]
    current = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=kit.md).version
    expect_failure(
        lambda: kit.data(widget.id, md=reader, dashboard_version=current),
        Code.NOT_FOUND,
        reason="DASHBOARD_VERSION_NOT_FOUND",
    )

    # Deleted since: the published snapshot still has it, for the reader of that snapshot.
    widgets.DeleteWidget(w.DeleteWidgetRequest(id=other.id), metadata=kit.md)
    assert rows(kit.data(other.id, md=reader)) == [{"v": "other"}]
    expect_failure(lambda: kit.data(other.id), Code.NOT_FOUND)

    batch = widgets.BatchGetWidgetData(
        w.BatchGetWidgetDataRequest(
            requests=[
                w.GetWidgetDataRequest(widget_id=widget.id, parameter_values={"v": s("b1")}),
                w.GetWidgetDataRequest(widget_id=widget.id),
                w.GetWidgetDataRequest(widget_id=widget.id, parameter_values={"v": s("b3")}),
            ]
        ),
        metadata=kit.md,
    )
    assert [rows(x)[0]["v"] for x in batch.data] == ["b1", "draft", "b3"]
    elsewhere = kit.widget(kit.board(), query)
    expect_failure(
        lambda: widgets.BatchGetWidgetData(
            w.BatchGetWidgetDataRequest(
                requests=[w.GetWidgetDataRequest(widget_id=widget.id), w.GetWidgetDataRequest(widget_id=elsewhere.id)]
            ),
            metadata=kit.md,
        ),
        Code.INVALID_ARGUMENT,
        field="requests[1].widget_id",
        reason="MIXED_DASHBOARDS",
    )


# --- freshness --------------------------------------------------------------------------------


def tier1_key(settings: Settings, query_id: str, cache_key: str) -> str:
    return data_key(settings.redis_prefix, query_id, cache_key)


def forget_tier0(server: ServerHandle) -> None:
    """What a Redis restart does to tier 0 (its subscription is lost): emptied. Tests that change
    the stored tiers behind the server's back do it too, as tier 0 only hears invalidations."""
    server.running.app.widget_data.cache.tier0.clear()


def test_ttl_expiry_max_age_and_tier_two(kit: Kit, settings: Settings, dsn: str, server: ServerHandle) -> None:
    query = kit.query("SELECT :v AS v, clock_timestamp() AS at", string_param("v", "x"))
    widget = kit.widget(kit.board(), query, refresh=10)
    first = kit.data(widget.id)
    assert first.source == COMPUTED
    assert first.expire_time.ToNanoseconds() - first.compute_time.ToNanoseconds() == 10 * 10**9
    assert kit.data(widget.id).source == MEMORY
    [(key, *_)] = cache_rows(dsn, query.id, server)
    client = redis.Redis.from_url(settings.redis_url)

    # Tier 1 lost (a Redis restart): tier 2 answers and refills tier 1.
    client.delete(tier1_key(settings, query.id, key))
    forget_tier0(server)
    assert kit.data(widget.id).source == DATABASE
    assert kit.data(widget.id).source == MEMORY

    # max_age tightens freshness: older data is recomputed, never served stale.
    time.sleep(0.01)
    tight = kit.data(widget.id, max_age=duration_pb2.Duration(nanos=5_000_000))
    assert tight.source == COMPUTED and tight.compute_time.ToNanoseconds() > first.compute_time.ToNanoseconds()

    # force_refresh skips the lookup.
    forced = kit.data(widget.id, force_refresh=True)
    assert forced.source == COMPUTED and forced.compute_time.ToNanoseconds() > tight.compute_time.ToNanoseconds()
    assert kit.data(widget.id).compute_time == forced.compute_time

    # Expired beyond the maximum staleness (3600 s): a miss.
    sql(
        dsn,
        "UPDATE widget_data_cache SET computed_at = now() - interval '2 hours',"
        " expires_at = now() - interval '2 hours' + interval '10 seconds' WHERE cache_key = %s",
        key,
    )
    client.delete(tier1_key(settings, query.id, key))
    forget_tier0(server)  # two hours later, its copy would have expired too
    assert kit.data(widget.id).source == COMPUTED
    client.close()


def test_the_ttl_setting_is_the_default_and_a_widgets_interval_rules(
    settings: Settings, migrated: str, auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TESSERA_CACHE_TTL_SECONDS=123: a widget created without refresh_interval gets it (its data
    # expires after it, the workers recompute it that often); a widget's own interval wins.
    own = Settings(**(settings.model_dump() | {"cache_ttl_seconds": 123}))
    monkeypatch.delenv("TESSERA_CACHE_TTL_SECONDS", raising=False)
    assert Settings(_env_file=None).cache_ttl_seconds == 300
    monkeypatch.setenv("TESSERA_CACHE_TTL_SECONDS", "77")
    assert Settings(_env_file=None).cache_ttl_seconds == 77
    handle = start_in_thread(own)
    try:
        with grpc.insecure_channel(handle.address) as channel:
            from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc

            facility = f"fac-{uuid.uuid4().hex[:10]}"
            kit = Kit(
                query_pb2_grpc.QueryServiceStub(channel),
                dashboard_pb2_grpc.DashboardServiceStub(channel),
                widget_pb2_grpc.WidgetServiceStub(channel),
                auth("alice", "editor", facility),
                facility,
            )
            board = kit.board()
            default = kit.widget(board, kit.query("SELECT 1 AS n"))
            explicit = kit.widget(board, kit.query("SELECT 2 AS n"), refresh=45)
            assert default.refresh_interval.seconds == 123
            assert explicit.refresh_interval.seconds == 45
            for widget, seconds in ((default, 123), (explicit, 45)):
                data = kit.data(widget.id)
                assert data.expire_time.ToSeconds() - data.compute_time.ToSeconds() == seconds
    finally:
        handle.stop()


def test_the_answer_does_not_wait_for_tier_two_and_shutdown_waits_for_it(
    kit: Kit, settings: Settings, dsn: str
) -> None:
    """A server's computation answers once tier 1 has the entry; tier 2 is written just after
    (here held up by a lock on its table), and a server that stops first finishes that write."""
    handle = start_in_thread(settings)
    channel = grpc.insecure_channel(handle.address)
    stopping = threading.Thread(target=handle.stop)
    try:
        query = kit.query("SELECT 41 + 1 AS answer")
        widget = kit.widget(kit.board(), query)
        request = w.GetWidgetDataRequest(widget_id=widget.id)
        with psycopg.connect(dsn) as blocker:
            blocker.execute("LOCK TABLE widget_data_cache IN SHARE MODE")  # reads pass, writes wait
            data = widget_pb2_grpc.WidgetServiceStub(channel).GetWidgetData(request, metadata=kit.md, timeout=10)
            assert data.source == COMPUTED and rows(data) == [{"answer": 42}]
            principal = Principal(subject="alice", role=Role.EDITOR, facilities=frozenset({kit.facility}))
            key = handle.run(handle.running.app.widget_data.key_for(principal, request))
            with redis.Redis.from_url(settings.redis_url) as client:
                assert client.exists(tier1_key(settings, query.id, key)) == 1
            time.sleep(0.2)
            assert cache_rows(dsn, query.id) == [], "the write went through the lock"
            stopping.start()
            time.sleep(0.5)
            assert stopping.is_alive(), "the server stopped without its tier-2 write"
            blocker.rollback()
        stopping.join(timeout=30)
        assert [r[0] for r in cache_rows(dsn, query.id)] == [key]
    finally:
        channel.close()
        if stopping.ident is None:
            handle.stop()
        else:
            stopping.join(timeout=30)


def test_stale_while_revalidate(kit: Kit, settings: Settings, dsn: str, server: ServerHandle) -> None:
    query = kit.query("SELECT clock_timestamp() AS at")
    widget = kit.widget(kit.board(), query, refresh=10)
    first = kit.data(widget.id)
    [(key, *_)] = cache_rows(dsn, query.id, server)
    sql(
        dsn,
        "UPDATE widget_data_cache SET computed_at = now() - interval '15 seconds',"
        " expires_at = now() - interval '5 seconds' WHERE cache_key = %s",
        key,
    )
    with redis.Redis.from_url(settings.redis_url) as client:
        client.delete(tier1_key(settings, query.id, key))
    before = stats.snapshot()
    stale = kit.data(widget.id)
    assert stale.source == STALE and stale.frame == first.frame
    assert stale.expire_time.ToNanoseconds() < time.time_ns()
    deadline = time.monotonic() + 10
    while True:
        fresh = kit.data(widget.id)
        if fresh.source in (MEMORY, DATABASE):
            break
        assert fresh.source == STALE and time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.02)
    assert fresh.compute_time.ToNanoseconds() > first.compute_time.ToNanoseconds()
    assert fresh.frame != first.frame
    after = stats.snapshot()
    assert after["executions"] - before["executions"] == 1
    assert after["background_refreshes"] - before["background_refreshes"] == 1


# --- invalidation -----------------------------------------------------------------------------


def test_new_query_version_view_refresh_and_invalidate(north: Kit, queries, server: ServerHandle) -> None:
    query = north.query("SELECT 'one' AS v")
    board = north.board()
    widget = north.widget(board, query)
    assert north.data(widget.id).source == COMPUTED
    assert north.data(widget.id).source == MEMORY

    updated = queries.UpdateQuery(
        q.UpdateQueryRequest(query=q.Query(id=query.id, sql="SELECT 'two' AS v"), update_mask={"paths": ["sql"]}),
        metadata=north.md,
    )
    assert updated.version == 2
    after = north.data(widget.id)
    assert after.source == COMPUTED and after.query_version == 2 and rows(after) == [{"v": "two"}]
    assert north.data(widget.id).source == MEMORY

    server.run(server.running.app.widget_data.invalidate(query.id))
    assert north.data(widget.id).source == COMPUTED
    assert north.data(widget.id).source == MEMORY

    view = north.query(
        "SELECT facility_id, count(*) AS n FROM demo.admissions GROUP BY facility_id",
        kind=q.QUERY_KIND_MATERIALIZED_VIEW,
        view_key_columns=["facility_id"],
    )
    on_view = north.widget(board, view)
    assert rows(north.data(on_view.id)) == [{"facility_id": NORTH, "n": 1500}]
    assert north.data(on_view.id).source == MEMORY
    queries.RefreshMaterializedView(q.RefreshMaterializedViewRequest(id=view.id), metadata=north.md)
    assert north.data(on_view.id).source == COMPUTED


def test_an_invalidation_by_another_process_reaches_this_one(north: Kit, settings: Settings) -> None:
    """The generation is read with the entry (one MGET, keyed by the generation this process saw
    last); a bump made elsewhere changes the key of the next read once its news (the
    invalidation channel, which empties tier 0 of the query) has arrived."""
    query = north.query("SELECT 'one' AS v")
    widget = north.widget(north.board(), query)
    assert north.data(widget.id).source == COMPUTED
    assert north.data(widget.id).source == MEMORY
    with redis.Redis.from_url(settings.redis_url) as client:
        # As another server's invalidate(): the bump, then the news of it for every tier 0.
        client.incr(generation_key(settings.redis_prefix, query.id))
        client.publish(channel_name(settings.redis_prefix), query_message(query.id))
    deadline = time.monotonic() + 1.0
    while (source := north.data(widget.id).source) == MEMORY and time.monotonic() < deadline:
        time.sleep(0.01)  # the news is on its way to this process
    assert source == COMPUTED
    assert north.data(widget.id).source == MEMORY


def test_a_forced_refresh_reads_the_generation_only_when_it_is_not_known(
    north: Kit, settings: Settings, server: ServerHandle
) -> None:
    """While the invalidation channel is heard, the generation this process last read is the
    generation (every bump's news drops it): a forced refresh goes straight to its lock. After a
    bump's news it reads the generation again, once, and stores under the new key."""
    cache = server.running.app.widget_data.cache
    tier1 = cache._tier1
    reads: list[str] = []
    real = tier1.generation

    async def counted(query_id: str) -> int:
        reads.append(query_id)
        return await real(query_id)

    query = north.query("SELECT clock_timestamp()::text AS at")
    widget = north.widget(north.board(), query)
    assert north.data(widget.id).source == COMPUTED  # the generation learnt with the entry
    tier1.generation = counted
    try:
        forced = north.data(widget.id, force_refresh=True)
        assert forced.source == COMPUTED and reads == []
        again = north.data(widget.id)
        assert again.source == MEMORY and rows(again) == rows(forced)

        heard = cache.epoch
        with redis.Redis.from_url(settings.redis_url) as client:
            client.incr(generation_key(settings.redis_prefix, query.id))
            client.publish(channel_name(settings.redis_prefix), query_message(query.id))
            deadline = time.monotonic() + 5
            while cache.epoch == heard and time.monotonic() < deadline:
                time.sleep(0.01)
            assert cache.epoch != heard, "the news of the bump never arrived"
            refreshed = north.data(widget.id, force_refresh=True)
            assert refreshed.source == COMPUTED and reads == [query.id]
            # The generation read is learnt: the next forced refresh goes straight to its lock.
            refreshed = north.data(widget.id, force_refresh=True)
            assert refreshed.source == COMPUTED and reads == [query.id]
            principal = Principal(subject="nora", role=Role.EDITOR, facilities=frozenset({NORTH}))
            key = server.run(
                server.running.app.widget_data.key_for(principal, w.GetWidgetDataRequest(widget_id=widget.id))
            )
            assert client.exists(tier1_key(settings, query.id, key)) == 1, "not stored under the new generation"
    finally:
        del tier1.generation
    latest = north.data(widget.id)
    assert latest.source == MEMORY and rows(latest) == rows(refreshed)


def test_a_generation_read_across_a_bumps_news_is_not_learnt(north: Kit, server: ServerHandle) -> None:
    """The news of a bump may arrive before the reply of a generation read that began earlier
    (another connection): that reply may predate the bump, so it is used once and not kept as
    the guess that the news just dropped."""
    cache = server.running.app.widget_data.cache
    tier1 = cache._tier1
    reads: list[str] = []
    real = tier1.generation

    async def news_first(query_id: str) -> int:
        generation = await real(query_id)
        reads.append(query_id)
        cache.on_invalidation(query_message(query_id))  # heard before this reply is used
        return generation

    query = north.query("SELECT clock_timestamp()::text AS at")
    widget = north.widget(north.board(), query)
    tier1.generation = news_first
    try:
        assert north.data(widget.id, force_refresh=True).source == COMPUTED and reads == [query.id]
        assert north.data(widget.id, force_refresh=True).source == COMPUTED and reads == [query.id] * 2
    finally:
        del tier1.generation
    assert north.data(widget.id).source == MEMORY  # an ordinary read learns it again


def test_pinned_versions_and_snapshots_each_read_their_own_query(north: Kit, queries, dashboards, widgets) -> None:
    """The widget row, its dashboard and the query it binds are read together; a pinned version, a
    snapshot bound to another query, and one bound as the row is, each still read their own."""
    query = north.query("SELECT 'one' AS v")
    queries.UpdateQuery(
        q.UpdateQueryRequest(query=q.Query(id=query.id, sql="SELECT 'two' AS v"), update_mask={"paths": ["sql"]}),
        metadata=north.md,
    )
    other = north.query("SELECT 'other' AS v")
    board = north.board()
    pinned = north.widget(board, query, query_version=1)
    latest = north.widget(board, query)
    first = north.data(pinned.id)
    assert rows(first) == [{"v": "one"}] and first.query_version == 1
    assert rows(north.data(latest.id)) == [{"v": "two"}]

    published = dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=north.md).published_version
    rebound = w.Widget(id=pinned.id, query=w.QueryBinding(query_id=other.id))
    widgets.UpdateWidget(w.UpdateWidgetRequest(widget=rebound, update_mask={"paths": ["query"]}), metadata=north.md)
    assert rows(north.data(pinned.id)) == [{"v": "other"}]
    assert rows(north.data(pinned.id, dashboard_version=published)) == [{"v": "one"}]
    assert rows(north.data(latest.id, dashboard_version=published)) == [{"v": "two"}]


# --- masking and facilities -------------------------------------------------------------------


def test_masking_level_separates_entries(north: Kit, auth, dsn: str, server: ServerHandle) -> None:
    query = north.query(
        "SELECT patient_name, unit FROM demo.admissions ORDER BY id LIMIT 3",
        sensitive_columns=[q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_REDACT)],
    )
    widget = north.widget(north.board(), query)
    phi = auth("nora", "editor", NORTH, permissions=("phi:read",))
    plain = auth("nora", "editor", NORTH)
    for _ in range(2):
        # Whichever reads first, neither ever gets the other's entry.
        masked_read = north.data(widget.id, md=plain)
        real_read = north.data(widget.id, md=phi)
        assert masked_read.masked and not real_read.masked
        assert {r["patient_name"] for r in rows(masked_read)} == {"[REDACTED]"}
        assert "[REDACTED]" not in {r["patient_name"] for r in rows(real_read)}
        assert [r["unit"] for r in rows(masked_read)] == [r["unit"] for r in rows(real_read)]
    assert masked_read.source == MEMORY and real_read.source == MEMORY
    assert sorted(level for _, level, _, _ in cache_rows(dsn, query.id, server)) == [0, 1]


def test_facility_isolation_of_entries(
    queries, dashboards, widgets, auth, demo, dsn: str, server: ServerHandle
) -> None:
    sql_text = "SELECT facility_id, count(*) AS n FROM demo.admissions GROUP BY facility_id"
    admin = auth("ada", "admin", NORTH, SOUTH)
    read = {}
    for facility in (NORTH, SOUTH):
        kit = Kit(queries, dashboards, widgets, admin, facility)
        query = kit.query(sql_text)
        widget = kit.widget(kit.board(), query)
        read[facility] = (query, widget, kit)
        assert rows(kit.data(widget.id)) == [{"facility_id": facility, "n": 1500}]
        assert kit.data(widget.id).source == MEMORY
        assert [r[2] for r in cache_rows(dsn, query.id, server)] == [facility]
    north_only = auth("nick", "admin", NORTH)
    _, south_widget, south_kit = read[SOUTH]
    expect_failure(lambda: south_kit.data(south_widget.id, md=north_only), Code.NOT_FOUND)


# --- single-flight ----------------------------------------------------------------------------


def test_dead_lock_holder_is_recovered_within_its_lease(kit: Kit, server: ServerHandle, settings: Settings) -> None:
    query = kit.query("SELECT :v AS v", string_param("v", "x"))
    widget = kit.widget(kit.board(), query)
    request = w.GetWidgetDataRequest(widget_id=widget.id)
    principal = Principal("alice", Role.EDITOR, frozenset({kit.facility}))
    key = server.run(server.running.app.widget_data.key_for(principal, request))
    with redis.Redis.from_url(settings.redis_url) as client:
        # A holder that died mid-computation: its lock stays until the lease (here 1.5 s) runs out.
        assert client.set(lock_key(settings.redis_prefix, query.id, key), "dead-holder", nx=True, px=1500)
        started = time.monotonic()
        data = kit.data(widget.id)
        elapsed = time.monotonic() - started
    assert data.source == COMPUTED and rows(data) == [{"v": "x"}]
    assert 1.2 < elapsed < 3.0, elapsed


@dataclass
class Pair:
    redis: RedisProcess | None  # None: the session's Redis Cluster, not to be killed
    servers: list[ServerHandle]
    stubs: list[Any]
    redis_url: str
    prefix: str


# The tests that take `pair` through this run on one Redis and on a 3-master Redis Cluster.
ON_EACH_REDIS = pytest.mark.parametrize("pair", ["redis", "cluster"], indirect=True)


@pytest.fixture(scope="module")
def pair(settings: Settings, migrated: str, request: pytest.FixtureRequest) -> Iterator[Pair]:
    """Two server instances sharing PostgreSQL and a dedicated Redis (or the session's Redis
    Cluster, with `pair` parametrized "cluster"), with a short lease (3 s), so a computation
    outlives it: only renewal keeps the lock. (A lease must cover the event-loop lag of 200
    requests on three event loops sharing one GIL, on a core another test process shares: at
    2 s, a renewal once came 1.4 s late.) Without tier 0:
    these tests are about tiers 1 and 2 and the single-flight between instances
    (tests/integration/test_tier0_processes.py has tier 0 across processes)."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed")
    process: RedisProcess | None = None
    if getattr(request, "param", "redis") == "cluster":
        url = request.getfixturevalue("redis_cluster").url
    else:
        process = RedisProcess()
        process.start()
        url = process.url
    prefix = f"pair-{uuid.uuid4().hex[:6]}:"
    dedicated = settings.model_copy(
        update={"redis_url": url, "redis_prefix": prefix, "cache_lock_lease_seconds": 3.0, "cache_tier0_max_bytes": 0}
    )
    servers = [start_in_thread(dedicated), start_in_thread(dedicated)]
    channels = [grpc.insecure_channel(h.address) for h in servers]
    try:
        yield Pair(process, servers, [widget_pb2_grpc.WidgetServiceStub(ch) for ch in channels], url, prefix)
    finally:
        for ch in channels:
            ch.close()
        for handle in servers:
            handle.stop()
        if process is not None:
            process.kill()


class ActivitySampler(threading.Thread):
    """Counts query executions on the database side: distinct (backend, transaction start) of the
    data-source sessions running the executor's statement (the query as a subquery named
    tessera_rows), sampled every few milliseconds."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.seen: set[tuple[int, Any]] = set()
        self.done = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.done.is_set():
                for pid, started in conn.execute(
                    "SELECT pid, xact_start FROM pg_stat_activity WHERE application_name = 'tessera-queries'"
                    " AND datname = current_database() AND state = 'active' AND query LIKE %s",
                    (f"%{ROWS_NAME}%",),
                ):
                    self.seen.add((pid, started))
                time.sleep(0.005)


@ON_EACH_REDIS
def test_hits_a_lost_entry_and_an_invalidation_across_instances(
    pair: Pair, auth, dsn: str, facility: str, queries, dashboards, widgets
) -> None:
    """The read path's multi-key commands (the generation and the entry in one MGET) and the
    single-flight scripts, on one Redis and on a cluster (where they need the query's hash tag)."""
    md = auth("cleo", "editor", facility)
    kit = Kit(queries, dashboards, widgets, md, facility)
    query = kit.query("SELECT :v AS v, clock_timestamp() AS at", string_param("v", "x"))
    widget = kit.widget(kit.board(), query)
    request = w.GetWidgetDataRequest(widget_id=widget.id)
    first, second = pair.stubs
    computed = first.GetWidgetData(request, metadata=md, timeout=30)
    assert computed.source == COMPUTED and rows(computed)[0]["v"] == "x"
    assert second.GetWidgetData(request, metadata=md, timeout=30).source == MEMORY
    [(key, *_)] = cache_rows(dsn, query.id, *pair.servers)
    with sync_client(pair.redis_url) as client:
        assert client.exists(data_key(pair.prefix, query.id, key)) == 1
        client.delete(data_key(pair.prefix, query.id, key))  # tier 1 lost: tier 2 answers, refills
        assert second.GetWidgetData(request, metadata=md, timeout=30).source == DATABASE
        assert first.GetWidgetData(request, metadata=md, timeout=30).source == MEMORY
        client.incr(generation_key(pair.prefix, query.id))  # an invalidation by another process
    recomputed = second.GetWidgetData(request, metadata=md, timeout=30)
    assert recomputed.source == COMPUTED and recomputed.compute_time != computed.compute_time
    assert first.GetWidgetData(request, metadata=md, timeout=30).source == MEMORY
    # A computation stores its result, releases its lock and announces the key in one script
    # (on a cluster, the script's node passes the message on to every node).
    with sync_client(pair.redis_url) as client:
        subscription = client.pubsub()
        subscription.subscribe(channel_name(pair.prefix))
        assert subscription.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
        forced = second.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id, force_refresh=True), metadata=md)
        assert forced.source == COMPUTED
        announced = subscription.get_message(timeout=5)
        subscription.close()
        assert announced is not None and announced["type"] == "message"
        assert announced["data"].startswith(f"k:{query.id.lower()}:".encode())
        assert client.keys(lock_key(pair.prefix, query.id, "*")) == []


@ON_EACH_REDIS
def test_stampede_runs_the_query_once_across_instances(
    pair: Pair, auth, dsn: str, facility: str, queries, dashboards, widgets
) -> None:
    md = auth("sam", "editor", facility)
    kit = Kit(queries, dashboards, widgets, md, facility)
    marker = f"stampede-{uuid.uuid4().hex[:8]}"
    # 4-7 s of work on these machines: longer than the lease (renewal must hold the lock) and long
    # enough for every request to arrive while it runs.
    series = 30_000_000
    query = kit.query(f"SELECT '{marker}' AS marker, sum(g) AS total FROM generate_series(1, {series}) AS g")
    widget = kit.widget(kit.board(), query)
    request = w.GetWidgetDataRequest(widget_id=widget.id)
    sampler = ActivitySampler(dsn)
    sampler.start()
    before = stats.snapshot()
    started = time.monotonic()
    futures: list[Future[w.WidgetData]] = [
        pair.stubs[i % 2].GetWidgetData.future(request, metadata=md, timeout=60) for i in range(200)
    ]
    results = [f.result() for f in futures]
    elapsed = time.monotonic() - started
    time.sleep(0.05)
    sampler.done.set()
    sampler.join()
    after = stats.snapshot()

    assert after["executions"] - before["executions"] == 1
    assert after["lease_renewals"] > before["lease_renewals"], "the computation outlived its lease unrenewed"
    assert len(sampler.seen) == 1, f"the database saw {len(sampler.seen)} executions"
    assert len(cache_rows(dsn, query.id, *pair.servers)) == 1
    assert len({r.frame.SerializeToString() for r in results}) == 1
    assert rows(results[0]) == [{"marker": marker, "total": series * (series + 1) // 2}]
    assert {r.source for r in results} <= {COMPUTED, MEMORY}
    assert len({r.compute_time.ToNanoseconds() for r in results}) == 1
    assert elapsed < 20


@ON_EACH_REDIS
def test_a_failing_computation_fails_its_waiters_without_rerunning(
    pair: Pair, auth, facility: str, queries, dashboards, widgets
) -> None:
    md = auth("fay", "editor", facility, permissions=("phi:read",))
    kit = Kit(queries, dashboards, widgets, md, facility)
    # Fails (division by zero) only after ~2.5 s of work: every request arrives while it runs
    # (a request arriving after the failure would run it again, under the lock).
    query = kit.query("SELECT count(*) / 0 AS x FROM generate_series(1, 10000000) AS g")
    widget = kit.widget(kit.board(), query)
    request = w.GetWidgetDataRequest(widget_id=widget.id)
    before = stats.executions
    futures = [pair.stubs[i % 2].GetWidgetData.future(request, metadata=md, timeout=60) for i in range(60)]
    failures = []
    for future in futures:
        with pytest.raises(grpc.RpcError) as caught:
            future.result()
        failures.append(caught.value)
    assert stats.executions - before == 1
    assert {(f.code(), failure_of(f).reason) for f in failures} == {(Code.INVALID_ARGUMENT, "QUERY_FAILED")}
    messages = [f.details() for f in failures]
    # PostgreSQL's own text only for the caller whose principal ran it; the others get the SQLSTATE.
    assert sum("division by zero" in m for m in messages) == 1, messages
    assert sum("SQLSTATE 22012" in m for m in messages) == len(messages) - 1


def test_a_message_that_may_quote_data_is_shown_only_to_whom_it_may_be(
    pair: Pair, auth, facility: str, queries, dashboards, widgets
) -> None:
    """PostgreSQL quotes the offending value ('invalid input syntax for type integer: "<value>"'):
    the caller whose principal ran the query sees it with PHI access; without, only the reason and
    the SQLSTATE; the waiters of that computation (whoever they are) only the reason and the
    SQLSTATE."""
    secret = f"secret-{uuid.uuid4().hex[:8]}"
    reader = auth("phil", "editor", facility, permissions=("phi:read",))
    other = auth("olga", "admin", facility)  # reads every dashboard of the facility; no PHI access
    kit = Kit(queries, dashboards, widgets, reader, facility)

    def failing_widget(seconds_of_work: int) -> str:
        rows_of_work = 4_000_000 * seconds_of_work
        sql_text = (
            f"SELECT CAST(CASE WHEN count(*) > 0 THEN '{secret}' END AS int) AS x "
            f"FROM generate_series(1, {max(rows_of_work, 1)}) AS g"
        )
        return kit.widget(kit.board(), kit.query(sql_text)).id

    def error(md: Any, widget_id: str) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            pair.stubs[0].GetWidgetData(w.GetWidgetDataRequest(widget_id=widget_id), metadata=md, timeout=60)
        return caught.value

    # Alone (nobody waits): the caller's own PHI access decides.
    with_phi, without_phi = error(reader, failing_widget(0)), error(other, failing_widget(0))
    for failure in (with_phi, without_phi):
        assert (failure.code(), failure_of(failure).reason) == (Code.INVALID_ARGUMENT, "QUERY_FAILED")
    assert secret in with_phi.details()
    assert secret not in without_phi.details() and "SQLSTATE 22P02" in without_phi.details()
    assert {k: v for k, v in failure_of(without_phi).metadata.items() if k != "correlation_id"} == {"sqlstate": "22P02"}

    # Waiters of one computation, readers with PHI access among them: the value only for the holder.
    widget_id = failing_widget(2)
    request = w.GetWidgetDataRequest(widget_id=widget_id)
    futures = [
        pair.stubs[i % 2].GetWidgetData.future(request, metadata=(reader, other)[i % 2], timeout=60) for i in range(20)
    ]
    failures = []
    for future in futures:
        with pytest.raises(grpc.RpcError) as caught:
            future.result()
        failures.append(caught.value)
    assert {failure_of(f).reason for f in failures} == {"QUERY_FAILED"}
    quoting = [f for f in failures if secret in f.details()]
    assert len(quoting) <= 1, "only the holder's own caller may see the value"
    assert all("SQLSTATE 22P02" in f.details() for f in failures if f not in quoting)


def test_redis_dies_and_comes_back_while_requests_arrive(
    pair: Pair, auth, facility: str, queries, dashboards, widgets
) -> None:
    md = auth("rob", "editor", facility)
    kit = Kit(queries, dashboards, widgets, md, facility)
    query = kit.query("SELECT :v AS v, sum(g) AS total FROM generate_series(1, 200000) AS g", string_param("v", "x"))
    widget = kit.widget(kit.board(), query)
    first, second = pair.stubs
    assert pair.redis is not None, "kills its own Redis"

    def read(stub: Any, **values: str) -> w.WidgetData:
        parameters = {k: s(v) for k, v in values.items()}
        request = w.GetWidgetDataRequest(widget_id=widget.id, parameter_values=parameters)
        return stub.GetWidgetData(request, metadata=md, timeout=30)

    assert read(first).source == COMPUTED
    assert read(first).source == MEMORY
    for n in range(5):  # what the background reads: warm, so that it executes nothing meanwhile
        read(first, v=f"bg-{n}")

    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_reading() -> None:
        n = 0
        while not stop.is_set():
            try:
                read(pair.stubs[n % 2], v=f"bg-{n % 5}")
            except grpc.RpcError as exc:  # every failure is one too many
                failures.append(exc)
            n += 1

    background = threading.Thread(target=keep_reading, daemon=True)
    background.start()
    try:
        time.sleep(0.2)
        pair.redis.kill()
        # Tier 2 has it (the generation is 0 either way): served from PostgreSQL.
        assert read(first).source == DATABASE
        assert read(second).source == DATABASE
        # A cold key with Redis down: single-flight through PostgreSQL advisory locks.
        before = stats.executions
        futures = [
            pair.stubs[i % 2].GetWidgetData.future(
                w.GetWidgetDataRequest(widget_id=widget.id, parameter_values={"v": s("cold")}), metadata=md, timeout=30
            )
            for i in range(40)
        ]
        cold = [f.result() for f in futures]
        assert stats.executions - before == 1
        assert {r.source for r in cold} <= {COMPUTED, DATABASE}
        assert len({r.frame.SerializeToString() for r in cold}) == 1

        pair.redis.start()
        time.sleep(1.2)  # the cache retries Redis a second after its last failure
        assert read(first).source in (DATABASE, MEMORY)  # a tier-2 hit refills tier 1
        assert read(first).source == MEMORY
        assert read(second).source == MEMORY
    finally:
        stop.set()
        background.join(timeout=30)
    assert not failures, [f"{f.code()}: {f.details()}" for f in failures]  # type: ignore[attr-defined]
