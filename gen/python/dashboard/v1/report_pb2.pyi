import datetime

from buf.validate import validate_pb2 as _validate_pb2
from dashboard.v1 import common_pb2 as _common_pb2
from dashboard.v1 import export_pb2 as _export_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
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

class SubscriptionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBSCRIPTION_STATE_UNSPECIFIED: _ClassVar[SubscriptionState]
    SUBSCRIPTION_STATE_ACTIVE: _ClassVar[SubscriptionState]
    SUBSCRIPTION_STATE_PAUSED: _ClassVar[SubscriptionState]
    SUBSCRIPTION_STATE_STOPPED: _ClassVar[SubscriptionState]

class DeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATE_UNSPECIFIED: _ClassVar[DeliveryState]
    DELIVERY_STATE_PENDING: _ClassVar[DeliveryState]
    DELIVERY_STATE_RENDERING: _ClassVar[DeliveryState]
    DELIVERY_STATE_SENDING: _ClassVar[DeliveryState]
    DELIVERY_STATE_DELIVERED: _ClassVar[DeliveryState]
    DELIVERY_STATE_PARTIALLY_DELIVERED: _ClassVar[DeliveryState]
    DELIVERY_STATE_FAILED: _ClassVar[DeliveryState]

class DeliveryTrigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_TRIGGER_UNSPECIFIED: _ClassVar[DeliveryTrigger]
    DELIVERY_TRIGGER_SCHEDULE: _ClassVar[DeliveryTrigger]
    DELIVERY_TRIGGER_MANUAL: _ClassVar[DeliveryTrigger]
SUBSCRIPTION_STATE_UNSPECIFIED: SubscriptionState
SUBSCRIPTION_STATE_ACTIVE: SubscriptionState
SUBSCRIPTION_STATE_PAUSED: SubscriptionState
SUBSCRIPTION_STATE_STOPPED: SubscriptionState
DELIVERY_STATE_UNSPECIFIED: DeliveryState
DELIVERY_STATE_PENDING: DeliveryState
DELIVERY_STATE_RENDERING: DeliveryState
DELIVERY_STATE_SENDING: DeliveryState
DELIVERY_STATE_DELIVERED: DeliveryState
DELIVERY_STATE_PARTIALLY_DELIVERED: DeliveryState
DELIVERY_STATE_FAILED: DeliveryState
DELIVERY_TRIGGER_UNSPECIFIED: DeliveryTrigger
DELIVERY_TRIGGER_SCHEDULE: DeliveryTrigger
DELIVERY_TRIGGER_MANUAL: DeliveryTrigger

class ReportSchedule(_message.Message):
    __slots__ = ("cron", "time_zone")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    cron: str
    time_zone: str
    def __init__(self, cron: _Optional[str] = ..., time_zone: _Optional[str] = ...) -> None: ...

class ReportRecipients(_message.Message):
    __slots__ = ("emails", "webhooks")
    EMAILS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    emails: _containers.RepeatedScalarFieldContainer[str]
    webhooks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, emails: _Optional[_Iterable[str]] = ..., webhooks: _Optional[_Iterable[str]] = ...) -> None: ...

