"""Who the client is: a bearer token (static, or a function that returns a current one), or a
public link token.

The server reads `authorization: Bearer <jwt>` and, when that is absent, `x-tessera-link:
<token>` (see server/auth/authenticator.py). A function token is called before every attempt,
so it should cache; `CachedToken` does, refreshing shortly before the JWT's `exp` and after the
server answered UNAUTHENTICATED (the client then invalidates it and tries once more).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import jwt

__all__ = ["LINK_METADATA_KEY", "CachedToken", "CallAuth", "TokenSource"]

LINK_METADATA_KEY = "x-tessera-link"
CORRELATION_METADATA_KEY = "x-correlation-id"

TokenSource = str | Callable[[], str]


@runtime_checkable
class Invalidatable(Protocol):
    def invalidate(self) -> None: ...


class CachedToken:
    """Calls `fetch` for a token and reuses it until `leeway` seconds before its `exp` claim
    (read without verifying the signature: the server verifies; the client only needs to know
    when to ask again). Tokens without `exp` are reused until `invalidate()`. Thread-safe."""

    def __init__(self, fetch: Callable[[], str], *, leeway: float = 30.0, clock: Callable[[], float] = time.time):
        self._fetch = fetch
        self._leeway = leeway
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._refresh_at = 0.0
        self.fetches = 0

    def __call__(self) -> str:
        with self._lock:
            if not self._token or self._clock() >= self._refresh_at:
                token = self._fetch()
                if not token:
                    raise ValueError("the token function returned an empty token")
                self.fetches += 1
                self._token = token
                self._refresh_at = self._expiry(token) - self._leeway
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = ""

    @staticmethod
    def _expiry(token: str) -> float:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return float("inf")  # opaque token: keep it until the server refuses it
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else float("inf")


class CallAuth:
    """The metadata every call carries."""

    def __init__(self, token: TokenSource | None = None, link_token: str | None = None, correlation_id: str = ""):
        if token is not None and link_token is not None:
            raise ValueError("give either token or link_token, not both: the server reads the bearer token first")
        if isinstance(token, str) and not token.strip():
            raise ValueError("token is empty")
        if isinstance(token, str) and token.lower().startswith("bearer "):
            token = token[7:]
        self._token = token
        self._link_token = link_token
        self._correlation_id = correlation_id

    @property
    def refreshable(self) -> bool:
        return callable(self._token)

    def refresh(self) -> None:
        """After UNAUTHENTICATED: make the token function fetch a new token on its next call."""
        if isinstance(self._token, Invalidatable):
            self._token.invalidate()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        pairs: list[tuple[str, str]] = []
        if self._token is not None:
            token = self._token if isinstance(self._token, str) else self._token()
            pairs.append(("authorization", f"Bearer {token}"))
        elif self._link_token is not None:
            pairs.append((LINK_METADATA_KEY, self._link_token))
        if self._correlation_id:
            pairs.append((CORRELATION_METADATA_KEY, self._correlation_id))
        return tuple(pairs)
