"""The rpc access lines (server/logs.py AccessLines): the lines `logging` would write, written
in batches of whole lines, before any other record of the process and within a moment."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from server.logs import ContextFilter, JsonFormatter, TextFormatter, access_lines, configure

METHOD = "/dashboard.v1.WidgetService/GetWidgetData"


class Writes(io.StringIO):
    """A stream that keeps each write() apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    access_lines.install(None)
    root.handlers[:] = handlers
    root.setLevel(level)


def _through_logging(json_lines: bool, cid: str) -> str:
    """The line `logging` writes for the same call: a second root handler sends every rpc line
    through `logging`, to both."""
    other = io.StringIO()
    handler = logging.StreamHandler(other)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter())
    logging.getLogger().addHandler(handler)
    try:
        access_lines.record(METHOD, "NOT_FOUND", 0.00123, cid)
    finally:
        logging.getLogger().removeHandler(handler)
    return other.getvalue()


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_an_access_line_is_the_line_logging_writes(json_lines: bool) -> None:
    stream = Writes()
    configure("INFO", json_lines, stream=stream)
    access_lines.record(METHOD, "NOT_FOUND", 0.00123, "c0ffee")
    access_lines.write_pending()
    ours = stream.getvalue()
    theirs = _through_logging(json_lines, "c0ffee")
    assert ours.count("\n") == theirs.count("\n") == 1
    if json_lines:
        mine, other = json.loads(ours), json.loads(theirs)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", mine.pop("time"))
        other.pop("time")
        assert (
            mine
            == other
            == {
                "level": "INFO",
                "logger": "tessera.rpc",
                "message": "rpc",
                "method": METHOD,
                "code": "NOT_FOUND",
                "duration_ms": 1.23,
                "correlation_id": "c0ffee",
            }
        )
    else:
        assert re.fullmatch(r"\d\d:\d\d:\d\d", ours[:8])
        assert ours[8:] == theirs[8:]
        expected = f" INFO    tessera.rpc: rpc method={METHOD} code=NOT_FOUND duration_ms=1.23 correlation_id=c0ffee\n"
        assert ours[8:] == expected


def test_lines_wait_for_their_batch_but_never_behind_another_record_nor_long() -> None:
    stream = Writes()
    configure("INFO", stream=stream)

    async def scenario() -> None:
        for i in range(3):
            access_lines.record(METHOD, "OK", 0.0004, f"call-{i}")
        assert stream.getvalue() == "", "a batch is written together"
        logging.getLogger("tessera.server").warning("something else")
        lines = stream.getvalue().splitlines()
        assert [line.split("correlation_id=")[-1] for line in lines[:3]] == ["call-0", "call-1", "call-2"]
        assert lines[3].endswith("tessera.server: something else"), "written before the next record"
        access_lines.record(METHOD, "OK", 0.0004, "alone")
        await asyncio.sleep(0.5)
        assert stream.getvalue().splitlines()[-1].endswith("correlation_id=alone"), "written within a moment"

    asyncio.run(scenario())


def test_every_write_is_whole_lines_within_a_pipe_buffer_and_none_is_lost() -> None:
    stream = Writes()
    configure("INFO", json_lines=True, stream=stream)
    cids = [f"{i:04d}-" + "é" * 59 for i in range(500)]  # two bytes a character: bytes are counted

    async def scenario() -> None:
        for cid in cids:
            access_lines.record(METHOD, "OK", 0.0004, cid)

    asyncio.run(scenario())
    access_lines.write_pending()
    assert len(stream.writes) > 500 // 64, "written in batches"
    for text in stream.writes:
        assert text.endswith("\n") and len(text.encode()) <= 4096, len(text.encode())
    assert [json.loads(line)["correlation_id"] for line in stream.getvalue().splitlines()] == cids


def test_below_info_nothing_is_kept_or_written() -> None:
    stream = Writes()
    configure("WARNING", stream=stream)
    access_lines.record(METHOD, "OK", 0.0004, "quiet")
    access_lines.write_pending()
    assert stream.getvalue() == ""
