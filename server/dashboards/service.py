"""The dashboard domain: create, read, list, update, delete, publish, versions, restore."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf import field_mask_pb2
from sqlalchemy import (
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import dashboard_pb2
from server import idempotency, pagination
from server.access.policy import (
    Access,
    DashboardFacts,
    dashboard_access,
    facility_for_create,
    require_role,
    uuid_or_none,
    visibility_params,
    visibility_shape,
)
from server.auth.principal import Principal, Role
from server.dashboards.access import dashboard_facts, dashboard_row, decide, load_dashboard
from server.dashboards.convert import (
    dashboard_etag,
    dashboard_from_row,
    filters_json,
    header_from_text,
    layout_json,
    metadata_json,
)
from server.dashboards.kept import (
    MAX_BOARDS,
    MAX_PAGES,
    Changes,
    Kept,
    KeptBoard,
    PageKey,
    board_stamp,
    page_key,
    page_stamp,
)
from server.dashboards.listing import (
    ORDERINGS,
    ListRow,
    ListShape,
    ListStatements,
    list_row_facts,
    list_row_message,
)
from server.dashboards.versions import (
    current_widgets,
    known_snapshot,
    load_snapshot,
    record_version,
    version_from_row,
)
from server.dashboards.widget_convert import columns_of
from server.db.engine import Database
from server.db.replica import fallback_error
from server.db.schema import (
    dashboard_versions,
    dashboards,
    widget_queries,
    widgets,
)
from server.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ViolationCollector,
)
from server.protojson import from_json
from tessera_client.formats import zone

T = TypeVar("T")

V = dashboard_pb2
WRITABLE = ("title", "description", "tags", "metadata", "visibility", "layout", "filters")


def check_etag(given: str, row: Any) -> None:
    if given and given != dashboard_etag(row):
        raise Aborted(
            "the dashboard changed since it was read (stale etag); read it again and retry",
            metadata={"resource_id": str(row.id)},
        )


def check_time_zone(layout: dashboard_pb2.GridLayout, problems: ViolationCollector) -> None:
    if layout.time_zone:
        try:
            zone(layout.time_zone)
        except KeyError:
            problems.add(
                "dashboard.layout.time_zone", f"{layout.time_zone!r} is not an IANA time zone", "INVALID_FORMAT"
            )


def contains_pattern(text: str) -> str:
    """An ILIKE pattern (escape character backslash) for titles containing `text` literally; the
    title's trigram index serves it."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def check_filters(filters: Any, path: str, problems: ViolationCollector) -> None:
    seen: set[str] = set()
    for i, f in enumerate(filters):
        if f.name in seen:
            problems.add(f"{path}[{i}].name", f"duplicate filter name {f.name!r}", "DUPLICATE_FILTER")
        seen.add(f.name)


