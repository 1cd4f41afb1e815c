"""A small Connect / gRPC-Web client over httpx, written from the protocols' specifications (not
from the server's code), for the tests: it frames requests and decodes answers, errors included,
back into `google.rpc.Status`."""

from __future__ import annotations

import base64
import json
import struct
import urllib.parse
from typing import Any

import httpx
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2

# Connect's code names (https://connectrpc.com/docs/protocol#error-codes) -> gRPC's numbers.
CONNECT_CODES = {
    "canceled": 1, "unknown": 2, "invalid_argument": 3, "deadline_exceeded": 4, "not_found": 5,
    "already_exists": 6, "permission_denied": 7, "resource_exhausted": 8, "failed_precondition": 9,
    "aborted": 10, "out_of_range": 11, "unimplemented": 12, "internal": 13, "unavailable": 14,
    "data_loss": 15, "unauthenticated": 16,
}  # fmt: skip


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """Every (flags, payload) of an enveloped body; fails on a truncated one."""
    found: list[tuple[int, bytes]] = []
    at = 0
    while at < len(body):
        flags, length = struct.unpack(">BI", body[at : at + 5])
        payload = body[at + 5 : at + 5 + length]
        assert len(payload) == length, "truncated envelope"
        found.append((flags, payload))
        at += 5 + length
    return found


def status_of_error(error: dict[str, Any]) -> status_pb2.Status:
    """Connect's error JSON -> the google.rpc.Status it stands for (details decoded from base64)."""
    status = status_pb2.Status(code=CONNECT_CODES[error["code"]], message=error.get("message", ""))
    for detail in error.get("details", []):
        value = detail["value"]
        status.details.append(
            any_pb2.Any(
                type_url=f"type.googleapis.com/{detail['type']}",
                value=base64.b64decode(value + "=" * (-len(value) % 4)),
            )
        )
    return status


def connect_unary(
    client: httpx.Client, rpc: str, message: Message, response_class: type[Message], *, json_codec: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[int, Message | status_pb2.Status, httpx.Response]:  # fmt: skip
    """(0, response, raw) or (code, status, raw)."""
    from google.protobuf import json_format

    content = json.dumps(json_format.MessageToDict(message)).encode() if json_codec else message.SerializeToString()
    kind = "application/json" if json_codec else "application/proto"
    sent = {"content-type": kind, "connect-protocol-version": "1", **(headers or {})}
    raw = client.post(rpc, content=content, headers=sent)
    if raw.status_code != 200:
        assert raw.headers["content-type"] == "application/json", raw.text
        return CONNECT_CODES[raw.json()["code"]], status_of_error(raw.json()), raw
    assert raw.headers["content-type"] == kind
    if json_codec:
        return 0, json_format.Parse(raw.content, response_class()), raw
    return 0, response_class.FromString(raw.content), raw


def connect_stream(
    client: httpx.Client, rpc: str, message: Message, response_class: type[Message], *, json_codec: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[list[Message], status_pb2.Status | None, httpx.Response]:  # fmt: skip
    """The stream's messages and its end-of-stream error (None when it ended well)."""
    from google.protobuf import json_format

    kind = "application/connect+json" if json_codec else "application/connect+proto"
    payload = json.dumps(json_format.MessageToDict(message)).encode() if json_codec else message.SerializeToString()
    sent = {"content-type": kind, "connect-protocol-version": "1", **(headers or {})}
    raw = client.post(rpc, content=envelope(payload), headers=sent)
    assert raw.status_code == 200 and raw.headers["content-type"] == kind, (raw.status_code, raw.text[:300])
    items: list[Message] = []
    found = frames(raw.content)
    assert found and found[-1][0] == 0x02, "a Connect stream ends with its end-of-stream message"
    for flags, data in found[:-1]:
        assert flags == 0
        items.append(json_format.Parse(data, response_class()) if json_codec else response_class.FromString(data))
    end = json.loads(found[-1][1])
    return items, (status_of_error(end["error"]) if "error" in end else None), raw


def grpc_web(
    client: httpx.Client, rpc: str, message: Message, response_class: type[Message], *, text: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[list[Message], status_pb2.Status]:  # fmt: skip
    """The messages and the status from the trailers frame (rich details included)."""
    messages, status, _ = grpc_web_call(client, rpc, message, response_class, text=text, headers=headers)
    return messages, status


def grpc_web_call(
    client: httpx.Client, rpc: str, message: Message, response_class: type[Message], *, text: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[list[Message], status_pb2.Status, dict[str, str]]:  # fmt: skip
    """grpc_web, and every line of the trailers frame (lower-case names)."""
    body = envelope(message.SerializeToString())
    kind = "application/grpc-web-text" if text else "application/grpc-web+proto"
    sent = {"content-type": kind, "x-grpc-web": "1", **(headers or {})}
    raw = client.post(rpc, content=base64.b64encode(body) if text else body, headers=sent)
    assert raw.status_code == 200, raw.text
    content = base64.b64decode(raw.content) if text else raw.content
    found = frames(content)
    assert found and found[-1][0] == 0x80, "gRPC-Web ends with a trailers frame"
    lines = dict(line.split(":", 1) for line in found[-1][1].decode().split("\r\n") if line)
    trailers = {k.strip().lower(): v.strip() for k, v in lines.items()}
    code = int(trailers["grpc-status"])
    if "grpc-status-details-bin" in trailers:
        value = trailers["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))
        assert status.code == code
    else:
        status = status_pb2.Status(code=code, message=urllib.parse.unquote(trailers.get("grpc-message", "")))
    return [response_class.FromString(data) for flags, data in found[:-1]], status, trailers
