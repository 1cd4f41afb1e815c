"""Structured logging: JSON lines in production, readable text in development. Extra fields
(method, code, correlation_id, ...) travel as `extra=` and land as JSON keys.

Every line written while a correlation id is set (an rpc, or a Celery task the rpc enqueued)
carries it as `correlation_id`, and the trace id of the active span when tracing is on: the
filter reads them from context variables, so no call site has to pass them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

__all__ = [
    "CORRELATION_HEADER",
    "ContextFilter",
    "JsonFormatter",
    "TextFormatter",
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


def configure(level: str | int = "INFO", json_lines: bool = False, stream: TextIO | None = None) -> None:
    """One handler on the root logger (stderr unless `stream`), replacing any others."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
