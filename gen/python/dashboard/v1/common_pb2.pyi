import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ColumnType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLUMN_TYPE_UNSPECIFIED: _ClassVar[ColumnType]
    COLUMN_TYPE_BOOL: _ClassVar[ColumnType]
    COLUMN_TYPE_INT64: _ClassVar[ColumnType]
    COLUMN_TYPE_FLOAT64: _ClassVar[ColumnType]
    COLUMN_TYPE_DECIMAL: _ClassVar[ColumnType]
    COLUMN_TYPE_STRING: _ClassVar[ColumnType]
    COLUMN_TYPE_DATE: _ClassVar[ColumnType]
    COLUMN_TYPE_TIMESTAMP: _ClassVar[ColumnType]
    COLUMN_TYPE_TIMESTAMP_TZ: _ClassVar[ColumnType]
    COLUMN_TYPE_JSON: _ClassVar[ColumnType]
    COLUMN_TYPE_UUID: _ClassVar[ColumnType]
    COLUMN_TYPE_BYTES: _ClassVar[ColumnType]
    COLUMN_TYPE_INTERVAL: _ClassVar[ColumnType]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
COLUMN_TYPE_UNSPECIFIED: ColumnType
COLUMN_TYPE_BOOL: ColumnType
COLUMN_TYPE_INT64: ColumnType
COLUMN_TYPE_FLOAT64: ColumnType
COLUMN_TYPE_DECIMAL: ColumnType
COLUMN_TYPE_STRING: ColumnType
COLUMN_TYPE_DATE: ColumnType
COLUMN_TYPE_TIMESTAMP: ColumnType
COLUMN_TYPE_TIMESTAMP_TZ: ColumnType
COLUMN_TYPE_JSON: ColumnType
COLUMN_TYPE_UUID: ColumnType
COLUMN_TYPE_BYTES: ColumnType
COLUMN_TYPE_INTERVAL: ColumnType
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class DataFrame(_message.Message):
    __slots__ = ("columns", "row_count", "truncated")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    row_count: int
    truncated: bool
    def __init__(self, columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., row_count: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "type", "db_type", "nulls", "masked", "bool_values", "int64_values", "double_values", "string_values", "date_values", "timestamp_values", "bytes_values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DB_TYPE_FIELD_NUMBER: _ClassVar[int]
    NULLS_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUES_FIELD_NUMBER: _ClassVar[int]
    INT64_VALUES_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUES_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUES_FIELD_NUMBER: _ClassVar[int]
    DATE_VALUES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_VALUES_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ColumnType
    db_type: str
    nulls: _containers.RepeatedScalarFieldContainer[bool]
    masked: bool
    bool_values: BoolValues
    int64_values: Int64Values
    double_values: DoubleValues
    string_values: StringValues
    date_values: Int32Values
    timestamp_values: Int64Values
    bytes_values: BytesValues
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ColumnType, str]] = ..., db_type: _Optional[str] = ..., nulls: _Optional[_Iterable[bool]] = ..., masked: _Optional[bool] = ..., bool_values: _Optional[_Union[BoolValues, _Mapping]] = ..., int64_values: _Optional[_Union[Int64Values, _Mapping]] = ..., double_values: _Optional[_Union[DoubleValues, _Mapping]] = ..., string_values: _Optional[_Union[StringValues, _Mapping]] = ..., date_values: _Optional[_Union[Int32Values, _Mapping]] = ..., timestamp_values: _Optional[_Union[Int64Values, _Mapping]] = ..., bytes_values: _Optional[_Union[BytesValues, _Mapping]] = ...) -> None: ...

class BoolValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, values: _Optional[_Iterable[bool]] = ...) -> None: ...

class Int64Values(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class Int32Values(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class DoubleValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class StringValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class BytesValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, values: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ParameterValue(_message.Message):
    __slots__ = ("string_value", "int_value", "double_value", "bool_value", "date_value", "timestamp_value", "date_range_value", "list_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATE_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATE_RANGE_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    int_value: int
    double_value: float
    bool_value: bool
    date_value: _date_pb2.Date
    timestamp_value: _timestamp_pb2.Timestamp
    date_range_value: DateRange
    list_value: ParameterValueList
    def __init__(self, string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., date_value: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., timestamp_value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., date_range_value: _Optional[_Union[DateRange, _Mapping]] = ..., list_value: _Optional[_Union[ParameterValueList, _Mapping]] = ...) -> None: ...

class DateRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _date_pb2.Date
    end: _date_pb2.Date
    def __init__(self, start: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., end: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class ParameterValueList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[ParameterValue]
    def __init__(self, values: _Optional[_Iterable[_Union[ParameterValue, _Mapping]]] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("total_steps", "completed_steps", "failed_steps", "percent", "message")
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_STEPS_FIELD_NUMBER: _ClassVar[int]
    FAILED_STEPS_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    total_steps: int
    completed_steps: int
    failed_steps: int
    percent: int
    message: str
    def __init__(self, total_steps: _Optional[int] = ..., completed_steps: _Optional[int] = ..., failed_steps: _Optional[int] = ..., percent: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("time", "revision")
    TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    revision: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...
