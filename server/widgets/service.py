"""The widget domain: create, read, list, update, delete.

Every change locks the parent dashboard's row first (so grid checks and versions never
interleave) and writes a new dashboard version in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import field_mask_pb2
from sqlalchemy import and_, delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import dashboard_pb2, widget_pb2
from server import idempotency, pagination
from server.access.policy import VISIBILITY_PUBLIC, Access, visible_dashboards
from server.auth.principal import Principal
from server.dashboards.access import load_dashboard
from server.dashboards.versions import record_version
from server.dashboards.widget_convert import (
    CONFIG_TYPES,
    DEFAULT_REFRESH_SECONDS,
    columns_of,
    widget_from_row,
)
from server.db.engine import Database
from server.db.schema import dashboard_versions, dashboards, widget_queries, widgets
from server.errors import (
    Aborted,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ViolationCollector,
)
from server.protojson import from_json
from server.widgets.grid import check_position, find_overlap
from tessera_client.formats import format_problems, value_formats

WRITABLE = (
    "title",
    "description",
    "position",
    "query",
    "refresh_interval",
    "config",
    "drill_through",
    "cross_filters",
)
# A oneof member in the mask means the oneof: setting one member replaces any other.
MASK_ALIASES = dict.fromkeys(CONFIG_TYPES, "config")
DEFAULT_PAGE_SIZE = 100
MAX_TITLE = 200
MIN_REFRESH_SECONDS = 10
MAX_REFRESH_SECONDS = 86400
CREATE_METHOD = "CreateWidget"
WIDGET_CHANGE = dashboard_pb2.VERSION_REASON_WIDGET_CHANGE

# Module-level alias: inside the class, `list` names the method, not the builtin.
WidgetList = list[widget_pb2.Widget]


def _parse_uuid(value: str, path: str, problems: ViolationCollector) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        problems.add(path, "must be a UUID", "INVALID_UUID")
        return None


def _require_uuid(value: str, path: str) -> uuid.UUID:
    problems = ViolationCollector()
    parsed = _parse_uuid(value, path, problems)
    problems.raise_if_any()
    assert parsed is not None
    return parsed


def check_fields(widget: widget_pb2.Widget, paths: Iterable[str], problems: ViolationCollector) -> None:
    """Checks the named fields of `widget` that need no database. buf.validate covers most of
    this at the edge; what the stored data relies on is checked again here."""
    paths = set(paths)
    if "title" in paths:
        if not widget.title.strip():
            problems.add("widget.title", "a title is required", "REQUIRED")
        elif len(widget.title) > MAX_TITLE:
            problems.add("widget.title", f"at most {MAX_TITLE} characters", "TOO_LONG")
    if "position" in paths:
        if widget.HasField("position"):
            check_position(widget.position, "widget.position", problems)
        else:
            problems.add("widget.position", "a grid position is required", "REQUIRED")
    if "config" in paths and widget.WhichOneof("config") is None:
        problems.add(
            "widget.config",
            f"one of {', '.join(CONFIG_TYPES)} is required; it decides the widget type",
            "REQUIRED",
        )
    elif "config" in paths:
        member = str(widget.WhichOneof("config"))
        # Value formats: what buf.validate cannot check (the time zone exists; CURRENCY has a code).
        for path, value_format in value_formats(getattr(widget, member), f"widget.{member}"):
            for field, message in format_problems(value_format, path):
                problems.add(field, message, "INVALID_FORMAT")
    if "refresh_interval" in paths and widget.HasField("refresh_interval"):
        interval = widget.refresh_interval
        seconds = interval.seconds + interval.nanos / 1e9
        # Workers schedule by this; zero or negative would make a widget refresh in a hot loop.
        if not MIN_REFRESH_SECONDS <= seconds <= MAX_REFRESH_SECONDS:
            problems.add(
                "widget.refresh_interval",
                f"must be between {MIN_REFRESH_SECONDS} s and {MAX_REFRESH_SECONDS} s",
                "OUT_OF_RANGE",
            )
    if "query" in paths:
        binding = widget.query
        if binding.query_id:
            _parse_uuid(binding.query_id, "widget.query.query_id", problems)
        if binding.query_version < 0:
            problems.add("widget.query.query_version", "must be 0 (latest) or more", "OUT_OF_RANGE")
        elif binding.query_version and not binding.query_id:
            problems.add(
                "widget.query.query_version",
                "a pinned version needs widget.query.query_id",
                "REQUIRED",
            )
    if "drill_through" in paths and widget.HasField("drill_through"):
        target = widget.drill_through.target_dashboard_id
        if target:
            _parse_uuid(target, "widget.drill_through.target_dashboard_id", problems)
        else:
            problems.add("widget.drill_through.target_dashboard_id", "a drill-through needs a target", "REQUIRED")


def _mask_paths(mask: field_mask_pb2.FieldMask, problems: ViolationCollector) -> tuple[str, ...]:
    if not mask.paths:
        return WRITABLE
    paths: list[str] = []
    for raw in mask.paths:
        path = MASK_ALIASES.get(raw, raw)
        if path not in WRITABLE:
            problems.add(
                "update_mask",
                f"{raw!r} cannot be updated; updatable fields: {', '.join(WRITABLE)}",
                "FIELD_NOT_UPDATABLE",
            )
        elif path not in paths:
            paths.append(path)
    return tuple(paths)


def _merge(current: widget_pb2.Widget, given: widget_pb2.Widget, paths: Iterable[str]) -> widget_pb2.Widget:
    """`current` with the masked fields taken from `given` (an unset field in the mask clears)."""
    merged = widget_pb2.Widget()
    merged.CopyFrom(current)
    for path in paths:
        if path in ("title", "description"):
            setattr(merged, path, getattr(given, path))
        elif path == "config":
            merged.ClearField("config")
            member = given.WhichOneof("config")
            if member is not None:
                getattr(merged, member).CopyFrom(getattr(given, member))
        elif path == "cross_filters":
            del merged.cross_filters[:]
            merged.cross_filters.extend(given.cross_filters)
        else:  # position, query, refresh_interval, drill_through: singular messages
            merged.ClearField(path)
            if given.HasField(path):
                getattr(merged, path).CopyFrom(getattr(given, path))
    return merged


def _check_etag(given: str, current: widget_pb2.Widget) -> None:
    if given and given != current.etag:
        raise Aborted(
            "the widget changed since it was read (stale etag); read it again and retry",
            metadata={"resource_id": current.id},
        )


def _sort_key(widget: widget_pb2.Widget) -> tuple[int, int, uuid.UUID]:
    return widget.position.y, widget.position.x, uuid.UUID(widget.id)


def _decode_cursor(token: str, filters_key: str) -> tuple[int, int, uuid.UUID] | None:
    cursor = pagination.decode(token, filters_key)
    if cursor is None:
        return None
    # Tokens are opaque but not signed: never let a hand-made one reach SQL as a bad type.
    key = cursor.key
    if isinstance(key, list) and len(key) == 2 and all(type(v) is int and 0 <= v < 2**31 for v in key):
        try:
            return key[0], key[1], uuid.UUID(cursor.id)
        except ValueError:
            pass
    raise InvalidArgument.field("page_token", "not a page token of this list", reason="INVALID_PAGE_TOKEN")


async def _load_parent(
    conn: AsyncConnection,
    principal: Principal,
    dashboard_id: uuid.UUID,
    widget_id: uuid.UUID,
    needed: Access,
    *,
    lock: bool = False,
) -> tuple[Any, Access]:
    try:
        return await load_dashboard(conn, principal, str(dashboard_id), needed, lock=lock)
    except NotFound:
        # A caller who may not see the dashboard may not see its widgets either, and must not
        # learn the dashboard's id from the error.
        raise NotFound("widget", str(widget_id)) from None


async def _published_widgets(conn: AsyncConnection, dashboard: Any) -> WidgetList:
    """The widgets of the dashboard's published version, as that snapshot stored them."""
    if dashboard.published_version is None:
        return []
    stored: list[dict[str, Any]] | None = (
        await conn.execute(
            select(dashboard_versions.c.snapshot["widgets"]).where(
                dashboard_versions.c.dashboard_id == dashboard.id,
                dashboard_versions.c.version == dashboard.published_version,
            )
        )
    ).scalar_one_or_none()
    return [from_json(w, widget_pb2.Widget()) for w in stored or []]


