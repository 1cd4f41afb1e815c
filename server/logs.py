"""Structured logging: JSON lines in production, readable text in development. Extra fields
(method, code, correlation_id, ...) travel as `extra=` and land as JSON keys.

Every line written while a correlation id is set (an rpc, or a Celery task the rpc enqueued)
carries it as `correlation_id`, and the trace id of the active span when tracing is on: the
filter reads them from context variables, so no call site has to pass them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import random
import sys
import time
from collections import deque
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

__all__ = [
    "CORRELATION_HEADER",
    "AccessLines",
    "ContextFilter",
    "JsonFormatter",
    "TextFormatter",
    "access_lines",
    "configure",
    "correlated",
    "correlation_id",
    "current_correlation_id",
    "new_correlation_id",
    "stamp_headers",
]

# The Celery message header carrying the id from the process that enqueues to the task (not
# `correlation_id`: Celery uses that name for the task id on AMQP).
CORRELATION_HEADER = "tessera_correlation_id"

# The id every log line of an rpc or a task carries: set by the access-log interceptor (rpcs) and
# the task_prerun signal (tasks), for everything they call.
correlation_id: ContextVar[str] = ContextVar("tessera_correlation_id", default="")

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def current_correlation_id() -> str:
    return correlation_id.get()


def new_correlation_id() -> str:
    """32 random hex digits, as uuid4().hex looks, for a call that brought none. Not a secret,
    only unique: from the process's own generator (seeded from the OS, and again in a forked
    child) rather than a getrandom call and a UUID object for every rpc (uuid4 was about 4% of
    the event loop's busy time on cache hits). A caller may send its own id anyway."""
    return f"{random.getrandbits(128):032x}"


@contextlib.contextmanager
def correlated(value: str) -> Iterator[None]:
    """Sets the correlation id for the block (restoring the previous one after it)."""
    token = correlation_id.set(value)
    try:
        yield
    finally:
        correlation_id.reset(token)


def stamp_headers(headers: MutableMapping[str, Any] | None) -> None:
    """Adds the current correlation id to outgoing task headers (kept when already there)."""
    value = correlation_id.get()
    if value and headers is not None:
        headers.setdefault(CORRELATION_HEADER, value)


class ContextFilter(logging.Filter):
    """Adds `correlation_id` and (when a span is recording) `trace_id` to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        value = correlation_id.get()
        if value and not getattr(record, "correlation_id", None):
            record.correlation_id = value
        span = trace.get_current_span().get_span_context()
        if span.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = format(span.trace_id, "032x")
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        clock = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        base = f"{clock} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = _extras(record)
        if record.name.startswith("celery."):
            fields.pop("data", None)  # Celery's task context, already in its message
        extras = " ".join(f"{k}={v}" for k, v in fields.items())
        text = f"{base} {extras}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Handler(logging.StreamHandler[TextIO]):
    """The root handler `configure` installs. The rpc lines waiting in `access_lines` are
    written before any other record, so the stream keeps this process's order."""

    def __init__(self, stream: TextIO, json_lines: bool) -> None:
        super().__init__(stream)
        self.json_lines = json_lines

    def emit(self, record: logging.LogRecord) -> None:
        access_lines.write_pending()
        super().emit(record)


# One write() carries at most this many bytes of whole lines: up to PIPE_BUF, the processes of
# one server sharing a pipe never interleave inside a line.
_CHUNK_BYTES = 4096
_BATCH = 64  # lines written together at most
_MAX_WAIT = 0.2  # seconds a line waits for its batch at most

# (time, method, code, duration in ms, correlation id, trace id or "")
_Entry = tuple[float, str, str, float, str, str]


class AccessLines:
    """The one line per rpc (logger `tessera.rpc`, INFO) at a fraction of a log record's cost.

    Through `logging`, each line cost a LogRecord, the filters, a formatting and a write() with
    its flush: about 14% of the event loop's busy time on cache hits (0.05 ms a hit). Here a call
    appends a tuple, and lines are formatted and written in batches of up to `_BATCH`, at most
    `_MAX_WAIT` seconds later (before any other record of the process, and at exit). The lines
    are the ones `logging` would write, in the format the handler uses. When the root logger
    is not `configure`'s alone (a host application's handlers, a test's capture), the line
    goes through `logging` as any other."""

    def __init__(self) -> None:
        self._log = logging.getLogger("tessera.rpc")
        self._pending: deque[_Entry] = deque()
        self._handler: _Handler | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # the loop of the timer set
        self._second = (-1, False)  # the second (and format) `_stamp` shows
        self._stamp = ""

    def install(self, handler: _Handler | None) -> None:
        """Writes what waits, then writes through `handler` (None: through `logging`)."""
        self.write_pending()
        self._handler = handler

    def record(self, method: str, code: str, seconds: float, cid: str) -> None:
        log = self._log
        if not log.isEnabledFor(logging.INFO):
            return
        handler = self._handler
        root = logging.root.handlers
        ours = handler is not None and len(root) == 1 and root[0] is handler
        if not ours or log.handlers or log.filters or not log.propagate:
            extra = {"method": method, "code": code, "duration_ms": round(seconds * 1000, 2), "correlation_id": cid}
            log.info("rpc", extra=extra)
            return
        span = trace.get_current_span().get_span_context()
        now = time.time()
        pending = self._pending
        pending.append(
            (now, method, code, round(seconds * 1000, 2), cid, format(span.trace_id, "032x") if span.is_valid else "")
        )
        if len(pending) >= _BATCH:
            self.write_pending()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write_pending()  # no loop to come back later
            return
        # A timer per loop at a time (the loop that set the last one may have stopped since).
        if self._timer_loop is not loop:
            self._timer_loop = loop
            loop.call_later(_MAX_WAIT, self._on_timer)

    def _on_timer(self) -> None:
        self._timer_loop = None
        self.write_pending()

    def write_pending(self) -> None:
        """Writes every waiting line now."""
        handler = self._handler
        if handler is None or not self._pending:
            return
        handler.acquire()
        try:
            chunk: list[str] = []
            size = 0
            while self._pending:
                line = self._line(self._pending.popleft(), handler.json_lines)
                length = len(line) if line.isascii() else len(line.encode())
                if chunk and size + length > _CHUNK_BYTES:
                    self._write(handler, chunk)
                    chunk, size = [], 0
                chunk.append(line)
                size += length
            if chunk:
                self._write(handler, chunk)
        finally:
            handler.release()

    @staticmethod
    def _write(handler: _Handler, lines: list[str]) -> None:
        try:
            handler.stream.write("".join(lines))
            handler.flush()
        except (OSError, ValueError):
            pass  # stderr closed or gone: as logging's own lines, nowhere left to say so

    def _line(self, entry: _Entry, json_lines: bool) -> str:
        at, method, code, ms, cid, trace_id = entry
        second = int(at)
        if (second, json_lines) != self._second:
            self._second = (second, json_lines)
            self._stamp = (
                datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
                if json_lines
                else time.strftime("%H:%M:%S", time.localtime(second))
            )
        if json_lines:
            fields: dict[str, Any] = {
                "time": f"{self._stamp}.{int((at - second) * 1000):03d}+00:00",
                "level": "INFO",
                "logger": "tessera.rpc",
                "message": "rpc",
                "method": method,
                "code": code,
                "duration_ms": ms,
                "correlation_id": cid,
            }
            if trace_id:
                fields["trace_id"] = trace_id
            return json.dumps(fields) + "\n"
        line = f"{self._stamp} INFO    tessera.rpc: rpc method={method} code={code} duration_ms={ms}"
        line += f" correlation_id={cid}"
        return f"{line} trace_id={trace_id}\n" if trace_id else line + "\n"


access_lines = AccessLines()
atexit.register(access_lines.write_pending)


def configure(level: str | int = "INFO", json_lines: bool = False, stream: TextIO | None = None) -> None:
    """One handler on the root logger (stderr unless `stream`), replacing any others."""
    handler = _Handler(stream or sys.stderr, json_lines)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    access_lines.install(handler)
