import datetime

from buf.validate import validate_pb2 as _validate_pb2
from dashboard.v1 import dashboard_pb2 as _dashboard_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchResultKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_RESULT_KIND_UNSPECIFIED: _ClassVar[SearchResultKind]
    SEARCH_RESULT_KIND_DASHBOARD: _ClassVar[SearchResultKind]
    SEARCH_RESULT_KIND_WIDGET: _ClassVar[SearchResultKind]
    SEARCH_RESULT_KIND_QUERY: _ClassVar[SearchResultKind]
SEARCH_RESULT_KIND_UNSPECIFIED: SearchResultKind
SEARCH_RESULT_KIND_DASHBOARD: SearchResultKind
SEARCH_RESULT_KIND_WIDGET: SearchResultKind
SEARCH_RESULT_KIND_QUERY: SearchResultKind

class SearchRequest(_message.Message):
    __slots__ = ("query", "kinds", "page_size", "page_token", "favorites_first")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FAVORITES_FIRST_FIELD_NUMBER: _ClassVar[int]
    query: str
    kinds: _containers.RepeatedScalarFieldContainer[SearchResultKind]
    page_size: int
    page_token: str
    favorites_first: bool
    def __init__(self, query: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[SearchResultKind, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., favorites_first: _Optional[bool] = ...) -> None: ...

class SearchHighlight(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("kind", "id", "title", "snippet", "highlights", "dashboard_id", "facility_id", "score", "favorite", "update_time")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    HIGHLIGHTS_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FAVORITE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    kind: SearchResultKind
    id: str
    title: str
    snippet: str
    highlights: _containers.RepeatedCompositeFieldContainer[SearchHighlight]
    dashboard_id: str
    facility_id: str
    score: float
    favorite: bool
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[SearchResultKind, str]] = ..., id: _Optional[str] = ..., title: _Optional[str] = ..., snippet: _Optional[str] = ..., highlights: _Optional[_Iterable[_Union[SearchHighlight, _Mapping]]] = ..., dashboard_id: _Optional[str] = ..., facility_id: _Optional[str] = ..., score: _Optional[float] = ..., favorite: _Optional[bool] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "next_page_token")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResult]
    next_page_token: str
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Favorite(_message.Message):
    __slots__ = ("dashboard_id", "create_time", "dashboard")
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    create_time: _timestamp_pb2.Timestamp
    dashboard: _dashboard_pb2.Dashboard
    def __init__(self, dashboard_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dashboard: _Optional[_Union[_dashboard_pb2.Dashboard, _Mapping]] = ...) -> None: ...

class AddFavoriteRequest(_message.Message):
    __slots__ = ("dashboard_id",)
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    def __init__(self, dashboard_id: _Optional[str] = ...) -> None: ...

class RemoveFavoriteRequest(_message.Message):
    __slots__ = ("dashboard_id",)
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    def __init__(self, dashboard_id: _Optional[str] = ...) -> None: ...

class ListFavoritesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFavoritesResponse(_message.Message):
    __slots__ = ("favorites", "next_page_token")
    FAVORITES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    favorites: _containers.RepeatedCompositeFieldContainer[Favorite]
    next_page_token: str
    def __init__(self, favorites: _Optional[_Iterable[_Union[Favorite, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
