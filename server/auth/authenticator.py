"""Turns request metadata into a Principal: a bearer JWT, or a public link token."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from sqlalchemy import func, select

from server.auth.principal import Principal, Role
from server.auth.tokens import TokenVerifier
from server.db.engine import Database
from server.db.schema import public_links
from server.errors import Unauthenticated

LINK_HEADER = "x-tessera-link"
MAX_LINK_TOKEN = 256


class Authenticator:
    def __init__(self, verifier: TokenVerifier, db: Database | None = None) -> None:
        self._verifier = verifier
        self._db = db

    async def authenticate(self, metadata: Mapping[str, str]) -> Principal:
        header = metadata.get("authorization", "")
        if not header:
            link_token = metadata.get(LINK_HEADER, "").strip()
            if link_token:
                return await self._link_principal(link_token)
            raise Unauthenticated("missing bearer token in the authorization metadata", reason="MISSING_CREDENTIALS")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_INVALID")
        return self._verifier.verify(token.strip())

    async def _link_principal(self, token: str) -> Principal:
        """A public link reads one dashboard's published version and nothing else. Unknown,
        expired and revoked links get the same answer, so a token reveals nothing."""
        invalid = Unauthenticated("the public link is invalid, expired or revoked", reason="LINK_INVALID")
        if self._db is None or len(token) > MAX_LINK_TOKEN:
            raise invalid
        digest = hashlib.sha256(token.encode()).digest()
        async with self._db.read() as conn:
            link = (
                await conn.execute(
                    select(public_links.c.id, public_links.c.dashboard_id, public_links.c.facility_id).where(
                        public_links.c.token_hash == digest,
                        public_links.c.revoked_at.is_(None),
                        public_links.c.expire_at > func.now(),
                    )
                )
            ).first()
        if link is None:
            raise invalid
        return Principal(
            subject=f"link:{link.id}",
            role=Role.VIEWER,
            facilities=frozenset({link.facility_id}),
            link_id=str(link.id),
            link_dashboard_id=str(link.dashboard_id),
        )
