"""WidgetService: proto in -> domain call -> proto out (CRUD, widget data, materialization jobs)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from dashboard.v1 import widget_pb2 as pb
from dashboard.v1 import widget_pb2_grpc
from server import idempotency
from server.api import context as rpc_context
from server.api.context import current_principal
from server.api.interceptors import Continuation
from server.api.materialization import MaterializationMixin
from server.materialization.service import MaterializationDomain
from server.widgetdata.service import WidgetDataBytes, WidgetDataDomain
from server.widgets.service import WidgetDomain

Context = grpc.aio.ServicerContext
GET_WIDGET_DATA = "/dashboard.v1.WidgetService/GetWidgetData"


class SerializedResponses(grpc.aio.ServerInterceptor):
    """Innermost on the gRPC server: a GetWidgetData answer that is already bytes (a tier-0 hit,
    `WidgetDataBytes`) is sent as it is instead of being parsed and serialized again."""

    def __init__(self) -> None:
        self._handler: grpc.RpcMethodHandler[Any, Any] | None = None

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method != GET_WIDGET_DATA:
            return handler
        if self._handler is None:
            serialize = handler.response_serializer

            def passed_through(response: Any) -> bytes:
                if isinstance(response, WidgetDataBytes):
                    return response.payload
                return serialize(response)  # type: ignore[misc]

            self._handler = handler._replace(response_serializer=passed_through)  # type: ignore[attr-defined]
        return self._handler


class WidgetServicer(MaterializationMixin, widget_pb2_grpc.WidgetServiceServicer):
    def __init__(self, domain: WidgetDomain, data: WidgetDataDomain, jobs: MaterializationDomain) -> None:
        self._domain = domain
        self._data = data
        self._materialization = jobs

    async def CreateWidget(
        self, request: pb.CreateWidgetRequest, context: Context[pb.CreateWidgetRequest, pb.Widget]
    ) -> pb.Widget:
        return await self._domain.create(
            current_principal(),
            request.widget,
            request.request_id,
            idempotency.request_hash(request),
        )

    async def GetWidget(
        self, request: pb.GetWidgetRequest, context: Context[pb.GetWidgetRequest, pb.Widget]
    ) -> pb.Widget:
        return await self._domain.get(current_principal(), request.id)

    async def ListWidgets(
        self,
        request: pb.ListWidgetsRequest,
        context: Context[pb.ListWidgetsRequest, pb.ListWidgetsResponse],
    ) -> pb.ListWidgetsResponse:
        widgets, token = await self._domain.list(current_principal(), request)
        return pb.ListWidgetsResponse(widgets=widgets, next_page_token=token)

    async def UpdateWidget(
        self, request: pb.UpdateWidgetRequest, context: Context[pb.UpdateWidgetRequest, pb.Widget]
    ) -> pb.Widget:
        return await self._domain.update(current_principal(), request.widget, request.update_mask)

    async def DeleteWidget(
        self,
        request: pb.DeleteWidgetRequest,
        context: Context[pb.DeleteWidgetRequest, empty_pb2.Empty],
    ) -> empty_pb2.Empty:
        await self._domain.delete(current_principal(), request.id, request.etag)
        return empty_pb2.Empty()

    async def GetWidgetData(
        self, request: pb.GetWidgetDataRequest, context: Context[pb.GetWidgetDataRequest, pb.WidgetData]
    ) -> pb.WidgetData | WidgetDataBytes:
        if rpc_context.transport.get() == "grpc":  # SerializedResponses sends the bytes as they are
            return await self._data.get_serialized(current_principal(), request)
        return await self._data.get(current_principal(), request)

    async def BatchGetWidgetData(
        self,
        request: pb.BatchGetWidgetDataRequest,
        context: Context[pb.BatchGetWidgetDataRequest, pb.BatchGetWidgetDataResponse],
    ) -> pb.BatchGetWidgetDataResponse:
        data = await self._data.batch_get(current_principal(), request.requests)
        return pb.BatchGetWidgetDataResponse(data=data)
