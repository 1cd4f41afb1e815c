"""One audit event as the writer buffers it (a row of `audit_log`).

Events carry what callers sent (ids, method names, correlation ids), so `storable()` makes every
value one PostgreSQL will take before the event is buffered: no NUL in text or JSON, no lone
surrogate, no NaN or infinity in JSON, text cut to a bounded length. A refused request is still
recorded, with its values shown escaped rather than lost.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["MAX_TEXT", "AuditEvent", "storable_text"]

MAX_TEXT = 512  # an id, a method, a correlation id: anything longer was not sent in good faith
_TEXT_FIELDS = ("actor", "method", "facility_id", "resource_type", "resource_id", "correlation_id")


def storable_text(value: str, limit: int = MAX_TEXT) -> str:
    """`value` as text PostgreSQL stores unchanged: NUL shown as `\\u0000`, lone surrogates
    as U+FFFD, at most `limit` characters (a cut is marked with an ellipsis)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value if len(value) <= limit else value[: limit - 1] + "\u2026"


def _storable_json(value: Any, depth: int = 0) -> Any:
    if depth > 16:
        return "..."
    if isinstance(value, str):
        return storable_text(value, 4096)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {storable_text(str(k), 256): _storable_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable_json(v, depth + 1) for v in value]
    return storable_text(str(value), 4096)


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    method: str
    outcome: int
    facility_id: str = ""
    resource_type: str = ""
    resource_id: str = ""
    resource_version: int | None = None
    row_count: int | None = None
    phi_unmasked: bool = False
    correlation_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # When it happened: taken when the event is made (the call ends), not when the buffer is
    # written, so events flushed together keep their own times and order.
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def storable(self) -> AuditEvent:
        """This event with every value made storable (see the module's docstring)."""
        changes: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            text = storable_text(value if isinstance(value, str) else str(value))
            if text is not value:
                changes[name] = text
        details = _storable_json(self.details)
        if details != self.details:
            changes["details"] = details
        return dataclasses.replace(self, **changes) if changes else self

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor,
            "method": self.method,
            "outcome": int(self.outcome),
            "facility_id": self.facility_id,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "resource_version": self.resource_version,
            "row_count": self.row_count,
            "phi_unmasked": self.phi_unmasked,
            "correlation_id": self.correlation_id,
            "details": self.details,
        }
