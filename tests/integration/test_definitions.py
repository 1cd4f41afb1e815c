"""Kept widget definitions (server/widgetdata/definitions.py) on a real PostgreSQL: nothing is kept
or served until the LISTEN connection is up; a change to the widget, its dashboard's shares or its
query's versions drops what was kept (migration 0016's triggers); a load older than a change is
not kept; a lost LISTEN connection drops everything and stops keeping until it is back; a caller's
own commit is always seen by its next read."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from dashboard.v1 import common_pb2
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.auth.principal import Principal, Role
from server.db import replica as db_replica
from server.db.engine import Database, make_engine
from server.db.listen import Listener
from server.errors import InvalidArgument, NotFound
from server.widgetdata.definitions import Definitions
from server.widgetdata.entry import Entry
from server.widgetdata.request import CacheRequest
from server.widgetdata.resolve import KeptResolutions, load_definition, resolve_kept
from server.widgetdata.tier2 import DatabaseTier
from tests.harness.followed import TERMINATE, listener_for, lost_event
from tests.harness.kit import Kit

cv = common_pb2.ParameterValue
APPLICATION = f"tessera-listen-test-{uuid.uuid4().hex[:6]}"


@dataclass
class Kept:
    db: Database
    definitions: Definitions
    listener: Listener


@pytest.fixture
def kit(queries, dashboards, widgets, auth, facility) -> Kit:  # type: ignore[no-untyped-def]
    return Kit(queries, dashboards, widgets, auth("dora", "editor", facility), facility)


@pytest.fixture
async def kept(migrated: str) -> AsyncIterator[Kept]:
    db = Database(make_engine(migrated, pool_size=2, max_overflow=2))
    definitions = Definitions(db)
    listener = listener_for(migrated, definitions, APPLICATION)
    try:
        yield Kept(db, definitions, listener)
    finally:
        await listener.stop()
        await db.dispose()


async def _until(check: Callable[[], bool], limit: float = 5.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < limit, "not within the limit"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def _load_and_keep(kept: Kept, widget_id: uuid.UUID) -> None:
    epoch = kept.definitions.epoch
    async with kept.db.statements() as conn:
        definition = await load_definition(conn, widget_id)
    assert definition is not None
    kept.definitions.keep(widget_id, definition, epoch)


async def _sql(kept: Kept, statement: str, **values: object) -> None:
    async with kept.db.transaction() as conn:
        await conn.execute(text(statement), values)


async def test_nothing_is_kept_before_listening_then_changes_drop_what_was_kept(kept: Kept, kit: Kit) -> None:
    query = kit.query("SELECT 1 AS n")
    board = kit.board()
    widget_id = uuid.UUID(kit.widget(board, query).id)
    other_id = uuid.UUID(kit.widget(kit.board(), kit.query("SELECT 2 AS n")).id)
    definitions = kept.definitions

    await _load_and_keep(kept, widget_id)
    assert len(definitions) == 0 and await definitions.get(widget_id) is None  # not listening yet

    kept.listener.start()
    await _until(lambda: definitions.listening)
    await _load_and_keep(kept, widget_id)
    await _load_and_keep(kept, other_id)
    found = await definitions.get(widget_id)
    assert found is not None and found.query is not None and found.query.id == query.id

    # The widget changes: it goes, the other stays.
    await _sql(kept, "UPDATE widgets SET title = 'renamed' WHERE id = :id", id=widget_id)
    assert await _until(lambda: widget_id not in definitions._kept) < 1.0
    assert await definitions.get(other_id) is not None

    # Its dashboard's shares change.
    await _load_and_keep(kept, widget_id)
    await _sql(
        kept,
        "INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)"
        " VALUES (:board, :facility, 'user', 'someone', 1, 'dora')",
        board=uuid.UUID(board.id),
        facility=kit.facility,
    )
    assert await _until(lambda: widget_id not in definitions._kept) < 1.0

    # A new version of its query.
    await _load_and_keep(kept, widget_id)
    kit.queries.UpdateQuery(
        q.UpdateQueryRequest(query=q.Query(id=query.id, sql="SELECT 3 AS n"), update_mask={"paths": ["sql"]}),
        metadata=kit.md,
    )
    assert await _until(lambda: widget_id not in definitions._kept) < 1.0
    await _load_and_keep(kept, widget_id)
    renewed = await definitions.get(widget_id)
    assert renewed is not None and renewed.query is not None and renewed.query.version == 2
    assert renewed.widget.title == "renamed"


async def test_a_load_older_than_a_change_is_not_kept(kept: Kept, kit: Kit) -> None:
    widget_id = uuid.UUID(kit.widget(kit.board(), kit.query("SELECT 1 AS n")).id)
    definitions = kept.definitions
    kept.listener.start()
    await _until(lambda: definitions.listening)
    epoch = definitions.epoch
    async with kept.db.statements() as conn:
        stale = await load_definition(conn, widget_id)
    assert stale is not None
    await _sql(kept, "UPDATE widgets SET title = 'newer' WHERE id = :id", id=widget_id)
    await _until(lambda: definitions.epoch != epoch)
    definitions.keep(widget_id, stale, epoch)
    assert await definitions.get(widget_id) is None


async def test_a_lost_listen_connection_drops_everything_until_it_is_back(kept: Kept, kit: Kit) -> None:
    widget_id = uuid.UUID(kit.widget(kit.board(), kit.query("SELECT 1 AS n")).id)
    definitions = kept.definitions
    kept.listener.start()
    await _until(lambda: definitions.listening)
    await _load_and_keep(kept, widget_id)
    assert await definitions.get(widget_id) is not None

    lost = lost_event(kept.listener)
    await _sql(kept, TERMINATE, name=APPLICATION)
    await asyncio.wait_for(lost.wait(), 5)
    assert len(definitions) == 0 and await definitions.get(widget_id) is None
    await _load_and_keep(kept, widget_id)  # not kept while not listening
    assert len(definitions) == 0

    await _until(lambda: definitions.listening)  # reconnected: keeping again, from empty
    await _load_and_keep(kept, widget_id)
    assert await definitions.get(widget_id) is not None


async def test_a_callers_own_commit_is_seen_by_its_next_read(kept: Kept, kit: Kit) -> None:
    """No waiting for the notification: the read itself waits until its marker came back."""
    widget_id = uuid.UUID(kit.widget(kit.board(), kit.query("SELECT 1 AS n")).id)
    definitions = kept.definitions
    kept.listener.start()
    await _until(lambda: definitions.listening)
    for attempt in range(20):
        await _load_and_keep(kept, widget_id)
        token = db_replica.reader.set("dora")
        try:
            await _sql(kept, "UPDATE widgets SET title = :title WHERE id = :id", title=f"t{attempt}", id=widget_id)
            assert await definitions.get(widget_id) is None  # at once, in the same task
        finally:
            db_replica.reader.reset(token)
        await _until(lambda: widget_id not in definitions._kept)


async def test_a_kept_resolution_is_reused_per_request_and_definition_never_past_the_access_check(
    kept: Kept, kit: Kit
) -> None:
    """KeptResolutions keeps what merging and binding gave a request of a kept definition; the
    access decision is still made on every read, and a reloaded definition is resolved anew."""
    query = kit.query(
        "SELECT :n::int AS n", q.ParameterSpec(name="n", type=q.PARAMETER_TYPE_INT, default_value=cv(int_value=1))
    )
    widget_id = uuid.UUID(kit.widget(kit.board(), query).id)
    async with kept.db.statements() as conn:
        definition = await load_definition(conn, widget_id)
    assert definition is not None
    resolutions = KeptResolutions()
    reader = Principal(subject="dora", role=Role.EDITOR, facilities=frozenset({kit.facility}))

    def request(n: int) -> w.GetWidgetDataRequest:
        return w.GetWidgetDataRequest(widget_id=str(widget_id), parameter_values={"n": cv(int_value=n)})

    first = resolve_kept(reader, request(2), definition, resolutions)
    assert first is not None and first.bound == {"n": 2}
    assert resolve_kept(reader, request(2), definition, resolutions) is first
    other = resolve_kept(reader, request(3), definition, resolutions)
    assert other is not None and other is not first and other.bound == {"n": 3}

    # An equal definition loaded again is another one: resolved anew, never found by identity.
    async with kept.db.statements() as conn:
        reloaded = await load_definition(conn, widget_id)
    assert reloaded is not None
    again = resolve_kept(reader, request(2), reloaded, resolutions)
    assert again is not None and again is not first and again.bound == first.bound

    # A caller of another facility is refused though the resolution is kept.
    stranger = Principal(subject="sam", role=Role.EDITOR, facilities=frozenset({"elsewhere"}))
    with pytest.raises(NotFound):
        resolve_kept(stranger, request(2), definition, resolutions)

    # A request bind() refuses is refused every time, never kept.
    wrong = w.GetWidgetDataRequest(widget_id=str(widget_id), parameter_values={"n": cv(string_value="x")})
    for _ in range(2):
        with pytest.raises(InvalidArgument):
            resolve_kept(reader, wrong, definition, resolutions)


async def test_a_computations_tier2_write_survives_its_widget_or_query_deleted_meanwhile(kept: Kept, kit: Kit) -> None:
    """The write runs on the driver (server/db/compiled.py): the widget gone, the row is kept
    without its widget reference; the query gone, nothing is written and nothing is raised."""
    query = kit.query("SELECT 1 AS n")
    widget_id = kit.widget(kit.board(), query).id
    tier = DatabaseTier(kept.db)
    now = time.time()
    entry = Entry(frame=b"\x0a\x00", computed_at=now, expires_at=now + 60, query_version=1, masked=False)

    def request(key: str) -> CacheRequest:
        return CacheRequest(
            key=key,
            query_id=query.id,
            query_version=1,
            facility_id=kit.facility,
            masking_level=0,
            widget_id=widget_id,
            ttl=60.0,
        )

    async def stored(key: str) -> list[tuple[object, ...]]:
        async with kept.db.statements() as conn:
            found = await conn.execute(
                text("SELECT widget_id::text, row_count FROM widget_data_cache WHERE cache_key = :key"), {"key": key}
            )
            return [tuple(row) for row in found.all()]

    first = f"k-{uuid.uuid4().hex}"
    await tier.write(request(first), entry, 1)
    assert await stored(first) == [(widget_id, 1)]

    await _sql(kept, "DELETE FROM widgets WHERE id = :id", id=uuid.UUID(widget_id))
    second = f"k-{uuid.uuid4().hex}"
    await tier.write(request(second), entry, 2)
    assert await stored(second) == [(None, 2)]

    await _sql(kept, "DELETE FROM widget_data_cache WHERE query_id = :id", id=uuid.UUID(query.id))
    await _sql(kept, "DELETE FROM widget_queries WHERE id = :id", id=uuid.UUID(query.id))
    third = f"k-{uuid.uuid4().hex}"
    await tier.write(request(third), entry, 3)
    assert await stored(third) == []
