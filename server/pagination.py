"""Opaque page tokens for keyset pagination.

A token carries the sort key of the last row and a fingerprint of the filters it was made
for; reusing it with other filters is refused (INVALID_ARGUMENT), as AIP-158 asks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, UnaryExpression, tuple_

from server.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int, default: int = DEFAULT_PAGE_SIZE) -> int:
    return min(requested or default, MAX_PAGE_SIZE)


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cursor:
    key: Any
    id: str


def encode(cursor: Cursor, filters: str) -> str:
    raw = json.dumps({"k": cursor.key, "i": cursor.id, "f": filters}, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def decode(token: str, filters: str) -> Cursor | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        cursor = Cursor(key=data["k"], id=str(data["i"]))
        matches = data["f"] == filters
        if _holds_nul(cursor.key) or "\x00" in cursor.id:
            # A forged token: PostgreSQL refuses NUL in text, so it must never reach a statement.
            raise ValueError("a NUL in the page token")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument.field("page_token", "not a page token of this list", reason="INVALID_PAGE_TOKEN") from exc
    if not matches:
        raise InvalidArgument.field(
            "page_token", "the page token was made for other filters or ordering", reason="PAGE_TOKEN_MISMATCH"
        )
    return cursor


# --- newest first: (created_at DESC, id DESC), the order of every history-like list ------------


def newest_first(table: Table) -> tuple[UnaryExpression[Any], UnaryExpression[Any]]:
    return table.c.created_at.desc(), table.c.id.desc()


def older_than(table: Table, cursor: Cursor) -> ColumnElement[bool]:
    """The rows after `cursor` in `newest_first` order."""
    return tuple_(table.c.created_at, table.c.id) < tuple_(
        datetime.fromisoformat(str(cursor.key)), uuid.UUID(cursor.id)
    )


def next_token(rows: Sequence[Any], size: int, filters: str) -> str:
    """The token of the page after `rows[:size]` (`rows` read with limit size + 1): empty when
    there is none."""
    if len(rows) <= size:
        return ""
    last = rows[size - 1]
    return encode(Cursor(last.created_at.isoformat(), str(last.id)), filters)
