"""The rpcs of ReportService (scheduled report subscriptions), typed like tessera_client.rpcs;
a unit test checks this table against the service descriptor."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2

from dashboard.v1 import report_pb2 as r
from tessera_client.rpcs import IDEMPOTENT, KEYED, REPORT_SERVICE, SAFE, UNSAFE, Rpc, ServerStream, Unary

S = REPORT_SERVICE

CREATE_REPORT_SUBSCRIPTION = Unary(
    S, "CreateReportSubscription", r.CreateReportSubscriptionRequest, r.ReportSubscription, KEYED
)
GET_REPORT_SUBSCRIPTION = Unary(S, "GetReportSubscription", r.GetReportSubscriptionRequest, r.ReportSubscription, SAFE)
LIST_REPORT_SUBSCRIPTIONS = Unary(
    S, "ListReportSubscriptions", r.ListReportSubscriptionsRequest, r.ListReportSubscriptionsResponse, SAFE
)
UPDATE_REPORT_SUBSCRIPTION = Unary(
    S, "UpdateReportSubscription", r.UpdateReportSubscriptionRequest, r.ReportSubscription, UNSAFE
)
DELETE_REPORT_SUBSCRIPTION = Unary(
    S, "DeleteReportSubscription", r.DeleteReportSubscriptionRequest, empty_pb2.Empty, UNSAFE
)
PAUSE_REPORT_SUBSCRIPTION = Unary(
    S, "PauseReportSubscription", r.PauseReportSubscriptionRequest, r.ReportSubscription, IDEMPOTENT
)
RESUME_REPORT_SUBSCRIPTION = Unary(
    S, "ResumeReportSubscription", r.ResumeReportSubscriptionRequest, r.ReportSubscription, IDEMPOTENT
)
SEND_REPORT_NOW = Unary(S, "SendReportNow", r.SendReportNowRequest, r.ReportDelivery, KEYED)
LIST_REPORT_DELIVERIES = Unary(
    S, "ListReportDeliveries", r.ListReportDeliveriesRequest, r.ListReportDeliveriesResponse, SAFE
)
GET_REPORT_DELIVERY = Unary(S, "GetReportDelivery", r.GetReportDeliveryRequest, r.ReportDelivery, SAFE)
WATCH_REPORT_DELIVERY = ServerStream(
    S, "WatchReportDelivery", r.WatchReportDeliveryRequest, r.WatchReportDeliveryResponse, SAFE
)

REPORT_RPCS: tuple[Rpc[Any, Any], ...] = tuple(value for value in list(globals().values()) if isinstance(value, Rpc))
