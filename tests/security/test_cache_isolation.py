"""Cache isolation (issue 6, adversarial suite): the same widget read by a PHI and a non-PHI
principal, and the same SQL read in two facilities, never returns the other's entry. Checked in
the responses and, directly, in both tiers: the Redis envelope under each key and the
`widget_data_cache` row under it, whichever reader filled them and in whichever order."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import psycopg
import pytest
import redis

from dashboard.v1 import common_pb2
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.auth.principal import PHI_READ, Principal, Role
from server.config import Settings
from server.db.migrate import sync_url
from server.devtools.demo_data import install as install_demo_data
from server.queries.frame import frame_to_rows
from server.widgetdata.entry import decode
from server.widgetdata.key import data_key
from tests.harness.rpc import expect_failure

NORTH, SOUTH = "north-general", "south-clinic"
SQL = "SELECT facility_id, patient_name, unit FROM demo.admissions ORDER BY id LIMIT 5"
MEMORY, DATABASE, COMPUTED = w.DATA_SOURCE_MEMORY, w.DATA_SOURCE_DATABASE, w.DATA_SOURCE_COMPUTED


@pytest.fixture(scope="module")
def dsn(migrated: str) -> str:
    install_demo_data(migrated)
    return sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)


def _names(frame: common_pb2.DataFrame) -> set[Any]:
    return {r["patient_name"] for r in frame_to_rows(frame)}


def _facilities(frame: common_pb2.DataFrame) -> set[Any]:
    return {r["facility_id"] for r in frame_to_rows(frame)}


def test_masking_levels_and_facilities_never_share_an_entry(
    server: Any, settings: Settings, dsn: str, queries: Any, dashboards: Any, widgets: Any, auth: Any
) -> None:
    subject = f"cache-{uuid.uuid4().hex[:6]}"
    # The same person, with and without phi:read, for both facilities; and one-facility readers.
    phi_md = auth(subject, "admin", NORTH, SOUTH, permissions=(PHI_READ,))
    plain_md = auth(subject, "admin", NORTH, SOUTH)
    phi = Principal(subject, Role.ADMIN, frozenset({NORTH, SOUTH}), frozenset({PHI_READ}))
    plain = Principal(subject, Role.ADMIN, frozenset({NORTH, SOUTH}))

    query_of: dict[str, str] = {}
    widget_of: dict[str, str] = {}
    for facility in (NORTH, SOUTH):  # the same SQL text in both facilities
        query = queries.CreateQuery(
            q.CreateQueryRequest(
                query=q.Query(
                    facility_id=facility,
                    name=f"cache {uuid.uuid4().hex[:6]}",
                    sql=SQL,
                    sensitive_columns=[q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_HASH)],
                )
            ),
            metadata=phi_md,
        )
        board = dashboards.CreateDashboard(
            d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="cache")), metadata=phi_md
        )
        query_of[facility] = query.id
        widget_of[facility] = widgets.CreateWidget(
            w.CreateWidgetRequest(
                widget=w.Widget(
                    dashboard_id=board.id,
                    title="patients",
                    position=w.GridPosition(x=0, y=0, width=4, height=2),
                    table=w.TableConfig(),
                    query=w.QueryBinding(query_id=query.id),
                )
            ),
            metadata=phi_md,
        ).id

    def read(facility: str, md: Any) -> w.WidgetData:
        request = w.GetWidgetDataRequest(widget_id=widget_of[facility])
        return widgets.GetWidgetData(request, metadata=md, timeout=30)

    # Adversarial orders: in NORTH the masked reader fills the cache first, in SOUTH the PHI reader.
    order = {NORTH: ((plain_md, True), (phi_md, False)), SOUTH: ((phi_md, False), (plain_md, True))}
    served: dict[tuple[str, bool], w.WidgetData] = {}
    for facility, readers in order.items():
        for md, masked in readers:
            first = read(facility, md)
            assert first.source == COMPUTED and first.masked is masked
            served[(facility, masked)] = first
        for md, masked in readers:  # hits now: still each its own entry
            again = read(facility, md)
            assert again.source == MEMORY and again.masked is masked
            assert again.frame == served[(facility, masked)].frame

    real: dict[str, set[Any]] = {}
    for facility in (NORTH, SOUTH):
        unmasked, hidden = served[(facility, False)].frame, served[(facility, True)].frame
        real[facility] = _names(unmasked)
        assert _facilities(unmasked) == _facilities(hidden) == {facility}
        assert len(real[facility]) == 5 and not real[facility] & _names(hidden)
        assert all(len(str(v)) == 16 for v in _names(hidden))  # HASH: 16 hex digits, no name

    # Both tiers, read directly, under each reader's key.
    def key_for(principal: Principal, facility: str) -> str:
        request = w.GetWidgetDataRequest(widget_id=widget_of[facility])
        return str(server.run(server.running.app.widget_data.key_for(principal, request)))

    keys = {(f, masked): key_for(plain if masked else phi, f) for f in (NORTH, SOUTH) for masked in (True, False)}
    assert len(set(keys.values())) == 4, "two readers or two facilities share a key"
    server.run(server.running.app.widget_data.cache.written())  # tier 2 is written just after each answer
    cache = redis.Redis.from_url(settings.redis_url)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for (facility, masked), key in keys.items():
                raw = cache.get(data_key(settings.redis_prefix, query_of[facility], key))
                assert raw is not None, f"no tier-1 entry for {facility} masked={masked}"
                entry = decode(raw)
                tier1 = common_pb2.DataFrame.FromString(entry.frame)
                row = conn.execute(
                    "SELECT facility_id, masking_level, frame FROM widget_data_cache WHERE cache_key = %s", (key,)
                ).fetchone()
                assert row is not None, f"no tier-2 entry for {facility} masked={masked}"
                tier2 = common_pb2.DataFrame.FromString(bytes(row[2]))
                assert entry.masked is masked and row[1] == (1 if masked else 0) and row[0] == facility
                for frame in (tier1, tier2):
                    assert _facilities(frame) == {facility}
                    names = _names(frame)
                    if masked:
                        assert not names & (real[NORTH] | real[SOUTH]), "a masked entry holds a name"
                        assert frame.columns[1].masked
                    else:
                        assert names == real[facility]
                        assert not any(c.masked for c in frame.columns)
    finally:
        cache.close()

    # Tier 1 gone (a Redis restart): tier 2 answers, each reader still its own entry. A restart
    # also ends tier 0's subscription, which empties it: done here by hand.
    cache = redis.Redis.from_url(settings.redis_url)
    try:
        for (facility, _), k in keys.items():
            cache.delete(data_key(settings.redis_prefix, query_of[facility], k))
    finally:
        cache.close()
    server.running.app.widget_data.cache.tier0.clear()
    for facility in (NORTH, SOUTH):
        for md, masked in order[facility]:
            again = read(facility, md)
            assert again.source == DATABASE and again.masked is masked
            assert again.frame == served[(facility, masked)].frame

    # A reader of one facility never gets the other facility's entry, even by its widget id.
    north_only = auth(subject, "admin", NORTH, permissions=(PHI_READ,))
    expect_failure(lambda: read(SOUTH, north_only), grpc.StatusCode.NOT_FOUND)
    assert _facilities(read(NORTH, north_only).frame) == {NORTH}
