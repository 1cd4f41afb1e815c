"""MaterializeDashboard, GetMaterializationJob and WatchMaterializationJob: a mixin for
WidgetServicer (proto in -> JobDomain call -> proto out).

Wiring: `class WidgetServicer(JobsMixin, _Base)` with the three names removed from the
`unimplemented_methods(..., only=[...])` list, and `attach_jobs(widgets, JobDomain(...))` in
`server.app.build_app`. The mixin finds the job domain through the servicer's WidgetDomain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from dashboard.v1 import widget_pb2 as pb
from server import idempotency
from server.api.context import current_principal
from server.jobs.service import JobDomain

__all__ = ["JobsMixin"]

Context = grpc.aio.ServicerContext


class JobsMixin:
    _job_domain: JobDomain

    def _jobs(self, method: str) -> JobDomain:
        return self._job_domain

    async def MaterializeDashboard(
        self,
        request: pb.MaterializeDashboardRequest,
        context: Context[pb.MaterializeDashboardRequest, pb.MaterializationJob],
    ) -> pb.MaterializationJob:
        return await self._jobs("MaterializeDashboard").materialize(
            current_principal(), request, idempotency.request_hash(request)
        )

    async def GetMaterializationJob(
        self,
        request: pb.GetMaterializationJobRequest,
        context: Context[pb.GetMaterializationJobRequest, pb.MaterializationJob],
    ) -> pb.MaterializationJob:
        return await self._jobs("GetMaterializationJob").get(current_principal(), request.id)

    async def WatchMaterializationJob(
        self, request: pb.WatchMaterializationJobRequest, context: Any
    ) -> AsyncIterator[pb.WatchMaterializationJobResponse]:
        jobs = self._jobs("WatchMaterializationJob")
        async for event in jobs.watch(current_principal(), request.id, request.since_revision):
            yield event
