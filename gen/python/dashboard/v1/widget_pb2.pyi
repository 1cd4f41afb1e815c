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

class WidgetType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WIDGET_TYPE_UNSPECIFIED: _ClassVar[WidgetType]
    WIDGET_TYPE_KPI: _ClassVar[WidgetType]
    WIDGET_TYPE_LINE: _ClassVar[WidgetType]
    WIDGET_TYPE_AREA: _ClassVar[WidgetType]
    WIDGET_TYPE_BAR: _ClassVar[WidgetType]
    WIDGET_TYPE_TABLE: _ClassVar[WidgetType]
    WIDGET_TYPE_HEATMAP: _ClassVar[WidgetType]
    WIDGET_TYPE_MAP: _ClassVar[WidgetType]

class BarOrientation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BAR_ORIENTATION_UNSPECIFIED: _ClassVar[BarOrientation]
    BAR_ORIENTATION_VERTICAL: _ClassVar[BarOrientation]
    BAR_ORIENTATION_HORIZONTAL: _ClassVar[BarOrientation]

class DataSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_SOURCE_UNSPECIFIED: _ClassVar[DataSource]
    DATA_SOURCE_MEMORY: _ClassVar[DataSource]
    DATA_SOURCE_DATABASE: _ClassVar[DataSource]
    DATA_SOURCE_COMPUTED: _ClassVar[DataSource]
    DATA_SOURCE_STALE: _ClassVar[DataSource]
WIDGET_TYPE_UNSPECIFIED: WidgetType
WIDGET_TYPE_KPI: WidgetType
WIDGET_TYPE_LINE: WidgetType
WIDGET_TYPE_AREA: WidgetType
WIDGET_TYPE_BAR: WidgetType
WIDGET_TYPE_TABLE: WidgetType
WIDGET_TYPE_HEATMAP: WidgetType
WIDGET_TYPE_MAP: WidgetType
BAR_ORIENTATION_UNSPECIFIED: BarOrientation
BAR_ORIENTATION_VERTICAL: BarOrientation
BAR_ORIENTATION_HORIZONTAL: BarOrientation
DATA_SOURCE_UNSPECIFIED: DataSource
DATA_SOURCE_MEMORY: DataSource
DATA_SOURCE_DATABASE: DataSource
DATA_SOURCE_COMPUTED: DataSource
DATA_SOURCE_STALE: DataSource