class ReportSubscription(_message.Message):
    __slots__ = ("id", "dashboard_id", "facility_id", "owner_id", "title", "schedule", "format", "options", "filter_values", "recipients", "include_phi", "state", "stop_reason", "next_run_time", "last_run_time", "webhook_secret", "etag", "create_time", "update_time")
    class FilterValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FILTER_VALUES_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PHI_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    dashboard_id: str
    facility_id: str
    owner_id: str
    title: str
    schedule: ReportSchedule
    format: _export_pb2.ExportFormat
    options: _export_pb2.ExportOptions
    filter_values: _containers.MessageMap[str, _common_pb2.ParameterValue]
    recipients: ReportRecipients
    include_phi: bool
    state: SubscriptionState
    stop_reason: str
    next_run_time: _timestamp_pb2.Timestamp
    last_run_time: _timestamp_pb2.Timestamp
    webhook_secret: str
    etag: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., dashboard_id: _Optional[str] = ..., facility_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., title: _Optional[str] = ..., schedule: _Optional[_Union[ReportSchedule, _Mapping]] = ..., format: _Optional[_Union[_export_pb2.ExportFormat, str]] = ..., options: _Optional[_Union[_export_pb2.ExportOptions, _Mapping]] = ..., filter_values: _Optional[_Mapping[str, _common_pb2.ParameterValue]] = ..., recipients: _Optional[_Union[ReportRecipients, _Mapping]] = ..., include_phi: _Optional[bool] = ..., state: _Optional[_Union[SubscriptionState, str]] = ..., stop_reason: _Optional[str] = ..., next_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., webhook_secret: _Optional[str] = ..., etag: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecipientOutcome(_message.Message):
    __slots__ = ("recipient", "delivered", "attempts", "error")
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    recipient: str
    delivered: bool
    attempts: int
    error: str
    def __init__(self, recipient: _Optional[str] = ..., delivered: _Optional[bool] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ReportDelivery(_message.Message):
    __slots__ = ("id", "subscription_id", "trigger", "due_time", "state", "export_id", "recipients", "error", "create_time", "end_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXPORT_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    subscription_id: str
    trigger: DeliveryTrigger
    due_time: _timestamp_pb2.Timestamp
    state: DeliveryState
    export_id: str
    recipients: _containers.RepeatedCompositeFieldContainer[RecipientOutcome]
    error: _common_pb2.JobError
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., trigger: _Optional[_Union[DeliveryTrigger, str]] = ..., due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[DeliveryState, str]] = ..., export_id: _Optional[str] = ..., recipients: _Optional[_Iterable[_Union[RecipientOutcome, _Mapping]]] = ..., error: _Optional[_Union[_common_pb2.JobError, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateReportSubscriptionRequest(_message.Message):
    __slots__ = ("subscription", "request_id")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    subscription: ReportSubscription
    request_id: str
    def __init__(self, subscription: _Optional[_Union[ReportSubscription, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetReportSubscriptionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListReportSubscriptionsRequest(_message.Message):
    __slots__ = ("dashboard_id", "page_size", "page_token")
    DASHBOARD_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dashboard_id: str
    page_size: int
    page_token: str
    def __init__(self, dashboard_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReportSubscriptionsResponse(_message.Message):
    __slots__ = ("subscriptions", "next_page_token")
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subscriptions: _containers.RepeatedCompositeFieldContainer[ReportSubscription]
    next_page_token: str
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[ReportSubscription, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateReportSubscriptionRequest(_message.Message):
    __slots__ = ("subscription", "update_mask")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    subscription: ReportSubscription
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, subscription: _Optional[_Union[ReportSubscription, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteReportSubscriptionRequest(_message.Message):
    __slots__ = ("id", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: str
    etag: str
    def __init__(self, id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class PauseReportSubscriptionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ResumeReportSubscriptionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class SendReportNowRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListReportDeliveriesRequest(_message.Message):
    __slots__ = ("subscription_id", "page_size", "page_token")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    page_size: int
    page_token: str
    def __init__(self, subscription_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReportDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[ReportDelivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[ReportDelivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetReportDeliveryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchReportDeliveryRequest(_message.Message):
    __slots__ = ("id", "since_revision")
    ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    id: str
    since_revision: int
    def __init__(self, id: _Optional[str] = ..., since_revision: _Optional[int] = ...) -> None: ...

class WatchReportDeliveryResponse(_message.Message):
    __slots__ = ("export", "heartbeat", "delivery")
    EXPORT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    export: _export_pb2.ExportJob
    heartbeat: _common_pb2.Heartbeat
    delivery: ReportDelivery
    def __init__(self, export: _Optional[_Union[_export_pb2.ExportJob, _Mapping]] = ..., heartbeat: _Optional[_Union[_common_pb2.Heartbeat, _Mapping]] = ..., delivery: _Optional[_Union[ReportDelivery, _Mapping]] = ...) -> None: ...
