"""ExportService: proto in -> ExportDomain call -> proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dashboard.v1 import export_pb2 as pb
from dashboard.v1 import export_pb2_grpc
from server import idempotency
from server.api.context import Ctx, correlation_id, current_principal
from server.exports.service import ExportDomain


class ExportServicer(export_pb2_grpc.ExportServiceServicer):
    def __init__(self, domain: ExportDomain) -> None:
        self._domain = domain

    async def CreateExport(self, request: pb.CreateExportRequest, context: Ctx) -> pb.ExportJob:
        return await self._domain.create(
            current_principal(), request, idempotency.request_hash(request), correlation_id.get()
        )

    async def BatchCreateExports(
        self, request: pb.BatchCreateExportsRequest, context: Ctx
    ) -> pb.BatchCreateExportsResponse:
        jobs = await self._domain.batch_create(current_principal(), request, correlation_id.get())
        return pb.BatchCreateExportsResponse(exports=jobs)

    async def GetExport(self, request: pb.GetExportRequest, context: Ctx) -> pb.ExportJob:
        return await self._domain.get(current_principal(), request.id)

    async def ListExports(self, request: pb.ListExportsRequest, context: Ctx) -> pb.ListExportsResponse:
        jobs, token = await self._domain.list(current_principal(), request)
        return pb.ListExportsResponse(exports=jobs, next_page_token=token)

    async def CancelExport(self, request: pb.CancelExportRequest, context: Ctx) -> pb.ExportJob:
        return await self._domain.cancel(current_principal(), request.id)

    async def WatchExport(self, request: pb.WatchExportRequest, context: Ctx) -> AsyncIterator[pb.WatchExportResponse]:
        async for event in self._domain.watch(current_principal(), request.id, request.since_revision):
            yield event

    async def DownloadExport(
        self, request: pb.DownloadExportRequest, context: Ctx
    ) -> AsyncIterator[pb.DownloadExportResponse]:
        async for part in self._domain.download(current_principal(), request):
            yield part
