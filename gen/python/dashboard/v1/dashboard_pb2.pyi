import datetime

from buf.validate import validate_pb2 as _validate_pb2
from dashboard.v1 import common_pb2 as _common_pb2
from dashboard.v1 import query_pb2 as _query_pb2
from dashboard.v1 import widget_pb2 as _widget_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Visibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VISIBILITY_UNSPECIFIED: _ClassVar[Visibility]
    VISIBILITY_PRIVATE: _ClassVar[Visibility]
    VISIBILITY_PUBLIC: _ClassVar[Visibility]

class VersionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_REASON_UNSPECIFIED: _ClassVar[VersionReason]
    VERSION_REASON_CREATE: _ClassVar[VersionReason]
    VERSION_REASON_UPDATE: _ClassVar[VersionReason]
    VERSION_REASON_WIDGET_CHANGE: _ClassVar[VersionReason]
    VERSION_REASON_RESTORE: _ClassVar[VersionReason]

class QueryImportMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_IMPORT_MODE_UNSPECIFIED: _ClassVar[QueryImportMode]
    QUERY_IMPORT_MODE_CREATE: _ClassVar[QueryImportMode]
    QUERY_IMPORT_MODE_REUSE_IDENTICAL: _ClassVar[QueryImportMode]

class QueryImportAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_IMPORT_ACTION_UNSPECIFIED: _ClassVar[QueryImportAction]
    QUERY_IMPORT_ACTION_CREATED: _ClassVar[QueryImportAction]
    QUERY_IMPORT_ACTION_MAPPED: _ClassVar[QueryImportAction]
    QUERY_IMPORT_ACTION_REUSED: _ClassVar[QueryImportAction]

class TitleConflictPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TITLE_CONFLICT_POLICY_UNSPECIFIED: _ClassVar[TitleConflictPolicy]
    TITLE_CONFLICT_POLICY_REFUSE: _ClassVar[TitleConflictPolicy]
    TITLE_CONFLICT_POLICY_RENAME: _ClassVar[TitleConflictPolicy]
    TITLE_CONFLICT_POLICY_KEEP: _ClassVar[TitleConflictPolicy]
VISIBILITY_UNSPECIFIED: Visibility
VISIBILITY_PRIVATE: Visibility
VISIBILITY_PUBLIC: Visibility
VERSION_REASON_UNSPECIFIED: VersionReason
VERSION_REASON_CREATE: VersionReason
VERSION_REASON_UPDATE: VersionReason
VERSION_REASON_WIDGET_CHANGE: VersionReason
VERSION_REASON_RESTORE: VersionReason
QUERY_IMPORT_MODE_UNSPECIFIED: QueryImportMode
QUERY_IMPORT_MODE_CREATE: QueryImportMode
QUERY_IMPORT_MODE_REUSE_IDENTICAL: QueryImportMode
QUERY_IMPORT_ACTION_UNSPECIFIED: QueryImportAction
QUERY_IMPORT_ACTION_CREATED: QueryImportAction
QUERY_IMPORT_ACTION_MAPPED: QueryImportAction
QUERY_IMPORT_ACTION_REUSED: QueryImportAction
TITLE_CONFLICT_POLICY_UNSPECIFIED: TitleConflictPolicy
TITLE_CONFLICT_POLICY_REFUSE: TitleConflictPolicy
TITLE_CONFLICT_POLICY_RENAME: TitleConflictPolicy
TITLE_CONFLICT_POLICY_KEEP: TitleConflictPolicy

class GridLayout(_message.Message):
    __slots__ = ("columns", "row_height", "gap", "time_zone")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROW_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    columns: int
    row_height: int
    gap: int
    time_zone: str
    def __init__(self, columns: _Optional[int] = ..., row_height: _Optional[int] = ..., gap: _Optional[int] = ..., time_zone: _Optional[str] = ...) -> None: ...

