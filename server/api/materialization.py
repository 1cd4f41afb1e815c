"""MaterializeDashboard, GetMaterializationJob and WatchMaterializationJob: a mixin for
WidgetServicer (proto in -> MaterializationDomain call -> proto out). The servicer sets `_materialization`
from the composition root (`server.app.App.materialization`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from dashboard.v1 import widget_pb2 as pb
from server import idempotency
from server.api.context import current_principal
from server.materialization.service import MaterializationDomain

__all__ = ["MaterializationMixin"]

Context = grpc.aio.ServicerContext


class MaterializationMixin:
    _materialization: MaterializationDomain

    async def MaterializeDashboard(
        self,
        request: pb.MaterializeDashboardRequest,
        context: Context[pb.MaterializeDashboardRequest, pb.MaterializationJob],
    ) -> pb.MaterializationJob:
        return await self._materialization.materialize(current_principal(), request, idempotency.request_hash(request))

    async def GetMaterializationJob(
        self,
        request: pb.GetMaterializationJobRequest,
        context: Context[pb.GetMaterializationJobRequest, pb.MaterializationJob],
    ) -> pb.MaterializationJob:
        return await self._materialization.get(current_principal(), request.id)

    async def WatchMaterializationJob(
        self, request: pb.WatchMaterializationJobRequest, context: Any
    ) -> AsyncIterator[pb.WatchMaterializationJobResponse]:
        jobs = self._materialization
        async for event in jobs.watch(current_principal(), request.id, request.since_revision):
            yield event
