"""The share domain: shares (upsert, remove, list) and public links (create, list, revoke).

Every decision goes through server/access/policy.py: `load_dashboard` with MANAGE_SHARES,
LIST_SHARES or MANAGE_PUBLIC_LINKS. A share row carries its dashboard's facility and the policy
only ever applies a share to principals of that facility, so sharing never crosses facilities.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from dashboard.v1 import share_pb2
from server import pagination
from server.access.policy import LIST_SHARES, MANAGE_PUBLIC_LINKS, MANAGE_SHARES
from server.auth.principal import Principal, Role
from server.dashboards.access import load_dashboard
from server.db.engine import Database
from server.db.schema import dashboard_shares, public_links
from server.errors import FailedPrecondition, InvalidArgument, NotFound

DEFAULT_LINK_TTL = timedelta(days=7)
MIN_LINK_TTL = timedelta(minutes=1)
DEFAULT_PAGE_SIZE = 100


def token_hash(token: str) -> bytes:
    """What is stored for a link token: its sha256, never the token."""
    return hashlib.sha256(token.encode()).digest()


def _grantee(message: Any) -> tuple[str, str]:
    """(grantee_type, grantee) from a request's `grantee` oneof."""
    which = message.WhichOneof("grantee")
    if which == "user_id":
        return "user", message.user_id
    if which == "role":
        return "role", Role(message.role).name.lower()
    raise InvalidArgument.field("grantee", "name a user_id or a role", reason="REQUIRED")


def share_from_row(row: Any) -> share_pb2.Share:
    share = share_pb2.Share(dashboard_id=str(row.dashboard_id), level=row.level, granted_by=row.granted_by)
    if row.grantee_type == "user":
        share.user_id = row.grantee
    else:
        role = Role.parse(row.grantee)
        if role is not None:
            share.role = int(role)  # type: ignore[assignment]  # same numbers as dashboard.v1.Role
    share.create_time.FromDatetime(row.created_at)
    share.update_time.FromDatetime(row.updated_at)
    return share


def link_from_row(row: Any, token: str = "") -> share_pb2.PublicLink:
    link = share_pb2.PublicLink(
        id=str(row.id), dashboard_id=str(row.dashboard_id), token=token, created_by=row.created_by
    )
    link.expire_time.FromDatetime(row.expire_at)
    link.create_time.FromDatetime(row.created_at)
    if row.revoked_at is not None:
        link.revoke_time.FromDatetime(row.revoked_at)
    return link