class GridPosition(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ValueFormat(_message.Message):
    __slots__ = ("style", "decimals", "thousands_separator", "prefix", "suffix", "currency_code", "duration_unit", "date_pattern", "time_zone")
    class Style(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STYLE_UNSPECIFIED: _ClassVar[ValueFormat.Style]
        STYLE_NUMBER: _ClassVar[ValueFormat.Style]
        STYLE_PERCENT: _ClassVar[ValueFormat.Style]
        STYLE_CURRENCY: _ClassVar[ValueFormat.Style]
        STYLE_DURATION: _ClassVar[ValueFormat.Style]
        STYLE_DATE_TIME: _ClassVar[ValueFormat.Style]
    STYLE_UNSPECIFIED: ValueFormat.Style
    STYLE_NUMBER: ValueFormat.Style
    STYLE_PERCENT: ValueFormat.Style
    STYLE_CURRENCY: ValueFormat.Style
    STYLE_DURATION: ValueFormat.Style
    STYLE_DATE_TIME: ValueFormat.Style
    class DurationUnit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DURATION_UNIT_UNSPECIFIED: _ClassVar[ValueFormat.DurationUnit]
        DURATION_UNIT_SECONDS: _ClassVar[ValueFormat.DurationUnit]
        DURATION_UNIT_MINUTES: _ClassVar[ValueFormat.DurationUnit]
        DURATION_UNIT_HOURS: _ClassVar[ValueFormat.DurationUnit]
        DURATION_UNIT_DAYS: _ClassVar[ValueFormat.DurationUnit]
    DURATION_UNIT_UNSPECIFIED: ValueFormat.DurationUnit
    DURATION_UNIT_SECONDS: ValueFormat.DurationUnit
    DURATION_UNIT_MINUTES: ValueFormat.DurationUnit
    DURATION_UNIT_HOURS: ValueFormat.DurationUnit
    DURATION_UNIT_DAYS: ValueFormat.DurationUnit
    STYLE_FIELD_NUMBER: _ClassVar[int]
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    THOUSANDS_SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SUFFIX_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_UNIT_FIELD_NUMBER: _ClassVar[int]
    DATE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    style: ValueFormat.Style
    decimals: int
    thousands_separator: bool
    prefix: str
    suffix: str
    currency_code: str
    duration_unit: ValueFormat.DurationUnit
    date_pattern: str
    time_zone: str
    def __init__(self, style: _Optional[_Union[ValueFormat.Style, str]] = ..., decimals: _Optional[int] = ..., thousands_separator: _Optional[bool] = ..., prefix: _Optional[str] = ..., suffix: _Optional[str] = ..., currency_code: _Optional[str] = ..., duration_unit: _Optional[_Union[ValueFormat.DurationUnit, str]] = ..., date_pattern: _Optional[str] = ..., time_zone: _Optional[str] = ...) -> None: ...

class NumberFormat(_message.Message):
    __slots__ = ("decimals", "prefix", "suffix", "thousands_separator")
    DECIMALS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SUFFIX_FIELD_NUMBER: _ClassVar[int]
    THOUSANDS_SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    decimals: int
    prefix: str
    suffix: str
    thousands_separator: bool
    def __init__(self, decimals: _Optional[int] = ..., prefix: _Optional[str] = ..., suffix: _Optional[str] = ..., thousands_separator: _Optional[bool] = ...) -> None: ...

class Threshold(_message.Message):
    __slots__ = ("value", "color")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    value: float
    color: str
    def __init__(self, value: _Optional[float] = ..., color: _Optional[str] = ...) -> None: ...

class ColumnRef(_message.Message):
    __slots__ = ("column",)
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    column: str
    def __init__(self, column: _Optional[str] = ...) -> None: ...

class KpiConfig(_message.Message):
    __slots__ = ("value_column", "comparison_column", "format", "thresholds", "value_format")
    VALUE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_COLUMN_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    value_column: str
    comparison_column: str
    format: NumberFormat
    thresholds: _containers.RepeatedCompositeFieldContainer[Threshold]
    value_format: ValueFormat
    def __init__(self, value_column: _Optional[str] = ..., comparison_column: _Optional[str] = ..., format: _Optional[_Union[NumberFormat, _Mapping]] = ..., thresholds: _Optional[_Iterable[_Union[Threshold, _Mapping]]] = ..., value_format: _Optional[_Union[ValueFormat, _Mapping]] = ...) -> None: ...

class LineChartConfig(_message.Message):
    __slots__ = ("x_column", "y_columns", "series_column", "x_title", "y_title", "show_points", "x_format", "y_format", "series_order")
    X_COLUMN_FIELD_NUMBER: _ClassVar[int]
    Y_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SERIES_COLUMN_FIELD_NUMBER: _ClassVar[int]
    X_TITLE_FIELD_NUMBER: _ClassVar[int]
    Y_TITLE_FIELD_NUMBER: _ClassVar[int]
    SHOW_POINTS_FIELD_NUMBER: _ClassVar[int]
    X_FORMAT_FIELD_NUMBER: _ClassVar[int]
    Y_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SERIES_ORDER_FIELD_NUMBER: _ClassVar[int]
    x_column: str
    y_columns: _containers.RepeatedScalarFieldContainer[str]
    series_column: str
    x_title: str
    y_title: str
    show_points: bool
    x_format: ValueFormat
    y_format: ValueFormat
    series_order: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, x_column: _Optional[str] = ..., y_columns: _Optional[_Iterable[str]] = ..., series_column: _Optional[str] = ..., x_title: _Optional[str] = ..., y_title: _Optional[str] = ..., show_points: _Optional[bool] = ..., x_format: _Optional[_Union[ValueFormat, _Mapping]] = ..., y_format: _Optional[_Union[ValueFormat, _Mapping]] = ..., series_order: _Optional[_Iterable[str]] = ...) -> None: ...

class AreaChartConfig(_message.Message):
    __slots__ = ("x_column", "y_columns", "series_column", "stacked", "x_title", "y_title", "x_format", "y_format", "series_order")
    X_COLUMN_FIELD_NUMBER: _ClassVar[int]
    Y_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SERIES_COLUMN_FIELD_NUMBER: _ClassVar[int]
    STACKED_FIELD_NUMBER: _ClassVar[int]
    X_TITLE_FIELD_NUMBER: _ClassVar[int]
    Y_TITLE_FIELD_NUMBER: _ClassVar[int]
    X_FORMAT_FIELD_NUMBER: _ClassVar[int]
    Y_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SERIES_ORDER_FIELD_NUMBER: _ClassVar[int]
    x_column: str
    y_columns: _containers.RepeatedScalarFieldContainer[str]
    series_column: str
    stacked: bool
    x_title: str
    y_title: str
    x_format: ValueFormat
    y_format: ValueFormat
    series_order: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, x_column: _Optional[str] = ..., y_columns: _Optional[_Iterable[str]] = ..., series_column: _Optional[str] = ..., stacked: _Optional[bool] = ..., x_title: _Optional[str] = ..., y_title: _Optional[str] = ..., x_format: _Optional[_Union[ValueFormat, _Mapping]] = ..., y_format: _Optional[_Union[ValueFormat, _Mapping]] = ..., series_order: _Optional[_Iterable[str]] = ...) -> None: ...

