"""Reading gRPC errors the way a client does: status code plus google.rpc details."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class RpcFailure:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # (field, description): BadRequest field violations, PreconditionFailure subjects.
    violations: list[tuple[str, str]] = field(default_factory=list)

    @property
    def fields(self) -> list[str]:
        return [f for f, _ in self.violations]


def failure_of(error: grpc.RpcError) -> RpcFailure:
    call: Any = error
    failure = RpcFailure(code=call.code(), message=call.details() or "")
    status = rpc_status.from_call(call)
    if status is None:
        return failure
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            failure.reason, failure.domain, failure.metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            failure.violations += [(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            # A failed precondition names what it is about as the violation's subject.
            precondition = error_details_pb2.PreconditionFailure()
            detail.Unpack(precondition)
            failure.violations += [(v.subject, v.description) for v in precondition.violations]
    return failure


def expect_failure(
    call: Callable[[], Any], code: grpc.StatusCode, *, field: str | None = None, reason: str | None = None
) -> RpcFailure:
    """Runs `call`, which must fail with `code` (and, when given, name `field` among its
    violations and carry `reason`). Every error must carry an ErrorInfo."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    failure = failure_of(caught.value)
    assert failure.code == code, f"expected {code}, got {failure.code}: {failure.message}"
    assert failure.reason, f"no ErrorInfo on {failure.code}: {failure.message}"
    assert failure.domain == "tessera.dashboard.v1"
    if field is not None:
        assert field in failure.fields, f"expected a violation of {field!r}, got {failure.violations}"
    if reason is not None:
        assert failure.reason == reason, f"expected reason {reason}, got {failure.reason}"
    return failure
