"""The due-widget sweep (beat, every minute): drains what is due instead of claiming a fixed batch.

It claims a chunk of due widgets (longest overdue first), hands the chunk to the broker as one
task, and goes on while the materialize queue has room; when `max_waiting` tasks already wait,
it holds off until workers take some (back-pressure: widgets are claimed only as fast as workers
absorb them, so a claimed widget is refreshed soon after, and nothing piles up in the broker).
It stops when nothing is due or when its budget (shorter than the beat period) is spent: what is
still due then is the next tick's, longest overdue first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.db.engine import Database
from server.materialization.schedule import claim_due_widgets

__all__ = ["SweepLimits", "SweepResult", "sweep_due_widgets"]


@dataclass(frozen=True)
class SweepLimits:
    chunk: int  # widgets per task
    max_waiting: int  # tasks allowed to wait in the queue before the sweep holds off
    budget_seconds: float  # a sweep claims nothing after this (the beat period minus a margin)
    poll_seconds: float = 0.2  # how often a held-off sweep looks at the queue again


@dataclass(frozen=True)
class SweepResult:
    claimed: int
    tasks: int
    held_off_seconds: float  # time spent waiting for room in the queue
    drained: bool  # nothing was due any more when the sweep ended


async def sweep_due_widgets(
    db: Database,
    dispatch: Callable[[list[str]], None],
    waiting: Callable[[], Awaitable[int]],
    limits: SweepLimits,
) -> SweepResult:
    """`dispatch` hands a chunk of widget ids to the broker; `waiting` says how many tasks wait
    in the materialize queue."""
    started = time.monotonic()
    claimed = tasks = 0
    held_off = 0.0
    # Tasks the queue can still take: asked of the broker only when used up, so a sweep of many
    # chunks asks it once per `max_waiting` chunks.
    room = 0
    while time.monotonic() - started < limits.budget_seconds:
        if room <= 0:
            room = limits.max_waiting - await waiting()
            if room <= 0:
                await asyncio.sleep(limits.poll_seconds)
                held_off += limits.poll_seconds
                continue
        ids = await claim_due_widgets(db, limits.chunk)
        if not ids:
            return SweepResult(claimed, tasks, held_off, drained=True)
        dispatch(ids)
        claimed += len(ids)
        tasks += 1
        room -= 1
    return SweepResult(claimed, tasks, held_off, drained=False)