class ShareDomain:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- shares ---------------------------------------------------------------------------

    async def share(self, principal: Principal, request: share_pb2.ShareDashboardRequest) -> share_pb2.Share:
        grantee_type, grantee = _grantee(request)
        async with self._db.transaction() as conn:
            row, _ = await load_dashboard(conn, principal, request.dashboard_id, MANAGE_SHARES, lock=True)
            values = pg_insert(dashboard_shares).values(
                dashboard_id=row.id,
                facility_id=row.facility_id,
                grantee_type=grantee_type,
                grantee=grantee,
                level=int(request.level),
                granted_by=principal.subject,
            )
            stmt = values.on_conflict_do_update(
                index_elements=["dashboard_id", "grantee_type", "grantee"],
                set_={"level": values.excluded.level, "granted_by": values.excluded.granted_by},
            ).returning(dashboard_shares)
            return share_from_row((await conn.execute(stmt)).one())

    async def unshare(self, principal: Principal, request: share_pb2.UnshareDashboardRequest) -> None:
        grantee_type, grantee = _grantee(request)
        async with self._db.transaction() as conn:
            row, _ = await load_dashboard(conn, principal, request.dashboard_id, MANAGE_SHARES, lock=True)
            deleted = (
                await conn.execute(
                    delete(dashboard_shares)
                    .where(
                        dashboard_shares.c.dashboard_id == row.id,
                        dashboard_shares.c.grantee_type == grantee_type,
                        dashboard_shares.c.grantee == grantee,
                    )
                    .returning(dashboard_shares.c.id)
                )
            ).first()
            if deleted is None:
                raise NotFound("share", f"{request.dashboard_id}/{grantee_type}:{grantee}")

    async def list_shares(
        self, principal: Principal, request: share_pb2.ListSharesRequest
    ) -> tuple[list[share_pb2.Share], str]:
        filters_key = pagination.fingerprint("shares", request.dashboard_id)
        cursor = pagination.decode(request.page_token, filters_key)
        size = pagination.page_size(request.page_size, DEFAULT_PAGE_SIZE)
        async with self._db.read() as conn:
            row, _ = await load_dashboard(conn, principal, request.dashboard_id, LIST_SHARES)
            query: Select[Any] = select(dashboard_shares).where(dashboard_shares.c.dashboard_id == row.id)
            key = tuple_(dashboard_shares.c.grantee_type, dashboard_shares.c.grantee)
            if cursor is not None:
                grantee_type, _, grantee = str(cursor.key).partition(":")
                query = query.where(key > tuple_(grantee_type, grantee))
            query = query.order_by(dashboard_shares.c.grantee_type, dashboard_shares.c.grantee).limit(size + 1)
            rows = (await conn.execute(query)).all()
        page, more = rows[:size], len(rows) > size
        token = ""
        if more:
            last = page[-1]
            token = pagination.encode(
                pagination.Cursor(f"{last.grantee_type}:{last.grantee}", str(last.id)), filters_key
            )
        return [share_from_row(r) for r in page], token

    # --- public links ---------------------------------------------------------------------

    async def create_link(
        self, principal: Principal, request: share_pb2.CreatePublicLinkRequest
    ) -> share_pb2.PublicLink:
        ttl = DEFAULT_LINK_TTL
        if request.HasField("ttl"):
            ttl = request.ttl.ToTimedelta()
            if ttl < MIN_LINK_TTL:
                raise InvalidArgument.field("ttl", "a link must work for at least one minute", reason="TTL_TOO_SHORT")
        token = secrets.token_urlsafe(32)
        async with self._db.transaction() as conn:
            row, _ = await load_dashboard(conn, principal, request.dashboard_id, MANAGE_PUBLIC_LINKS, lock=True)
            if row.published_version is None:
                raise FailedPrecondition(
                    "a public link shows the published version: publish the dashboard first", reason="NOT_PUBLISHED"
                )
            created = (
                await conn.execute(
                    public_links.insert()
                    .values(
                        dashboard_id=row.id,
                        facility_id=row.facility_id,
                        token_hash=token_hash(token),
                        expire_at=func.now() + ttl,
                        created_by=principal.subject,
                    )
                    .returning(public_links)
                )
            ).one()
        return link_from_row(created, token)

    async def list_links(
        self, principal: Principal, request: share_pb2.ListPublicLinksRequest
    ) -> tuple[list[share_pb2.PublicLink], str]:
        filters_key = pagination.fingerprint("links", request.dashboard_id)
        cursor = pagination.decode(request.page_token, filters_key)
        size = pagination.page_size(request.page_size, DEFAULT_PAGE_SIZE)
        async with self._db.read() as conn:
            row, _ = await load_dashboard(conn, principal, request.dashboard_id, MANAGE_PUBLIC_LINKS)
            query: Select[Any] = select(public_links).where(public_links.c.dashboard_id == row.id)
            if cursor is not None:
                query = query.where(
                    tuple_(public_links.c.created_at, public_links.c.id)
                    < tuple_(datetime.fromisoformat(str(cursor.key)), uuid.UUID(cursor.id))
                )
            query = query.order_by(public_links.c.created_at.desc(), public_links.c.id.desc()).limit(size + 1)
            rows = (await conn.execute(query)).all()
        page, more = rows[:size], len(rows) > size
        token = ""
        if more:
            last = page[-1]
            token = pagination.encode(pagination.Cursor(last.created_at.isoformat(), str(last.id)), filters_key)
        return [link_from_row(r) for r in page], token

    async def revoke_link(self, principal: Principal, link_id: str) -> share_pb2.PublicLink:
        async with self._db.transaction() as conn:
            link = (await conn.execute(select(public_links).where(public_links.c.id == uuid.UUID(link_id)))).first()
            if link is None:
                raise NotFound("public_link", link_id)
            try:
                await load_dashboard(conn, principal, str(link.dashboard_id), MANAGE_PUBLIC_LINKS, lock=True)
            except NotFound:
                # Answer about the link, not its dashboard: the caller named a link.
                raise NotFound("public_link", link_id) from None
            revoked = (
                await conn.execute(
                    update(public_links)
                    .where(public_links.c.id == link.id)
                    .values(revoked_at=func.coalesce(public_links.c.revoked_at, func.now()))
                    .returning(public_links)
                )
            ).one()
        return link_from_row(revoked)


__all__ = ["ShareDomain", "link_from_row", "share_from_row", "token_hash"]
