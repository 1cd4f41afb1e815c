"""ReportService: proto in -> ReportDomain call -> proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf import empty_pb2

from dashboard.v1 import report_pb2 as pb
from dashboard.v1 import report_pb2_grpc
from server import idempotency
from server.api.context import Ctx, current_principal
from server.reports.service import ReportDomain


class ReportServicer(report_pb2_grpc.ReportServiceServicer):
    def __init__(self, domain: ReportDomain) -> None:
        self._domain = domain

    async def CreateReportSubscription(
        self, request: pb.CreateReportSubscriptionRequest, context: Ctx
    ) -> pb.ReportSubscription:
        return await self._domain.create(current_principal(), request, idempotency.request_hash(request))

    async def GetReportSubscription(
        self, request: pb.GetReportSubscriptionRequest, context: Ctx
    ) -> pb.ReportSubscription:
        return await self._domain.get(current_principal(), request.id)

    async def ListReportSubscriptions(
        self, request: pb.ListReportSubscriptionsRequest, context: Ctx
    ) -> pb.ListReportSubscriptionsResponse:
        subs, token = await self._domain.list_subscriptions(current_principal(), request)
        return pb.ListReportSubscriptionsResponse(subscriptions=subs, next_page_token=token)

    async def UpdateReportSubscription(
        self, request: pb.UpdateReportSubscriptionRequest, context: Ctx
    ) -> pb.ReportSubscription:
        return await self._domain.update(current_principal(), request)

    async def DeleteReportSubscription(
        self, request: pb.DeleteReportSubscriptionRequest, context: Ctx
    ) -> empty_pb2.Empty:
        await self._domain.delete(current_principal(), request.id, request.etag)
        return empty_pb2.Empty()

    async def PauseReportSubscription(
        self, request: pb.PauseReportSubscriptionRequest, context: Ctx
    ) -> pb.ReportSubscription:
        return await self._domain.pause(current_principal(), request.id)

    async def ResumeReportSubscription(
        self, request: pb.ResumeReportSubscriptionRequest, context: Ctx
    ) -> pb.ReportSubscription:
        return await self._domain.resume(current_principal(), request.id)

    async def SendReportNow(self, request: pb.SendReportNowRequest, context: Ctx) -> pb.ReportDelivery:
        return await self._domain.send_now(current_principal(), request, idempotency.request_hash(request))

    async def ListReportDeliveries(
        self, request: pb.ListReportDeliveriesRequest, context: Ctx
    ) -> pb.ListReportDeliveriesResponse:
        deliveries, token = await self._domain.list_deliveries(current_principal(), request)
        return pb.ListReportDeliveriesResponse(deliveries=deliveries, next_page_token=token)

    async def GetReportDelivery(self, request: pb.GetReportDeliveryRequest, context: Ctx) -> pb.ReportDelivery:
        return await self._domain.get_delivery(current_principal(), request.id)

    async def WatchReportDelivery(
        self, request: pb.WatchReportDeliveryRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchReportDeliveryResponse]:
        async for event in self._domain.watch_delivery(current_principal(), request.id, request.since_revision):
            yield event
