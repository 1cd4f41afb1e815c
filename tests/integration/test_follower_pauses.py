"""A late check pauses a follower; it does not lose it. On a real PostgreSQL (the LISTEN
connection's backend stopped with SIGSTOP) and a real Redis (every client held by CLIENT PAUSE):
while the check is late nothing kept is served, nothing is emptied or reconnected, what was
notified meanwhile is applied before serving resumes, and serving resumes by itself once a check
is answered promptly again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text

from server.db.engine import Database, make_engine
from server.db.listen import Listener
from server.widgetdata.definitions import CHANNEL, Definitions
from server.widgetdata.invalidations import Subscriber, query_message
from server.widgetdata.resolve import load_definition
from server.widgetdata.tier0 import Tier0
from tests.harness.kit import Kit
from tests.harness.redis_process import RedisProcess, own_redis

APPLICATION = f"tessera-pause-test-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def kit(queries, dashboards, widgets, auth, facility) -> Kit:  # type: ignore[no-untyped-def]
    return Kit(queries, dashboards, widgets, auth("paula", "editor", facility), facility)


@pytest.fixture
async def db(migrated: str) -> AsyncIterator[Database]:
    database = Database(make_engine(migrated, pool_size=2, max_overflow=2))
    yield database
    await database.dispose()


async def _until(check: Callable[[], bool], limit: float = 10.0) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < limit, "not within the limit"
        await asyncio.sleep(0.01)


async def _keep(db: Database, definitions: Definitions, widget_id: uuid.UUID) -> None:
    epoch = definitions.epoch
    async with db.statements() as conn:
        loaded = await load_definition(conn, widget_id)
    assert loaded is not None
    definitions.keep(widget_id, loaded, epoch)


async def test_a_stalled_listen_backend_pauses_kept_definitions_and_loses_nothing(
    migrated: str, db: Database, kit: Kit
) -> None:
    board = kit.board()
    changed = uuid.UUID(kit.widget(board, kit.query("SELECT 1 AS n")).id)
    unchanged = uuid.UUID(kit.widget(kit.board(), kit.query("SELECT 2 AS n")).id)
    definitions = Definitions(db)
    events: list[str] = []

    def lost() -> None:
        events.append("lost")
        definitions.on_lost()

    listener = Listener(
        migrated,
        CHANNEL,
        on_notify=definitions.on_notify,
        on_listening=definitions.on_listening,
        on_lost=lost,
        on_paused=definitions.on_paused,
        on_resumed=definitions.on_resumed,
        application_name=APPLICATION,
    )
    listener.start()
    try:
        await _until(lambda: definitions.listening)
        await _keep(db, definitions, changed)
        await _keep(db, definitions, unchanged)
        async with db.statements() as conn:
            pid = await conn.scalar(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"), {"name": APPLICATION}
            )
        os.kill(pid, signal.SIGSTOP)
        try:
            await _until(lambda: listener.paused, limit=5)
            assert await definitions.get(unchanged) is None  # kept, not served
            async with db.transaction() as conn:  # its notification waits behind the stalled backend
                await conn.execute(text("UPDATE widgets SET title = 'changed' WHERE id = :id"), {"id": changed})
            await asyncio.sleep(1.0)
            assert listener.paused and await definitions.get(unchanged) is None
        finally:
            os.kill(pid, signal.SIGCONT)
        await _until(lambda: not listener.paused and definitions.listening)
        assert events == []  # never lost, never reconnected
        assert await definitions.get(changed) is None  # the change heard before serving again
        assert await definitions.get(unchanged) is not None  # the rest kept through the pause
        assert listener.pauses == 1
    finally:
        await listener.stop()


@pytest.fixture
def paused_redis() -> Iterator[RedisProcess]:
    """CLIENT PAUSE ALL holds every client of a server: a Redis nobody else uses."""
    with own_redis() as process:
        yield process


async def test_a_redis_that_answers_late_pauses_tier0_and_keeps_it(paused_redis: RedisProcess) -> None:
    channel = f"pause-test-{uuid.uuid4().hex[:6]}"
    tier0 = Tier0(max_bytes=1_000_000, clock=time.monotonic)
    heard: list[str] = []
    events: list[str] = []
    subscriber = Subscriber(
        paused_redis.url,
        channel,
        on_message=heard.append,
        on_subscribed=lambda: (events.append("subscribed"), tier0.enable()),
        on_lost=lambda: (events.append("lost"), tier0.disable()),
        on_paused=tier0.pause,
        on_resumed=tier0.resume,
    )
    admin = aioredis.Redis.from_url(paused_redis.url)
    subscriber.start()
    try:
        await _until(lambda: tier0.serving)
        await asyncio.sleep(1.2)  # quiet past PING_SECONDS: a ping is under way or due
        await admin.execute_command("CLIENT", "PAUSE", "2500", "ALL")
        await _until(lambda: subscriber.paused, limit=5)
        assert not tier0.serving
        await _until(lambda: not subscriber.paused and tier0.serving)
        await admin.publish(channel, query_message("q-after-pause"))
        await _until(lambda: heard == [query_message("q-after-pause")])  # the same subscription
        assert events == ["subscribed"] and subscriber.pauses == 1
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
        await subscriber.stop()
