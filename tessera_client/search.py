"""Search and favorites with keyword arguments (`client.search`): ranked results across pages,
and the caller's favorite dashboards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from dashboard.v1 import search_pb2 as sr
from tessera_client import search_rpcs as rpc
from tessera_client.rpcs import Req, Resp, Unary

__all__ = ["KINDS", "Search"]

KINDS = {
    "dashboard": sr.SEARCH_RESULT_KIND_DASHBOARD,
    "widget": sr.SEARCH_RESULT_KIND_WIDGET,
    "query": sr.SEARCH_RESULT_KIND_QUERY,
}


class _Caller(Protocol):
    def call(self, rpc: Unary[Req, Resp], request: Req) -> Resp: ...

    def pages(self, rpc: Unary[Req, Resp], request: Req, items: str) -> Iterator[Any]: ...


class Search:
    def __init__(self, client: _Caller) -> None:
        self._client = client

    def find(
        self, text: str, *, kinds: Sequence[str] = (), favorites_first: bool = False, page_size: int = 0
    ) -> Iterator[sr.SearchResult]:
        """Every result the caller may see, best first, across pages. `kinds`: any of dashboard,
        widget, query (ValueError for anything else); none means all."""
        try:
            wanted = [KINDS[kind] for kind in kinds]
        except KeyError as missing:
            raise ValueError(f"unknown kind {missing}; one of {', '.join(KINDS)}") from None
        request = sr.SearchRequest(query=text, kinds=wanted, favorites_first=favorites_first, page_size=page_size)
        return self._client.pages(rpc.SEARCH, request, "results")

    def add_favorite(self, dashboard_id: str) -> sr.Favorite:
        return self._client.call(rpc.ADD_FAVORITE, sr.AddFavoriteRequest(dashboard_id=dashboard_id))

    def remove_favorite(self, dashboard_id: str) -> None:
        self._client.call(rpc.REMOVE_FAVORITE, sr.RemoveFavoriteRequest(dashboard_id=dashboard_id))

    def favorites(self, *, page_size: int = 0) -> Iterator[sr.Favorite]:
        """The caller's favorites it may still read, newest first (each with its dashboard)."""
        return self._client.pages(rpc.LIST_FAVORITES, sr.ListFavoritesRequest(page_size=page_size), "favorites")
