"""When to try a failed call again, and after how long.

Whether a retry is safe depends on the rpc, not on the error alone (`Idempotency`, declared per
rpc in `tessera_client.rpcs`):

    SAFE        reads (Get, List, GetWidgetData, RunQuery, Watch, Download): no side effects.
    KEYED       creates carrying a `request_id`: the client fills one in per logical call and
                sends the same one on every attempt, so the server returns the first result.
    IDEMPOTENT  writes whose repetition changes nothing (share upsert, revoke, cancel, refresh).
    UNSAFE      updates, deletes, publish, restore, public-link creation: a repeat after an
                unseen success would write again (or fail on its own etag), so these are never
                retried on an ordinary error; the caller decides.

A refusal is the exception: RESOURCE_EXHAUSTED with reason SERVER_OVERLOADED (load shedding) or
RATE_LIMITED (a per-principal limit) is answered by the server before any handler runs, so the
call did nothing and is retried whatever its idempotency (streams too, when refused before their
first message), never sooner than the RetryInfo delay: the advice plus a jittered backoff above
it, so refused callers do not all come back at the same moment.

Retryable codes are UNAVAILABLE (a dependency or the connection is down), RESOURCE_EXHAUSTED
(busy) and ABORTED, the last one only when it is not a stale etag (reason ETAG_MISMATCH), which
no retry of the same request can fix. The delay is exponential with full jitter (a uniformly
random delay up to the exponential cap), never shorter than the server's RetryInfo advice.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from tessera_client.errors import ApiError

__all__ = ["DEFAULT_RETRY", "NO_RETRY", "REFUSAL_REASONS", "Idempotency", "RetryPolicy", "is_refusal"]


class Idempotency(enum.Enum):
    SAFE = "safe"
    KEYED = "keyed"
    IDEMPOTENT = "idempotent"
    UNSAFE = "unsafe"


RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED})
# ABORTED with this reason means the request's etag is stale: the same request fails again.
NOT_RETRYABLE_REASONS = frozenset({"ETAG_MISMATCH"})
# RESOURCE_EXHAUSTED with these reasons is refused before any work (server/api/shedding.py,
# rate_limit.py): nothing happened, so even an UNSAFE rpc may be sent again.
REFUSAL_REASONS = frozenset({"SERVER_OVERLOADED", "RATE_LIMITED"})


def is_refusal(error: ApiError) -> bool:
    """Whether the server refused the call before doing anything (overload or rate limit)."""
    return error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and error.reason in REFUSAL_REASONS


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` counts the first try; delays grow `initial_backoff * multiplier**n` up to
    `max_backoff`, each drawn uniformly from [0, cap] (full jitter)."""

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    retryable_codes: frozenset[grpc.StatusCode] = RETRYABLE_CODES
    # Also retry UNSAFE rpcs (only for callers who know their writes are harmless to repeat).
    retry_unsafe: bool = False
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("initial_backoff and max_backoff must not be negative")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be at least 1, got {self.multiplier}")

    def cap(self, retry: int) -> float:
        """The longest delay before retry number `retry` (1 for the first retry)."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))

    def backoff(self, retry: int) -> float:
        return self.random() * self.cap(retry)

    def retryable(self, error: ApiError, idempotency: Idempotency) -> bool:
        if error.code() not in self.retryable_codes:
            return False
        if is_refusal(error):
            return True
        if idempotency is Idempotency.UNSAFE and not self.retry_unsafe:
            return False
        return not (error.code() is grpc.StatusCode.ABORTED and error.reason in NOT_RETRYABLE_REASONS)

    def delay(self, retry: int, error: ApiError) -> float:
        """Seconds to wait before retry number `retry` after `error`: the backoff, never shorter
        than the server's RetryInfo; after a refusal the advice plus the backoff's jitter, so
        the callers it refused together are spread out after it, never ahead of it."""
        delay = self.backoff(retry)
        advised = error.retry_delay
        if advised is None:
            return delay
        return advised + delay if is_refusal(error) else max(delay, advised)

    def delay_before_retry(self, attempt: int, error: ApiError, idempotency: Idempotency) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when the error is final."""
        if attempt >= self.max_attempts or not self.retryable(error, idempotency):
            return None
        return self.delay(attempt, error)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)