def _pick(candidates: Iterable[widget_pb2.Widget], widget_id: uuid.UUID) -> widget_pb2.Widget | None:
    return next((w for w in candidates if uuid.UUID(w.id) == widget_id), None)


async def _check_query(
    conn: AsyncConnection, binding: widget_pb2.QueryBinding, facility_id: str, problems: ViolationCollector
) -> None:
    if not binding.query_id:
        return
    current_version = (
        await conn.execute(
            select(widget_queries.c.version)
            .where(
                widget_queries.c.id == uuid.UUID(binding.query_id),
                widget_queries.c.facility_id == facility_id,
            )
            # FOR KEY SHARE: a concurrent delete of the query waits for this transaction and
            # then meets the widget's foreign key, instead of us failing on it at insert.
            .with_for_update(read=True, key_share=True)
        )
    ).scalar_one_or_none()
    if current_version is None:
        # The same answer for "no such query" and "another facility's query".
        problems.add("widget.query.query_id", "no such query in the dashboard's facility", "QUERY_NOT_FOUND")
    elif binding.query_version > current_version:
        problems.add(
            "widget.query.query_version",
            f"the query has no version {binding.query_version}; its latest is {current_version}",
            "QUERY_VERSION_NOT_FOUND",
        )


def _filter_names(filters: Any) -> set[str]:
    """The names a `dashboards.filters` JSONB list (of DashboardFilter as proto JSON) declares."""
    return {f["name"] for f in filters or [] if isinstance(f, dict) and isinstance(f.get("name"), str)}


