"""Scheduled report subscriptions with keyword arguments (`client.reports`): create, change,
pause and resume subscriptions, send one now and follow its delivery to the end."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from google.protobuf import field_mask_pb2

from dashboard.v1 import export_pb2 as e
from dashboard.v1 import report_pb2 as r
from tessera_client import report_rpcs as rr
from tessera_client.errors import UnavailableError
from tessera_client.rpcs import Req, Resp, ServerStream, Unary
from tessera_client.values import ParameterInput, parameter_map

__all__ = ["ENDED", "Reports"]

ENDED = frozenset({r.DELIVERY_STATE_DELIVERED, r.DELIVERY_STATE_PARTIALLY_DELIVERED, r.DELIVERY_STATE_FAILED})
# A watch that drops is reopened from the last export revision seen, this many times at most.
RESUMES = 5


class _Caller(Protocol):
    def call(self, rpc: Unary[Req, Resp], request: Req) -> Resp: ...

    def pages(self, rpc: Unary[Req, Resp], request: Req, items: str) -> Iterator[Any]: ...

    def stream(self, rpc: ServerStream[Req, Resp], request: Req, *, timeout: float | None = None) -> Iterator[Resp]: ...


class Reports:
    def __init__(self, client: _Caller) -> None:
        self._client = client

    def create(
        self,
        dashboard_id: str,
        *,
        cron: str,
        time_zone: str,
        emails: Sequence[str] = (),
        webhooks: Sequence[str] = (),
        title: str = "",
        format: e.ExportFormat = e.EXPORT_FORMAT_PDF,
        options: e.ExportOptions | None = None,
        filters: Mapping[str, ParameterInput] | None = None,
        include_phi: bool = False,
        request_id: str = "",
    ) -> r.ReportSubscription:
        """A subscription owned by the caller; its `webhook_secret` is shown only in this answer."""
        sub = r.ReportSubscription(
            dashboard_id=dashboard_id,
            title=title,
            schedule=r.ReportSchedule(cron=cron, time_zone=time_zone),
            format=format,
            options=options,
            filter_values=parameter_map(filters),
            recipients=r.ReportRecipients(emails=list(emails), webhooks=list(webhooks)),
            include_phi=include_phi,
        )
        request = r.CreateReportSubscriptionRequest(subscription=sub, request_id=request_id)
        return self._client.call(rr.CREATE_REPORT_SUBSCRIPTION, request)

    def get(self, subscription_id: str) -> r.ReportSubscription:
        return self._client.call(rr.GET_REPORT_SUBSCRIPTION, r.GetReportSubscriptionRequest(id=subscription_id))

    def list(self, *, dashboard_id: str = "", page_size: int = 0) -> Iterator[r.ReportSubscription]:
        request = r.ListReportSubscriptionsRequest(dashboard_id=dashboard_id, page_size=page_size)
        return self._client.pages(rr.LIST_REPORT_SUBSCRIPTIONS, request, "subscriptions")

    def update(self, subscription: r.ReportSubscription, fields: Sequence[str] = ()) -> r.ReportSubscription:
        """Changes `fields` (all changeable ones when empty); send the `etag` read to refuse stale writes."""
        mask = field_mask_pb2.FieldMask(paths=list(fields)) if fields else None
        request = r.UpdateReportSubscriptionRequest(subscription=subscription, update_mask=mask)
        return self._client.call(rr.UPDATE_REPORT_SUBSCRIPTION, request)

    def delete(self, subscription_id: str, *, etag: str = "") -> None:
        request = r.DeleteReportSubscriptionRequest(id=subscription_id, etag=etag)
        self._client.call(rr.DELETE_REPORT_SUBSCRIPTION, request)

    def pause(self, subscription_id: str) -> r.ReportSubscription:
        return self._client.call(rr.PAUSE_REPORT_SUBSCRIPTION, r.PauseReportSubscriptionRequest(id=subscription_id))

    def resume(self, subscription_id: str) -> r.ReportSubscription:
        return self._client.call(rr.RESUME_REPORT_SUBSCRIPTION, r.ResumeReportSubscriptionRequest(id=subscription_id))

    def send_now(self, subscription_id: str, *, request_id: str = "") -> r.ReportDelivery:
        request = r.SendReportNowRequest(id=subscription_id, request_id=request_id)
        return self._client.call(rr.SEND_REPORT_NOW, request)

    def deliveries(self, subscription_id: str, *, page_size: int = 0) -> Iterator[r.ReportDelivery]:
        request = r.ListReportDeliveriesRequest(subscription_id=subscription_id, page_size=page_size)
        return self._client.pages(rr.LIST_REPORT_DELIVERIES, request, "deliveries")

    def delivery(self, delivery_id: str) -> r.ReportDelivery:
        return self._client.call(rr.GET_REPORT_DELIVERY, r.GetReportDeliveryRequest(id=delivery_id))

    def wait_delivery(
        self,
        delivery_id: str,
        *,
        on_export: Any = None,
        timeout: float | None = None,
    ) -> r.ReportDelivery:
        """Follows WatchReportDelivery to its end (reopening a dropped stream from the last export
        revision seen) and returns the ended delivery; `on_export(job)` hears each export snapshot."""
        since = 0
        for _ in builtins.range(RESUMES + 1):
            request = r.WatchReportDeliveryRequest(id=delivery_id, since_revision=since)
            try:
                for event in self._client.stream(rr.WATCH_REPORT_DELIVERY, request, timeout=timeout):
                    if event.HasField("export"):
                        since = max(since, event.export.revision)
                        if on_export is not None:
                            on_export(event.export)
                    elif event.HasField("delivery"):
                        return event.delivery
            except UnavailableError:
                continue
        delivery = self.delivery(delivery_id)
        if delivery.state in ENDED:
            return delivery
        raise TimeoutError(f"delivery {delivery_id} did not end")

    def send_and_wait(self, subscription_id: str, *, timeout: float | None = None) -> r.ReportDelivery:
        return self.wait_delivery(self.send_now(subscription_id).id, timeout=timeout)
