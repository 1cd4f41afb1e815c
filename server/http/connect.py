"""The browser protocols on the HTTP port: the Connect protocol (https://connectrpc.com/docs/protocol)
and gRPC-Web, at `/<package>.<Service>/<Method>` for every rpc of the five services.

Connect unary: `application/proto` or `application/json` (proto3 JSON parsed as the REST face
parses it); errors as Connect's error JSON with the `google.rpc` details the gRPC call carries.
Connect server streaming: `application/connect+proto|json` envelopes, ended by an end-of-stream
message that holds the error. gRPC-Web (`application/grpc-web[+proto]`, `-text`): envelopes and a
trailers frame with grpc-status and grpc-status-details-bin. Deadlines from `Connect-Timeout-Ms`
or `Grpc-Timeout`. A unary call's trailing metadata (a write's `x-tessera-lsn`, for
read-your-writes on any server) travels as each protocol carries trailers: `Trailer-` headers on
Connect, lines of the trailers frame on gRPC-Web; request headers are the call's metadata, so a
caller sends the LSN back as an `X-Tessera-Lsn` header on either.

Each call runs the rpc's behaviour wrapped by the gRPC server's own steps (the same objects the
REST face calls), once: authentication, validation, policy, audit (transport "connect" or
"grpc-web"), correlation id, metrics. Implemented here rather than with the `connectrpc` package
because that library owns the handler (its own generated service classes, context, codecs on
protobuf-py and error type): request bytes it cannot parse would be refused before our pipeline
(no audit, no MALFORMED_REQUEST), and its JSON would not be the REST face's."""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2

from server.api import context as rpc_context
from server.api.interceptors import MalformedRequest
from server.api.status import status_for
from server.db.replica import LSN_METADATA
from server.errors import FieldViolation, InvalidArgument
from server.http import grpcweb
from server.http.bindings import SERVICES
from server.http.body import BodyTooLarge, read_body
from server.http.context import AbortError, HttpContext, peer_of
from server.http.status import http_status, status_message, transport_status
from server.http.transcode import dumps, parse_body, parse_message, to_json

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Headers = list[tuple[bytes, bytes]]

# Connect's code names are gRPC's in lower snake case, except CANCELLED.
CODE_NAMES = {
    code: ("canceled" if code is grpc.StatusCode.CANCELLED else code.name.lower()) for code in grpc.StatusCode
}
_ACCEPT_POST = (
    b"application/proto, application/json, application/connect+proto, application/connect+json, "
    b"application/grpc-web, application/grpc-web+proto, application/grpc-web-text, application/grpc-web-text+proto"
)
_MAX_TIMEOUT_DIGITS = 10
_GZIP_MIN_BYTES = 1024
# What a browser's preflight must allow and what its script may read (added to the HTTP face's CORS).
CONNECT_ALLOW_HEADERS = (
    b"connect-protocol-version, connect-timeout-ms, connect-content-encoding, connect-accept-encoding, "
    b"grpc-timeout, x-grpc-web, x-user-agent"
)
CONNECT_EXPOSE_HEADERS = b"grpc-status, grpc-message, grpc-status-details-bin, trailer-" + LSN_METADATA.encode()


class Request(Protocol):
    """What this face needs of the HTTP request (server/http/app.py's Request)."""

    method: str
    path: str
    headers: dict[str, str]
    raw_headers: list[tuple[bytes, bytes]]
    scope: dict[str, Any]

    def correlation_id(self) -> str: ...

    def cors_headers(self) -> Headers: ...


@dataclass(frozen=True)
class Wire:
    """How one call is carried: protocol, codec, envelopes, base64 text."""

    protocol: str  # "connect" or "grpc-web": also the transport audit records
    json: bool
    enveloped: bool
    text: bool = False

    @property
    def response_type(self) -> bytes:
        if self.protocol == "grpc-web":
            return b"application/grpc-web-text+proto" if self.text else b"application/grpc-web+proto"
        kind = "json" if self.json else "proto"
        return (f"application/connect+{kind}" if self.enveloped else f"application/{kind}").encode()


