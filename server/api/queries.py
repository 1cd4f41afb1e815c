"""QueryService: proto in -> domain call -> proto out."""

from __future__ import annotations

from google.protobuf import empty_pb2

from dashboard.v1 import query_pb2 as pb
from dashboard.v1 import query_pb2_grpc
from server import idempotency
from server.api.context import Ctx, current_principal
from server.queries.service import QueryDomain


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, domain: QueryDomain) -> None:
        self._domain = domain

    async def CreateQuery(self, request: pb.CreateQueryRequest, context: Ctx) -> pb.Query:
        return await self._domain.create(
            current_principal(), request.query, request.request_id, idempotency.request_hash(request)
        )

    async def GetQuery(self, request: pb.GetQueryRequest, context: Ctx) -> pb.Query:
        return await self._domain.get(current_principal(), request.id)

    async def ListQueries(self, request: pb.ListQueriesRequest, context: Ctx) -> pb.ListQueriesResponse:
        queries, token = await self._domain.list_queries(current_principal(), request)
        return pb.ListQueriesResponse(queries=queries, next_page_token=token)

    async def UpdateQuery(self, request: pb.UpdateQueryRequest, context: Ctx) -> pb.Query:
        return await self._domain.update(current_principal(), request.query, request.update_mask)

    async def DeleteQuery(self, request: pb.DeleteQueryRequest, context: Ctx) -> empty_pb2.Empty:
        await self._domain.delete(current_principal(), request.id, request.force, request.etag)
        return empty_pb2.Empty()

    async def ListQueryVersions(
        self, request: pb.ListQueryVersionsRequest, context: Ctx
    ) -> pb.ListQueryVersionsResponse:
        versions, token = await self._domain.list_versions(current_principal(), request)
        return pb.ListQueryVersionsResponse(versions=versions, next_page_token=token)

    async def GetQueryVersion(self, request: pb.GetQueryVersionRequest, context: Ctx) -> pb.QueryVersion:
        return await self._domain.get_version(current_principal(), request.query_id, request.version)

    async def RunQuery(self, request: pb.RunQueryRequest, context: Ctx) -> pb.RunQueryResponse:
        return await self._domain.run(
            current_principal(),
            request.id,
            request.version,
            request.parameter_values,
            request.row_limit,
            request.facility_id,
        )

    async def ValidateQuery(self, request: pb.ValidateQueryRequest, context: Ctx) -> pb.ValidateQueryResponse:
        return self._domain.validate(current_principal(), request)

    async def RefreshMaterializedView(self, request: pb.RefreshMaterializedViewRequest, context: Ctx) -> pb.Query:
        return await self._domain.refresh(current_principal(), request.id)
