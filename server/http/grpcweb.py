"""gRPC-Web's framing (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md): length-prefixed
messages as in gRPC, the status as a last frame (flag 0x80) holding HTTP/1-style trailer lines,
and `-text` bodies in base64. The Connect protocol's streams use the same envelope."""

from __future__ import annotations

import base64
import binascii
import re
import struct
import urllib.parse
from collections.abc import Sequence

import grpc
from google.rpc import status_pb2

TRAILERS_FLAG = 0x80
COMPRESSED_FLAG = 0x01

_GRPC_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
_UNIT_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# gRPC percent-encodes grpc-message outside printable ASCII, and '%' itself.
_MESSAGE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


class FramingError(ValueError):
    """A body that is not one well-formed envelope."""


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def single_message(body: bytes) -> tuple[int, bytes]:
    """The one enveloped message of a unary or server-streaming request: (flags, payload)."""
    if len(body) < 5:
        raise FramingError(f"the body holds {len(body)} bytes, less than an envelope's 5-byte prefix")
    flags, length = struct.unpack(">BI", body[:5])
    if len(body) != 5 + length:
        raise FramingError(f"the envelope announces {length} bytes but {len(body) - 5} follow")
    if flags & ~COMPRESSED_FLAG:
        raise FramingError(f"unexpected envelope flags {flags:#04x} on a request message")
    return flags, body[5:]


def decode_text(body: bytes) -> bytes:
    """A grpc-web-text body: base64, possibly several padded chunks one after the other."""
    data = b"".join(body.split())
    out: list[bytes] = []
    begin = 0
    try:
        for padding in re.finditer(rb"=+", data):  # a padded chunk ends at its last '='
            out.append(base64.b64decode(data[begin : padding.end()], validate=True))
            begin = padding.end()
        if begin < len(data):
            rest = data[begin:]
            out.append(base64.b64decode(rest + b"=" * (-len(rest) % 4), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise FramingError(f"the grpc-web-text body is not base64: {exc}") from None
    return b"".join(out)


def parse_grpc_timeout(value: str) -> float | None:
    """`Grpc-Timeout: 1500m` -> 1.5 seconds; None when absent; ValueError when malformed."""
    if not value:
        return None
    found = _GRPC_TIMEOUT.fullmatch(value.strip())
    if found is None:
        raise ValueError(f"grpc-timeout {value[:32]!r} is not 1-8 digits and a unit (H, M, S, m, u, n)")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def trailers(status: status_pb2.Status, metadata: Sequence[tuple[str, str]] = ()) -> bytes:
    """The final frame: grpc-status, grpc-message and, for a failure, the rich status (the same
    google.rpc details a gRPC call carries in its trailers); then the call's own trailing
    metadata (text values), one line each as gRPC sends them in HTTP/2 trailers."""
    lines = [f"grpc-status: {status.code}"]
    if status.message:
        lines.append(f"grpc-message: {urllib.parse.quote(status.message, safe=_MESSAGE_SAFE)}")
    if status.code != grpc.StatusCode.OK.value[0]:
        details = base64.b64encode(status.SerializeToString()).decode().rstrip("=")
        lines.append(f"grpc-status-details-bin: {details}")
    lines += [f"{key}: {value}" for key, value in metadata]
    return envelope(("\r\n".join(lines) + "\r\n").encode(), TRAILERS_FLAG)
