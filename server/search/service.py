"""The search and favorites domain (SearchService).

Search runs one statement (`statement.py`) restricted by the policy's SQL twins, then re-checks
every row with the Python policy, as lists do. Favorites are a caller's own rows; adding one
needs read access to the dashboard, and lists show only what the caller may still read.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import search_pb2
from server import pagination
from server.access.policy import (
    DashboardFacts,
    dashboard_searchable,
    grants_from_rows,
    queries_searchable,
    require_favorite,
    require_role,
    searchable_dashboards,
    visible_dashboards,
)
from server.audit import facts as audit_facts
from server.auth.principal import Principal, Role
from server.dashboards.access import dashboard_facts, grants_column
from server.dashboards.service import DashboardDomain
from server.db.engine import Database
from server.db.schema import dashboard_favorites, dashboards
from server.errors import InvalidArgument, NotFound
from server.search import statement
from server.search.highlight import parse
from server.search.statement import Kind

S = search_pb2
DEFAULT_PAGE_SIZE = 20


class SearchDomain:
    def __init__(self, db: Database, dashboards_domain: DashboardDomain) -> None:
        self._db = db
        self._dashboards = dashboards_domain
        # Whether pg_trgm is installed (migration 0013 leaves the trigram indexes out otherwise):
        # asked once, then misspelt words are matched or not.
        self._trigrams: bool | None = None

    async def _has_trigrams(self, conn: AsyncConnection) -> bool:
        if self._trigrams is None:
            found = await conn.scalar(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"))
            self._trigrams = found is not None
        return self._trigrams

    # --- search -------------------------------------------------------------------------------

    async def search(self, principal: Principal, request: search_pb2.SearchRequest) -> search_pb2.SearchResponse:
        words = request.query.strip()
        if not words:
            raise InvalidArgument.field("query", "the query has no words", reason="EMPTY_QUERY")
        visible = searchable_dashboards(principal)  # refuses public links
        kinds = {Kind(k) for k in request.kinds} or set(Kind)
        if not queries_searchable(principal):
            kinds.discard(Kind.QUERY)
        filters_key = pagination.fingerprint(words, sorted(kinds), request.favorites_first)
        cursor = pagination.decode(request.page_token, filters_key)
        offset = _offset(cursor)
        size = pagination.page_size(request.page_size, DEFAULT_PAGE_SIZE)

        async def read(conn: AsyncConnection) -> list[Any]:
            trigrams = await self._has_trigrams(conn)
            branches = []
            if Kind.DASHBOARD in kinds:
                branches.append(statement.dashboards_branch(visible, principal.subject, trigrams))
            if Kind.WIDGET in kinds:
                branches.append(statement.widgets_branch(visible, principal.subject, trigrams))
            if Kind.QUERY in kinds:
                branches.append(statement.queries_branch(sorted(principal.facilities), trigrams))
            if not branches:
                return []
            query = statement.page(branches, favorites_first=request.favorites_first, offset=offset, limit=size + 1)
            return list((await conn.execute(query, {"q": words})).all())

        rows = await self._db.stale_read(read, autocommit=True)
        results = [_result(row) for row in rows[:size] if _may_see(principal, row)]
        token = ""
        if len(rows) > size:
            token = pagination.encode(pagination.Cursor(offset + size, ""), filters_key)
        return S.SearchResponse(results=results, next_page_token=token)

    # --- favorites ----------------------------------------------------------------------------

    async def add_favorite(self, principal: Principal, dashboard_id: str) -> search_pb2.Favorite:
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    select(dashboards, grants_column().label("grants")).where(
                        dashboards.c.id == uuid.UUID(dashboard_id)
                    )
                )
            ).first()
            if row is None:
                raise NotFound("dashboard", dashboard_id)
            audit_facts.note_facility(row.facility_id)
            require_favorite(principal, dashboard_facts(row, row.grants))
            await conn.execute(
                pg_insert(dashboard_favorites)
                .values(principal_id=principal.subject, dashboard_id=row.id, facility_id=row.facility_id)
                .on_conflict_do_nothing(index_elements=["principal_id", "dashboard_id"])
            )
            created: Any = await conn.scalar(
                select(dashboard_favorites.c.created_at).where(
                    dashboard_favorites.c.principal_id == principal.subject,
                    dashboard_favorites.c.dashboard_id == row.id,
                )
            )
        favorite = S.Favorite(dashboard_id=str(row.id))
        favorite.create_time.FromDatetime(created)
        return favorite

    async def remove_favorite(self, principal: Principal, dashboard_id: str) -> None:
        """Removes the caller's own row (even of a dashboard it can no longer read); NOT_FOUND when
        there is none (a public link never has one)."""
        async with self._db.transaction() as conn:
            gone = await conn.execute(
                delete(dashboard_favorites)
                .where(
                    dashboard_favorites.c.principal_id == principal.subject,
                    dashboard_favorites.c.dashboard_id == uuid.UUID(dashboard_id),
                )
                .returning(dashboard_favorites.c.facility_id)
            )
            facility = gone.scalar()
        if facility is None:
            raise NotFound("favorite", dashboard_id)
        audit_facts.note_facility(facility)

    async def list_favorites(
        self, principal: Principal, request: search_pb2.ListFavoritesRequest
    ) -> search_pb2.ListFavoritesResponse:
        require_role(principal, Role.VIEWER, "keeping favorites")
        filters_key = pagination.fingerprint("favorites")
        cursor = pagination.decode(request.page_token, filters_key)
        size = pagination.page_size(request.page_size)
        query = (
            select(
                dashboards,
                grants_column().label("grants"),
                dashboard_favorites.c.created_at.label("favorite_time"),
            )
            .select_from(dashboard_favorites.join(dashboards, dashboards.c.id == dashboard_favorites.c.dashboard_id))
            .where(dashboard_favorites.c.principal_id == principal.subject, visible_dashboards(principal))
        )
        if cursor is not None:
            try:
                boundary = tuple_(datetime.fromisoformat(cursor.key), uuid.UUID(cursor.id))
            except (TypeError, ValueError) as exc:
                raise InvalidArgument.field(
                    "page_token", "not a page token of this list", reason="INVALID_PAGE_TOKEN"
                ) from exc
            query = query.where(tuple_(dashboard_favorites.c.created_at, dashboard_favorites.c.dashboard_id) < boundary)
        query = query.order_by(
            dashboard_favorites.c.created_at.desc(), dashboard_favorites.c.dashboard_id.desc()
        ).limit(size + 1)

        async def read(conn: AsyncConnection) -> tuple[list[Any], list[Any]]:
            rows = list((await conn.execute(query)).all())
            return rows, await self._dashboards.list_views(conn, principal, rows[:size])

        rows, views = await self._db.stale_read(read, autocommit=True)
        by_id = {view.id: view for view in views}
        favorites = []
        for row in rows[:size]:
            view = by_id.get(str(row.id))
            if view is None:  # the policy's re-check refused it
                continue
            favorite = S.Favorite(dashboard_id=str(row.id), dashboard=view)
            favorite.create_time.FromDatetime(row.favorite_time)
            favorites.append(favorite)
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            token = pagination.encode(pagination.Cursor(last.favorite_time.isoformat(), str(last.id)), filters_key)
        return S.ListFavoritesResponse(favorites=favorites, next_page_token=token)


def _offset(cursor: pagination.Cursor | None) -> int:
    if cursor is None:
        return 0
    if not isinstance(cursor.key, int) or isinstance(cursor.key, bool) or cursor.key < 0:
        raise InvalidArgument.field("page_token", "not a page token of this search", reason="INVALID_PAGE_TOKEN")
    return cursor.key


def _may_see(principal: Principal, row: Any) -> bool:
    """The Python policy's re-check of a row the SQL let through."""
    if row.kind == Kind.QUERY:
        return queries_searchable(principal) and row.facility_id in principal.facilities
    facts = DashboardFacts(
        id=str(row.dashboard_id),
        facility_id=row.facility_id,
        owner_id=row.owner_id,
        visibility=row.visibility,
        published_version=row.published_version,
        grants=grants_from_rows((kind, grantee, level) for kind, grantee, level in row.grants),
    )
    return dashboard_searchable(principal, facts, row.version)


def _result(row: Any) -> search_pb2.SearchResult:
    snippet = parse(row.headline or "")
    result = S.SearchResult(
        kind=S.SearchResultKind.Name(int(row.kind)),
        id=str(row.id),
        title=row.title,
        snippet=snippet.text,
        highlights=[S.SearchHighlight(start=start, end=end) for start, end in snippet.highlights],
        dashboard_id=str(row.dashboard_id) if row.dashboard_id is not None else "",
        facility_id=row.facility_id,
        score=float(row.score),
        favorite=bool(row.favorite),
    )
    result.update_time.FromDatetime(row.updated_at)
    return result
