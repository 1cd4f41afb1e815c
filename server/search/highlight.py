"""Snippets: PostgreSQL's ts_headline marks the matched words with two control characters (the
text is cleaned of them first); here the marks become ranges over the plain snippet, so no
client ever renders markup that came from a user's description."""

from __future__ import annotations

from dataclasses import dataclass

START = "\x02"
STOP = "\x03"
# ts_headline's options: a short fragment around the first matches, the marks as delimiters.
HEADLINE_OPTIONS = f"StartSel={START}, StopSel={STOP}, MaxWords=24, MinWords=8, MaxFragments=2, FragmentDelimiter=' … '"


@dataclass(frozen=True)
class Snippet:
    text: str
    # (start, end) in code points of `text`, end exclusive.
    highlights: tuple[tuple[int, int], ...]


def parse(marked: str) -> Snippet:
    """`marked` with START/STOP around matches -> the plain text and the matches' ranges."""
    plain: list[str] = []
    ranges: list[tuple[int, int]] = []
    opened: int | None = None
    size = 0
    for char in marked:
        if char == START:
            opened = size
        elif char == STOP:
            if opened is not None and size > opened:
                ranges.append((opened, size))
            opened = None
        else:
            plain.append(char)
            size += 1
    return Snippet("".join(plain), tuple(ranges))
