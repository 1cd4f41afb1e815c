"""Domain errors. The domain raises these; server/api/status.py turns them into canonical gRPC
statuses with google.rpc details. The domain never imports grpc."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DOMAIN = "tessera.dashboard.v1"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: a dotted path ("dashboard.title") and why."""

    field: str
    description: str
    reason: str = ""


class TesseraError(Exception):
    """Base of every expected error. `reason` is a stable UPPER_SNAKE_CASE code."""

    code_name = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(TesseraError):
    code_name = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        reason: str = "INVALID_ARGUMENT",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = list(violations)

    @classmethod
    def field(cls, path: str, description: str, reason: str = "INVALID_FIELD") -> InvalidArgument:
        return cls(f"{path}: {description}", violations=[FieldViolation(path, description, reason)], reason=reason)


class NotFound(TesseraError):
    """Also what a caller gets for what exists but they may not see."""

    code_name = "NOT_FOUND"

    def __init__(self, resource_type: str, resource_id: str) -> None:
        super().__init__(
            f"{resource_type} {resource_id!r} not found",
            reason=f"{resource_type.upper()}_NOT_FOUND",
            metadata={"resource_type": resource_type, "resource_id": resource_id},
        )
        self.resource_type = resource_type
        self.resource_id = resource_id


class PermissionDenied(TesseraError):
    code_name = "PERMISSION_DENIED"

    def __init__(self, message: str, *, reason: str = "PERMISSION_DENIED", permission: str = "") -> None:
        super().__init__(message, reason=reason, metadata={"permission": permission} if permission else None)


class Unauthenticated(TesseraError):
    code_name = "UNAUTHENTICATED"

    def __init__(self, message: str, *, reason: str = "UNAUTHENTICATED") -> None:
        super().__init__(message, reason=reason)


class Aborted(TesseraError):
    """A concurrency conflict: stale etag, lost race. Retry after re-reading."""

    code_name = "ABORTED"

    def __init__(
        self, message: str, *, reason: str = "ETAG_MISMATCH", metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)


class FailedPrecondition(TesseraError):
    code_name = "FAILED_PRECONDITION"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        violations: Sequence[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = list(violations)


class AlreadyExists(TesseraError):
    code_name = "ALREADY_EXISTS"


class ResourceExhausted(TesseraError):
    """A limit was reached. `retry_after`: seconds the caller should wait (sent as RetryInfo)."""

    code_name = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after


class Unavailable(TesseraError):
    """A dependency is down; the caller may retry."""

    code_name = "UNAVAILABLE"


class DataLoss(TesseraError):
    """Stored data is corrupt or was altered; it is refused, never served."""

    code_name = "DATA_LOSS"


class DeadlineExceeded(TesseraError):
    code_name = "DEADLINE_EXCEEDED"


class Unimplemented(TesseraError):
    code_name = "UNIMPLEMENTED"


@dataclass
class ViolationCollector:
    """Gathers every problem of a request so the caller sees all of them at once."""

    violations: list[FieldViolation] = field(default_factory=list)

    def add(self, path: str, description: str, reason: str = "INVALID_FIELD") -> None:
        self.violations.append(FieldViolation(path, description, reason))

    def raise_if_any(self, message: str = "the request has invalid fields") -> None:
        if self.violations:
            first = self.violations[0]
            summary = f"{first.field}: {first.description}"
            if len(self.violations) > 1:
                summary += f" (and {len(self.violations) - 1} more)"
            raise InvalidArgument(f"{message}: {summary}", violations=self.violations)
