"""Errors a Tessera call raises, with the `google.rpc` details of its status as Python objects.

Every failed rpc becomes an `ApiError` (a `grpc.RpcError`, so code catching that still works),
of the subclass named after its status code. The server puts an `ErrorInfo` on every error
(`reason`, `domain`, `metadata`, including the `correlation_id` to quote in a bug report) and
`BadRequest` field violations on invalid input:

    try:
        client.dashboards.create(title="")
    except InvalidArgumentError as error:
        error.reason             # "INVALID_ARGUMENT"
        error.field_violations   # [("dashboard.title", "value is required")]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "ApiError",
    "CancelledError",
    "DeadlineExceededError",
    "DownloadVerificationError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "JobFailedError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionViolation",
    "QuotaViolation",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "error_from_rpc",
    "error_from_status",
]

_DETAIL_TYPES: tuple[type[Message], ...] = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest,
    error_details_pb2.RetryInfo,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.QuotaFailure,
    error_details_pb2.ResourceInfo,
    error_details_pb2.RequestInfo,
    error_details_pb2.DebugInfo,
    error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
)


@dataclass(frozen=True)
class PreconditionViolation:
    """One `PreconditionFailure.Violation`: what kind of check failed, on what, and why."""

    type: str
    subject: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    """One `QuotaFailure.Violation`."""

    subject: str
    description: str


class ApiError(grpc.RpcError):
    """A failed rpc: its status code and message plus every `google.rpc` detail it carried.

    Like a failed `grpc.Call` it answers `code()`, `details()` and `trailing_metadata()`, so
    code written for raw grpc errors reads these the same way."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        method: str = "",
        status: status_pb2.Status | None = None,
        trailing_metadata: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self._code: grpc.StatusCode = code if code is not None else self.grpc_code
        self._trailing_metadata = trailing_metadata
        self.message = message
        self.method = method
        self.status = status
        # Every known google.rpc detail, unpacked, in the server's order.
        self.rpc_details: list[Message] = _unpack_details(status.details) if status is not None else []

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self.message

    def trailing_metadata(self) -> tuple[Any, ...]:
        return self._trailing_metadata

    # --- the details, typed ------------------------------------------------------------------

    def detail(self, kind: type[Any]) -> Any:
        """The first detail of this message type, or None."""
        return next((d for d in self.rpc_details if isinstance(d, kind)), None)

    @property
    def error_info(self) -> error_details_pb2.ErrorInfo | None:
        found: error_details_pb2.ErrorInfo | None = self.detail(error_details_pb2.ErrorInfo)
        return found

    @property
    def reason(self) -> str:
        """The stable UPPER_SNAKE_CASE reason of the ErrorInfo ('' when the status had none)."""
        info = self.error_info
        return info.reason if info is not None else ""

    @property
    def domain(self) -> str:
        info = self.error_info
        return info.domain if info is not None else ""

    @property
    def metadata(self) -> dict[str, str]:
        info = self.error_info
        return dict(info.metadata) if info is not None else {}

    @property
    def correlation_id(self) -> str:
        """The server's id for this call's log lines."""
        return self.metadata.get("correlation_id", "")

    @property
    def field_violations(self) -> list[tuple[str, str]]:
        """BadRequest field violations as (field, description), in the server's order."""
        return [
            (v.field, v.description)
            for d in self.rpc_details
            if isinstance(d, error_details_pb2.BadRequest)
            for v in d.field_violations
        ]

    @property
    def fields(self) -> list[str]:
        """The fields named by the field violations."""
        return [f for f, _ in self.field_violations]

    @property
    def retry_delay(self) -> float | None:
        """RetryInfo's delay in seconds: the server's advice on when to try again."""
        info: error_details_pb2.RetryInfo | None = self.detail(error_details_pb2.RetryInfo)
        if info is None or not info.HasField("retry_delay"):
            return None
        return info.retry_delay.seconds + info.retry_delay.nanos / 1e9

    @property
    def precondition_violations(self) -> list[PreconditionViolation]:
        return [
            PreconditionViolation(v.type, v.subject, v.description)
            for d in self.rpc_details
            if isinstance(d, error_details_pb2.PreconditionFailure)
            for v in d.violations
        ]

    @property
    def quota_violations(self) -> list[QuotaViolation]:
        return [
            QuotaViolation(v.subject, v.description)
            for d in self.rpc_details
            if isinstance(d, error_details_pb2.QuotaFailure)
            for v in d.violations
        ]

    @property
    def resource_info(self) -> error_details_pb2.ResourceInfo | None:
        found: error_details_pb2.ResourceInfo | None = self.detail(error_details_pb2.ResourceInfo)
        return found

    @property
    def help_links(self) -> list[tuple[str, str]]:
        """Help links as (description, url)."""
        return [
            (link.description, link.url)
            for d in self.rpc_details
            if isinstance(d, error_details_pb2.Help)
            for link in d.links
        ]

    @property
    def localized_message(self) -> str:
        found: error_details_pb2.LocalizedMessage | None = self.detail(error_details_pb2.LocalizedMessage)
        return found.message if found is not None else ""

    @property
    def debug_info(self) -> error_details_pb2.DebugInfo | None:
        found: error_details_pb2.DebugInfo | None = self.detail(error_details_pb2.DebugInfo)
        return found

    def __str__(self) -> str:
        text = f"{self._code.name}: {self.message}"
        if self.reason:
            text += f" [{self.reason}]"
        if self.field_violations:
            text += "; " + "; ".join(f"{f}: {d}" for f, d in self.field_violations)
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class CancelledError(ApiError):
    grpc_code = grpc.StatusCode.CANCELLED


