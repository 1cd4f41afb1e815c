"""The widget-data domain: GetWidgetData and BatchGetWidgetData.

resolve (access, widget, query version, merged and validated values) -> key -> two-tier cache
with single-flight -> WidgetData. Execution is QueryDomain.execute: READ ONLY, timeout, row cap,
reader role, facility scope, PHI masked for callers without `phi:read`.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncGenerator, Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf import timestamp_pb2

from dashboard.v1 import common_pb2, query_pb2, widget_pb2
from server.audit import facts as audit_facts
from server.auth.principal import Principal
from server.config import Settings
from server.db.engine import Database
from server.db.listen import Listener
from server.db.replica import fallback_error
from server.errors import FieldViolation, InvalidArgument, TesseraError
from server.queries.convert import seconds
from server.queries.masking import unmasked_phi_columns
from server.queries.service import QueryDomain
from server.widgetdata.cache import MEMORY, STALE, WidgetDataCache
from server.widgetdata.definitions import CHANNEL, Definition, Definitions
from server.widgetdata.invalidations import Subscriber
from server.widgetdata.key import KeyParts, cache_key, masking_level
from server.widgetdata.request import CacheRequest, Served
from server.widgetdata.resolve import KeptResolutions, Resolved, load_definition, resolve, resolve_kept
from server.widgetdata.tier0 import Tier0Hit

__all__ = ["BATCH_CONCURRENCY", "FrameFacts", "WidgetDataBytes", "WidgetDataDomain", "cache_request_for"]

T = TypeVar("T")

# Widgets of one batch computed at once: enough to overlap a dashboard's queries, few enough
# that one batch cannot take every data-source connection.
BATCH_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class FrameFacts:
    row_count: int
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WidgetDataBytes:
    """A WidgetData already serialized (a tier-0 hit), with the fields the audit step reads of a
    response; the gRPC transport sends `payload` as it is."""

    payload: bytes
    widget_id: str
    query_version: int
    source: int
    masked: bool
    frame: FrameFacts

    def message(self) -> widget_pb2.WidgetData:
        return widget_pb2.WidgetData.FromString(self.payload)


class WidgetDataDomain:
    def __init__(self, db: Database, queries: QueryDomain, cache: WidgetDataCache, settings: Settings) -> None:
        self._db = db
        self._queries = queries
        self.cache = cache
        self._settings = settings
        self._default_ttl = float(settings.cache_ttl_seconds)
        self._resolutions = KeptResolutions()
        self.definitions = Definitions(db)
        self._followers: list[Listener | Subscriber] = []

    def start(self) -> None:
        """Starts following changes (the server runtime does, the workers do not): until then,
        and whenever a follower is not connected, nothing is kept in process or served from it."""
        if self._followers:
            return
        self._followers = [
            Listener(
                self._settings.database_url,
                CHANNEL,
                on_notify=self.definitions.on_notify,
                on_listening=self.definitions.on_listening,
                on_lost=self.definitions.on_lost,
                on_paused=self.definitions.on_paused,
                on_resumed=self.definitions.on_resumed,
            ),
            Subscriber(
                self._settings.redis_url,
                self.cache.channel,
                on_message=self.cache.on_invalidation,
                on_subscribed=self.cache.on_subscribed,
                on_lost=self.cache.on_lost,
                on_paused=self.cache.on_paused,
                on_resumed=self.cache.on_resumed,
            ),
        ]
        if self._settings.cache_tier0_max_bytes <= 0:
            self._followers.pop()
        for follower in self._followers:
            follower.start()

    async def get(self, principal: Principal, request: widget_pb2.GetWidgetDataRequest) -> widget_pb2.WidgetData:
        answer = await self.get_serialized(principal, request)
        return answer.message() if isinstance(answer, WidgetDataBytes) else answer

    async def get_serialized(
        self, principal: Principal, request: widget_pb2.GetWidgetDataRequest
    ) -> widget_pb2.WidgetData | WidgetDataBytes:
        """As get(), but a tier-0 hit comes as the bytes kept (nothing parsed or serialized)."""
        resolved = await self._resolve(principal, request)
        query = resolved.query
        if not request.force_refresh:
            found = self.cache.memory_hit(
                query.id, functools.partial(self._request_at, principal, resolved, request), request.widget_id
            )
            if found is not None:
                hit = found[1]
                audit_facts.note_data(
                    widget_id=request.widget_id,
                    query_id=query.id,
                    query_version=hit.query_version,
                    facility_id=query.facility_id,
                    row_count=hit.row_count,
                    phi_columns=list(hit.phi_columns),
                )
                return WidgetDataBytes(
                    payload=hit.payload,
                    widget_id=request.widget_id,
                    query_version=hit.query_version,
                    source=MEMORY,
                    masked=hit.masked,
                    frame=FrameFacts(hit.row_count, hit.columns),
                )
        return await self._serve(principal, resolved, request)

    async def batch_get(
        self, principal: Principal, requests: Sequence[widget_pb2.GetWidgetDataRequest]
    ) -> list[widget_pb2.WidgetData]:
        if not requests:
            return []
        resolved = await _bounded([self._resolve(principal, r) for r in requests], BATCH_CONCURRENCY)
        first = resolved[0].dashboard_id
        others = [i for i, r in enumerate(resolved) if r.dashboard_id != first]
        if others:
            raise InvalidArgument(
                "every request of a batch must be for a widget of the same dashboard",
                violations=[
                    FieldViolation(
                        f"requests[{i}].widget_id",
                        f"is on another dashboard than requests[0].widget_id ({requests[0].widget_id})",
                        "MIXED_DASHBOARDS",
                    )
                    for i in others
                ],
                reason="MIXED_DASHBOARDS",
            )
        return await _bounded(
            [self._serve(principal, r, q) for r, q in zip(resolved, requests, strict=True)], BATCH_CONCURRENCY
        )

    async def check(self, principal: Principal, request: widget_pb2.GetWidgetDataRequest) -> None:
        """Raises what `get` would raise for the request before running anything (access,
        values), without running the query."""
        await self._resolve(principal, request)

    async def stream(
        self,
        principal: Principal,
        request: widget_pb2.GetWidgetDataRequest,
        *,
        row_limit: int,
        timeout_seconds: float,
        batch_rows: int,
    ) -> AsyncGenerator[tuple[query_pb2.Query, common_pb2.DataFrame]]:
        """The widget's whole result (up to `row_limit` rows) in frames of `batch_rows`, resolved
        and masked exactly as `get` would serve it, but read from the data source past the cache
        and its row cap: for data exports, which must never hold the whole result."""
        resolved = await self._resolve(principal, request)
        frames = self._queries.stream(
            principal,
            resolved.query,
            resolved.values,
            row_limit=row_limit,
            timeout_seconds=timeout_seconds,
            batch_rows=batch_rows,
        )
        try:
            async for frame in frames:
                yield resolved.query, frame
        finally:
            await frames.aclose()

    async def key_for(self, principal: Principal, request: widget_pb2.GetWidgetDataRequest) -> str:
        """The cache key the request reads (for tools and tests)."""
        resolved = await self._resolve(principal, request)
        return (await self._cache_request(principal, resolved, request)).key

    async def invalidate(self, query_id: str) -> None:
        """Every cached frame of the query becomes unreachable (see WidgetDataCache.invalidate).
        New query versions and view refreshes need no call: they change the keys themselves."""
        await self.cache.invalidate(query_id)

    async def close(self) -> None:
        followers, self._followers = self._followers, []
        await asyncio.gather(*(f.stop() for f in followers))
        await self.cache.close()

    # ----------------------------------------------------------------------------------------

    async def _resolve(self, principal: Principal, request: widget_pb2.GetWidgetDataRequest) -> Resolved:
        kept = await self._kept(request.widget_id)
        if kept is not None:
            resolved = resolve_kept(principal, request, kept, self._resolutions)
            if resolved is not None:
                return resolved
        # Every statement of resolve() stands alone (no locks, no SET LOCAL), so no transaction;
        # definitions a moment old are fine (the caller's own writes are never missed).
        return await self._db.stale_read(lambda conn: resolve(conn, principal, request), autocommit=True)

    async def _kept(self, widget: str) -> Definition | None:
        """The widget's kept definition, loaded (from the primary: notifications come from
        there, and a copy from a lagging replica could miss its change for good) and kept when
        it is not; None when nothing may be kept now."""
        definitions = self.definitions
        if not definitions.listening:
            return None
        try:
            widget_id = uuid.UUID(widget)
        except ValueError:
            return None
        kept = await definitions.get(widget_id)
        if kept is None and definitions.listening:
            epoch = definitions.epoch
            try:
                kept = await self._db.current_read(lambda conn: load_definition(conn, widget_id))
            except Exception as error:
                if self._db.replica is None or not fallback_error(error):
                    raise
                return None  # the primary is unreachable: resolve() reads where routing says
            if kept is not None:
                definitions.keep(widget_id, kept, epoch)
        return kept

    async def _cache_request(
        self, principal: Principal, resolved: Resolved, request: widget_pb2.GetWidgetDataRequest
    ) -> CacheRequest:
        return self._request_at(principal, resolved, request, await self.cache.generation(resolved.query.id))

    def _request_at(
        self, principal: Principal, resolved: Resolved, request: widget_pb2.GetWidgetDataRequest, generation: int
    ) -> CacheRequest:
        level = masking_level(principal.can_read_phi, bool(resolved.query.sensitive_columns))
        max_age = seconds(request.max_age)
        made = (level, generation, max_age, request.force_refresh)
        found = resolved.cache_requests.get(made)
        if found is None:
            found = cache_request_for(
                resolved,
                masking_level=level,
                generation=generation,
                default_ttl=self._default_ttl,
                max_age=max_age,
                force_refresh=request.force_refresh,
            )
            if len(resolved.cache_requests) >= 8:
                resolved.cache_requests.clear()  # generations move on; the old ones are not asked
            resolved.cache_requests[made] = found
        return found

    async def _serve(
        self, principal: Principal, resolved: Resolved, request: widget_pb2.GetWidgetDataRequest
    ) -> widget_pb2.WidgetData:
        async def compute() -> tuple[common_pb2.DataFrame, bool]:
            result = await self._queries.execute(principal, resolved.query, resolved.values)
            return result.frame, result.masked

        epoch = self.cache.epoch
        served = await self.cache.read(
            resolved.query.id, functools.partial(self._request_at, principal, resolved, request), compute
        )
        data = _widget_data(request.widget_id, served)
        query = resolved.query
        phi_columns = tuple(unmasked_phi_columns(data.frame, (c.column for c in query.sensitive_columns)))
        # Whatever the cache tier, what counts for the audit log is what this response shows.
        audit_facts.note_data(
            widget_id=data.widget_id,
            query_id=query.id,
            query_version=data.query_version,
            facility_id=query.facility_id,
            row_count=data.frame.row_count,
            phi_columns=list(phi_columns),
        )
        if served.source != STALE and served.request is not None and self.cache.tier0.serving:
            self._remember(epoch, served, data, query.id, phi_columns, request)
        return data

    def _remember(
        self,
        epoch: int,
        served: Served,
        data: widget_pb2.WidgetData,
        query_id: str,
        phi_columns: tuple[str, ...],
        request: widget_pb2.GetWidgetDataRequest,
    ) -> None:
        """Keeps the response in tier 0 as a later hit would send it (source MEMORY)."""
        copy = widget_pb2.WidgetData()
        copy.CopyFrom(data)
        copy.source = MEMORY
        asked = served.request
        assert asked is not None
        self.cache.remember(
            epoch,
            (asked.key, request.widget_id, asked.ttl, asked.max_age),
            Tier0Hit(
                payload=copy.SerializeToString(),
                query_id=query_id.lower(),
                expire_at=served.expire_at,
                row_count=data.frame.row_count,
                query_version=data.query_version,
                masked=data.masked,
                phi_columns=phi_columns,
                columns=tuple(c.name for c in data.frame.columns),
            ),
        )


def cache_request_for(
    resolved: Resolved,
    *,
    masking_level: int,
    generation: int,
    default_ttl: float,
    max_age: float = 0.0,
    force_refresh: bool = False,
) -> CacheRequest:
    """The cache request (and key) for a resolved widget at a masking level: the one place that
    decides which parts make the key, for readers and for the workers that warm the cache."""
    query = resolved.query
    key = cache_key(
        KeyParts(
            query_id=query.id,
            query_version=query.version,
            refresh_time=resolved.refresh_time,
            parameters=resolved.parameters,
            facility_id=query.facility_id,
            masking_level=masking_level,
            generation=generation,
        )
    )
    return CacheRequest(
        key=key,
        query_id=query.id,
        query_version=query.version,
        facility_id=query.facility_id,
        masking_level=masking_level,
        widget_id=resolved.widget.id if resolved.widget_in_table else None,
        ttl=seconds(resolved.widget.refresh_interval) or default_ttl,
        max_age=max_age,
        force_refresh=force_refresh,
    )


def _stamp(seconds_since_epoch: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    micros = round(seconds_since_epoch * 1_000_000)
    stamp.FromMicroseconds(micros)
    return stamp


def _widget_data(widget_id: str, served: Served) -> widget_pb2.WidgetData:
    entry = served.entry
    return widget_pb2.WidgetData(
        widget_id=widget_id,
        frame=common_pb2.DataFrame.FromString(entry.frame),
        source=served.source,  # type: ignore[arg-type]
        compute_time=_stamp(entry.computed_at),
        expire_time=_stamp(served.expire_at),
        query_version=entry.query_version,
        masked=entry.masked,
    )


async def _bounded(coroutines: Sequence[Awaitable[T]], limit: int) -> list[T]:
    """All results in order, at most `limit` running at once; the first failure cancels the
    rest and is raised as itself (not as an ExceptionGroup, which the error mapping would not know)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(awaitable: Awaitable[T]) -> T:
        async with semaphore:
            return await awaitable

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(c)) for c in coroutines]
    except BaseExceptionGroup as failed:
        raise _first_error(failed) from None
    return [t.result() for t in tasks]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    # A domain error says what is wrong with the request; prefer it over anything else.
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    return next((e for e in leaves if isinstance(e, TesseraError)), leaves[0])
