"""What one recipient made of one message, and how long to wait before trying again."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DeliveryObserver", "Outcome", "backoff"]

# Hears of every recipient's delivery: (channel "email" or "webhook", delivered, seconds taken
# over all attempts). The worker's metrics (workers/metrics.py) through the composition root.
DeliveryObserver = Callable[[str, bool, float], None]


@dataclass(frozen=True)
class Outcome:
    recipient: str  # "mailto:<address>" or the webhook URL
    delivered: bool
    attempts: int
    error: str = ""


def backoff(base: float, attempt: int) -> float:
    """Exponential with full jitter (attempt 1 is the first retry): retries of many deliveries that
    failed together do not come back together."""
    ceiling = base * 2.0 ** (attempt - 1)
    return random.uniform(ceiling / 2, ceiling)
