"""The ASGI application: routes a request to its binding, transcodes it, runs the rpc's
pipeline (the gRPC server's own steps) and writes proto3 JSON, a status body, an event stream
or the export file."""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import grpc
from google.protobuf.message import Message

from server import tracing
from server.api import context as rpc_context
from server.api.interceptors import MalformedRequest
from server.db.replica import LSN_METADATA
from server.errors import FieldViolation, InvalidArgument, ResourceExhausted, TesseraError
from server.http import streams
from server.http.bindings import Binding, Router
from server.http.body import BodyTooLarge, read_body
from server.http.connect import CONNECT_ALLOW_HEADERS, CONNECT_EXPOSE_HEADERS, ConnectFace
from server.http.context import AbortError, HttpContext, peer_of
from server.http.docs import StaticRoutes
from server.http.refusals import UnroutedRefusals
from server.http.status import http_status, retry_after_headers, status_json, status_message, transport_status
from server.http.transcode import build_request, dumps, to_json
from server.logs import new_correlation_id

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_GZIP_MIN_BYTES = 1024
_CORS_ALLOW_HEADERS = (
    b"authorization, content-type, x-tessera-link, x-tessera-lsn, x-correlation-id, last-event-id, range, if-range, "
    + CONNECT_ALLOW_HEADERS
)
_CORS_EXPOSE_HEADERS = (
    b"x-correlation-id, etag, content-disposition, content-length, content-range, accept-ranges, retry-after, "
    b"x-tessera-lsn, " + CONNECT_EXPOSE_HEADERS
)


class Refused(Exception):
    """A request the HTTP layer itself refuses (before any rpc): status, gRPC code, reason."""

    def __init__(
        self, http: int, code: grpc.StatusCode, reason: str, message: str, headers: Headers | None = None
    ) -> None:
        super().__init__(message)
        self.http, self.code, self.reason, self.message, self.headers = http, code, reason, message, list(headers or [])


class Request:
    """What the handlers need of one HTTP request."""

    __slots__ = ("cors", "headers", "method", "path", "query", "raw_headers", "scope")

    def __init__(self, scope: Scope, cors_origins: frozenset[str]) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        raw_path = scope.get("raw_path")
        self.path: str = raw_path.decode("latin-1").split("?", 1)[0] if raw_path else scope["path"]
        self.query: str = scope.get("query_string", b"").decode("latin-1")
        self.raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.raw_headers}
        origin = self.headers.get("origin", "")
        self.cors = origin if origin and (origin in cors_origins or "*" in cors_origins) else ""

    def correlation_id(self) -> str:
        return self.headers.get("x-correlation-id", "")[:64] or new_correlation_id()

    def cors_headers(self) -> Headers:
        if not self.cors:
            return []
        return [
            (b"access-control-allow-origin", self.cors.encode("latin-1")),
            (b"access-control-expose-headers", _CORS_EXPOSE_HEADERS),
            (b"vary", b"origin"),
        ]


