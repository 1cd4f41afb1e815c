import datetime

from buf.validate import validate_pb2 as _validate_pb2
from dashboard.v1 import common_pb2 as _common_pb2
from dashboard.v1 import report_pb2 as _report_pb2
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

class AlertReducer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_REDUCER_UNSPECIFIED: _ClassVar[AlertReducer]
    ALERT_REDUCER_LAST: _ClassVar[AlertReducer]
    ALERT_REDUCER_MIN: _ClassVar[AlertReducer]
    ALERT_REDUCER_MAX: _ClassVar[AlertReducer]
    ALERT_REDUCER_MEAN: _ClassVar[AlertReducer]
    ALERT_REDUCER_SUM: _ClassVar[AlertReducer]

class AlertComparison(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_COMPARISON_UNSPECIFIED: _ClassVar[AlertComparison]
    ALERT_COMPARISON_GREATER: _ClassVar[AlertComparison]
    ALERT_COMPARISON_GREATER_OR_EQUAL: _ClassVar[AlertComparison]
    ALERT_COMPARISON_LESS: _ClassVar[AlertComparison]
    ALERT_COMPARISON_LESS_OR_EQUAL: _ClassVar[AlertComparison]
    ALERT_COMPARISON_EQUAL: _ClassVar[AlertComparison]
    ALERT_COMPARISON_NOT_EQUAL: _ClassVar[AlertComparison]

class AlertSeverity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_SEVERITY_UNSPECIFIED: _ClassVar[AlertSeverity]
    ALERT_SEVERITY_INFO: _ClassVar[AlertSeverity]
    ALERT_SEVERITY_WARNING: _ClassVar[AlertSeverity]
    ALERT_SEVERITY_CRITICAL: _ClassVar[AlertSeverity]

class AlertState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_STATE_UNSPECIFIED: _ClassVar[AlertState]
    ALERT_STATE_OK: _ClassVar[AlertState]
    ALERT_STATE_PENDING: _ClassVar[AlertState]
    ALERT_STATE_FIRING: _ClassVar[AlertState]
    ALERT_STATE_RESOLVED: _ClassVar[AlertState]
    ALERT_STATE_ERROR: _ClassVar[AlertState]

class NotificationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_OUTCOME_UNSPECIFIED: _ClassVar[NotificationOutcome]
    NOTIFICATION_OUTCOME_SENT: _ClassVar[NotificationOutcome]
    NOTIFICATION_OUTCOME_FAILED: _ClassVar[NotificationOutcome]
    NOTIFICATION_OUTCOME_SILENCED: _ClassVar[NotificationOutcome]
ALERT_REDUCER_UNSPECIFIED: AlertReducer
ALERT_REDUCER_LAST: AlertReducer
ALERT_REDUCER_MIN: AlertReducer
ALERT_REDUCER_MAX: AlertReducer
ALERT_REDUCER_MEAN: AlertReducer
ALERT_REDUCER_SUM: AlertReducer
ALERT_COMPARISON_UNSPECIFIED: AlertComparison
ALERT_COMPARISON_GREATER: AlertComparison
ALERT_COMPARISON_GREATER_OR_EQUAL: AlertComparison
ALERT_COMPARISON_LESS: AlertComparison
ALERT_COMPARISON_LESS_OR_EQUAL: AlertComparison
ALERT_COMPARISON_EQUAL: AlertComparison
ALERT_COMPARISON_NOT_EQUAL: AlertComparison
ALERT_SEVERITY_UNSPECIFIED: AlertSeverity
ALERT_SEVERITY_INFO: AlertSeverity
ALERT_SEVERITY_WARNING: AlertSeverity
ALERT_SEVERITY_CRITICAL: AlertSeverity
ALERT_STATE_UNSPECIFIED: AlertState
ALERT_STATE_OK: AlertState
ALERT_STATE_PENDING: AlertState
ALERT_STATE_FIRING: AlertState
ALERT_STATE_RESOLVED: AlertState
ALERT_STATE_ERROR: AlertState
NOTIFICATION_OUTCOME_UNSPECIFIED: NotificationOutcome
NOTIFICATION_OUTCOME_SENT: NotificationOutcome
NOTIFICATION_OUTCOME_FAILED: NotificationOutcome
NOTIFICATION_OUTCOME_SILENCED: NotificationOutcome

class AlertRule(_message.Message):
    __slots__ = ("id", "widget_id", "dashboard_id", "facility_id", "owner_id", "title", "column", "reducer", "comparison", "threshold", "for_duration", "interval", "filter_values", "recipients", "severity", "state", "state_time", "last_value", "last_error", "last_evaluation_time", "next_evaluation_time", "silenced_until", "revision", "webhook_secret", "etag", "create_time")
    class FilterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    WIDGET_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    REDUCER_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FOR_DURATION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    FILTER_VALUES_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_VALUE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_EVALUATION_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_EVALUATION_TIME_FIELD_NUMBER: _ClassVar[int]
    SILENCED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    widget_id: str
    dashboard_id: str
    facility_id: str
    owner_id: str
    title: str
    column: str
    reducer: AlertReducer
    comparison: AlertComparison
    threshold: float
    for_duration: _duration_pb2.Duration
    interval: _duration_pb2.Duration
    filter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    recipients: _report_pb2.ReportRecipients
    severity: AlertSeverity
    state: AlertState
    state_time: _timestamp_pb2.Timestamp
    last_value: float
    last_error: str
    last_evaluation_time: _timestamp_pb2.Timestamp
    next_evaluation_time: _timestamp_pb2.Timestamp
    silenced_until: _timestamp_pb2.Timestamp
    revision: int
    webhook_secret: str
    etag: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., widget_id: _Optional[str] = ..., dashboard_id: _Optional[str] = ..., facility_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., title: _Optional[str] = ..., column: _Optional[str] = ..., reducer: _Optional[_Union[AlertReducer, str]] = ..., comparison: _Optional[_Union[AlertComparison, str]] = ..., threshold: _Optional[float] = ..., for_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., filter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ..., recipients: _Optional[_Union[_report_pb2.ReportRecipients, _Mapping]] = ..., severity: _Optional[_Union[AlertSeverity, str]] = ..., state: _Optional[_Union[AlertState, str]] = ..., state_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_value: _Optional[float] = ..., last_error: _Optional[str] = ..., last_evaluation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_evaluation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., silenced_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ..., webhook_secret: _Optional[str] = ..., etag: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AlertEvent(_message.Message):
    __slots__ = ("rule_id", "revision", "from_state", "to_state", "value", "error", "time", "notification", "recipients")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    revision: int
    from_state: AlertState
    to_state: AlertState
    value: float
    error: str
    time: _timestamp_pb2.Timestamp
    notification: NotificationOutcome
    recipients: _containers.RepeatedCompositeFieldContainer[_report_pb2.RecipientOutcome]
    def __init__(self, rule_id: _Optional[str] = ..., revision: _Optional[int] = ..., from_state: _Optional[_Union[AlertState, str]] = ..., to_state: _Optional[_Union[AlertState, str]] = ..., value: _Optional[float] = ..., error: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., notification: _Optional[_Union[NotificationOutcome, str]] = ..., recipients: _Optional[_Iterable[_Union[_report_pb2.RecipientOutcome, _Mapping]]] = ...) -> None: ...

class CreateAlertRuleRequest(_message.Message):
    __slots__ = ("rule", "request_id")
    RULE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    rule: AlertRule
    request_id: str
    def __init__(self, rule: _Optional[_Union[AlertRule, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetAlertRuleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListAlertRulesRequest(_message.Message):
    __slots__ = ("widget_id", "page_size", "page_token")
    WIDGET_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    widget_id: str
    page_size: int
    page_token: str
    def __init__(self, widget_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAlertRulesResponse(_message.Message):
    __slots__ = ("rules", "next_page_token")
    RULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[AlertRule]
    next_page_token: str
    def __init__(self, rules: _Optional[_Iterable[_Union[AlertRule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateAlertRuleRequest(_message.Message):
    __slots__ = ("rule", "update_mask")
    RULE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    rule: AlertRule
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, rule: _Optional[_Union[AlertRule, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteAlertRuleRequest(_message.Message):
    __slots__ = ("id", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: str
    etag: str
    def __init__(self, id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class SilenceAlertRuleRequest(_message.Message):
    __slots__ = ("id", "until")
    ID_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    until: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PreviewAlertRuleRequest(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: AlertRule
    def __init__(self, rule: _Optional[_Union[AlertRule, _Mapping]] = ...) -> None: ...

class PreviewAlertRuleResponse(_message.Message):
    __slots__ = ("value", "holds", "error", "row_count")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    value: float
    holds: bool
    error: str
    row_count: int
    def __init__(self, value: _Optional[float] = ..., holds: _Optional[bool] = ..., error: _Optional[str] = ..., row_count: _Optional[int] = ...) -> None: ...

class ListAlertEventsRequest(_message.Message):
    __slots__ = ("rule_id", "page_size", "page_token")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    page_size: int
    page_token: str
    def __init__(self, rule_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAlertEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AlertEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AlertEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchAlertRuleRequest(_message.Message):
    __slots__ = ("id", "since_revision")
    ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    id: str
    since_revision: int
    def __init__(self, id: _Optional[str] = ..., since_revision: _Optional[int] = ...) -> None: ...

class WatchAlertRuleResponse(_message.Message):
    __slots__ = ("rule", "change", "heartbeat")
    RULE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    rule: AlertRule
    change: AlertEvent
    heartbeat: _common_pb2.Heartbeat
    def __init__(self, rule: _Optional[_Union[AlertRule, _Mapping]] = ..., change: _Optional[_Union[AlertEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[_common_pb2.Heartbeat, _Mapping]] = ...) -> None: ...