class DashboardFilter(_message.Message):
    __slots__ = ("name", "label", "default_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    label: str
    default_value: _common_pb2.ParameterValue
    def __init__(self, name: _Optional[str] = ..., label: _Optional[str] = ..., default_value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...

class Dashboard(_message.Message):
    __slots__ = ("id", "facility_id", "owner_id", "title", "description", "tags", "metadata", "visibility", "layout", "filters", "widgets", "version", "published_version", "publish_time", "etag", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    WIDGETS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    facility_id: str
    owner_id: str
    title: str
    description: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    visibility: Visibility
    layout: GridLayout
    filters: _containers.RepeatedCompositeFieldContainer[DashboardFilter]
    widgets: _containers.RepeatedCompositeFieldContainer[_widget_pb2.Widget]
    version: int
    published_version: int
    publish_time: _timestamp_pb2.Timestamp
    etag: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., facility_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., layout: _Optional[_Union[GridLayout, _Mapping]] = ..., filters: _Optional[_Iterable[_Union[DashboardFilter, _Mapping]]] = ..., widgets: _Optional[_Iterable[_Union[_widget_pb2.Widget, _Mapping]]] = ..., version: _Optional[int] = ..., published_version: _Optional[int] = ..., publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DashboardVersion(_message.Message):
    __slots__ = ("dashboard_id", "version", "snapshot", "reason", "restored_from", "author_id", "create_time", "published")
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FROM_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    version: int
    snapshot: Dashboard
    reason: VersionReason
    restored_from: int
    author_id: str
    create_time: _timestamp_pb2.Timestamp
    published: bool
    def __init__(self, dashboard_id: _Optional[str] = ..., version: _Optional[int] = ..., snapshot: _Optional[_Union[Dashboard, _Mapping]] = ..., reason: _Optional[_Union[VersionReason, str]] = ..., restored_from: _Optional[int] = ..., author_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., published: _Optional[bool] = ...) -> None: ...

class CreateDashboardRequest(_message.Message):
    __slots__ = ("dashboard", "request_id")
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dashboard: Dashboard
    request_id: str
    def __init__(self, dashboard: _Optional[_Union[Dashboard, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetDashboardRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListDashboardsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "tags", "owner_id", "published", "facility_id", "title_contains", "order_by", "favorites_first")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    FAVORITES_FIRST_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    owner_id: str
    published: bool
    facility_id: str
    title_contains: str
    order_by: str
    favorites_first: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., owner_id: _Optional[str] = ..., published: _Optional[bool] = ..., facility_id: _Optional[str] = ..., title_contains: _Optional[str] = ..., order_by: _Optional[str] = ..., favorites_first: _Optional[bool] = ...) -> None: ...

class ListDashboardsResponse(_message.Message):
    __slots__ = ("dashboards", "next_page_token")
    DASHBOARDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dashboards: _containers.RepeatedCompositeFieldContainer[Dashboard]
    next_page_token: str
    def __init__(self, dashboards: _Optional[_Iterable[_Union[Dashboard, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateDashboardRequest(_message.Message):
    __slots__ = ("dashboard", "update_mask")
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    dashboard: Dashboard
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, dashboard: _Optional[_Union[Dashboard, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteDashboardRequest(_message.Message):
    __slots__ = ("id", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: str
    etag: str
    def __init__(self, id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class PublishDashboardRequest(_message.Message):
    __slots__ = ("id", "version", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    etag: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class ListDashboardVersionsRequest(_message.Message):
    __slots__ = ("dashboard_id", "page_size", "page_token")
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    page_size: int
    page_token: str
    def __init__(self, dashboard_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDashboardVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[DashboardVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[DashboardVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDashboardVersionRequest(_message.Message):
    __slots__ = ("dashboard_id", "version")
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    version: int
    def __init__(self, dashboard_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RestoreDashboardVersionRequest(_message.Message):
    __slots__ = ("dashboard_id", "version", "etag")
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    version: int
    etag: str
    def __init__(self, dashboard_id: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class DashboardDocument(_message.Message):
    __slots__ = ("schema_version", "dashboard", "widgets", "queries")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    WIDGETS_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    dashboard: Dashboard
    widgets: _containers.RepeatedCompositeFieldContainer[DocumentWidget]
    queries: _containers.RepeatedCompositeFieldContainer[DocumentQuery]
    def __init__(self, schema_version: _Optional[str] = ..., dashboard: _Optional[_Union[Dashboard, _Mapping]] = ..., widgets: _Optional[_Iterable[_Union[DocumentWidget, _Mapping]]] = ..., queries: _Optional[_Iterable[_Union[DocumentQuery, _Mapping]]] = ...) -> None: ...

class DocumentWidget(_message.Message):
    __slots__ = ("key", "widget", "query_key", "pin_query_version", "drill_through")
    KEY_FIELD_NUMBER: _ClassVar[int]
    WIDGET_FIELD_NUMBER: _ClassVar[int]
    QUERY_KEY_FIELD_NUMBER: _ClassVar[int]
    PIN_QUERY_VERSION_FIELD_NUMBER: _ClassVar[int]
    DRILL_THROUGH_FIELD_NUMBER: _ClassVar[int]
    key: str
    widget: _widget_pb2.Widget
    query_key: str
    pin_query_version: bool
    drill_through: DocumentDrillThrough
    def __init__(self, key: _Optional[str] = ..., widget: _Optional[_Union[_widget_pb2.Widget, _Mapping]] = ..., query_key: _Optional[str] = ..., pin_query_version: _Optional[bool] = ..., drill_through: _Optional[_Union[DocumentDrillThrough, _Mapping]] = ...) -> None: ...

class DocumentDrillThrough(_message.Message):
    __slots__ = ("to_this_dashboard", "target_dashboard_id", "column_to_filter")
    class ColumnToFilterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TO_THIS_DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    TARGET_DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    COLUMN_TO_FILTER_FIELD_NUMBER: _ClassVar[int]
    to_this_dashboard: bool
    target_dashboard_id: str
    column_to_filter: _containers.ScalarMap[str, str]
    def __init__(self, to_this_dashboard: _Optional[bool] = ..., target_dashboard_id: _Optional[str] = ..., column_to_filter: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DocumentQuery(_message.Message):
    __slots__ = ("key", "query")
    KEY_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    key: str
    query: _query_pb2.Query
    def __init__(self, key: _Optional[str] = ..., query: _Optional[_Union[_query_pb2.Query, _Mapping]] = ...) -> None: ...

class ExportDashboardDocumentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ImportDashboardRequest(_message.Message):
    __slots__ = ("facility_id", "document", "validate_only", "query_mode", "query_mappings", "title", "request_id", "title_conflict", "dashboard_mappings")
    class QueryMappingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class DashboardMappingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    QUERY_MODE_FIELD_NUMBER: _ClassVar[int]
    QUERY_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_CONFLICT_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    facility_id: str
    document: DashboardDocument
    validate_only: bool
    query_mode: QueryImportMode
    query_mappings: _containers.ScalarMap[str, str]
    title: str
    request_id: str
    title_conflict: TitleConflictPolicy
    dashboard_mappings: _containers.ScalarMap[str, str]
    def __init__(self, facility_id: _Optional[str] = ..., document: _Optional[_Union[DashboardDocument, _Mapping]] = ..., validate_only: _Optional[bool] = ..., query_mode: _Optional[_Union[QueryImportMode, str]] = ..., query_mappings: _Optional[_Mapping[str, str]] = ..., title: _Optional[str] = ..., request_id: _Optional[str] = ..., title_conflict: _Optional[_Union[TitleConflictPolicy, str]] = ..., dashboard_mappings: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ImportedQuery(_message.Message):
    __slots__ = ("key", "query_id", "action")
    KEY_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    query_id: str
    action: QueryImportAction
    def __init__(self, key: _Optional[str] = ..., query_id: _Optional[str] = ..., action: _Optional[_Union[QueryImportAction, str]] = ...) -> None: ...

class ImportDashboardResponse(_message.Message):
    __slots__ = ("dashboard", "queries", "validate_only", "title")
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    dashboard: Dashboard
    queries: _containers.RepeatedCompositeFieldContainer[ImportedQuery]
    validate_only: bool
    title: str
    def __init__(self, dashboard: _Optional[_Union[Dashboard, _Mapping]] = ..., queries: _Optional[_Iterable[_Union[ImportedQuery, _Mapping]]] = ..., validate_only: _Optional[bool] = ..., title: _Optional[str] = ...) -> None: ...

class CloneDashboardRequest(_message.Message):
    __slots__ = ("id", "facility_id", "title", "query_mode", "request_id", "title_conflict", "dashboard_mappings")
    class DashboardMappingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    QUERY_MODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_CONFLICT_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    facility_id: str
    title: str
    query_mode: QueryImportMode
    request_id: str
    title_conflict: TitleConflictPolicy
    dashboard_mappings: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., facility_id: _Optional[str] = ..., title: _Optional[str] = ..., query_mode: _Optional[_Union[QueryImportMode, str]] = ..., request_id: _Optional[str] = ..., title_conflict: _Optional[_Union[TitleConflictPolicy, str]] = ..., dashboard_mappings: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BatchCloneDashboardsRequest(_message.Message):
    __slots__ = ("requests", "request_id")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CloneDashboardRequest]
    request_id: str
    def __init__(self, requests: _Optional[_Iterable[_Union[CloneDashboardRequest, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchCloneDashboardsResponse(_message.Message):
    __slots__ = ("clones",)
    CLONES_FIELD_NUMBER: _ClassVar[int]
    clones: _containers.RepeatedCompositeFieldContainer[ImportDashboardResponse]
    def __init__(self, clones: _Optional[_Iterable[_Union[ImportDashboardResponse, _Mapping]]] = ...) -> None: ...