async def drill_target_filters(
    conn: AsyncConnection, principal: Principal, dashboard: Any, target_id: uuid.UUID
) -> set[str] | None:
    """The filter names of a drill-through target, or None when the caller may not name it:
    it must be a dashboard the caller can see, in the same facility as the widget's dashboard.
    "Missing", "not visible" and "another facility" are one answer, so none is revealed."""
    if target_id == dashboard.id:
        return _filter_names(dashboard.filters)
    try:
        target, access = await load_dashboard(conn, principal, str(target_id), Access.READ_PUBLISHED)
    except NotFound:
        return None
    if target.facility_id != dashboard.facility_id:
        return None
    if access is Access.READ_PUBLISHED:
        # This caller sees only the published version: check against its filters, not the draft's.
        published: list[dict[str, Any]] | None = (
            await conn.execute(
                select(dashboard_versions.c.snapshot["filters"]).where(
                    dashboard_versions.c.dashboard_id == target.id,
                    dashboard_versions.c.version == target.published_version,
                )
            )
        ).scalar_one_or_none()
        return _filter_names(published)
    return _filter_names(target.filters)


async def _check_references(
    conn: AsyncConnection,
    principal: Principal,
    dashboard: Any,
    widget: widget_pb2.Widget,
    paths: Iterable[str],
    problems: ViolationCollector,
) -> None:
    """Checks what the named fields of `widget` refer to outside it: the bound query, the
    dashboard filters it binds and sets, the drill-through target and that target's filters."""
    paths = set(paths)
    declared = _filter_names(dashboard.filters)
    if "query" in paths:
        await _check_query(conn, widget.query, dashboard.facility_id, problems)
        for param, name in sorted(widget.query.filter_bindings.items()):
            if name not in declared:
                problems.add(
                    f'widget.query.filter_bindings["{param}"]',
                    f"the dashboard declares no filter {name!r}",
                    "UNKNOWN_FILTER",
                )
    if "cross_filters" in paths:
        for i, cross in enumerate(widget.cross_filters):
            if cross.filter_name not in declared:
                problems.add(
                    f"widget.cross_filters[{i}].filter_name",
                    f"the dashboard declares no filter {cross.filter_name!r}",
                    "UNKNOWN_FILTER",
                )
    if "drill_through" in paths and widget.HasField("drill_through"):
        drill = widget.drill_through
        # check_fields made sure the target is a UUID.
        target_filters = await drill_target_filters(conn, principal, dashboard, uuid.UUID(drill.target_dashboard_id))
        if target_filters is None:
            problems.add(
                "widget.drill_through.target_dashboard_id",
                "no such dashboard in the widget's facility",
                "DASHBOARD_NOT_FOUND",
            )
        else:
            for column, name in sorted(drill.column_to_filter.items()):
                if name not in target_filters:
                    problems.add(
                        f'widget.drill_through.column_to_filter["{column}"]',
                        f"the target dashboard declares no filter {name!r}",
                        "UNKNOWN_FILTER",
                    )


