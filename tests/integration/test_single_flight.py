"""The single-flight lock on real Redis and PostgreSQL, at the seam between a reader's lookup and
its lock: what it finds there once the lock is taken (server/widgetdata/flight.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from dashboard.v1 import common_pb2
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from server.db.engine import Database, make_engine
from server.redis_client import make_redis
from server.widgetdata.entry import Entry, Freshness, classify
from server.widgetdata.flight import SingleFlight
from server.widgetdata.key import lock_key
from server.widgetdata.request import CacheRequest
from server.widgetdata.tier1 import RedisTier
from server.widgetdata.tier2 import DatabaseTier

MAX_STALE = 60.0


def _classify(entry: Entry, request: CacheRequest, now: float) -> Freshness:
    return classify(entry, now, ttl=request.ttl, max_age=request.max_age, max_stale=MAX_STALE)


@pytest.fixture
async def flight(migrated: str, settings: Settings) -> AsyncIterator[tuple[SingleFlight, RedisTier]]:
    db = Database(make_engine(migrated, pool_size=2, max_overflow=0))
    redis = make_redis(settings.redis_url)
    tier1 = RedisTier(redis, settings.redis_prefix, MAX_STALE, time.time)
    single = SingleFlight(
        db,
        tier1,
        DatabaseTier(db),
        lease_seconds=5.0,
        wait_limit_seconds=10.0,
        classify=_classify,
        announcement=lambda request: (f"{settings.redis_prefix}test-channel", request.key),
        clock=time.time,
    )
    try:
        yield single, tier1
    finally:
        await redis.aclose()
        await db.dispose()


async def test_a_lock_taken_after_another_holder_finished_serves_that_result(
    flight: tuple[SingleFlight, RedisTier],
) -> None:
    """A reader whose lookup missed just before another holder stored its result takes the lock
    and finds that result in the same round trip: it computes nothing and releases the lock. A
    forced refresh, which reads no entry, computes."""
    single, tier1 = flight
    request = CacheRequest(
        key=f"k-{uuid.uuid4().hex}",
        query_id=str(uuid.uuid4()),  # no such query: the forced refresh's tier-2 write is refused, and logged
        query_version=1,
        facility_id="north-general",
        masking_level=0,
        widget_id=None,
        ttl=60.0,
    )
    now = time.time()
    stored = common_pb2.DataFrame(row_count=1)
    entry = Entry(frame=stored.SerializeToString(), computed_at=now, expires_at=now + 60, query_version=1, masked=False)
    await tier1.put(request, entry)  # the other holder's result, after this reader's lookup
    computed: list[float] = []

    async def compute() -> tuple[common_pb2.DataFrame, bool]:
        computed.append(time.time())
        return common_pb2.DataFrame(row_count=2), False

    found, source = await single.run(request, compute, now)
    assert computed == [] and source == w.DATA_SOURCE_COMPUTED
    assert found.frame == entry.frame and found.computed_at == pytest.approx(entry.computed_at, abs=1e-5)
    assert await tier1.redis.exists(lock_key(tier1.prefix, request.query_id, request.key)) == 0

    forced, _ = await single.run(replace(request, force_refresh=True), compute, time.time())
    assert len(computed) == 1 and common_pb2.DataFrame.FromString(forced.frame).row_count == 2
    assert await tier1.redis.exists(lock_key(tier1.prefix, request.query_id, request.key)) == 0
