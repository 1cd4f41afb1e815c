"""Server-streaming rpcs over HTTP: watches as Server-Sent Events (the revision as the event id,
resumable with Last-Event-ID) or grpc-gateway's newline-delimited JSON, and DownloadExport as
the file itself (Content-Type, Content-Length, Content-Disposition, an ETag from the sha256,
single byte ranges answered 206)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from google.protobuf.message import Message

from server.api import context as rpc_context
from server.errors import FieldViolation, InvalidArgument
from server.http.bindings import Binding
from server.http.context import AbortError, HttpContext
from server.http.status import status_json, status_message
from server.http.transcode import dumps, to_json

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class Request(Protocol):
    """What a stream needs of the HTTP request (server/http/app.py's Request)."""

    headers: dict[str, str]

    def cors_headers(self) -> list[tuple[bytes, bytes]]: ...


class HttpApi(Protocol):
    """What a stream needs of the API (server/http/app.py's HttpApi), without importing it."""

    async def send_status(
        self, send: Send, request: Any, code: Any, details: str, trailing: tuple[tuple[str, Any], ...]
    ) -> None: ...


_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
_INT64_MAX = 2**63 - 1


def _revision_or_offset(digits: str, header: str) -> int:
    """A header's number where the request takes an int64 (a revision, a byte offset)."""
    value = int(digits)
    if value > _INT64_MAX:
        raise InvalidArgument(
            f"invalid request: {header}: {digits[:32]} is past the largest revision or offset",
            violations=[FieldViolation(field=header, description="past the int64 range", reason="OUT_OF_RANGE")],
        )
    return value


async def respond(
    api: HttpApi,
    binding: Binding,
    call: Any,
    message: Message,
    ctx: HttpContext,
    request: Request,
    receive: Receive,
    send: Send,
) -> None:
    if binding.method.name == "DownloadExport":
        await _download(api, call, message, ctx, request, receive, send)
        return
    sse = "text/event-stream" in request.headers.get("accept", "")
    last = request.headers.get("last-event-id", "").strip()
    if last.isdigit() and hasattr(message, "since_revision") and not message.since_revision:
        message.since_revision = _revision_or_offset(last, "Last-Event-ID")
    stream: AsyncIterator[Message] = call(message, ctx)
    first = await _first(api, stream, request, send)
    if first is None:
        return
    headers = [
        (b"content-type", b"text/event-stream" if sse else b"application/json"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        (b"x-correlation-id", rpc_context.correlation_id.get().encode("latin-1")),
        *request.cors_headers(),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    encode = _sse_event if sse else _ndjson_line
    disconnected = asyncio.ensure_future(_disconnect(receive))
    try:
        if first is not _EMPTY:
            await send({"type": "http.response.body", "body": encode(first), "more_body": True})
        try:
            async for item in stream:
                if disconnected.done():
                    break
                await send({"type": "http.response.body", "body": encode(item), "more_body": True})
        except AbortError as abort:
            failure = status_json(status_message(abort.code, abort.details, abort.trailing_metadata))
            body = (b"event: error\ndata: " + dumps(failure) + b"\n\n") if sse else dumps({"error": failure}) + b"\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        disconnected.cancel()
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]


_EMPTY: Any = object()


async def _first(api: HttpApi, stream: AsyncIterator[Message], request: Request, send: Send) -> Any:
    """The first item, or None when the call failed before any (answered as a status)."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return _EMPTY
    except AbortError as abort:
        await api.send_status(send, request, abort.code, abort.details, abort.trailing_metadata)
        return None


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _sse_event(item: Message) -> bytes:
    kind = item.WhichOneof("event") or "message"
    payload = to_json(item)
    lines = [f"event: {kind}"]
    if kind != "heartbeat":
        revision = getattr(getattr(item, kind), "revision", 0)
        lines.append(f"id: {revision}")
    return ("\n".join(lines) + "\ndata: ").encode() + dumps(payload) + b"\n\n"


def _ndjson_line(item: Message) -> bytes:
    return dumps({"result": to_json(item)}) + b"\n"


async def _download(
    api: HttpApi, call: Any, message: Message, ctx: HttpContext, request: Request, receive: Receive, send: Send
) -> None:
    wanted = _RANGE.fullmatch(request.headers.get("range", "").strip())
    if_range = request.headers.get("if-range", "").strip()
    start = int(wanted.group(1)) if wanted else 0
    end = int(wanted.group(2)) if wanted and wanted.group(2) else None
    if wanted:
        message.offset = _revision_or_offset(str(message.offset + start), "Range")  # type: ignore[attr-defined]
    stream: AsyncIterator[Message] = call(message, ctx)
    first = await _first(api, stream, request, send)
    if first is None:
        return
    try:
        if first is _EMPTY or first.WhichOneof("part") != "file":
            await api.send_status(send, request, *_no_file())
            return
        file = first.file
        etag = f'"{file.sha256}"'
        if wanted and if_range and if_range != etag:
            # The file changed since the client's first part: restart from the beginning.
            await stream.aclose()  # type: ignore[attr-defined]
            message.offset -= start  # type: ignore[attr-defined]
            wanted, start, end = None, 0, None
            stream = call(message, ctx)
            first = await _first(api, stream, request, send)
            if first is None:
                return
        begin = message.offset  # type: ignore[attr-defined]
        last = file.size_bytes - 1 if end is None else min(end, file.size_bytes - 1)
        length = max(0, last - begin + 1)
        headers = [
            (b"content-type", (file.content_type or "application/octet-stream").encode()),
            (b"content-length", str(length).encode()),
            (b"etag", etag.encode()),
            (b"accept-ranges", b"bytes"),
            (b"content-disposition", f'attachment; filename="{_safe_filename(file.filename)}"'.encode()),
            (b"x-correlation-id", rpc_context.correlation_id.get().encode("latin-1")),
            *request.cors_headers(),
        ]
        if wanted:
            headers.append((b"content-range", f"bytes {begin}-{last}/{file.size_bytes}".encode()))
        await send({"type": "http.response.start", "status": 206 if wanted else 200, "headers": headers})
        remaining = length
        async for item in stream:
            if remaining <= 0:
                break
            chunk = item.chunk[:remaining]  # type: ignore[attr-defined]
            remaining -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except AbortError:
        # Headers are gone: end the body early; the length and ETag let the client notice.
        await send({"type": "http.response.body", "body": b""})
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]


def _no_file() -> tuple[Any, str, tuple[tuple[str, Any], ...]]:
    import grpc

    return grpc.StatusCode.INTERNAL, "the download began without the file's metadata", ()


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name or "export")[:200]