class BarChartConfig(_message.Message):
    __slots__ = ("category_column", "value_columns", "series_column", "orientation", "stacked", "value_format", "category_order", "series_order")
    CATEGORY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    VALUE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SERIES_COLUMN_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    STACKED_FIELD_NUMBER: _ClassVar[int]
    VALUE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_ORDER_FIELD_NUMBER: _ClassVar[int]
    SERIES_ORDER_FIELD_NUMBER: _ClassVar[int]
    category_column: str
    value_columns: _containers.RepeatedScalarFieldContainer[str]
    series_column: str
    orientation: BarOrientation
    stacked: bool
    value_format: ValueFormat
    category_order: _containers.RepeatedScalarFieldContainer[str]
    series_order: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, category_column: _Optional[str] = ..., value_columns: _Optional[_Iterable[str]] = ..., series_column: _Optional[str] = ..., orientation: _Optional[_Union[BarOrientation, str]] = ..., stacked: _Optional[bool] = ..., value_format: _Optional[_Union[ValueFormat, _Mapping]] = ..., category_order: _Optional[_Iterable[str]] = ..., series_order: _Optional[_Iterable[str]] = ...) -> None: ...

class TableColumn(_message.Message):
    __slots__ = ("column", "label", "format", "value_format")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    column: str
    label: str
    format: NumberFormat
    value_format: ValueFormat
    def __init__(self, column: _Optional[str] = ..., label: _Optional[str] = ..., format: _Optional[_Union[NumberFormat, _Mapping]] = ..., value_format: _Optional[_Union[ValueFormat, _Mapping]] = ...) -> None: ...

class TableConfig(_message.Message):
    __slots__ = ("columns", "page_size", "sort_column", "sort_descending")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SORT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    SORT_DESCENDING_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedCompositeFieldContainer[TableColumn]
    page_size: int
    sort_column: str
    sort_descending: bool
    def __init__(self, columns: _Optional[_Iterable[_Union[TableColumn, _Mapping]]] = ..., page_size: _Optional[int] = ..., sort_column: _Optional[str] = ..., sort_descending: _Optional[bool] = ...) -> None: ...

class HeatmapConfig(_message.Message):
    __slots__ = ("x_column", "y_column", "value_column", "color_scheme", "value_format", "x_order", "y_order")
    X_COLUMN_FIELD_NUMBER: _ClassVar[int]
    Y_COLUMN_FIELD_NUMBER: _ClassVar[int]
    VALUE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    COLOR_SCHEME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    X_ORDER_FIELD_NUMBER: _ClassVar[int]
    Y_ORDER_FIELD_NUMBER: _ClassVar[int]
    x_column: str
    y_column: str
    value_column: str
    color_scheme: str
    value_format: ValueFormat
    x_order: _containers.RepeatedScalarFieldContainer[str]
    y_order: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, x_column: _Optional[str] = ..., y_column: _Optional[str] = ..., value_column: _Optional[str] = ..., color_scheme: _Optional[str] = ..., value_format: _Optional[_Union[ValueFormat, _Mapping]] = ..., x_order: _Optional[_Iterable[str]] = ..., y_order: _Optional[_Iterable[str]] = ...) -> None: ...

class MapConfig(_message.Message):
    __slots__ = ("latitude_column", "longitude_column", "value_column", "label_column", "value_format", "region_column")
    LATITUDE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    VALUE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    VALUE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    REGION_COLUMN_FIELD_NUMBER: _ClassVar[int]
    latitude_column: str
    longitude_column: str
    value_column: str
    label_column: str
    value_format: ValueFormat
    region_column: str
    def __init__(self, latitude_column: _Optional[str] = ..., longitude_column: _Optional[str] = ..., value_column: _Optional[str] = ..., label_column: _Optional[str] = ..., value_format: _Optional[_Union[ValueFormat, _Mapping]] = ..., region_column: _Optional[str] = ...) -> None: ...

