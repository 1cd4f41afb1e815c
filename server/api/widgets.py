"""WidgetService: proto in -> domain call -> proto out. Widget data and materialization answer
UNIMPLEMENTED until the cache and the workers exist."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from google.protobuf import empty_pb2

from dashboard.v1 import widget_pb2 as pb
from dashboard.v1 import widget_pb2_grpc
from server import idempotency
from server.api.context import current_principal
from server.api.unimplemented import unimplemented_methods
from server.widgets.service import WidgetDomain

Context = grpc.aio.ServicerContext

if TYPE_CHECKING:
    # The factory's result is a subclass of the generated servicer; let mypy check against it.
    _Base = widget_pb2_grpc.WidgetServiceServicer
else:
    _Base = unimplemented_methods(
        widget_pb2_grpc.WidgetServiceServicer,
        pb.DESCRIPTOR.services_by_name["WidgetService"],
        "widget data and materialization (the cache and workers)",
        only=[
            "GetWidgetData",
            "BatchGetWidgetData",
            "MaterializeDashboard",
            "GetMaterializationJob",
            "WatchMaterializationJob",
        ],
    )


class WidgetServicer(_Base):
    def __init__(self, domain: WidgetDomain) -> None:
        self._domain = domain

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
