"""PHI masking of a built DataFrame, for principals without the PHI permission.

Strategies (`query_pb2.MaskingStrategy`), applied to each value's canonical text
(`frame.column_texts`: the string itself, or PostgreSQL's text form of a number, date, ...):

    REDACT (and UNSPECIFIED, and any unknown value)   '[REDACTED]'
    HASH      the first 16 hex digits of HMAC-SHA256(key, text): equal values stay equal across
              rows, columns, queries and requests (as long as the key does), nothing is revealed
    PARTIAL   all but the last four characters replaced by '*' ('123-45-6789' -> '*******6789');
              values of four characters or fewer are starred entirely

A masked column becomes STRING (its `db_type` still names the database type), has `masked` set,
and keeps its NULLs: a NULL row stays NULL. Columns are matched by name exactly and, so that a
declaration's capitalisation can never let PHI through, also case-insensitively (masking too
much is the safe mistake); when two declarations fold to the same name the stricter one wins.
A column masked already is left alone (masking is idempotent).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping

from dashboard.v1 import common_pb2, query_pb2
from dashboard.v1.common_pb2 import DataFrame
from server.queries.frame import column_texts

__all__ = [
    "MASKING_LEVEL_MASKED",
    "MASKING_LEVEL_NONE",
    "REDACTED",
    "hash_text",
    "mask_frame",
    "partial_text",
    "unmasked_phi_columns",
]

# What a cache key records about masking: the frame as the database produced it, or masked.
MASKING_LEVEL_NONE = 0
MASKING_LEVEL_MASKED = 1

REDACTED = "[REDACTED]"
HASH_LENGTH = 16
PARTIAL_VISIBLE = 4

# Stricter first: redaction reveals nothing, a hash reveals equality, partial reveals four characters.
_STRICTNESS: dict[int, int] = {
    query_pb2.MASKING_STRATEGY_REDACT: 3,
    query_pb2.MASKING_STRATEGY_HASH: 2,
    query_pb2.MASKING_STRATEGY_PARTIAL: 1,
}


def hash_text(text: str, key: bytes) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:HASH_LENGTH]


def partial_text(text: str) -> str:
    if len(text) <= PARTIAL_VISIBLE:
        return "*" * len(text)
    return "*" * (len(text) - PARTIAL_VISIBLE) + text[-PARTIAL_VISIBLE:]


def _normalised(strategy: int) -> int:
    # UNSPECIFIED is REDACT by contract; an unknown number is treated as the strictest too.
    return strategy if strategy in _STRICTNESS else query_pb2.MASKING_STRATEGY_REDACT


def _stricter(a: int, b: int) -> int:
    return a if _STRICTNESS[a] >= _STRICTNESS[b] else b


def _masker(strategy: int, key: bytes) -> Callable[[str], str]:
    if strategy == query_pb2.MASKING_STRATEGY_HASH:
        if not key:
            raise ValueError("HASH masking needs a non-empty key")
        memo: dict[str, str] = {}

        def hashed(text: str) -> str:
            found = memo.get(text)
            if found is None:
                found = memo[text] = hash_text(text, key)
            return found

        return hashed
    if strategy == query_pb2.MASKING_STRATEGY_PARTIAL:
        return partial_text
    return lambda _text: REDACTED


def _mask_column(column: common_pb2.Column, strategy: int, key: bytes) -> None:
    mask = _masker(strategy, key)
    texts = column_texts(column)
    nulls = list(column.nulls)
    if nulls:
        masked = ["" if null else mask(text) for null, text in zip(nulls, texts, strict=True)]
    else:
        masked = [mask(text) for text in texts]
    column.ClearField("values")
    column.string_values.SetInParent()
    column.string_values.values.extend(masked)
    column.type = common_pb2.COLUMN_TYPE_STRING
    column.masked = True


def _unmasked_sensitive(frame: DataFrame, sensitive: Mapping[str, int]) -> list[tuple[int, int]]:
    """(index, strategy) of every column of `frame` a declaration names and that is not masked yet."""
    exact = {name: _normalised(strategy) for name, strategy in sensitive.items()}
    folded: dict[str, int] = {}
    for name, strategy in exact.items():
        previous = folded.get(name.casefold())
        folded[name.casefold()] = strategy if previous is None else _stricter(previous, strategy)
    targets: list[tuple[int, int]] = []
    for index, column in enumerate(frame.columns):
        if column.masked:
            continue
        chosen = exact.get(column.name, folded.get(column.name.casefold()))
        if chosen is not None:
            targets.append((index, chosen))
    return targets


def unmasked_phi_columns(frame: DataFrame, sensitive: Iterable[str]) -> list[str]:
    """The columns of `frame` that are PHI by the declarations `sensitive` (matched exactly as
    `mask_frame` matches them) and are not masked: what the audit log calls PHI unmasked."""
    found = _unmasked_sensitive(frame, dict.fromkeys(sensitive, query_pb2.MASKING_STRATEGY_REDACT))
    return [frame.columns[index].name for index, _ in found]


def mask_frame(frame: DataFrame, sensitive: Mapping[str, int], key: bytes) -> DataFrame:
    """`frame` with the sensitive columns (name -> MaskingStrategy) masked. Returns `frame` itself
    when nothing in it is sensitive; otherwise a copy (the input is never changed) in which every
    column that is not sensitive is equal to the input's. Names that match no column are ignored
    (declarations are validated where queries are saved). HASH needs a non-empty `key`."""
    targets = _unmasked_sensitive(frame, sensitive)
    if not targets:
        return frame
    masked = DataFrame()
    masked.CopyFrom(frame)
    for index, strategy in targets:
        _mask_column(masked.columns[index], strategy, key)
    return masked