class QueryBinding(_message.Message):
    __slots__ = ("query_id", "query_version", "parameter_values", "filter_bindings")
    class ParameterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    class FilterBindingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_VALUES_FIELD_NUMBER: _ClassVar[int]
    FILTER_BINDINGS_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query_version: int
    parameter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    filter_bindings: _containers.ScalarMap[str, str]
    def __init__(self, query_id: _Optional[str] = ..., query_version: _Optional[int] = ..., parameter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ..., filter_bindings: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DrillThrough(_message.Message):
    __slots__ = ("target_dashboard_id", "column_to_filter")
    class ColumnToFilterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TARGET_DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    COLUMN_TO_FILTER_FIELD_NUMBER: _ClassVar[int]
    target_dashboard_id: str
    column_to_filter: _containers.ScalarMap[str, str]
    def __init__(self, target_dashboard_id: _Optional[str] = ..., column_to_filter: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CrossFilter(_message.Message):
    __slots__ = ("source_column", "filter_name")
    SOURCE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    FILTER_NAME_FIELD_NUMBER: _ClassVar[int]
    source_column: str
    filter_name: str
    def __init__(self, source_column: _Optional[str] = ..., filter_name: _Optional[str] = ...) -> None: ...

class Widget(_message.Message):
    __slots__ = ("id", "dashboard_id", "title", "description", "type", "position", "query", "refresh_interval", "kpi", "line", "area", "bar", "table", "heatmap", "map", "drill_through", "cross_filters", "etag", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    REFRESH_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    KPI_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    BAR_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HEATMAP_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    DRILL_THROUGH_FIELD_NUMBER: _ClassVar[int]
    CROSS_FILTERS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    dashboard_id: str
    title: str
    description: str
    type: WidgetType
    position: GridPosition
    query: QueryBinding
    refresh_interval: _duration_pb2.Duration
    kpi: KpiConfig
    line: LineChartConfig
    area: AreaChartConfig
    bar: BarChartConfig
    table: TableConfig
    heatmap: HeatmapConfig
    map: MapConfig
    drill_through: DrillThrough
    cross_filters: _containers.RepeatedCompositeFieldContainer[CrossFilter]
    etag: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., dashboard_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., type: _Optional[_Union[WidgetType, str]] = ..., position: _Optional[_Union[GridPosition, _Mapping]] = ..., query: _Optional[_Union[QueryBinding, _Mapping]] = ..., refresh_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., kpi: _Optional[_Union[KpiConfig, _Mapping]] = ..., line: _Optional[_Union[LineChartConfig, _Mapping]] = ..., area: _Optional[_Union[AreaChartConfig, _Mapping]] = ..., bar: _Optional[_Union[BarChartConfig, _Mapping]] = ..., table: _Optional[_Union[TableConfig, _Mapping]] = ..., heatmap: _Optional[_Union[HeatmapConfig, _Mapping]] = ..., map: _Optional[_Union[MapConfig, _Mapping]] = ..., drill_through: _Optional[_Union[DrillThrough, _Mapping]] = ..., cross_filters: _Optional[_Iterable[_Union[CrossFilter, _Mapping]]] = ..., etag: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWidgetRequest(_message.Message):
    __slots__ = ("widget", "request_id")
    WIDGET_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    widget: Widget
    request_id: str
    def __init__(self, widget: _Optional[_Union[Widget, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetWidgetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListWidgetsRequest(_message.Message):
    __slots__ = ("dashboard_id", "page_size", "page_token")
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    page_size: int
    page_token: str
    def __init__(self, dashboard_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWidgetsResponse(_message.Message):
    __slots__ = ("widgets", "next_page_token")
    WIDGETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    widgets: _containers.RepeatedCompositeFieldContainer[Widget]
    next_page_token: str
    def __init__(self, widgets: _Optional[_Iterable[_Union[Widget, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateWidgetRequest(_message.Message):
    __slots__ = ("widget", "update_mask")
    WIDGET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    widget: Widget
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, widget: _Optional[_Union[Widget, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteWidgetRequest(_message.Message):
    __slots__ = ("id", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: str
    etag: str
    def __init__(self, id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class CrossFilterValue(_message.Message):
    __slots__ = ("filter_name", "value", "source_widget_id")
    FILTER_NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_WIDGET_ID_FIELD_NUMBER: _ClassVar[int]
    filter_name: str
    value: _common_pb2.ParameterValue
    source_widget_id: str
    def __init__(self, filter_name: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ..., source_widget_id: _Optional[str] = ...) -> None: ...

class GetWidgetDataRequest(_message.Message):
    __slots__ = ("widget_id", "dashboard_version", "parameter_values", "filter_values", "cross_filters", "max_age", "force_refresh")
    class ParameterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    class FilterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    WIDGET_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_VALUES_FIELD_NUMBER: _ClassVar[int]
    FILTER_VALUES_FIELD_NUMBER: _ClassVar[int]
    CROSS_FILTERS_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    FORCE_REFRESH_FIELD_NUMBER: _ClassVar[int]
    widget_id: str
    dashboard_version: int
    parameter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    filter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    cross_filters: _containers.RepeatedCompositeFieldContainer[CrossFilterValue]
    max_age: _duration_pb2.Duration
    force_refresh: bool
    def __init__(self, widget_id: _Optional[str] = ..., dashboard_version: _Optional[int] = ..., parameter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ..., filter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ..., cross_filters: _Optional[_Iterable[_Union[CrossFilterValue, _Mapping]]] = ..., max_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., force_refresh: _Optional[bool] = ...) -> None: ...

class WidgetData(_message.Message):
    __slots__ = ("widget_id", "frame", "source", "compute_time", "expire_time", "query_version", "masked")
    WIDGET_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    QUERY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    widget_id: str
    frame: _common_pb2.DataFrame
    source: DataSource
    compute_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    query_version: int
    masked: bool
    def __init__(self, widget_id: _Optional[str] = ..., frame: _Optional[_Union[_common_pb2.DataFrame, _Mapping]] = ..., source: _Optional[_Union[DataSource, str]] = ..., compute_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., query_version: _Optional[int] = ..., masked: _Optional[bool] = ...) -> None: ...

class BatchGetWidgetDataRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[GetWidgetDataRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[GetWidgetDataRequest, _Mapping]]] = ...) -> None: ...

class BatchGetWidgetDataResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[WidgetData]
    def __init__(self, data: _Optional[_Iterable[_Union[WidgetData, _Mapping]]] = ...) -> None: ...

class MaterializationJob(_message.Message):
    __slots__ = ("id", "dashboard_id", "state", "progress", "widgets", "error", "revision", "create_time", "update_time", "end_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    WIDGETS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    dashboard_id: str
    state: _common_pb2.JobState
    progress: _common_pb2.JobProgress
    widgets: _containers.RepeatedCompositeFieldContainer[WidgetMaterialization]
    error: _common_pb2.JobError
    revision: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., dashboard_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., progress: _Optional[_Union[_common_pb2.JobProgress, _Mapping]] = ..., widgets: _Optional[_Iterable[_Union[WidgetMaterialization, _Mapping]]] = ..., error: _Optional[_Union[_common_pb2.JobError, _Mapping]] = ..., revision: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WidgetMaterialization(_message.Message):
    __slots__ = ("widget_id", "state", "row_count", "error")
    WIDGET_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    widget_id: str
    state: _common_pb2.JobState
    row_count: int
    error: _common_pb2.JobError
    def __init__(self, widget_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., row_count: _Optional[int] = ..., error: _Optional[_Union[_common_pb2.JobError, _Mapping]] = ...) -> None: ...

class MaterializeDashboardRequest(_message.Message):
    __slots__ = ("dashboard_id", "dashboard_version", "filter_values", "request_id")
    class FilterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_VERSION_FIELD_NUMBER: _ClassVar[int]
    FILTER_VALUES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    dashboard_version: int
    filter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    request_id: str
    def __init__(self, dashboard_id: _Optional[str] = ..., dashboard_version: _Optional[int] = ..., filter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetMaterializationJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchMaterializationJobRequest(_message.Message):
    __slots__ = ("id", "since_revision")
    ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    id: str
    since_revision: int
    def __init__(self, id: _Optional[str] = ..., since_revision: _Optional[int] = ...) -> None: ...

class WatchMaterializationJobResponse(_message.Message):
    __slots__ = ("job", "heartbeat")
    JOB_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    job: MaterializationJob
    heartbeat: _common_pb2.Heartbeat
    def __init__(self, job: _Optional[_Union[MaterializationJob, _Mapping]] = ..., heartbeat: _Optional[_Union[_common_pb2.Heartbeat, _Mapping]] = ...) -> None: ...
