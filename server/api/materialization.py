"""MaterializeDashboard, GetMaterializationJob and WatchMaterializationJob: a mixin for
WidgetServicer (proto in -> JobDomain call -> proto out). The servicer sets `_job_domain`
from the composition root (`server.app.App.jobs`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from dashboard.v1 import widget_pb2 as pb
from server import idempotency
from server.api.context import current_principal
from server.materialization.service import JobDomain

__all__ = ["JobsMixin"]

Context = grpc.aio.ServicerContext


class JobsMixin:
    _job_domain: JobDomain

    async def MaterializeDashboard(
        self,
        request: pb.MaterializeDashboardRequest,
        context: Context[pb.MaterializeDashboardRequest, pb.MaterializationJob],
    ) -> pb.MaterializationJob:
        return await self._job_domain.materialize(current_principal(), request, idempotency.request_hash(request))

    async def GetMaterializationJob(
        self,
        request: pb.GetMaterializationJobRequest,
        context: Context[pb.GetMaterializationJobRequest, pb.MaterializationJob],
    ) -> pb.MaterializationJob:
        return await self._job_domain.get(current_principal(), request.id)

    async def WatchMaterializationJob(
        self, request: pb.WatchMaterializationJobRequest, context: Any
    ) -> AsyncIterator[pb.WatchMaterializationJobResponse]:
        jobs = self._job_domain
        async for event in jobs.watch(current_principal(), request.id, request.since_revision):
            yield event
