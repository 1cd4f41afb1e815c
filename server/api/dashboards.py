"""DashboardService: proto in -> domain call -> proto out."""

from __future__ import annotations

from google.protobuf import empty_pb2

from dashboard.v1 import dashboard_pb2 as pb
from dashboard.v1 import dashboard_pb2_grpc
from server import idempotency
from server.api.context import Ctx, current_principal
from server.dashboards.service import DashboardDomain
from server.portability.batch import BatchCloner
from server.portability.service import PortabilityDomain


class DashboardServicer(dashboard_pb2_grpc.DashboardServiceServicer):
    def __init__(self, domain: DashboardDomain, portability: PortabilityDomain) -> None:
        self._domain = domain
        self._portability = portability
        self._batch = BatchCloner(portability)

    async def CreateDashboard(self, request: pb.CreateDashboardRequest, context: Ctx) -> pb.Dashboard:
        return await self._domain.create(
            current_principal(), request.dashboard, request.request_id, idempotency.request_hash(request)
        )

    async def GetDashboard(self, request: pb.GetDashboardRequest, context: Ctx) -> pb.Dashboard:
        return await self._domain.get(current_principal(), request.id)

    async def ListDashboards(self, request: pb.ListDashboardsRequest, context: Ctx) -> pb.ListDashboardsResponse:
        return await self._domain.list_dashboards(current_principal(), request)

    async def UpdateDashboard(self, request: pb.UpdateDashboardRequest, context: Ctx) -> pb.Dashboard:
        return await self._domain.update(current_principal(), request.dashboard, request.update_mask)

    async def DeleteDashboard(self, request: pb.DeleteDashboardRequest, context: Ctx) -> empty_pb2.Empty:
        await self._domain.delete(current_principal(), request.id, request.etag)
        return empty_pb2.Empty()

    async def PublishDashboard(self, request: pb.PublishDashboardRequest, context: Ctx) -> pb.Dashboard:
        return await self._domain.publish(current_principal(), request.id, request.version, request.etag)

    async def ListDashboardVersions(
        self, request: pb.ListDashboardVersionsRequest, context: Ctx
    ) -> pb.ListDashboardVersionsResponse:
        versions, token = await self._domain.list_versions(current_principal(), request)
        return pb.ListDashboardVersionsResponse(versions=versions, next_page_token=token)

    async def GetDashboardVersion(self, request: pb.GetDashboardVersionRequest, context: Ctx) -> pb.DashboardVersion:
        return await self._domain.get_version(current_principal(), request.dashboard_id, request.version)

    async def RestoreDashboardVersion(self, request: pb.RestoreDashboardVersionRequest, context: Ctx) -> pb.Dashboard:
        return await self._domain.restore(current_principal(), request.dashboard_id, request.version, request.etag)

    async def ExportDashboardDocument(
        self, request: pb.ExportDashboardDocumentRequest, context: Ctx
    ) -> pb.DashboardDocument:
        return await self._portability.export(current_principal(), request.id)

    async def ImportDashboard(self, request: pb.ImportDashboardRequest, context: Ctx) -> pb.ImportDashboardResponse:
        return await self._portability.import_document(current_principal(), request, idempotency.request_hash(request))

    async def CloneDashboard(self, request: pb.CloneDashboardRequest, context: Ctx) -> pb.ImportDashboardResponse:
        return await self._portability.clone(current_principal(), request, idempotency.request_hash(request))

    async def BatchCloneDashboards(
        self, request: pb.BatchCloneDashboardsRequest, context: Ctx
    ) -> pb.BatchCloneDashboardsResponse:
        clones = await self._batch.clone_many(current_principal(), request, idempotency.request_hash(request))
        return pb.BatchCloneDashboardsResponse(clones=clones)
