"""Turns request metadata into a Principal: a bearer JWT (or, once public links land, a link)."""

from __future__ import annotations

from collections.abc import Mapping

from server.auth.principal import Principal
from server.auth.tokens import TokenVerifier
from server.errors import Unauthenticated


class Authenticator:
    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def authenticate(self, metadata: Mapping[str, str]) -> Principal:
        header = metadata.get("authorization", "")
        if not header:
            raise Unauthenticated("missing bearer token in the authorization metadata", reason="MISSING_CREDENTIALS")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_INVALID")
        return self._verifier.verify(token.strip())
