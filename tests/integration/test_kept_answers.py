"""Kept dashboard answers (server/dashboards/kept.py) on a real PostgreSQL, followed through its
notifications. List pages: one asked again reads nothing; every change to a dashboard or its
shares, made by anyone anywhere, is seen within a second, a commit made through the process at
once; a page is only ever served to the caller it was made for; nothing is kept while the
notifications are not heard; favorites_first pages are never kept. GetDashboard: the same for a
dashboard with its widgets, decided again for every caller, and a write's LSN sent back holds
the next read to it; the refresh scheduler's moves announce nothing (migration 0017). A change
drops only what it touches: pages of its facility, its dashboard (migration 0018)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy import text

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import widget_pb2 as w
from server.auth.principal import Principal, Role
from server.config import Settings
from server.dashboards.service import DashboardDomain
from server.db import replica as db_replica
from server.db.engine import Database, make_engine
from server.db.listen import Listener
from server.errors import NotFound
from server.widgetdata.definitions import CHANNEL, Definitions
from tests.harness.followed import TERMINATE, listener_for, lost_event
from tests.harness.kit import Kit

T = TypeVar("T")
APPLICATION = f"tessera-pages-test-{uuid.uuid4().hex[:6]}"


class CountedDatabase(Database):
    """The database, counting the reads a list makes (its statements run on the driver, below
    SQLAlchemy's events)."""

    lists_read = 0

    async def current_read(self, read: Callable[[Any], Awaitable[T]]) -> T:
        self.lists_read += 1
        return await super().current_read(read)

    async def stale_read(self, read: Callable[[Any], Awaitable[T]], *, autocommit: bool = False) -> T:
        self.lists_read += 1
        return await super().stale_read(read, autocommit=autocommit)


@dataclass
class Kept:
    db: CountedDatabase
    definitions: Definitions
    listener: Listener
    domain: DashboardDomain

    @property
    def statements(self) -> int:
        return self.db.lists_read

    async def listed(self, principal: Principal, **request: Any) -> d.ListDashboardsResponse:
        return await self.domain.list_dashboards(principal, d.ListDashboardsRequest(**request))

    async def titles(self, principal: Principal, **request: Any) -> list[str]:
        return [b.title for b in (await self.listed(principal, **request)).dashboards]

    async def sql(self, statement: str, **values: object) -> None:
        """A change made outside this domain (another server, a script): only its notification
        can tell the kept pages."""
        engine = make_engine(self.db.engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(statement), values)
        finally:
            await engine.dispose()


@pytest.fixture
def kit(queries, dashboards, widgets, auth, facility) -> Kit:  # type: ignore[no-untyped-def]
    return Kit(queries, dashboards, widgets, auth("dora", "editor", facility), facility)


@pytest.fixture
async def kept(migrated: str, settings: Settings) -> AsyncIterator[Kept]:
    db = CountedDatabase(make_engine(migrated, pool_size=2, max_overflow=2))
    definitions = Definitions(db)
    listener = listener_for(migrated, definitions, APPLICATION)
    try:
        yield Kept(db, definitions, listener, DashboardDomain(db, definitions, settings.kept_answers_max_bytes))
    finally:
        await listener.stop()
        await db.dispose()


def _board(kit: Kit, title: str, **fields: Any) -> d.Dashboard:
    return kit.dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=kit.facility, title=title, **fields)),
        metadata=kit.md,
    )


def _principal(subject: str, role: Role, facility: str) -> Principal:
    return Principal(subject=subject, role=role, facilities=frozenset({facility}))