def row_values(dashboard: dashboard_pb2.Dashboard, paths: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in paths:
        if path == "layout":
            values["layout"] = layout_json(dashboard.layout)
        elif path == "filters":
            values["filters"] = filters_json(dashboard.filters)
        elif path == "metadata":
            values["metadata"] = metadata_json(dashboard.metadata)
        elif path == "tags":
            values["tags"] = list(dashboard.tags)
        elif path == "visibility":
            values["visibility"] = dashboard.visibility or V.VISIBILITY_PRIVATE
        else:
            values[path] = getattr(dashboard, path)
    return values


class DashboardDomain:
    def __init__(self, db: Database, changes: Changes | None = None, kept_bytes: int = 0) -> None:
        """`changes`: what kept answers follow; `kept_bytes`: at most that many bytes of list
        pages and as many of dashboards (none or 0: every read runs its statements)."""
        self._statements = ListStatements(db.engine.dialect)
        self._db = db
        self._changes = changes
        self._pages: Kept[PageKey, bytes] | None = None
        self._boards: Kept[uuid.UUID, KeptBoard] | None = None
        if changes is not None and kept_bytes > 0:
            self._pages = Kept(
                changes,
                page_stamp,
                size=MAX_PAGES,
                max_bytes=kept_bytes,
                weigh=len,
            )
            self._boards = Kept(
                changes,
                board_stamp,
                size=MAX_BOARDS,
                max_bytes=kept_bytes,
                weigh=lambda board: len(board.payload),
            )

    # --- create ---------------------------------------------------------------------------

    async def create(
        self, principal: Principal, dashboard: dashboard_pb2.Dashboard, request_id: str, digest: bytes
    ) -> dashboard_pb2.Dashboard:
        require_role(principal, Role.EDITOR, "creating a dashboard")
        facility = facility_for_create(principal, dashboard.facility_id)
        problems = ViolationCollector()
        if not dashboard.title.strip():
            problems.add("dashboard.title", "a title is required", "REQUIRED")
        check_filters(dashboard.filters, "dashboard.filters", problems)
        check_time_zone(dashboard.layout, problems)
        problems.raise_if_any()

        async def create(conn: AsyncConnection, _: None, __: int) -> tuple[uuid.UUID, dashboard_pb2.Dashboard]:
            row = (
                await conn.execute(
                    insert(dashboards)
                    .values(facility_id=facility, owner_id=principal.subject, **row_values(dashboard, WRITABLE))
                    .returning(dashboards.c.id)
                )
            ).one()
            created = await record_version(
                conn, row.id, reason=V.VERSION_REASON_CREATE, author=principal.subject, bump=False
            )
            return row.id, dashboard_from_row(created)

        async def existing(dashboard_id: uuid.UUID) -> dashboard_pb2.Dashboard:
            return await self.get(principal, str(dashboard_id))

        key = idempotency.RequestKey(principal.subject, "CreateDashboard", request_id, digest)
        [created] = await idempotency.create_once(
            self._db, [key], create, existing, prepare=idempotency.nothing_to_prepare
        )
        return created

    # --- read -----------------------------------------------------------------------------

    async def get(self, principal: Principal, dashboard_id: str) -> dashboard_pb2.Dashboard:
        boards = self._boards if self._boards is not None and self._boards.usable() else None
        key = uuid_or_none(dashboard_id)
        if boards is None or key is None:
            # Outside a transaction (no BEGIN/ROLLBACK round trips): under READ COMMITTED each
            # statement reads its own snapshot either way, so a transaction would add nothing.
            return await self._db.stale_read(lambda conn: self._get(conn, principal, dashboard_id), autocommit=True)
        board = await boards.get(key)
        if board is None:
            stamp = boards.stamp(key)
            loaded, current = await self._read_to_keep(lambda conn: _load_board(conn, dashboard_id))
            if current:
                boards.keep(key, stamp, loaded)
            board = loaded
        # The policy decides on the kept row as on a row just read.
        row = board.row
        if decide(principal, row, Access.READ_PUBLISHED) is Access.READ_PUBLISHED:
            known = known_snapshot(row.id, row.published_version)
            if known is not None:
                return self._published_from(row, known)
            return await self._published_of_kept(row)
        return dashboard_pb2.Dashboard.FromString(board.payload)

    async def _published_of_kept(self, row: Any) -> dashboard_pb2.Dashboard:
        """The published version of a kept row, which may be newer than a lagging replica: read on
        the primary (once per version and process: versions never change, `known_snapshot`),
        on the replica only while the primary is unreachable."""

        def read(conn: AsyncConnection) -> Awaitable[dashboard_pb2.Dashboard]:
            return self._published_view(conn, row)

        try:
            return await self._db.current_read(read)
        except Exception as error:
            if self._db.replica is None or not fallback_error(error):
                raise
            return await self._db.stale_read(read, autocommit=True)

    async def _read_to_keep(self, read: Callable[[AsyncConnection], Awaitable[T]]) -> tuple[T, bool]:
        """`read` for an answer to keep, and whether it may be kept: it holds every change heard
        so far (kept answers follow the primary's notifications). Without a replica it ran on
        the primary; with one, where routing sends stale reads, and it is current when the
        replica had replayed past every change heard (else it is given, as any stale read may
        be, and not kept)."""
        if self._db.replica is None or self._changes is None:
            return await self._db.stale_read(read, autocommit=True), True
        return await self._db.stale_read_current_from(read, await self._changes.heard_position())

    async def _get(self, conn: AsyncConnection, principal: Principal, dashboard_id: str) -> dashboard_pb2.Dashboard:
        row, access = await load_dashboard(conn, principal, dashboard_id, Access.READ_PUBLISHED)
        if access is Access.READ_PUBLISHED:
            return await self._published_view(conn, row)
        return dashboard_from_row(row, await current_widgets(conn, row.id))

    async def _published_view(self, conn: AsyncConnection, row: Any) -> dashboard_pb2.Dashboard:
        """What a reader limited to the published version sees: that snapshot, nothing newer."""
        return self._published_from(row, await load_snapshot(conn, row.id, row.published_version))

    @staticmethod
    def _published_from(row: Any, snap: Any) -> dashboard_pb2.Dashboard:
        """`snap`: the snapshot (a message of its own), or (a list's header, without widgets)
        its jsonb text."""
        dashboard = header_from_text(snap) if isinstance(snap, str) else snap
        dashboard.version = row.published_version
        dashboard.published_version = row.published_version
        if row.publish_time is not None:
            dashboard.publish_time.FromDatetime(row.publish_time)
        return dashboard

    async def list_dashboards(
        self, principal: Principal, request: dashboard_pb2.ListDashboardsRequest
    ) -> dashboard_pb2.ListDashboardsResponse:
        column_name, _ = ORDERINGS[request.order_by]
        owner = principal.subject if request.owner_id == "me" else request.owner_id
        published = request.published if request.HasField("published") else None
        filters_key = pagination.fingerprint(
            sorted(request.tags), owner, published, request.facility_id, request.title_contains, request.order_by
        )
        if request.favorites_first:
            # Another key shape (the favorite flag leads): a token of the plain list is refused.
            filters_key = pagination.fingerprint(filters_key, "favorites_first")
        cursor = pagination.decode(request.page_token, filters_key)
        size = pagination.page_size(request.page_size)

        values: dict[str, Any] = {**visibility_params(principal), "limit": size + 1}
        if request.tags:
            values["tags"] = sorted(set(request.tags))
        if owner:
            values["owner"] = owner
        if request.facility_id:
            values["facility_id"] = request.facility_id
        if request.title_contains:
            values["title_pattern"] = contains_pattern(request.title_contains)
        if request.favorites_first:
            values["favorite_of"] = principal.subject
        after_favorite = False
        if cursor is not None:
            after_favorite, raw_key = _split_key(cursor.key, favorites_first=request.favorites_first)
            try:
                values["after_key"] = datetime.fromisoformat(raw_key) if column_name != "title" else str(raw_key)
                values["after_id"] = uuid.UUID(cursor.id)
            except (TypeError, ValueError) as exc:
                raise InvalidArgument.field(
                    "page_token", "not a page token of this list", reason="INVALID_PAGE_TOKEN"
                ) from exc
        shape = ListShape(
            visibility=visibility_shape(principal),
            order_by=request.order_by,
            tags=bool(request.tags),
            owner=bool(owner),
            published=published,
            facility=bool(request.facility_id),
            title=bool(request.title_contains),
            after=cursor is not None,
            favorites_first=request.favorites_first,
            after_favorite=after_favorite,
        )
        # favorites_first pages are not kept: favorites are not followed.
        pages = self._pages if self._pages is not None and not shape.favorites_first and self._pages.usable() else None
        if pages is not None:
            kept_key = page_key(principal, shape, values)
            kept = await pages.get(kept_key)
            if kept is not None:
                return dashboard_pb2.ListDashboardsResponse.FromString(kept)
            stamp = pages.stamp(kept_key)
        statement = self._statements.of(shape, principal)

        # Statements outside a transaction (no BEGIN/ROLLBACK round trips): each stands alone.
        async def read_page(conn: AsyncConnection) -> tuple[list[ListRow], bool, Any]:
            rows = [ListRow(*row) for row in await statement.rows(conn, values)]
            return rows[:size], len(rows) > size, await self.list_views(conn, principal, rows[:size])

        if pages is None:
            page, more, result = await self._db.stale_read(read_page, autocommit=True)
        else:
            (page, more, result), current = await self._read_to_keep(read_page)
        token = ""
        if more:
            last = page[-1]
            key_value = getattr(last, column_name)
            key = key_value.isoformat() if isinstance(key_value, datetime) else key_value
            if request.favorites_first:
                key = [bool(last.favorite), key]
            token = pagination.encode(pagination.Cursor(key, str(last.id)), filters_key)
        response = dashboard_pb2.ListDashboardsResponse(dashboards=result, next_page_token=token)
        if pages is not None and current:
            pages.keep(kept_key, stamp, response.SerializeToString())
        return response

    async def list_views(
        self, conn: AsyncConnection, principal: Principal, rows: Sequence[Any]
    ) -> list[dashboard_pb2.Dashboard]:
        """Each row (a ListRow, or a dashboards row selected with its `grants`) as this caller may
        see it; the policy re-checks every row the SQL let through."""
        if not rows:
            return []
        decided = [(row, dashboard_access(principal, _facts(row))) for row in rows]
        published = await self._published_headers(
            conn, [row for row, access in decided if access is Access.READ_PUBLISHED]
        )
        out: list[dashboard_pb2.Dashboard] = []
        for row, access in decided:
            if access is Access.NONE:
                continue
            if access is Access.READ_PUBLISHED:
                out.append(published[row.id])
            else:
                out.append(list_row_message(row) if isinstance(row, ListRow) else dashboard_from_row(row))
        return out

    async def _published_headers(self, conn: AsyncConnection, rows: list[Any]) -> dict[Any, dashboard_pb2.Dashboard]:
        """The published snapshots of `rows` without their widgets (a list shows none), in one
        statement; the widgets are dropped by PostgreSQL, never parsed here."""
        if not rows:
            return {}
        found = await self._statements.published_headers.rows(
            conn,
            {"dashboard_ids": [row.id for row in rows], "versions": [row.published_version for row in rows]},
        )
        snapshots = dict(found)
        return {row.id: self._published_from(row, snapshots[row.id]) for row in rows}

    # --- update / delete / publish ----------------------------------------------------------

    async def update(
        self, principal: Principal, dashboard: dashboard_pb2.Dashboard, mask: field_mask_pb2.FieldMask
    ) -> dashboard_pb2.Dashboard:
        paths = tuple(dict.fromkeys(mask.paths)) or WRITABLE
        problems = ViolationCollector()
        for path in paths:
            if path not in WRITABLE:
                problems.add(
                    "update_mask",
                    f"{path!r} cannot be updated; updatable fields: {', '.join(WRITABLE)}",
                    "FIELD_NOT_UPDATABLE",
                )
        if "title" in paths and not dashboard.title.strip():
            problems.add("dashboard.title", "a title is required", "REQUIRED")
        if "filters" in paths:
            check_filters(dashboard.filters, "dashboard.filters", problems)
        if "layout" in paths:
            check_time_zone(dashboard.layout, problems)
        problems.raise_if_any()
        async with self._db.transaction() as conn:
            row, _ = await load_dashboard(conn, principal, dashboard.id, Access.EDIT, lock=True)
            check_etag(dashboard.etag, row)
            values = row_values(dashboard, paths)
            if any(getattr(row, k) != v for k, v in values.items()):
                await conn.execute(update(dashboards).where(dashboards.c.id == row.id).values(**values))
                row = await record_version(conn, row.id, reason=V.VERSION_REASON_UPDATE, author=principal.subject)
            return dashboard_from_row(row, await current_widgets(conn, row.id))

    async def delete(self, principal: Principal, dashboard_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            row, _ = await load_dashboard(conn, principal, dashboard_id, Access.MANAGE, lock=True)
            check_etag(etag, row)
            await conn.execute(delete(dashboards).where(dashboards.c.id == row.id))

    async def publish(
        self, principal: Principal, dashboard_id: str, version: int, etag: str
    ) -> dashboard_pb2.Dashboard:
        async with self._db.transaction() as conn:
            row, _ = await load_dashboard(conn, principal, dashboard_id, Access.MANAGE, lock=True)
            check_etag(etag, row)
            target = version or row.version
            if target > row.version:
                raise NotFound("dashboard_version", f"{dashboard_id}@{target}")
            row = (
                await conn.execute(
                    update(dashboards)
                    .where(dashboards.c.id == row.id)
                    .values(published_version=target, publish_time=func.now())
                    .returning(*dashboards.c)
                )
            ).one()
            return dashboard_from_row(row, await current_widgets(conn, row.id))

    # --- versions ---------------------------------------------------------------------------

    async def list_versions(
        self, principal: Principal, request: dashboard_pb2.ListDashboardVersionsRequest
    ) -> tuple[list[dashboard_pb2.DashboardVersion], str]:
        filters_key = pagination.fingerprint(request.dashboard_id)
        cursor = pagination.decode(request.page_token, filters_key)
        size = pagination.page_size(request.page_size)
        async with self._db.read() as conn:
            row, access = await load_dashboard(conn, principal, request.dashboard_id, Access.READ_PUBLISHED)
            query = select(
                dashboard_versions.c.dashboard_id,
                dashboard_versions.c.version,
                dashboard_versions.c.reason,
                dashboard_versions.c.restored_from,
                dashboard_versions.c.author_id,
                dashboard_versions.c.created_at,
            ).where(dashboard_versions.c.dashboard_id == row.id)
            if access is Access.READ_PUBLISHED:
                query = query.where(dashboard_versions.c.version == row.published_version)
            if cursor is not None:
                query = query.where(dashboard_versions.c.version < int(cursor.key))
            rows = (await conn.execute(query.order_by(dashboard_versions.c.version.desc()).limit(size + 1))).all()
        page = rows[:size]
        token = (
            pagination.encode(pagination.Cursor(page[-1].version, str(row.id)), filters_key) if len(rows) > size else ""
        )
        return [version_from_row(r, published_version=row.published_version, with_snapshot=False) for r in page], token

    async def get_version(
        self, principal: Principal, dashboard_id: str, version: int
    ) -> dashboard_pb2.DashboardVersion:
        async with self._db.read() as conn:
            row, access = await load_dashboard(conn, principal, dashboard_id, Access.READ_PUBLISHED)
            if access is Access.READ_PUBLISHED and version != row.published_version:
                raise NotFound("dashboard_version", f"{dashboard_id}@{version}")
            found = (
                await conn.execute(
                    select(dashboard_versions).where(
                        dashboard_versions.c.dashboard_id == row.id, dashboard_versions.c.version == version
                    )
                )
            ).first()
            if found is None:
                raise NotFound("dashboard_version", f"{dashboard_id}@{version}")
            return version_from_row(found, published_version=row.published_version, with_snapshot=True)

    async def restore(
        self, principal: Principal, dashboard_id: str, version: int, etag: str
    ) -> dashboard_pb2.Dashboard:
        async with self._db.transaction() as conn:
            row, _ = await load_dashboard(conn, principal, dashboard_id, Access.EDIT, lock=True)
            check_etag(etag, row)
            snap = (
                await conn.execute(
                    select(dashboard_versions.c.snapshot).where(
                        dashboard_versions.c.dashboard_id == row.id, dashboard_versions.c.version == version
                    )
                )
            ).scalar_one_or_none()
            if snap is None:
                raise NotFound("dashboard_version", f"{dashboard_id}@{version}")
            old = from_json(snap, dashboard_pb2.Dashboard())
            await conn.execute(update(dashboards).where(dashboards.c.id == row.id).values(**row_values(old, WRITABLE)))
            await self._restore_widgets(conn, row, old)
            row = await record_version(
                conn, row.id, reason=V.VERSION_REASON_RESTORE, author=principal.subject, restored_from=version
            )
            return dashboard_from_row(row, await current_widgets(conn, row.id))

    async def _restore_widgets(self, conn: AsyncConnection, row: Any, old: dashboard_pb2.Dashboard) -> None:
        keep = [uuid.UUID(w.id) for w in old.widgets]
        await conn.execute(delete(widgets).where(and_(widgets.c.dashboard_id == row.id, widgets.c.id.not_in(keep))))
        query_ids = {w.query.query_id for w in old.widgets if w.query.query_id}
        if query_ids:
            found = await conn.execute(
                select(widget_queries.c.id).where(widget_queries.c.id.in_([uuid.UUID(q) for q in query_ids]))
            )
            ids: list[Any] = list(found.scalars())
            present = {str(i) for i in ids}
            missing = sorted(query_ids - present)
            if missing:
                raise FailedPrecondition(
                    f"the version uses queries that were deleted since: {', '.join(missing)}",
                    reason="QUERY_DELETED",
                )
        for widget in old.widgets:
            values = columns_of(widget)
            stmt = pg_insert(widgets).values(
                id=uuid.UUID(widget.id), dashboard_id=row.id, facility_id=row.facility_id, **values
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[widgets.c.id],
                    set_={**values, "revision": widgets.c.revision + 1},
                    where=widgets.c.dashboard_id == row.id,
                )
            )


__all__ = ["DashboardDomain", "InvalidArgument", "check_etag"]


def _split_key(key: Any, *, favorites_first: bool) -> tuple[bool, Any]:
    """A favorites-first token's key is [favorite, sort key]; a plain one is the sort key."""
    if not favorites_first:
        return False, key
    if not (isinstance(key, list) and len(key) == 2 and isinstance(key[0], bool)):
        raise InvalidArgument.field("page_token", "not a page token of this list", reason="INVALID_PAGE_TOKEN")
    return key[0], key[1]


def _facts(row: Any) -> DashboardFacts:
    return list_row_facts(row) if isinstance(row, ListRow) else dashboard_facts(row, row.grants)


async def _load_board(conn: AsyncConnection, dashboard_id: str) -> KeptBoard:
    """The dashboard's row with its shares, and the current dashboard with its widgets (NOT_FOUND
    when it is gone)."""
    row = await dashboard_row(conn, dashboard_id)
    return KeptBoard(row, dashboard_from_row(row, await current_widgets(conn, row.id)).SerializeToString())