class HttpApi:
    def __init__(
        self,
        router: Router,
        calls: Mapping[str, Any],
        *,
        max_body_bytes: int,
        cors_origins: frozenset[str] = frozenset(),
        static: StaticRoutes | None = None,
        unrouted: UnroutedRefusals | None = None,
    ) -> None:
        self._unrouted = unrouted
        self._router = router
        self._calls = calls
        self._max_body = max_body_bytes
        self._cors = cors_origins
        self._static = static or StaticRoutes()
        # The Connect protocol and gRPC-Web at /<service>/<method>, on the same wrapped calls.
        self._connect = ConnectFace(calls, max_body_bytes=max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, self._cors)
        try:
            await self._dispatch(request, receive, send)
        except Refused as refused:
            # No rpc to refuse it through: audited and counted here.
            cid = request.correlation_id()
            if self._unrouted is not None:
                self._unrouted.record(request.method, request.raw_headers, peer_of(scope), refused.reason, cid)
            status = transport_status(refused.code, refused.message, refused.reason, cid)
            await send_json(send, request, refused.http, status_json(status), refused.headers, correlation_id=cid)

    async def _dispatch(self, request: Request, receive: Receive, send: Send) -> None:
        if request.method == "OPTIONS" and request.headers.get("access-control-request-method"):
            await self._preflight(request, send)
            return
        if request.method in ("GET", "HEAD") and self._static.serves(request.path):
            await self._static.respond(request.path, request.headers, send, request.cors_headers())
            return
        if self._connect.serves(request.path):
            await self._connect.handle(request, receive, send)
            return
        found = self._router.route(request.method, request.path)
        if found is None:
            allowed = self._router.allowed(request.path)
            if allowed:
                raise Refused(
                    405,
                    grpc.StatusCode.UNIMPLEMENTED,
                    "METHOD_NOT_ALLOWED",
                    f"{request.method} is not served at {request.path}; allowed: {', '.join(allowed)}",
                    [(b"allow", ", ".join(allowed).encode())],
                )
            raise Refused(
                404, grpc.StatusCode.NOT_FOUND, "UNKNOWN_ROUTE", f"no operation at {request.method} {request.path}"
            )
        binding, variables = found
        tracing.name_http_span(binding.verb, binding.template, binding.rpc)
        ctx = HttpContext(request.raw_headers, peer_of(request.scope))
        rpc_context.transport.set("http")
        call = self._calls[binding.rpc]
        try:
            body = await self._read_body(request, receive, binding)
            message = build_request(binding, variables, request.query, body)
            if binding.streaming:
                await streams.respond(self, binding, call, message, ctx, request, receive, send)
                return
        except Refused as refused:
            await self._refuse(binding, call, _as_error(refused), refused.http, ctx, request, send)
            return
        except InvalidArgument as exc:
            await self._refuse(binding, call, exc, None, ctx, request, send)
            return
        try:
            response = await call(message, ctx)
        except AbortError as abort:
            await self.send_status(send, request, abort.code, abort.details, abort.trailing_metadata)
            return
        await send_json(send, request, 200, to_json(cast(Message, response)), lsn_header(ctx))

    async def _refuse(
        self,
        binding: Binding,
        call: Any,
        error: TesseraError,
        http: int | None,
        ctx: HttpContext,
        request: Request,
        send: Send,
    ) -> None:
        """Refuses a request to a known rpc through that rpc's pipeline, as gRPC refuses bytes that
        do not parse: the access log, metrics, audit and authentication see it like any bad input
        (an anonymous caller is told UNAUTHENTICATED first, as over gRPC)."""
        stand_in = MalformedRequest(error.reason, 0, refusal=error)
        try:
            if binding.streaming:
                await anext(call(stand_in, ctx))
            else:
                await call(stand_in, ctx)
        except AbortError as abort:
            own = http is not None and abort.code.name == error.code_name
            status = status_message(abort.code, abort.details, abort.trailing_metadata)
            await send_json(
                send,
                request,
                http if own and http else http_status(abort.code),
                status_json(status),
                retry_after_headers(status),
            )
            return
        raise AssertionError(f"the pipeline of {binding.rpc} let a refused request through")

    async def send_status(
        self, send: Send, request: Request, code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, Any], ...]
    ) -> None:
        status = status_message(code, details, trailing)
        await send_json(send, request, http_status(code), status_json(status), retry_after_headers(status))

    async def _read_body(self, request: Request, receive: Receive, binding: Binding) -> bytes | None:
        try:
            body = await read_body(request.headers, receive, self._max_body)
        except BodyTooLarge as exc:
            raise Refused(413, grpc.StatusCode.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE", str(exc)) from None
        if not body.strip():
            return None
        if not binding.body:
            raise Refused(
                400,
                grpc.StatusCode.INVALID_ARGUMENT,
                "UNEXPECTED_BODY",
                f"{binding.verb} {binding.template} takes no body",
            )
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
            raise Refused(
                415,
                grpc.StatusCode.INVALID_ARGUMENT,
                "UNSUPPORTED_MEDIA_TYPE",
                f"the body must be application/json, not {media or 'unlabelled'}",
            )
        return body

    async def _preflight(self, request: Request, send: Send) -> None:
        if not request.cors:
            raise Refused(403, grpc.StatusCode.PERMISSION_DENIED, "ORIGIN_NOT_ALLOWED", "this origin is not allowed")
        allowed = self._router.allowed(request.path) or (["POST"] if self._connect.serves(request.path) else ["GET"])
        headers = [
            *request.cors_headers(),
            (b"access-control-allow-methods", ", ".join(allowed).encode()),
            (b"access-control-allow-headers", _CORS_ALLOW_HEADERS),
            (b"access-control-max-age", b"600"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


_FIELD_OF = {"UNSUPPORTED_MEDIA_TYPE": "Content-Type"}


def _as_error(refused: Refused) -> TesseraError:
    if refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhausted(refused.message, reason=refused.reason)
    return InvalidArgument(
        refused.message,
        reason=refused.reason,
        violations=[
            FieldViolation(
                field=_FIELD_OF.get(refused.reason, "body"), description=refused.message, reason=refused.reason
            )
        ],
    )


def lsn_header(ctx: HttpContext) -> Headers:
    """A write's primary LSN (the gRPC trailer `x-tessera-lsn`) as the `X-Tessera-Lsn` header: a
    caller sends it back on later requests (any server) to read its own write (server/db/replica.py)."""
    return [
        (b"x-tessera-lsn", str(value).encode("latin-1"))
        for key, value in ctx.trailing_metadata()
        if key == LSN_METADATA
    ]


async def send_json(
    send: Send, request: Request, status: int, value: Any, extra: Headers | None = None, *, correlation_id: str = ""
) -> None:
    body = dumps(value)
    cid = correlation_id or rpc_context.correlation_id.get() or request.correlation_id()
    headers: Headers = [
        (b"content-type", b"application/json"),
        (b"x-correlation-id", cid.encode("latin-1")),
        *request.cors_headers(),
        *(extra or []),
    ]
    if len(body) >= _GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        headers += [(b"content-encoding", b"gzip"), (b"vary", b"accept-encoding")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body if request.method != "HEAD" else b""})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["HttpApi", "Refused", "Request", "send_json"]