async def _within_a_second(check: Callable[[], Any]) -> float:
    """Seconds until `await check()` holds; fails past one second."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < 1.0, "not seen within a second"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def _listening(kept: Kept) -> None:
    kept.listener.start()
    started = time.monotonic()
    while not kept.definitions.listening:
        assert time.monotonic() - started < 5.0, "not listening within 5 s"
        await asyncio.sleep(0.01)


async def test_a_page_asked_again_reads_nothing_and_is_the_same_answer(kept: Kept, kit: Kit) -> None:
    dora = _principal("dora", Role.EDITOR, kit.facility)
    for i in range(3):
        _board(kit, f"board {i}")
    before_listening = await kept.listed(dora, page_size=2)
    assert len(kept.domain._pages or ()) == 0  # nothing kept before the notifications are heard

    await _listening(kept)
    first = await kept.listed(dora, page_size=2)
    assert first == before_listening and first.next_page_token
    ran = kept.statements
    again = await kept.listed(dora, page_size=2)
    assert again == first and kept.statements == ran
    # The next page is another key: it is read once, then kept too.
    second = await kept.listed(dora, page_size=2, page_token=first.next_page_token)
    assert [b.title for b in second.dashboards] == ["board 0"] and kept.statements > ran
    ran = kept.statements
    assert await kept.listed(dora, page_size=2, page_token=first.next_page_token) == second
    assert kept.statements == ran


async def test_changes_made_anywhere_are_seen_within_a_second(kept: Kept, kit: Kit) -> None:
    """A title, a share granted and a share revoked, each by a statement of another connection."""
    dora = _principal("dora", Role.EDITOR, kit.facility)
    erin = _principal("erin", Role.VIEWER, kit.facility)  # sees only what is shared with her
    board = _board(kit, "before")
    board_id = uuid.UUID(board.id)
    await _listening(kept)
    assert await kept.titles(dora) == ["before"] and await kept.titles(erin) == []

    await kept.sql("UPDATE dashboards SET title = 'after' WHERE id = :id", id=board_id)
    await _within_a_second(lambda: _equals(kept.titles(dora), ["after"]))

    await kept.sql(
        "INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)"
        " VALUES (:id, :facility, 'user', 'erin', 2, 'dora')",
        id=board_id,
        facility=kit.facility,
    )
    await _within_a_second(lambda: _equals(kept.titles(erin), ["after"]))

    await kept.sql("DELETE FROM dashboard_shares WHERE dashboard_id = :id AND grantee = 'erin'", id=board_id)
    await _within_a_second(lambda: _equals(kept.titles(erin), []))
    assert await kept.titles(dora) == ["after"]


async def _equals(titles: Any, expected: list[str]) -> bool:
    return bool(await titles == expected)


async def test_a_callers_own_commit_is_seen_by_its_next_list_at_once(kept: Kept, kit: Kit) -> None:
    dora = _principal("dora", Role.EDITOR, kit.facility)
    board_id = uuid.UUID(_board(kit, "t0").id)
    await _listening(kept)
    for attempt in range(1, 20):
        assert await kept.titles(dora) == [f"t{attempt - 1}"]  # kept
        token = db_replica.reader.set("dora")
        try:
            async with kept.db.transaction() as conn:
                await conn.execute(
                    text("UPDATE dashboards SET title = :title WHERE id = :id"),
                    {"title": f"t{attempt}", "id": board_id},
                )
            assert await kept.titles(dora) == [f"t{attempt}"]  # no waiting: the list waits for its marker
        finally:
            db_replica.reader.reset(token)


async def test_a_page_is_only_served_to_the_caller_it_was_made_for(kept: Kept, kit: Kit) -> None:
    """Same shape, same parameters but the principal: the policy decided for its maker only."""
    board = _board(kit, "draft")
    kit.dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id, version=board.version), metadata=kit.md)
    kit.dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=board.id, title="newer draft"), update_mask={"paths": ["title"]}
        ),
        metadata=kit.md,
    )
    await _listening(kept)
    editor = _principal("dora", Role.EDITOR, kit.facility)
    viewer = _principal("vic", Role.VIEWER, kit.facility)
    other_facility = _principal("dora", Role.EDITOR, f"{kit.facility}-other")
    assert await kept.titles(editor, facility_id=kit.facility) == ["newer draft"]
    assert await kept.titles(viewer, facility_id=kit.facility) == []  # not shared: no role share to viewers
    assert await kept.titles(other_facility, facility_id=kit.facility) == []
    assert await kept.titles(editor, facility_id=kit.facility) == ["newer draft"]


async def test_nothing_is_kept_or_served_while_the_notifications_are_not_heard(kept: Kept, kit: Kit) -> None:
    dora = _principal("dora", Role.EDITOR, kit.facility)
    _board(kit, "one")
    await _listening(kept)
    await kept.listed(dora)
    assert len(kept.domain._pages or ()) == 1

    lost = lost_event(kept.listener)
    await kept.sql(TERMINATE, name=APPLICATION)
    await asyncio.wait_for(lost.wait(), 5)
    ran = kept.statements
    await kept.listed(dora)
    await kept.listed(dora)
    assert kept.statements == ran + 2  # each read the database
    assert len(kept.domain._pages or ()) == 0

    await _listening(kept)  # reconnected: keeping again, from empty
    await kept.listed(dora)
    ran = kept.statements
    await kept.listed(dora)
    assert kept.statements == ran


async def test_favorites_first_pages_are_never_kept(kept: Kept, kit: Kit) -> None:
    """Favorites are not followed by the notifications."""
    dora = _principal("dora", Role.EDITOR, kit.facility)
    _board(kit, "a")
    await _listening(kept)
    await kept.listed(dora, favorites_first=True)
    ran = kept.statements
    await kept.listed(dora, favorites_first=True)
    assert kept.statements > ran and len(kept.domain._pages or ()) == 0


# --- GetDashboard's kept dashboards -----------------------------------------------------------


async def _got(kept: Kept, principal: Principal, board_id: str) -> d.Dashboard:
    return await kept.domain.get(principal, board_id)


async def test_a_dashboard_asked_again_reads_nothing_and_changes_made_anywhere_are_seen(kept: Kept, kit: Kit) -> None:
    """A change made through the API of another server (the session's) is seen at once by a
    caller that sends its write's LSN back; one made by a statement within a second."""
    dora = _principal("dora", Role.EDITOR, kit.facility)
    erin = _principal("erin", Role.VIEWER, kit.facility)
    board = _board(kit, "board")
    widget = kit.widget(board, None)
    await _listening(kept)
    first = await _got(kept, dora, board.id)
    assert [x.id for x in first.widgets] == [widget.id]
    ran = kept.statements
    assert await _got(kept, dora, board.id) == first and kept.statements == ran

    _, call = kit.widgets.UpdateWidget.with_call(
        w.UpdateWidgetRequest(widget=w.Widget(id=widget.id, title="by the api"), update_mask={"paths": ["title"]}),
        metadata=kit.md,
    )
    lsn = dict(call.trailing_metadata())[db_replica.LSN_METADATA]
    token = db_replica.read_after.set(db_replica.parse_lsn(lsn))
    try:
        assert [x.title for x in (await _got(kept, dora, board.id)).widgets] == ["by the api"]
    finally:
        db_replica.read_after.reset(token)

    # A widget changed by a statement of another connection.
    await kept.sql("UPDATE widgets SET title = 'renamed' WHERE id = :id", id=uuid.UUID(widget.id))
    await _within_a_second(lambda: _widget_titles(kept, dora, board.id, ["renamed"]))

    # A share granted, then revoked: decided again on every read from the kept row.
    with pytest.raises(NotFound):
        await _got(kept, erin, board.id)
    await kept.sql(
        "INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)"
        " VALUES (:id, :facility, 'user', 'erin', 2, 'dora')",
        id=uuid.UUID(board.id),
        facility=kit.facility,
    )
    await _within_a_second(lambda: _readable(kept, erin, board.id))
    await kept.sql("DELETE FROM dashboard_shares WHERE dashboard_id = :id AND grantee = 'erin'", id=uuid.UUID(board.id))
    await _within_a_second(lambda: _not_readable(kept, erin, board.id))

    # The dashboard deleted.
    await kept.sql("DELETE FROM dashboards WHERE id = :id", id=uuid.UUID(board.id))
    await _within_a_second(lambda: _not_readable(kept, dora, board.id))


async def _widget_titles(kept: Kept, principal: Principal, board_id: str, expected: list[str]) -> bool:
    return [x.title for x in (await _got(kept, principal, board_id)).widgets] == expected


async def _widget_count(kept: Kept, principal: Principal, board_id: str, expected: int) -> bool:
    return len((await _got(kept, principal, board_id)).widgets) == expected


async def _readable(kept: Kept, principal: Principal, board_id: str) -> bool:
    try:
        await _got(kept, principal, board_id)
    except NotFound:
        return False
    return True


async def _not_readable(kept: Kept, principal: Principal, board_id: str) -> bool:
    return not await _readable(kept, principal, board_id)


async def test_a_kept_dashboard_is_decided_for_each_caller(kept: Kept, kit: Kit) -> None:
    """One kept dashboard, public and published, then changed: its owner and a user it is shared
    with see the draft, another viewer of the facility the published version only, and a caller
    of another facility nothing."""
    board = _board(kit, "published", visibility=d.VISIBILITY_PUBLIC)
    kit.dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id, version=board.version), metadata=kit.md)
    kit.dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(dashboard=d.Dashboard(id=board.id, title="draft"), update_mask={"paths": ["title"]}),
        metadata=kit.md,
    )
    await kept.sql(
        "INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)"
        " VALUES (:id, :facility, 'user', 'erin', 1, 'dora')",
        id=uuid.UUID(board.id),
        facility=kit.facility,
    )
    await _listening(kept)
    dora = _principal("dora", Role.EDITOR, kit.facility)
    erin = _principal("erin", Role.VIEWER, kit.facility)  # a VIEW share: the current dashboard
    vic = _principal("vic", Role.VIEWER, kit.facility)  # public: the published version only
    for _ in range(2):
        assert (await _got(kept, dora, board.id)).title == "draft"
        assert (await _got(kept, erin, board.id)).title == "draft"
        shown = await _got(kept, vic, board.id)
        assert shown.title == "published" and shown.version == shown.published_version == board.version
        with pytest.raises(NotFound):
            await _got(kept, _principal("dora", Role.EDITOR, f"{kit.facility}-other"), board.id)
    assert len(kept.domain._boards or ()) == 1


