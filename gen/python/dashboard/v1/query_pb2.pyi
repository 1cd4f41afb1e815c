import datetime

from buf.validate import validate_pb2 as _validate_pb2
from dashboard.v1 import common_pb2 as _common_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_KIND_UNSPECIFIED: _ClassVar[QueryKind]
    QUERY_KIND_SQL: _ClassVar[QueryKind]
    QUERY_KIND_MATERIALIZED_VIEW: _ClassVar[QueryKind]

class ParameterType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARAMETER_TYPE_UNSPECIFIED: _ClassVar[ParameterType]
    PARAMETER_TYPE_STRING: _ClassVar[ParameterType]
    PARAMETER_TYPE_INT: _ClassVar[ParameterType]
    PARAMETER_TYPE_FLOAT: _ClassVar[ParameterType]
    PARAMETER_TYPE_BOOL: _ClassVar[ParameterType]
    PARAMETER_TYPE_DATE: _ClassVar[ParameterType]
    PARAMETER_TYPE_TIMESTAMP: _ClassVar[ParameterType]
    PARAMETER_TYPE_DATE_RANGE: _ClassVar[ParameterType]
    PARAMETER_TYPE_ENUM: _ClassVar[ParameterType]

class MaskingStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MASKING_STRATEGY_UNSPECIFIED: _ClassVar[MaskingStrategy]
    MASKING_STRATEGY_REDACT: _ClassVar[MaskingStrategy]
    MASKING_STRATEGY_HASH: _ClassVar[MaskingStrategy]
    MASKING_STRATEGY_PARTIAL: _ClassVar[MaskingStrategy]
QUERY_KIND_UNSPECIFIED: QueryKind
QUERY_KIND_SQL: QueryKind
QUERY_KIND_MATERIALIZED_VIEW: QueryKind
PARAMETER_TYPE_UNSPECIFIED: ParameterType
PARAMETER_TYPE_STRING: ParameterType
PARAMETER_TYPE_INT: ParameterType
PARAMETER_TYPE_FLOAT: ParameterType
PARAMETER_TYPE_BOOL: ParameterType
PARAMETER_TYPE_DATE: ParameterType
PARAMETER_TYPE_TIMESTAMP: ParameterType
PARAMETER_TYPE_DATE_RANGE: ParameterType
PARAMETER_TYPE_ENUM: ParameterType
MASKING_STRATEGY_UNSPECIFIED: MaskingStrategy
MASKING_STRATEGY_REDACT: MaskingStrategy
MASKING_STRATEGY_HASH: MaskingStrategy
MASKING_STRATEGY_PARTIAL: MaskingStrategy

class ParameterSpec(_message.Message):
    __slots__ = ("name", "type", "list", "required", "default_value", "min", "max", "min_length", "max_length", "pattern", "allowed_values", "max_items", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_VALUES_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ParameterType
    list: bool
    required: bool
    default_value: _common_pb2.ParameterValue
    min: _common_pb2.ParameterValue
    max: _common_pb2.ParameterValue
    min_length: int
    max_length: int
    pattern: str
    allowed_values: _containers.RepeatedScalarFieldContainer[str]
    max_items: int
    description: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ParameterType, str]] = ..., list: _Optional[bool] = ..., required: _Optional[bool] = ..., default_value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ..., min: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ..., max: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ..., min_length: _Optional[int] = ..., max_length: _Optional[int] = ..., pattern: _Optional[str] = ..., allowed_values: _Optional[_Iterable[str]] = ..., max_items: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class SensitiveColumn(_message.Message):
    __slots__ = ("column", "strategy")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    column: str
    strategy: MaskingStrategy
    def __init__(self, column: _Optional[str] = ..., strategy: _Optional[_Union[MaskingStrategy, str]] = ...) -> None: ...

