"""gRPC status -> HTTP status and a `google.rpc.Status` JSON body with the same details."""

from __future__ import annotations

import math
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from server.errors import DOMAIN

# The canonical mapping (google/rpc/code.proto; grpc-gateway's HTTPStatusFromCode).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

_DETAILS_KEY = "grpc-status-details-bin"


def status_message(code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, Any], ...]) -> status_pb2.Status:
    """The rich status the pipeline attached (as gRPC sends it in grpc-status-details-bin), or
    a bare one from code and message."""
    for key, value in trailing:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return status_pb2.Status(code=code.value[0], message=details)


def transport_status(code: grpc.StatusCode, message: str, reason: str, correlation_id: str) -> status_pb2.Status:
    """A status for refusals made by the HTTP layer itself (unknown route, wrong media type...)."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata={"correlation_id": correlation_id})
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return status


def retry_after_headers(status: status_pb2.Status) -> list[tuple[bytes, bytes]]:
    """`Retry-After` (whole seconds, at least 1: what HTTP can say) from the status's RetryInfo."""
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            seconds = max(1, math.ceil(info.retry_delay.ToNanoseconds() / 1e9))
            return [(b"retry-after", str(seconds).encode())]
    return []


def status_json(status: status_pb2.Status) -> dict[str, Any]:
    return json_format.MessageToDict(status, always_print_fields_with_no_presence=True)


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS.get(code, 500)