def _raise_collected(problems: ViolationCollector) -> None:
    """Like `problems.raise_if_any()`, but when every violation has the same reason the
    ErrorInfo carries that reason (QUERY_NOT_FOUND, UNKNOWN_FILTER, ...) for clients to branch on."""
    if not problems.violations:
        return
    reasons = {v.reason for v in problems.violations}
    first = problems.violations[0]
    more = f" (and {len(problems.violations) - 1} more)" if len(problems.violations) > 1 else ""
    raise InvalidArgument(
        f"the request has invalid fields: {first.field}: {first.description}{more}",
        violations=problems.violations,
        reason=reasons.pop() if len(reasons) == 1 else "INVALID_ARGUMENT",
    )


async def _check_overlap(
    conn: AsyncConnection,
    dashboard_id: uuid.UUID,
    position: widget_pb2.GridPosition,
    exclude: uuid.UUID | None = None,
) -> None:
    query = select(widgets.c.id, widgets.c.x, widgets.c.y, widgets.c.width, widgets.c.height).where(
        widgets.c.dashboard_id == dashboard_id
    )
    if exclude is not None:
        query = query.where(widgets.c.id != exclude)
    others: Sequence[Any] = (await conn.execute(query.order_by(widgets.c.y, widgets.c.x, widgets.c.id))).all()
    other = find_overlap(position, others)
    if other is None:
        return
    description = f"overlaps widget {other.id} (x={other.x}, y={other.y}, width={other.width}, height={other.height})"
    raise InvalidArgument(
        f"widget.position: {description}",
        violations=[FieldViolation("widget.position", description, "WIDGET_OVERLAP")],
        reason="WIDGET_OVERLAP",
        metadata={"overlapping_widget_id": str(other.id)},
    )


