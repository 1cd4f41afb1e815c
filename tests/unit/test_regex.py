"""The pattern matcher (server/queries/regex.py): full matches as Python's `re` finds them over a
corpus, in time linear in the text's length, and patterns it refuses with the reason. How
parameters use it: test_parameters.py."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.queries.regex import MAX_PATTERN_LENGTH, PatternError, compile_pattern

PATTERN_CORPUS = [
    r"abc",
    r"a|bc|d",
    r"(ab|a)*b",
    r"^\d{3}-\d{2,4}$",
    r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}",
    r"(?i)hello\s+world",
    r"[^a-c]*",
    r"\w+",
    r"\bfoo\b.*",
    r"(?s)a.b",
    r"a.b",
    r"x*$",
    r"(?m)^a$\n^b$",
    r"(a*)*b",
    r"(\w+\s?)*$",
    r"a{2}b{0,3}c{1,}",
    r"(?:ab){0,2}?c",
    r"[\d\s]+",
    r"[^\W_]+",
    r"(?a)\w+",
    r"(?i)[k-m]+",
    r"",
    r"\Ba",
    r"(?i:a)b",
    r"\$\d+(\.\d\d)?",
    r"[-a]+",
]


@settings(max_examples=300, deadline=None)
@given(pattern=st.sampled_from(PATTERN_CORPUS), text=st.text(alphabet="abcdxyzkKA_- \n.@%+0129é$", max_size=12))
def test_patterns_match_like_python_fullmatch(pattern: str, text: str) -> None:
    assert compile_pattern(pattern).fullmatch(text) is (re.fullmatch(pattern, text) is not None)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(", "missing \\)"),
        ("(a)\\1", "backreferences"),
        ("(?<=a)b", "look-ahead and look-behind"),
        ("(?>a)", "atomic groups"),
        ("a++", "possessive quantifiers"),
        ("[[:digit:]]", "POSIX classes"),
        ("[[a]", "nested set"),
        ("a{100000}", "too complex"),
    ],
)
def test_unusable_patterns_say_why(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError, match=reason):
        compile_pattern(pattern)


@pytest.mark.parametrize("pattern", [r"(\w+\s?)*$", r"(a+)+b", r"(a|aa)*c", r"\d*\d*\d*x", r".*a.*b.*c.*d"])
def test_catastrophic_patterns_match_in_linear_time(pattern: str) -> None:
    regex = compile_pattern(pattern)
    short, long = "a b !", "a b " * 25_000 + "!"  # 100 kB: Python's re would take minutes on some
    started = time.perf_counter()
    assert regex.fullmatch(long) is (re.fullmatch(pattern, short) is not None)
    assert time.perf_counter() - started < 5.0


def test_a_pattern_longer_than_the_limit_is_refused() -> None:
    compile_pattern("a" * MAX_PATTERN_LENGTH)
    with pytest.raises(PatternError, match="longer than"):
        compile_pattern("a" * (MAX_PATTERN_LENGTH + 1))
