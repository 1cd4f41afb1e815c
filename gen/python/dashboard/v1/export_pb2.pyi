import datetime

from buf.validate import validate_pb2 as _validate_pb2
from dashboard.v1 import common_pb2 as _common_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_PDF: _ClassVar[ExportFormat]
    EXPORT_FORMAT_PNG: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_XLSX: _ClassVar[ExportFormat]

class PaperSize(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAPER_SIZE_UNSPECIFIED: _ClassVar[PaperSize]
    PAPER_SIZE_A4: _ClassVar[PaperSize]
    PAPER_SIZE_A3: _ClassVar[PaperSize]
    PAPER_SIZE_LETTER: _ClassVar[PaperSize]
    PAPER_SIZE_LEGAL: _ClassVar[PaperSize]

class Orientation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORIENTATION_UNSPECIFIED: _ClassVar[Orientation]
    ORIENTATION_PORTRAIT: _ClassVar[Orientation]
    ORIENTATION_LANDSCAPE: _ClassVar[Orientation]

class ExportStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_STAGE_UNSPECIFIED: _ClassVar[ExportStage]
    EXPORT_STAGE_QUEUED: _ClassVar[ExportStage]
    EXPORT_STAGE_RENDERING: _ClassVar[ExportStage]
    EXPORT_STAGE_PRINTING: _ClassVar[ExportStage]
    EXPORT_STAGE_STORING: _ClassVar[ExportStage]
    EXPORT_STAGE_WRITING: _ClassVar[ExportStage]
    EXPORT_STAGE_DONE: _ClassVar[ExportStage]
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_PDF: ExportFormat
EXPORT_FORMAT_PNG: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_XLSX: ExportFormat
PAPER_SIZE_UNSPECIFIED: PaperSize
PAPER_SIZE_A4: PaperSize
PAPER_SIZE_A3: PaperSize
PAPER_SIZE_LETTER: PaperSize
PAPER_SIZE_LEGAL: PaperSize
ORIENTATION_UNSPECIFIED: Orientation
ORIENTATION_PORTRAIT: Orientation
ORIENTATION_LANDSCAPE: Orientation
EXPORT_STAGE_UNSPECIFIED: ExportStage
EXPORT_STAGE_QUEUED: ExportStage
EXPORT_STAGE_RENDERING: ExportStage
EXPORT_STAGE_PRINTING: ExportStage
EXPORT_STAGE_STORING: ExportStage
EXPORT_STAGE_WRITING: ExportStage
EXPORT_STAGE_DONE: ExportStage

class Margins(_message.Message):
    __slots__ = ("top_mm", "right_mm", "bottom_mm", "left_mm")
    TOP_MM_FIELD_NUMBER: _ClassVar[int]
    RIGHT_MM_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_MM_FIELD_NUMBER: _ClassVar[int]
    LEFT_MM_FIELD_NUMBER: _ClassVar[int]
    top_mm: float
    right_mm: float
    bottom_mm: float
    left_mm: float
    def __init__(self, top_mm: _Optional[float] = ..., right_mm: _Optional[float] = ..., bottom_mm: _Optional[float] = ..., left_mm: _Optional[float] = ...) -> None: ...

class ExportOptions(_message.Message):
    __slots__ = ("paper_size", "orientation", "margins", "header_text", "footer_text", "print_background", "scale_factor", "transparent_background", "width_px")
    PAPER_SIZE_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    MARGINS_FIELD_NUMBER: _ClassVar[int]
    HEADER_TEXT_FIELD_NUMBER: _ClassVar[int]
    FOOTER_TEXT_FIELD_NUMBER: _ClassVar[int]
    PRINT_BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    SCALE_FACTOR_FIELD_NUMBER: _ClassVar[int]
    TRANSPARENT_BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    WIDTH_PX_FIELD_NUMBER: _ClassVar[int]
    paper_size: PaperSize
    orientation: Orientation
    margins: Margins
    header_text: str
    footer_text: str
    print_background: bool
    scale_factor: int
    transparent_background: bool
    width_px: int
    def __init__(self, paper_size: _Optional[_Union[PaperSize, str]] = ..., orientation: _Optional[_Union[Orientation, str]] = ..., margins: _Optional[_Union[Margins, _Mapping]] = ..., header_text: _Optional[str] = ..., footer_text: _Optional[str] = ..., print_background: _Optional[bool] = ..., scale_factor: _Optional[int] = ..., transparent_background: _Optional[bool] = ..., width_px: _Optional[int] = ...) -> None: ...

class ExportFile(_message.Message):
    __slots__ = ("content_type", "size_bytes", "sha256", "page_count", "width_px", "height_px", "expire_time", "filename", "row_count")
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_PX_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_PX_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    size_bytes: int
    sha256: str
    page_count: int
    width_px: int
    height_px: int
    expire_time: _timestamp_pb2.Timestamp
    filename: str
    row_count: int
    def __init__(self, content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., page_count: _Optional[int] = ..., width_px: _Optional[int] = ..., height_px: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filename: _Optional[str] = ..., row_count: _Optional[int] = ...) -> None: ...

class ExportJob(_message.Message):
    __slots__ = ("id", "dashboard_id", "dashboard_version", "format", "options", "filter_values", "state", "stage", "progress", "file", "error", "requested_by", "revision", "create_time", "update_time", "end_time", "widget_id", "query")
    class FilterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FILTER_VALUES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    WIDGET_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    id: str
    dashboard_id: str
    dashboard_version: int
    format: ExportFormat
    options: ExportOptions
    filter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    state: _common_pb2.JobState
    stage: ExportStage
    progress: _common_pb2.JobProgress
    file: ExportFile
    error: _common_pb2.JobError
    requested_by: str
    revision: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    widget_id: str
    query: QueryExportSource
    def __init__(self, id: _Optional[str] = ..., dashboard_id: _Optional[str] = ..., dashboard_version: _Optional[int] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., options: _Optional[_Union[ExportOptions, _Mapping]] = ..., filter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., stage: _Optional[_Union[ExportStage, str]] = ..., progress: _Optional[_Union[_common_pb2.JobProgress, _Mapping]] = ..., file: _Optional[_Union[ExportFile, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.JobError, _Mapping]] = ..., requested_by: _Optional[str] = ..., revision: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., widget_id: _Optional[str] = ..., query: _Optional[_Union[QueryExportSource, _Mapping]] = ...) -> None: ...

class CreateExportRequest(_message.Message):
    __slots__ = ("dashboard_id", "dashboard_version", "format", "options", "filter_values", "request_id", "widget_id", "query")
    class FilterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FILTER_VALUES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WIDGET_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    dashboard_version: int
    format: ExportFormat
    options: ExportOptions
    filter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    request_id: str
    widget_id: str
    query: QueryExportSource
    def __init__(self, dashboard_id: _Optional[str] = ..., dashboard_version: _Optional[int] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., options: _Optional[_Union[ExportOptions, _Mapping]] = ..., filter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ..., request_id: _Optional[str] = ..., widget_id: _Optional[str] = ..., query: _Optional[_Union[QueryExportSource, _Mapping]] = ...) -> None: ...

class QueryExportSource(_message.Message):
    __slots__ = ("query_id", "query_version", "parameter_values")
    class ParameterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_VALUES_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query_version: int
    parameter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    def __init__(self, query_id: _Optional[str] = ..., query_version: _Optional[int] = ..., parameter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ...) -> None: ...

class BatchCreateExportsRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CreateExportRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[CreateExportRequest, _Mapping]]] = ...) -> None: ...

