"""ShareService: proto in -> domain call -> proto out."""

from __future__ import annotations

from google.protobuf import empty_pb2

from dashboard.v1 import share_pb2 as pb
from dashboard.v1 import share_pb2_grpc
from server.api.context import Ctx, current_principal
from server.audit.log import AuditLog
from server.shares.service import ShareDomain


class ShareServicer(share_pb2_grpc.ShareServiceServicer):
    def __init__(self, domain: ShareDomain, audit: AuditLog) -> None:
        self._domain = domain
        self._audit = audit

    async def ShareDashboard(self, request: pb.ShareDashboardRequest, context: Ctx) -> pb.Share:
        return await self._domain.share(current_principal(), request)

    async def UnshareDashboard(self, request: pb.UnshareDashboardRequest, context: Ctx) -> empty_pb2.Empty:
        await self._domain.unshare(current_principal(), request)
        return empty_pb2.Empty()

    async def ListShares(self, request: pb.ListSharesRequest, context: Ctx) -> pb.ListSharesResponse:
        shares, token = await self._domain.list_shares(current_principal(), request)
        return pb.ListSharesResponse(shares=shares, next_page_token=token)

    async def CreatePublicLink(self, request: pb.CreatePublicLinkRequest, context: Ctx) -> pb.PublicLink:
        return await self._domain.create_link(current_principal(), request)

    async def ListPublicLinks(self, request: pb.ListPublicLinksRequest, context: Ctx) -> pb.ListPublicLinksResponse:
        links, token = await self._domain.list_links(current_principal(), request)
        return pb.ListPublicLinksResponse(links=links, next_page_token=token)

    async def RevokePublicLink(self, request: pb.RevokePublicLinkRequest, context: Ctx) -> pb.PublicLink:
        return await self._domain.revoke_link(current_principal(), request.id)

    async def ListAuditEvents(self, request: pb.ListAuditEventsRequest, context: Ctx) -> pb.ListAuditEventsResponse:
        events, token = await self._audit.list_events(current_principal(), request)
        return pb.ListAuditEventsResponse(events=events, next_page_token=token)
