"""Webhook signatures of report deliveries, and what a receiver runs to check them:
`Tessera-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
`<t>.<body>` with the subscription's secret (the scheme Stripe and others use). The timestamp is
signed too, so a receiver can refuse replays older than its tolerance."""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "Tessera-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header's value for `body` at `timestamp` (now by default)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={_mac(secret, stamp, body)}"


def verify(
    secret: str, body: bytes, header: str, *, now: float | None = None, tolerance: int = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """What a receiver runs: the signature matches and its timestamp is within `tolerance`."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), _mac(secret, stamp, body))