class InvalidArgumentError(ApiError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(ApiError):
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(ApiError):
    """Also what a resource of another facility answers: its existence is not revealed."""

    grpc_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(ApiError):
    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(ApiError):
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(ApiError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(ApiError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(ApiError):
    """A concurrency conflict, here a stale etag (reason ETAG_MISMATCH): re-read, then retry."""

    grpc_code = grpc.StatusCode.ABORTED


class UnimplementedError(ApiError):
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(ApiError):
    """A server bug; quote `correlation_id` when reporting it."""

    grpc_code = grpc.StatusCode.INTERNAL


class UnavailableError(ApiError):
    grpc_code = grpc.StatusCode.UNAVAILABLE


class UnauthenticatedError(ApiError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    cls.grpc_code: cls
    for cls in (
        CancelledError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        UnauthenticatedError,
    )
}


def error_from_rpc(error: grpc.RpcError, method: str = "") -> ApiError:
    """The ApiError for a failed call (a `grpc.Call` or `grpc.aio.AioRpcError`)."""
    if isinstance(error, ApiError):
        return error
    call: Any = error
    code: grpc.StatusCode = call.code() if callable(getattr(call, "code", None)) else grpc.StatusCode.UNKNOWN
    message: str = (call.details() if callable(getattr(call, "details", None)) else "") or ""
    try:
        status = rpc_status.from_call(call) if callable(getattr(call, "trailing_metadata", None)) else None
    except ValueError:  # a status whose code or message disagrees with the call's: keep what the call said
        status = None
    trailing = tuple(call.trailing_metadata() or ()) if callable(getattr(call, "trailing_metadata", None)) else ()
    cls = _BY_CODE.get(code, ApiError)
    mapped = cls(message, code=code, method=method, status=status, trailing_metadata=trailing)
    mapped.__cause__ = error
    return mapped


def error_from_status(status: status_pb2.Status, method: str = "") -> ApiError:
    """The ApiError for a `google.rpc.Status` (from a REST gateway's error body, a log, ...)."""
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
    return _BY_CODE.get(code, ApiError)(status.message, code=code, method=method, status=status)


def _unpack_details(details: Any) -> list[Message]:
    unpacked: list[Message] = []
    for packed in details:
        assert isinstance(packed, any_pb2.Any)
        for kind in _DETAIL_TYPES:
            if packed.Is(kind.DESCRIPTOR):  # type: ignore[arg-type]  # upb's Descriptor is the same thing
                message = kind()
                packed.Unpack(message)
                unpacked.append(message)
                break
    return unpacked


class JobFailedError(Exception):
    """A job (materialization or export) ended FAILED or CANCELLED. `job` is its final state."""

    def __init__(self, job: Any) -> None:
        self.job = job
        self.reason: str = job.error.reason if job.HasField("error") else ""
        self.message: str = job.error.message if job.HasField("error") else ""
        state = _state_name(job.state)
        super().__init__(f"job {job.id} ended {state}" + (f": {self.reason}: {self.message}" if self.reason else ""))


class DownloadVerificationError(Exception):
    """The bytes received do not match the size or sha256 the server announced; nothing was kept."""

    def __init__(self, export_id: str, what: str, expected: str, actual: str) -> None:
        super().__init__(f"export {export_id}: {what} mismatch: expected {expected}, got {actual}")
        self.export_id = export_id
        self.what = what
        self.expected = expected
        self.actual = actual


def _state_name(state: int) -> str:
    from dashboard.v1 import common_pb2

    name: str = common_pb2.JobState.Name(state)
    return name.removeprefix("JOB_STATE_")
