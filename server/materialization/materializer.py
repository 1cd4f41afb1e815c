"""Warming the widget-data cache for one widget, as the workers do it.

Composes the widget-data read path (server/widgetdata: resolve, key, cache) rather than
duplicating it, so a materialized entry has exactly the key a reader's GetWidgetData computes.

Principal: materialization runs as a system principal of the widget's facility: an ADMIN of that
one facility (so the access checks of `resolve` pass for any dashboard there and for no other
facility; RLS and `:facility_id` still scope the query) holding `phi:read`. With `phi:read` the
query runs once, unmasked, and fills the NONE masking level; when the query declares PHI columns
the MASKED level is filled from the same frame with the executor's own masking function (same
strategies, same key), so both kinds of reader find a warm entry from a single execution.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dashboard.v1 import common_pb2, query_pb2, widget_pb2
from server.auth.principal import PHI_READ, Principal, Role
from server.config import Settings
from server.db.engine import Database
from server.queries.masking import MASKING_LEVEL_MASKED, MASKING_LEVEL_NONE, mask_frame
from server.queries.service import QueryDomain
from server.widgetdata.cache import CacheRequest, WidgetDataCache
from server.widgetdata.resolve import Resolved, resolve
from server.widgetdata.service import cache_request_for

__all__ = ["SYSTEM_SUBJECT", "Materialized", "Materializer", "system_principal"]

SYSTEM_SUBJECT = "system:materializer"


def system_principal(facility_id: str) -> Principal:
    return Principal(
        subject=SYSTEM_SUBJECT,
        role=Role.ADMIN,
        facilities=frozenset({facility_id}),
        permissions=frozenset({PHI_READ}),
    )


@dataclass(frozen=True)
class Materialized:
    row_count: int
    levels: int  # masking levels written (1 or 2)


class Materializer:
    def __init__(
        self,
        db: Database,
        queries: QueryDomain,
        cache: WidgetDataCache,
        settings: Settings,
        *,
        on_warmed: Callable[[str, float], None] | None = None,
    ) -> None:
        self._db = db
        self._on_warmed = on_warmed
        self._queries = queries
        self._cache = cache
        self._default_ttl = float(settings.cache_ttl_seconds)
        self._masking_key = settings.masking_key_bytes

    async def warm(
        self,
        facility_id: str,
        widget_id: str,
        *,
        dashboard_version: int = 0,
        filter_values: Mapping[str, common_pb2.ParameterValue] | None = None,
    ) -> Materialized:
        """Recomputes the widget's data (force refresh, still single-flight) into both tiers."""
        started = time.perf_counter()
        outcome = "error"
        try:
            done = await self._warm(facility_id, widget_id, dashboard_version, filter_values)
            outcome = "ok"
            return done
        finally:
            if self._on_warmed is not None:
                self._on_warmed(outcome, time.perf_counter() - started)

    async def _warm(
        self,
        facility_id: str,
        widget_id: str,
        dashboard_version: int,
        filter_values: Mapping[str, common_pb2.ParameterValue] | None,
    ) -> Materialized:
        principal = system_principal(facility_id)
        request = widget_pb2.GetWidgetDataRequest(
            widget_id=widget_id,
            dashboard_version=dashboard_version,
            filter_values=dict(filter_values or {}),
            force_refresh=True,
        )
        async with self._db.read() as conn:
            resolved = await resolve(conn, principal, request)
        query = resolved.query
        generation = await self._cache.generation(query.id)

        async def unmasked() -> tuple[common_pb2.DataFrame, bool]:
            result = await self._queries.execute(principal, query, resolved.values)
            return result.frame, result.masked

        served = await self._cache.get(self._request(resolved, generation, MASKING_LEVEL_NONE), unmasked)
        frame = common_pb2.DataFrame.FromString(served.entry.frame)
        if not query.sensitive_columns:
            return Materialized(int(frame.row_count), 1)

        async def masked() -> tuple[common_pb2.DataFrame, bool]:
            strategies = {c.column: c.strategy or query_pb2.MASKING_STRATEGY_REDACT for c in query.sensitive_columns}
            return mask_frame(frame, strategies, self._masking_key), True

        await self._cache.get(self._request(resolved, generation, MASKING_LEVEL_MASKED), masked)
        return Materialized(int(frame.row_count), 2)

    def _request(self, resolved: Resolved, generation: int, level: int) -> CacheRequest:
        # The very key a reader at this masking level computes (one place decides its parts).
        return cache_request_for(
            resolved, masking_level=level, generation=generation, default_ttl=self._default_ttl, force_refresh=True
        )
