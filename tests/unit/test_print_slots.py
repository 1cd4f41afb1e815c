"""Print slots: at most N holders at once, across processes, and a killed holder's slot is free
again at once (the kernel drops its flock)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from server.config import Settings
from server.exports.slots import PrintSlots, default_slots

HOLDER = """
import fcntl, os, sys, time
for i in range(2):
    fd = os.open(os.path.join(sys.argv[1], f"slot-{i}"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("held", flush=True)
time.sleep(600)
"""


def test_no_more_holders_than_slots(tmp_path: Path) -> None:
    slots = PrintSlots(2, tmp_path)

    async def scenario() -> list[str]:
        order: list[str] = []
        release = asyncio.Event()
        both_in = asyncio.Event()

        async def holder(name: str) -> None:
            async with slots.hold():
                order.append(f"{name} in")
                if len(order) == 2:
                    both_in.set()
                await release.wait()
                order.append(f"{name} out")

        first = [asyncio.create_task(holder(n)) for n in ("a", "b")]
        await both_in.wait()
        assert slots._try() is None  # both taken
        third = asyncio.create_task(holder("c"))
        release.set()
        await asyncio.gather(*first, third)
        return order

    order = asyncio.run(scenario())
    assert order.index("c in") > min(order.index("a out"), order.index("b out"))


def test_a_killed_holder_frees_its_slot_at_once(tmp_path: Path) -> None:
    slots = PrintSlots(2, tmp_path)
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"held"
        assert slots._try() is None
    finally:
        process.kill()
        process.wait(timeout=10)
    fd = slots._try()
    assert fd is not None


def test_one_slot_per_core_by_default_and_deployments_apart() -> None:
    assert PrintSlots.for_settings(Settings()).count == default_slots() >= 1
    assert PrintSlots.for_settings(Settings(export_print_slots=3)).count == 3
    one = PrintSlots.for_settings(Settings(redis_prefix="a:"))
    other = PrintSlots.for_settings(Settings(redis_prefix="b:"))
    assert one._directory != other._directory