async def test_a_schedule_move_announces_nothing(migrated: str, kit: Kit) -> None:
    """Migration 0017: the sweep moving next_refresh_at sends no notification (kept widget
    definitions and dashboards stay); any other change to the widget still does."""
    widget = kit.widget(_board(kit, "scheduled"), kit.query("SELECT 1 AS n"))
    dsn = migrated.replace("postgresql+psycopg://", "postgresql://", 1)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener:
        await listener.execute(f"LISTEN {CHANNEL}")
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as writer:
            await writer.execute(
                "UPDATE widgets SET next_refresh_at = now() + interval '1 hour' WHERE id = %s", (widget.id,)
            )
            # A sync payload of no process: every listener ignores it.
            await writer.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "sync:schedule-test:0:0:"))
            await writer.execute("UPDATE widgets SET title = 'moved' WHERE id = %s", (widget.id,))
        heard = [note.payload async for note in listener.notifies(timeout=5, stop_after=3)]
    # With migration 0018's scope: the dashboard whose widgets changed.
    assert heard == ["sync:schedule-test:0:0:", f"widget:{widget.id}", f"board:{widget.dashboard_id}"]


# --- scoped: a change drops only what it touches (migration 0018) ------------------------------


async def _heard(moved: Callable[[], bool]) -> None:
    """Until the news of a change has arrived (`moved`), within a second."""
    started = time.monotonic()
    while not moved():
        assert time.monotonic() - started < 1.0, "the change was not heard within a second"
        await asyncio.sleep(0.01)


