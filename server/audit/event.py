"""One audit event as the writer buffers it (a row of `audit_log`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["AuditEvent"]


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