class BatchCreateExportsResponse(_message.Message):
    __slots__ = ("exports",)
    EXPORTS_FIELD_NUMBER: _ClassVar[int]
    exports: _containers.RepeatedCompositeFieldContainer[ExportJob]
    def __init__(self, exports: _Optional[_Iterable[_Union[ExportJob, _Mapping]]] = ...) -> None: ...

class GetExportRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListExportsRequest(_message.Message):
    __slots__ = ("dashboard_id", "page_size", "page_token", "state")
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    page_size: int
    page_token: str
    state: _common_pb2.JobState
    def __init__(self, dashboard_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ...) -> None: ...

class ListExportsResponse(_message.Message):
    __slots__ = ("exports", "next_page_token")
    EXPORTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    exports: _containers.RepeatedCompositeFieldContainer[ExportJob]
    next_page_token: str
    def __init__(self, exports: _Optional[_Iterable[_Union[ExportJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelExportRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchExportRequest(_message.Message):
    __slots__ = ("id", "since_revision")
    ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    id: str
    since_revision: int
    def __init__(self, id: _Optional[str] = ..., since_revision: _Optional[int] = ...) -> None: ...

class WatchExportResponse(_message.Message):
    __slots__ = ("export", "heartbeat")
    EXPORT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    export: ExportJob
    heartbeat: _common_pb2.Heartbeat
    def __init__(self, export: _Optional[_Union[ExportJob, _Mapping]] = ..., heartbeat: _Optional[_Union[_common_pb2.Heartbeat, _Mapping]] = ...) -> None: ...

class DownloadExportRequest(_message.Message):
    __slots__ = ("id", "chunk_size", "offset")
    ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    id: str
    chunk_size: int
    offset: int
    def __init__(self, id: _Optional[str] = ..., chunk_size: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class DownloadExportResponse(_message.Message):
    __slots__ = ("file", "chunk")
    FILE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    file: ExportFile
    chunk: bytes
    def __init__(self, file: _Optional[_Union[ExportFile, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...