async def test_a_change_in_another_facility_leaves_a_page_kept(kept: Kept, kit: Kit) -> None:
    """A list shows only dashboards of the caller's facilities: a dashboard or a share changed
    in another facility leaves the caller's pages kept, one in its own drops them."""
    dora = _principal("dora", Role.EDITOR, kit.facility)
    board_id = uuid.UUID(_board(kit, "mine").id)
    other = f"{kit.facility}-other"
    await _listening(kept)
    assert await kept.titles(dora) == ["mine"]
    ran = kept.statements

    await kept.sql(
        "INSERT INTO dashboards (facility_id, owner_id, title) VALUES (:facility, 'olga', 'theirs')", facility=other
    )
    await _heard(lambda: kept.definitions.facility_epoch(other) == 1)
    await kept.sql(
        "INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)"
        " SELECT id, facility_id, 'user', 'dora', 2, 'olga' FROM dashboards WHERE facility_id = :facility",
        facility=other,
    )
    await _heard(lambda: kept.definitions.facility_epoch(other) == 2)
    assert await kept.titles(dora) == ["mine"] and kept.statements == ran  # still kept

    await kept.sql("UPDATE dashboards SET title = 'renamed' WHERE id = :id", id=board_id)
    await _within_a_second(lambda: _equals(kept.titles(dora), ["renamed"]))
    # A caller of both facilities depends on both.
    both = Principal(subject="dora", role=Role.EDITOR, facilities=frozenset({kit.facility, other}))
    assert await kept.titles(both) == ["renamed", "theirs"]
    await kept.sql("UPDATE dashboards SET title = 'theirs, renamed' WHERE facility_id = :facility", facility=other)
    await _within_a_second(lambda: _equals(kept.titles(both), ["theirs, renamed", "renamed"]))  # newest first
    # A dashboard moved out of the caller's facility: announced for the facility it left too.
    assert await kept.titles(dora) == ["renamed"]
    await kept.sql("UPDATE dashboards SET facility_id = :to WHERE id = :id", to=other, id=board_id)
    await _within_a_second(lambda: _equals(kept.titles(dora), []))