def wire_of(content_type: str, streaming: bool) -> Wire | None:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/grpc-web", "application/grpc-web+proto"):
        return Wire("grpc-web", json=False, enveloped=True)
    if media in ("application/grpc-web-text", "application/grpc-web-text+proto"):
        return Wire("grpc-web", json=False, enveloped=True, text=True)
    # Connect: unary calls take the bare message, streams the enveloped one; the other is refused.
    if media in ("application/proto", "application/json") and not streaming:
        return Wire("connect", json=media.endswith("json"), enveloped=False)
    if media in ("application/connect+proto", "application/connect+json") and streaming:
        return Wire("connect", json=media.endswith("json"), enveloped=True)
    return None


class Refusal(Exception):
    """Refused by this layer before any rpc: HTTP status, gRPC code, ErrorInfo reason, message."""

    def __init__(
        self, http: int, code: grpc.StatusCode, reason: str, message: str, headers: Headers | None = None
    ) -> None:
        super().__init__(message)
        self.http, self.code, self.reason, self.message = http, code, reason, message
        self.headers = list(headers or [])


class DeadlineContext(HttpContext):
    """HttpContext with the caller's deadline, so time_remaining() answers as on gRPC."""

    __slots__ = ("_deadline",)

    def __init__(self, headers: list[tuple[bytes, bytes]], peer: str, deadline: float | None) -> None:
        super().__init__(headers, peer)
        self._deadline = deadline

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())


def connect_error(status: status_pb2.Status) -> dict[str, Any]:
    """Connect's error JSON: the code's name, the message, and every google.rpc detail as its
    type name and unpadded base64 bytes."""
    code = grpc.StatusCode.UNKNOWN
    for candidate in grpc.StatusCode:
        if candidate.value[0] == status.code:
            code = candidate
    error: dict[str, Any] = {"code": CODE_NAMES[code]}
    if status.message:
        error["message"] = status.message
    if status.details:
        error["details"] = [
            {"type": any_.type_url.rpartition("/")[2], "value": base64.b64encode(any_.value).decode().rstrip("=")}
            for any_ in status.details
        ]
    return error


