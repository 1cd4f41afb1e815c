"""The rpcs of SearchService (search and favorites), typed like tessera_client.rpcs; a unit test
checks this table against the service descriptor."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2

from dashboard.v1 import search_pb2 as sr
from tessera_client.rpcs import IDEMPOTENT, SAFE, SEARCH_SERVICE, UNSAFE, Rpc, Unary

S = SEARCH_SERVICE

SEARCH = Unary(S, "Search", sr.SearchRequest, sr.SearchResponse, SAFE)
# Adding a favorite twice changes nothing; a second removal answers NOT_FOUND (as deletes: unsafe).
ADD_FAVORITE = Unary(S, "AddFavorite", sr.AddFavoriteRequest, sr.Favorite, IDEMPOTENT)
REMOVE_FAVORITE = Unary(S, "RemoveFavorite", sr.RemoveFavoriteRequest, empty_pb2.Empty, UNSAFE)
LIST_FAVORITES = Unary(S, "ListFavorites", sr.ListFavoritesRequest, sr.ListFavoritesResponse, SAFE)

SEARCH_RPCS: tuple[Rpc[Any, Any], ...] = tuple(value for value in list(globals().values()) if isinstance(value, Rpc))
