"""The ServicerContext the pipeline sees on an HTTP call: metadata from the HTTP headers, and an
abort that ends the call with its gRPC status (the HTTP layer turns it into a response)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import grpc


class AbortError(Exception):
    """Ends an HTTP call with a gRPC status. Named like grpc.aio's own, which is how the error
    mapping step recognises an abort that already carries its status."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: Sequence[tuple[str, Any]] = ()) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailing_metadata = tuple(trailing_metadata)


# Not forwarded as metadata: they describe this HTTP hop, not the call.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "content-length", "host", "http2-settings"}
)


class HttpContext:
    """The parts of grpc.aio.ServicerContext the interceptors and servicers use."""

    __slots__ = ("_code", "_details", "_metadata", "_peer", "_trailing")

    def __init__(self, headers: Sequence[tuple[bytes, bytes]], peer: str) -> None:
        self._metadata = tuple(
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in headers
            if name.decode("latin-1").lower() not in _HOP_HEADERS
        )
        self._peer = peer
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing: tuple[tuple[str, Any], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, Any]]) -> None:
        self._trailing = tuple(trailing_metadata)

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._trailing

    def time_remaining(self) -> float | None:
        return None

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return self._code is not None

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[tuple[str, Any]] = ()
    ) -> NoReturn:
        self._code, self._details, self._trailing = code, details, tuple(trailing_metadata)
        raise AbortError(code, details, trailing_metadata)

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata or ())


def peer_of(scope: dict[str, Any]) -> str:
    """The client address in gRPC's peer format (`ipv4:127.0.0.1:5123`), as audit expects it."""
    client = scope.get("client")
    if not client:
        return ""
    host, port = client[0], client[1]
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"
