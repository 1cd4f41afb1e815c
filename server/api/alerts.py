"""AlertService: proto in -> AlertDomain call -> proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf import empty_pb2

from dashboard.v1 import alert_pb2 as pb
from dashboard.v1 import alert_pb2_grpc
from server import idempotency
from server.alerts.service import AlertDomain
from server.api.context import Ctx, current_principal


class AlertServicer(alert_pb2_grpc.AlertServiceServicer):
    def __init__(self, domain: AlertDomain) -> None:
        self._domain = domain

    async def CreateAlertRule(self, request: pb.CreateAlertRuleRequest, context: Ctx) -> pb.AlertRule:
        return await self._domain.create(current_principal(), request, idempotency.request_hash(request))

    async def GetAlertRule(self, request: pb.GetAlertRuleRequest, context: Ctx) -> pb.AlertRule:
        return await self._domain.get(current_principal(), request.id)

    async def ListAlertRules(self, request: pb.ListAlertRulesRequest, context: Ctx) -> pb.ListAlertRulesResponse:
        rules, token = await self._domain.list_rules(current_principal(), request)
        return pb.ListAlertRulesResponse(rules=rules, next_page_token=token)

    async def UpdateAlertRule(self, request: pb.UpdateAlertRuleRequest, context: Ctx) -> pb.AlertRule:
        return await self._domain.update(current_principal(), request)

    async def DeleteAlertRule(self, request: pb.DeleteAlertRuleRequest, context: Ctx) -> empty_pb2.Empty:
        await self._domain.delete(current_principal(), request.id, request.etag)
        return empty_pb2.Empty()

    async def SilenceAlertRule(self, request: pb.SilenceAlertRuleRequest, context: Ctx) -> pb.AlertRule:
        return await self._domain.silence(current_principal(), request)

    async def PreviewAlertRule(self, request: pb.PreviewAlertRuleRequest, context: Ctx) -> pb.PreviewAlertRuleResponse:
        return await self._domain.preview(current_principal(), request)

    async def ListAlertEvents(self, request: pb.ListAlertEventsRequest, context: Ctx) -> pb.ListAlertEventsResponse:
        events, token = await self._domain.list_events(current_principal(), request)
        return pb.ListAlertEventsResponse(events=events, next_page_token=token)

    async def WatchAlertRule(
        self, request: pb.WatchAlertRuleRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchAlertRuleResponse]:
        async for event in self._domain.watch(current_principal(), request.id, request.since_revision):
            yield event