async def test_a_change_to_another_dashboard_leaves_a_dashboard_kept(kept: Kept, kit: Kit) -> None:
    """A kept dashboard depends on its row, its shares and its widgets only."""
    dora = _principal("dora", Role.EDITOR, kit.facility)
    mine, theirs = _board(kit, "mine"), _board(kit, "theirs")
    widget, elsewhere = kit.widget(mine, None), kit.widget(theirs, None)
    await _listening(kept)
    first = await _got(kept, dora, mine.id)
    ran = kept.statements

    await kept.sql("UPDATE widgets SET title = 'moved on' WHERE id = :id", id=uuid.UUID(elsewhere.id))
    await kept.sql("UPDATE dashboards SET title = 'theirs, renamed' WHERE id = :id", id=uuid.UUID(theirs.id))
    await _heard(lambda: kept.definitions.board_epoch(theirs.id) == 2)
    assert await _got(kept, dora, mine.id) == first and kept.statements == ran  # still kept

    await kept.sql("UPDATE widgets SET title = 'renamed' WHERE id = :id", id=uuid.UUID(widget.id))
    await _within_a_second(lambda: _widget_titles(kept, dora, mine.id, ["renamed"]))
    # A widget moved to another dashboard leaves the one and joins the other.
    await _got(kept, dora, theirs.id)
    await kept.sql(
        "UPDATE widgets SET dashboard_id = :to WHERE id = :id", to=uuid.UUID(theirs.id), id=uuid.UUID(widget.id)
    )
    await _within_a_second(lambda: _widget_titles(kept, dora, mine.id, []))
    await _within_a_second(lambda: _widget_count(kept, dora, theirs.id, 2))


def test_past_max_scopes_every_epoch_goes_and_everythings_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-facility and per-dashboard epochs are bounded: past the bound they are reset, and
    the epoch of everything moves so that no stamp read before can come round again."""
    monkeypatch.setattr("server.widgetdata.definitions.MAX_SCOPES", 2)
    changes = Definitions(Database(make_engine("postgresql+psycopg://unused@127.0.0.1/unused")))
    changes.on_notify("facility:a")
    changes.on_notify("facility:b")
    changes.on_notify("facility:a")
    assert (changes.everything_epoch, changes.facility_epoch("a"), changes.facility_epoch("b")) == (0, 2, 1)
    changes.on_notify("facility:c")
    assert (changes.everything_epoch, changes.facility_epoch("a"), changes.facility_epoch("c")) == (1, 0, 0)
    changes.on_notify("board:x")
    changes.on_notify("dashboard:y")
    changes.on_notify("board:z")
    assert (changes.everything_epoch, changes.board_epoch("x"), changes.board_epoch("z")) == (2, 0, 0)


async def _wal_position(kept: Kept) -> int:
    async with kept.db.statements() as conn:
        position = db_replica.parse_lsn(await conn.scalar(text("SELECT pg_current_wal_lsn()::text")))
    assert position is not None
    return position


async def test_the_heard_position_is_past_every_change_heard(kept: Kept, kit: Kit) -> None:
    """With a read replica, an answer read there is kept only when the replica had replayed past
    every change heard (`Definitions.heard_position`): a marker sent after a change was heard
    comes back with a WAL position at or past the change's commit. One marker answers every
    reader asking meanwhile, and none is sent while nothing new was heard."""
    definitions = kept.definitions
    assert await definitions.heard_position() is None  # not listening: nothing is known
    await _listening(kept)
    first = await definitions.heard_position()
    assert first is not None
    markers = definitions._marker
    assert await definitions.heard_position() == first and definitions._marker == markers

    epoch = definitions.epoch
    _board(kit, "placed")
    committed_by = await _wal_position(kept)  # read after the change's commit
    await _heard(lambda: definitions.epoch > epoch)
    positions = await asyncio.gather(*(definitions.heard_position() for _ in range(5)))
    assert len(set(positions)) == 1 and positions[0] is not None and positions[0] >= committed_by > first
    assert definitions._marker == markers + 1
