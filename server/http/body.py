"""Reading a request body whole, within a size limit (the REST face and the browser protocols)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]


class BodyTooLarge(Exception):
    """The body (declared or received) exceeds the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body exceeds {limit} bytes")


async def read_body(headers: dict[str, str], receive: Receive, limit: int) -> bytes:
    """The whole body; BodyTooLarge as soon as Content-Length or the bytes received pass `limit`."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            break
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not event.get("more_body"):
            break
    return b"".join(chunks)