class QueryOptions(_message.Message):
    __slots__ = ("timeout", "row_limit")
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ROW_LIMIT_FIELD_NUMBER: _ClassVar[int]
    timeout: _duration_pb2.Duration
    row_limit: int
    def __init__(self, timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., row_limit: _Optional[int] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("id", "facility_id", "owner_id", "name", "description", "kind", "sql", "parameters", "options", "sensitive_columns", "template", "tags", "version", "view_name", "refresh_time", "view_key_columns", "etag", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SQL_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SENSITIVE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VIEW_NAME_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TIME_FIELD_NUMBER: _ClassVar[int]
    VIEW_KEY_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    facility_id: str
    owner_id: str
    name: str
    description: str
    kind: QueryKind
    sql: str
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    options: QueryOptions
    sensitive_columns: _containers.RepeatedCompositeFieldContainer[SensitiveColumn]
    template: bool
    tags: _containers.RepeatedScalarFieldContainer[str]
    version: int
    view_name: str
    refresh_time: _timestamp_pb2.Timestamp
    view_key_columns: _containers.RepeatedScalarFieldContainer[str]
    etag: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., facility_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., kind: _Optional[_Union[QueryKind, str]] = ..., sql: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ..., options: _Optional[_Union[QueryOptions, _Mapping]] = ..., sensitive_columns: _Optional[_Iterable[_Union[SensitiveColumn, _Mapping]]] = ..., template: _Optional[bool] = ..., tags: _Optional[_Iterable[str]] = ..., version: _Optional[int] = ..., view_name: _Optional[str] = ..., refresh_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., view_key_columns: _Optional[_Iterable[str]] = ..., etag: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueryVersion(_message.Message):
    __slots__ = ("query_id", "version", "snapshot", "author_id", "create_time")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    version: int
    snapshot: Query
    author_id: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, query_id: _Optional[str] = ..., version: _Optional[int] = ..., snapshot: _Optional[_Union[Query, _Mapping]] = ..., author_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateQueryRequest(_message.Message):
    __slots__ = ("query", "request_id")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    query: Query
    request_id: str
    def __init__(self, query: _Optional[_Union[Query, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetQueryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListQueriesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name_contains", "kind", "tags", "template")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name_contains: str
    kind: QueryKind
    tags: _containers.RepeatedScalarFieldContainer[str]
    template: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name_contains: _Optional[str] = ..., kind: _Optional[_Union[QueryKind, str]] = ..., tags: _Optional[_Iterable[str]] = ..., template: _Optional[bool] = ...) -> None: ...

class ListQueriesResponse(_message.Message):
    __slots__ = ("queries", "next_page_token")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[Query]
    next_page_token: str
    def __init__(self, queries: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateQueryRequest(_message.Message):
    __slots__ = ("query", "update_mask")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    query: Query
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, query: _Optional[_Union[Query, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteQueryRequest(_message.Message):
    __slots__ = ("id", "force", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: str
    force: bool
    etag: str
    def __init__(self, id: _Optional[str] = ..., force: _Optional[bool] = ..., etag: _Optional[str] = ...) -> None: ...

class ListQueryVersionsRequest(_message.Message):
    __slots__ = ("query_id", "page_size", "page_token")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    page_size: int
    page_token: str
    def __init__(self, query_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListQueryVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[QueryVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[QueryVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetQueryVersionRequest(_message.Message):
    __slots__ = ("query_id", "version")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    version: int
    def __init__(self, query_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RunQueryRequest(_message.Message):
    __slots__ = ("id", "version", "parameter_values", "row_limit", "facility_id")
    class ParameterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_VALUES_FIELD_NUMBER: _ClassVar[int]
    ROW_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    parameter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    row_limit: int
    facility_id: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., parameter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ..., row_limit: _Optional[int] = ..., facility_id: _Optional[str] = ...) -> None: ...

class RunQueryResponse(_message.Message):
    __slots__ = ("frame", "query_version", "elapsed", "masked")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    QUERY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    frame: _common_pb2.DataFrame
    query_version: int
    elapsed: _duration_pb2.Duration
    masked: bool
    def __init__(self, frame: _Optional[_Union[_common_pb2.DataFrame, _Mapping]] = ..., query_version: _Optional[int] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., masked: _Optional[bool] = ...) -> None: ...

class ValidateQueryRequest(_message.Message):
    __slots__ = ("sql", "parameters")
    SQL_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    sql: str
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    def __init__(self, sql: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ...) -> None: ...

class SqlProblem(_message.Message):
    __slots__ = ("message", "line", "column")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    message: str
    line: int
    column: int
    def __init__(self, message: _Optional[str] = ..., line: _Optional[int] = ..., column: _Optional[int] = ...) -> None: ...

class ValidateQueryResponse(_message.Message):
    __slots__ = ("valid", "problems", "placeholders")
    VALID_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    PLACEHOLDERS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    problems: _containers.RepeatedCompositeFieldContainer[SqlProblem]
    placeholders: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, valid: _Optional[bool] = ..., problems: _Optional[_Iterable[_Union[SqlProblem, _Mapping]]] = ..., placeholders: _Optional[_Iterable[str]] = ...) -> None: ...

class RefreshMaterializedViewRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
