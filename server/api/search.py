"""SearchService: proto in -> SearchDomain call -> proto out."""

from __future__ import annotations

from google.protobuf import empty_pb2

from dashboard.v1 import search_pb2 as pb
from dashboard.v1 import search_pb2_grpc
from server.api.context import Ctx, current_principal
from server.search.service import SearchDomain


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, domain: SearchDomain) -> None:
        self._domain = domain

    async def Search(self, request: pb.SearchRequest, context: Ctx) -> pb.SearchResponse:
        return await self._domain.search(current_principal(), request)

    async def AddFavorite(self, request: pb.AddFavoriteRequest, context: Ctx) -> pb.Favorite:
        return await self._domain.add_favorite(current_principal(), request.dashboard_id)

    async def RemoveFavorite(self, request: pb.RemoveFavoriteRequest, context: Ctx) -> empty_pb2.Empty:
        await self._domain.remove_favorite(current_principal(), request.dashboard_id)
        return empty_pb2.Empty()

    async def ListFavorites(self, request: pb.ListFavoritesRequest, context: Ctx) -> pb.ListFavoritesResponse:
        return await self._domain.list_favorites(current_principal(), request)