class WidgetDomain:
    def __init__(self, db: Database, default_refresh_seconds: int = DEFAULT_REFRESH_SECONDS) -> None:
        self._db = db
        self._default_refresh = default_refresh_seconds

    # --- create ---------------------------------------------------------------------------

    async def create(
        self, principal: Principal, widget: widget_pb2.Widget, request_id: str, digest: bytes
    ) -> widget_pb2.Widget:
        problems = ViolationCollector()
        if not widget.dashboard_id:
            problems.add("widget.dashboard_id", "the dashboard is required", "REQUIRED")
        else:
            _parse_uuid(widget.dashboard_id, "widget.dashboard_id", problems)
        check_fields(widget, WRITABLE, problems)
        if request_id:
            _parse_uuid(request_id, "request_id", problems)
        problems.raise_if_any()

        async def lock_dashboard(conn: AsyncConnection) -> Any:
            # Request ids are looked up under the dashboard lock: a concurrent retry waits for the
            # first attempt to commit and then returns its widget instead of overlapping it.
            dashboard, _ = await load_dashboard(conn, principal, widget.dashboard_id, Access.EDIT, lock=True)
            return dashboard

        async def create(conn: AsyncConnection, dashboard: Any, _: int) -> tuple[uuid.UUID, widget_pb2.Widget]:
            references = ViolationCollector()
            await _check_references(conn, principal, dashboard, widget, WRITABLE, references)
            _raise_collected(references)
            await _check_overlap(conn, dashboard.id, widget.position)
            row = (
                await conn.execute(
                    insert(widgets)
                    .values(
                        dashboard_id=dashboard.id,
                        facility_id=dashboard.facility_id,
                        **columns_of(widget, self._default_refresh),
                    )
                    .returning(*widgets.c)
                )
            ).one()
            await record_version(conn, dashboard.id, reason=WIDGET_CHANGE, author=principal.subject)
            return row.id, widget_from_row(row)

        async def existing(widget_id: uuid.UUID) -> widget_pb2.Widget:
            async with self._db.read() as conn:
                return await self._get(conn, principal, widget_id)

        key = idempotency.RequestKey(principal.subject, CREATE_METHOD, request_id, digest)
        [created] = await idempotency.create_once(self._db, [key], create, existing, prepare=lock_dashboard)
        return created

    # --- read -----------------------------------------------------------------------------

    async def get(self, principal: Principal, widget_id: str) -> widget_pb2.Widget:
        parsed = _require_uuid(widget_id, "id")
        return await self._db.stale_read(lambda conn: self._get(conn, principal, parsed))

    async def _get(self, conn: AsyncConnection, principal: Principal, widget_id: uuid.UUID) -> widget_pb2.Widget:
        row = (await conn.execute(select(widgets).where(widgets.c.id == widget_id))).first()
        if row is None:
            published = await self._deleted_but_published(conn, principal, widget_id)
            if published is None:
                raise NotFound("widget", str(widget_id))
            return published
        dashboard, access = await _load_parent(conn, principal, row.dashboard_id, widget_id, Access.READ_PUBLISHED)
        if access is Access.READ_PUBLISHED:
            found = _pick(await _published_widgets(conn, dashboard), widget_id)
            if found is None:
                raise NotFound("widget", str(widget_id))
            return found
        return widget_from_row(row)

    async def _deleted_but_published(
        self, conn: AsyncConnection, principal: Principal, widget_id: uuid.UUID
    ) -> widget_pb2.Widget | None:
        """A widget deleted after its dashboard was published still exists for readers of the
        published version (ListWidgets shows it to them), so GetWidget must find it too."""
        # Only public dashboards and public links give READ_PUBLISHED; don't scan the others.
        scope = visible_dashboards(principal)
        if not principal.is_link:
            scope = and_(scope, dashboards.c.visibility == VISIBILITY_PUBLIC)
        query = (
            select(dashboards.c.id)
            .join(
                dashboard_versions,
                and_(
                    dashboard_versions.c.dashboard_id == dashboards.c.id,
                    dashboard_versions.c.version == dashboards.c.published_version,
                ),
            )
            .where(scope, dashboard_versions.c.snapshot["widgets"].contains([{"id": str(widget_id)}]))
            .limit(1)
        )
        dashboard_id = (await conn.execute(query)).scalar_one_or_none()
        if dashboard_id is None:
            return None
        dashboard, access = await _load_parent(conn, principal, dashboard_id, widget_id, Access.READ_PUBLISHED)
        if access is not Access.READ_PUBLISHED:
            return None  # this caller reads the current state, where the widget is gone
        return _pick(await _published_widgets(conn, dashboard), widget_id)

    async def list(self, principal: Principal, request: widget_pb2.ListWidgetsRequest) -> tuple[WidgetList, str]:
        dashboard_id = _require_uuid(request.dashboard_id, "dashboard_id")
        filters_key = pagination.fingerprint(str(dashboard_id))
        cursor = _decode_cursor(request.page_token, filters_key)
        size = pagination.page_size(request.page_size, DEFAULT_PAGE_SIZE)

        async def read_page(conn: AsyncConnection) -> list[widget_pb2.Widget]:
            dashboard, access = await load_dashboard(conn, principal, str(dashboard_id), Access.READ_PUBLISHED)
            if access is Access.READ_PUBLISHED:
                ordered = sorted(await _published_widgets(conn, dashboard), key=_sort_key)
                if cursor is not None:
                    ordered = [w for w in ordered if _sort_key(w) > cursor]
                return ordered[: size + 1]
            query = select(widgets).where(widgets.c.dashboard_id == dashboard.id)
            if cursor is not None:
                query = query.where(tuple_(widgets.c.y, widgets.c.x, widgets.c.id) > tuple_(*cursor))
            query = query.order_by(widgets.c.y, widgets.c.x, widgets.c.id).limit(size + 1)
            return [widget_from_row(r) for r in await conn.execute(query)]

        found = await self._db.stale_read(read_page)
        page = found[:size]
        token = ""
        if len(found) > size:
            last = page[-1]
            token = pagination.encode(pagination.Cursor([last.position.y, last.position.x], last.id), filters_key)
        return page, token

    # --- update / delete --------------------------------------------------------------------

    async def update(
        self, principal: Principal, widget: widget_pb2.Widget, mask: field_mask_pb2.FieldMask
    ) -> widget_pb2.Widget:
        problems = ViolationCollector()
        widget_id = _parse_uuid(widget.id, "widget.id", problems)
        # IMMUTABLE, so optional on update; when given, it must be the widget's own dashboard.
        dashboard_id = None
        if widget.dashboard_id:
            dashboard_id = _parse_uuid(widget.dashboard_id, "widget.dashboard_id", problems)
        paths = _mask_paths(mask, problems)
        check_fields(widget, paths, problems)
        problems.raise_if_any()
        assert widget_id is not None
        async with self._db.transaction() as conn:
            dashboard, row = await self._lock_for_write(conn, principal, widget_id)
            current = widget_from_row(row)
            _check_etag(widget.etag, current)
            if dashboard_id is not None and dashboard_id != row.dashboard_id:
                # IMMUTABLE (AIP-203): refuse a move rather than silently ignore it.
                raise InvalidArgument.field(
                    "widget.dashboard_id",
                    "a widget cannot move to another dashboard; create it there and delete this one",
                    reason="IMMUTABLE_FIELD",
                )
            merged = _merge(current, widget, paths)
            values = columns_of(merged, self._default_refresh)
            if values == columns_of(current, self._default_refresh):
                return current  # nothing changed: no write, no new version
            references = ViolationCollector()
            await _check_references(conn, principal, dashboard, merged, paths, references)
            _raise_collected(references)
            if "position" in paths:
                await _check_overlap(conn, dashboard.id, merged.position, exclude=row.id)
            # The revision is part of the etag: two changes in one transaction share updated_at.
            updated = (
                await conn.execute(
                    update(widgets)
                    .where(widgets.c.id == row.id)
                    .values(**values, revision=widgets.c.revision + 1)
                    .returning(*widgets.c)
                )
            ).one()
            await record_version(conn, dashboard.id, reason=WIDGET_CHANGE, author=principal.subject)
            return widget_from_row(updated)

    async def delete(self, principal: Principal, widget_id: str, etag: str) -> None:
        parsed = _require_uuid(widget_id, "id")
        async with self._db.transaction() as conn:
            dashboard, row = await self._lock_for_write(conn, principal, parsed)
            _check_etag(etag, widget_from_row(row))
            await conn.execute(delete(widgets).where(widgets.c.id == row.id))
            await record_version(conn, dashboard.id, reason=WIDGET_CHANGE, author=principal.subject)

    async def _lock_for_write(
        self, conn: AsyncConnection, principal: Principal, widget_id: uuid.UUID
    ) -> tuple[Any, Any]:
        """The locked parent dashboard (EDIT required) and the widget row read under that lock."""
        dashboard_id = (
            await conn.execute(select(widgets.c.dashboard_id).where(widgets.c.id == widget_id))
        ).scalar_one_or_none()
        if dashboard_id is None:
            raise NotFound("widget", str(widget_id))
        try:
            dashboard, _ = await _load_parent(conn, principal, dashboard_id, widget_id, Access.EDIT, lock=True)
        except PermissionDenied:
            # The caller sees the dashboard, but maybe not this widget (a reader of the published
            # version and a widget added since): then the widget does not exist for them.
            await self._get(conn, principal, widget_id)
            raise
        # Read again under the lock: the widget may have changed or gone while we waited.
        row = (await conn.execute(select(widgets).where(widgets.c.id == widget_id))).first()
        if row is None:
            raise NotFound("widget", str(widget_id))
        return dashboard, row


__all__ = ["MASK_ALIASES", "WRITABLE", "WidgetDomain"]