class ConnectFace:
    """Answers Connect and gRPC-Web calls with the rpcs' pipeline-wrapped behaviours."""

    def __init__(self, calls: Mapping[str, Any], *, max_body_bytes: int) -> None:
        self._calls = calls
        self._max_body = max_body_bytes
        self._methods: dict[str, MethodDescriptor] = {
            f"/{service.full_name}/{method.name}": method for service in SERVICES for method in service.methods
        }

    def serves(self, path: str) -> bool:
        return path in self._methods

    async def handle(self, request: Request, receive: Receive, send: Send) -> None:
        method = self._methods[request.path]
        streaming = bool(method.server_streaming)
        wire = wire_of(request.headers.get("content-type", ""), streaming)
        try:
            if request.method != "POST":
                raise Refusal(
                    405,
                    grpc.StatusCode.UNIMPLEMENTED,
                    "METHOD_NOT_ALLOWED",
                    f"{request.method} is not served at {request.path}; rpcs are POSTed",
                    [(b"allow", b"POST")],
                )
            if wire is None:
                kinds = "application/connect+proto or +json" if streaming else "application/proto or application/json"
                raise Refusal(
                    415,
                    grpc.StatusCode.UNIMPLEMENTED,
                    "UNSUPPORTED_MEDIA_TYPE",
                    f"{request.path} takes {kinds} (Connect), or application/grpc-web[-text][+proto]",
                    [(b"accept-post", _ACCEPT_POST)],
                )
            deadline = self._deadline(request, wire)
            try:
                body = await read_body(request.headers, receive, self._max_body)
            except BodyTooLarge as exc:
                raise Refusal(413, grpc.StatusCode.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE", str(exc)) from None
            message = self._decode(request, wire, method, body)
        except Refusal as refusal:
            await self._refuse(send, request, wire, refusal)
            return
        except InvalidArgument as exc:
            status = status_for(exc, request.correlation_id())
            await self._finish_failed(send, request, wire, _rich(status))
            return
        rpc_context.transport.set(wire.protocol)
        ctx = DeadlineContext(request.raw_headers, peer_of(request.scope), deadline)
        call = self._calls[request.path]
        if streaming:
            await self._stream(send, request, receive, wire, call(message, ctx), deadline)
        else:
            await self._unary(send, request, wire, call(message, ctx), deadline, ctx)

    def _deadline(self, request: Request, wire: Wire) -> float | None:
        now = asyncio.get_running_loop().time()
        if wire.protocol == "connect":
            version = request.headers.get("connect-protocol-version", "1").strip()
            if version != "1":
                raise Refusal(
                    400,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "UNSUPPORTED_PROTOCOL_VERSION",
                    f"connect-protocol-version {version!r}: only 1",
                )
            raw = request.headers.get("connect-timeout-ms", "").strip()
            if not raw:
                return None
            if not raw.isdigit() or len(raw) > _MAX_TIMEOUT_DIGITS:
                raise Refusal(
                    400,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "INVALID_TIMEOUT",
                    f"connect-timeout-ms {raw[:32]!r}: 1-10 digits",
                )
            return now + int(raw) / 1000
        try:
            seconds = grpcweb.parse_grpc_timeout(request.headers.get("grpc-timeout", ""))
        except ValueError as exc:
            raise Refusal(400, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TIMEOUT", str(exc)) from None
        return None if seconds is None else now + seconds

    def _decode(self, request: Request, wire: Wire, method: MethodDescriptor, body: bytes) -> Any:
        """The request message; a MalformedRequest for proto bytes that do not parse (refused by
        the pipeline's validation step, audited, as on gRPC); InvalidArgument for bad JSON (as
        the REST face answers it)."""
        try:
            if wire.text:
                body = grpcweb.decode_text(body)
            if wire.enveloped:
                flags, body = grpcweb.single_message(body)
                encoding_header = "grpc-encoding" if wire.protocol == "grpc-web" else "connect-content-encoding"
                if flags & grpcweb.COMPRESSED_FLAG:
                    body = _decompress(request.headers.get(encoding_header, ""), body, self._max_body)
            else:
                body = _decompress(request.headers.get("content-encoding", ""), body, self._max_body)
        except grpcweb.FramingError as exc:
            raise Refusal(400, grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_ENVELOPE", str(exc)) from None
        request_class = GetMessageClass(method.input_type)
        if wire.json:
            fields = parse_body(body)
            if not isinstance(fields, dict):
                raise InvalidArgument(
                    "invalid request: the body must be a JSON object",
                    violations=[FieldViolation(field="body", description="not a JSON object", reason="MALFORMED_JSON")],
                )
            return parse_message(request_class, fields)
        try:
            return request_class.FromString(body)
        except Exception as exc:  # DecodeError, or the runtime's own complaint about the bytes
            return MalformedRequest(type(exc).__name__, len(body))

    async def _unary(
        self,
        send: Send,
        request: Request,
        wire: Wire,
        pending: Awaitable[Message],
        deadline: float | None,
        ctx: HttpContext,
    ) -> None:
        try:
            async with asyncio.timeout_at(deadline):
                response = await pending
        except AbortError as abort:
            await self._finish_failed(
                send, request, wire, status_message(abort.code, abort.details, abort.trailing_metadata)
            )
            return
        except TimeoutError:
            await self._finish_failed(send, request, wire, _deadline_exceeded())
            return
        payload = self._encode(wire, response)
        trailing = text_metadata(ctx.trailing_metadata())
        extra: Headers = []
        if wire.protocol == "grpc-web":
            payload = self._frame(wire, grpcweb.envelope(payload) + grpcweb.trailers(status_pb2.Status(), trailing))
        else:
            # Connect unary: trailers are headers named `Trailer-<key>`.
            extra = [(f"trailer-{key}".encode("latin-1"), value.encode("latin-1")) for key, value in trailing]
            if len(payload) >= _GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
                # Connect unary compresses the body as HTTP does (browsers ask for gzip on every fetch).
                payload = gzip.compress(payload, compresslevel=5)
                extra += [(b"content-encoding", b"gzip"), (b"vary", b"accept-encoding")]
        await self._start(send, request, 200, wire.response_type, len(payload), extra)
        await send({"type": "http.response.body", "body": payload})

    async def _stream(
        self,
        send: Send,
        request: Request,
        receive: Receive,
        wire: Wire,
        stream: AsyncIterator[Message],
        deadline: float | None,
    ) -> None:
        disconnected = asyncio.ensure_future(_disconnect(receive))
        failure: status_pb2.Status | None = None
        started = False
        try:
            async with asyncio.timeout_at(deadline):
                async for item in stream:
                    if disconnected.done():
                        return
                    if not started:
                        await self._start(send, request, 200, wire.response_type, None)
                        started = True
                    chunk = self._frame(wire, grpcweb.envelope(self._encode(wire, item)))
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except AbortError as abort:
            failure = status_message(abort.code, abort.details, abort.trailing_metadata)
        except TimeoutError:
            failure = _deadline_exceeded()
        finally:
            disconnected.cancel()
            await stream.aclose()  # type: ignore[attr-defined]
        if not started:
            await self._start(send, request, 200, wire.response_type, None)
        await send({"type": "http.response.body", "body": self._end_of_stream(wire, failure)})

    def _end_of_stream(self, wire: Wire, failure: status_pb2.Status | None) -> bytes:
        if wire.protocol == "grpc-web":
            return self._frame(wire, grpcweb.trailers(failure or status_pb2.Status()))
        end: dict[str, Any] = {"error": connect_error(failure)} if failure is not None else {}
        return grpcweb.envelope(dumps(end), flags=0x02)

    def _encode(self, wire: Wire, message: Message) -> bytes:
        return dumps(to_json(message)) if wire.json else message.SerializeToString()

    def _frame(self, wire: Wire, frames: bytes) -> bytes:
        return base64.b64encode(frames) if wire.text else frames

    async def _finish_failed(self, send: Send, request: Request, wire: Wire | None, status: status_pb2.Status) -> None:
        """A call that failed before any message: Connect unary answers the error JSON with the
        code's HTTP status; streams answer 200 and carry the error at their end."""
        if wire is not None and (wire.enveloped or wire.protocol == "grpc-web"):
            await self._start(send, request, 200, wire.response_type, None)
            await send({"type": "http.response.body", "body": self._end_of_stream(wire, status)})
            return
        code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
        body = dumps(connect_error(status))
        await self._start(send, request, http_status(code), b"application/json", len(body))
        await send({"type": "http.response.body", "body": body})

    async def _refuse(self, send: Send, request: Request, wire: Wire | None, refusal: Refusal) -> None:
        status = transport_status(refusal.code, refusal.message, refusal.reason, request.correlation_id())
        if wire is not None and refusal.http == 400:
            await self._finish_failed(send, request, wire, status)
            return
        body = dumps(connect_error(status))
        await self._start(send, request, refusal.http, b"application/json", len(body), refusal.headers)
        await send({"type": "http.response.body", "body": body})

    async def _start(
        self,
        send: Send,
        request: Request,
        status: int,
        content_type: bytes,
        length: int | None,
        extra: Headers | None = None,
    ) -> None:
        headers: Headers = [
            (b"content-type", content_type),
            (b"x-correlation-id", (rpc_context.correlation_id.get() or request.correlation_id()).encode("latin-1")),
            *request.cors_headers(),
            *(extra or []),
        ]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})


def text_metadata(metadata: Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
    """The printable ASCII text entries of a call's metadata (binary `-bin` values and gRPC's own
    reserved `grpc-` keys are not forwarded, nor anything that could break a header line)."""
    return [
        (key, value)
        for key, value in metadata
        if isinstance(value, str)
        and value.isascii()
        and value.isprintable()
        and not key.endswith("-bin")
        and not key.startswith("grpc-")
    ]


def _rich(status: grpc.Status) -> status_pb2.Status:
    return status_message(status.code, status.details, tuple(status.trailing_metadata or ()))


def _deadline_exceeded() -> status_pb2.Status:
    return transport_status(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "the call's deadline passed before it completed",
        "DEADLINE_EXCEEDED",
        rpc_context.correlation_id.get(),
    )


def _decompress(encoding: str, body: bytes, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise Refusal(
            501,
            grpc.StatusCode.UNIMPLEMENTED,
            "UNSUPPORTED_COMPRESSION",
            f"unsupported compression {encoding[:32]!r}: gzip or identity",
        )
    try:
        inflated = zlib.decompressobj(wbits=31).decompress(body, limit + 1)
    except zlib.error as exc:
        raise grpcweb.FramingError(f"the body is not gzip: {exc}") from None
    if len(inflated) > limit:
        raise Refusal(
            413, grpc.StatusCode.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE", f"the decompressed body exceeds {limit} bytes"
        )
    return inflated


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
