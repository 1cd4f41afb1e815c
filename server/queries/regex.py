"""RE2-style patterns for parameter values, matched in time linear in the text's length.

The contract says RE2. Patterns are checked with Python's `re` syntax minus what RE2 lacks
(backreferences, look-around, conditionals, atomic groups, possessive quantifiers) and minus POSIX
classes (`[[:alpha:]]`), which the two engines read differently. Values are matched by a small
Thompson-NFA simulation of the parsed pattern (from `re._parser`, the parser `re` itself uses),
in O(len(text) x states), because Python's backtracking matcher can take minutes on patterns like
`(\\w+\\s?)*$` against a value chosen by whoever runs the query.
"""

from __future__ import annotations

import functools
import importlib
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Final

__all__ = ["MAX_PATTERN_LENGTH", "PatternError", "Regex", "compile_pattern"]

MAX_PATTERN_LENGTH: Final = 512


class PatternError(ValueError):
    """A pattern that cannot be used: a syntax error, a feature RE2 lacks, or too complex."""


_sre: Any = importlib.import_module("re._parser")  # the parser `re` itself uses; no stub ships
_MAXREPEAT: Final[int] = int(_sre.MAXREPEAT)
_MAX_STATES: Final = 2000
_CACHE_LIMIT: Final = 4096
_POSIX_CLASS = re.compile(r"\[:\^?[a-z]+:\]")
_UNSUPPORTED: Final[dict[str, str]] = {
    "GROUPREF": "backreferences",
    "GROUPREF_EXISTS": "conditional groups",
    "ASSERT": "look-ahead and look-behind",
    "ASSERT_NOT": "look-ahead and look-behind",
    "ATOMIC_GROUP": "atomic groups",
    "POSSESSIVE_REPEAT": "possessive quantifiers",
}

_ASSERTIONS = frozenset(
    {"AT_BEGINNING", "AT_BEGINNING_STRING", "AT_END", "AT_END_STRING", "AT_BOUNDARY", "AT_NON_BOUNDARY"}
)
_CHAR, _SPLIT, _ASSERT, _MATCH = 0, 1, 2, 3
_Test = Callable[[str], bool]


def _fold(c: str) -> str:
    lowered = c.lower()
    return lowered if len(lowered) == 1 else c


def _upper(c: str) -> str:
    raised = c.upper()
    return raised if len(raised) == 1 else c


def _fold_ascii(c: str) -> str:
    return c.lower() if c.isascii() else c


def _is_word(c: str, ascii_only: bool) -> bool:
    if ascii_only and not c.isascii():
        return False
    return c.isalnum() or c == "_"


@functools.lru_cache(maxsize=256)
def _compile_cached(pattern: str) -> Regex | str:
    try:
        return Regex(pattern)
    except PatternError as e:
        return str(e)


def compile_pattern(pattern: str) -> Regex:
    """The matcher for `pattern`; raises PatternError (with a reason) when it cannot be used."""
    result = _compile_cached(pattern)
    if isinstance(result, str):
        raise PatternError(result)
    return result


class Regex:
    """A compiled pattern: `fullmatch(text)` in O(len(text) x states)."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise PatternError(f"longer than {MAX_PATTERN_LENGTH} characters")
        if _POSIX_CLASS.search(pattern):
            raise PatternError("POSIX classes like [:alpha:] are not supported: use \\d, \\w, \\s or ranges")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # FutureWarning: a set that RE2 would read differently
                re.compile(pattern)
                parsed = _sre.parse(pattern, 0)
        except re.error as e:
            raise PatternError(f"{e.msg} at position {e.pos}") from None
        except (FutureWarning, DeprecationWarning) as e:
            raise PatternError(str(e)) from None
        except RecursionError:
            raise PatternError("too deeply nested") from None
        self.pattern = pattern
        self._kinds: list[int] = []
        self._tests: list[_Test | None] = []
        self._asserts: list[tuple[str, bool, bool]] = []  # (code, multiline, ascii)
        self._out1: list[int] = []
        self._out2: list[int] = []
        match = self._node(_MATCH)
        self._start = self._sequence(list(parsed), int(parsed.state.flags), match)
        self._match = match
        self._has_asserts = _ASSERT in self._kinds
        self._cache: dict[tuple[object, ...], frozenset[int]] = {}

    # -- building ------------------------------------------------------------------------------

    def _node(
        self,
        kind: int,
        out1: int = -1,
        out2: int = -1,
        test: _Test | None = None,
        at: tuple[str, bool, bool] = ("", False, False),
    ) -> int:
        if len(self._kinds) >= _MAX_STATES:
            raise PatternError("too complex (it expands to too many states)")
        self._kinds.append(kind)
        self._tests.append(test)
        self._asserts.append(at)
        self._out1.append(out1)
        self._out2.append(out2)
        return len(self._kinds) - 1

    def _sequence(self, items: list[Any], flags: int, follow: int) -> int:
        for item in reversed(items):
            follow = self._item(item, flags, follow)
        return follow

    def _item(self, item: Any, flags: int, follow: int) -> int:
        op, av = item
        name = str(op)
        if name in _UNSUPPORTED:
            raise PatternError(f"{_UNSUPPORTED[name]} are not supported (RE2 has none)")
        if name in ("LITERAL", "NOT_LITERAL"):
            test = self._literal(chr(av), flags)
            if name == "NOT_LITERAL":
                positive = test
                test = lambda c: not positive(c)  # noqa: E731
            return self._node(_CHAR, follow, test=test)
        if name == "ANY":
            dotall = bool(flags & re.DOTALL)
            return self._node(_CHAR, follow, test=(lambda c: True) if dotall else (lambda c: c != "\n"))
        if name == "IN":
            return self._node(_CHAR, follow, test=self._charset(list(av), flags))
        if name == "BRANCH":
            starts = [self._sequence(list(alternative), flags, follow) for alternative in av[1]]
            state = starts[-1]
            for start in reversed(starts[:-1]):
                state = self._node(_SPLIT, start, state)
            return state
        if name == "SUBPATTERN":
            _group, add_flags, del_flags, sub = av
            return self._sequence(list(sub), (flags | int(add_flags)) & ~int(del_flags), follow)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, sub = int(av[0]), int(av[1]), list(av[2])
            if high == _MAXREPEAT:
                loop = self._node(_SPLIT, -1, follow)
                self._out1[loop] = self._sequence(sub, flags, loop)
                tail = loop
            else:
                tail = follow
                for _ in range(high - low):
                    tail = self._node(_SPLIT, self._sequence(sub, flags, tail), follow)
            for _ in range(low):
                tail = self._sequence(sub, flags, tail)
            return tail
        if name == "AT":
            if str(av) not in _ASSERTIONS:
                raise PatternError(f"the assertion {str(av).lower()} is not supported")
            return self._node(_ASSERT, follow, at=(str(av), bool(flags & re.MULTILINE), bool(flags & re.ASCII)))
        raise PatternError(f"{name.lower()} is not supported")

    @staticmethod
    def _literal(char: str, flags: int) -> _Test:
        if not flags & re.IGNORECASE:
            return lambda c: c == char
        fold = _fold_ascii if flags & re.ASCII else _fold
        target = fold(char)
        return lambda c: fold(c) == target or fold(_upper(c)) == target

    @staticmethod
    def _charset(items: list[Any], flags: int) -> _Test:
        negate = False
        chars: set[str] = set()
        ranges: list[tuple[str, str]] = []
        categories: list[_Test] = []
        ascii_only = bool(flags & re.ASCII)
        for op, av in items:
            name = str(op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                chars.add(chr(av))
            elif name == "RANGE":
                ranges.append((chr(av[0]), chr(av[1])))
            elif name == "CATEGORY":
                categories.append(_category(str(av), ascii_only))
            else:
                raise PatternError(f"{name.lower()} in a character set is not supported")

        def member(c: str) -> bool:
            return c in chars or any(low <= c <= high for low, high in ranges) or any(t(c) for t in categories)

        if flags & re.IGNORECASE:
            plain = member

            def member(c: str) -> bool:
                return plain(c) or plain(_fold(c)) or plain(_upper(c))

        if negate:
            positive = member
            return lambda c: not positive(c)
        return member

    # -- matching ------------------------------------------------------------------------------

    def fullmatch(self, text: str) -> bool:
        n = len(text)
        current = self._closure((self._start,), text, 0)
        for p, char in enumerate(text):
            if not current:
                return False
            key: tuple[object, ...] = (
                (current, char, text[p + 1] if p + 1 < n else None, p + 2 == n)
                if self._has_asserts
                else (current, char)
            )
            following = self._cache.get(key)
            if following is None:
                moved = [self._out1[s] for s in current if self._kinds[s] == _CHAR and self._call(s, char)]
                following = self._closure(moved, text, p + 1)
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = following
            current = following
        return self._match in current

    def _call(self, state: int, char: str) -> bool:
        test = self._tests[state]
        return test is not None and test(char)

    def _closure(self, states: Sequence[int], text: str, position: int) -> frozenset[int]:
        found: set[int] = set()
        seen: set[int] = set()
        stack = list(states)
        while stack:
            state = stack.pop()
            if state in seen or state < 0:
                continue
            seen.add(state)
            kind = self._kinds[state]
            if kind == _SPLIT:
                stack.append(self._out2[state])
                stack.append(self._out1[state])
            elif kind == _ASSERT:
                if _holds(self._asserts[state], text, position):
                    stack.append(self._out1[state])
            else:
                found.add(state)
        return frozenset(found)


def _category(code: str, ascii_only: bool) -> _Test:
    negative = "_NOT_" in code
    if code.endswith("DIGIT"):
        test: _Test = (lambda c: "0" <= c <= "9") if ascii_only else str.isdecimal
    elif code.endswith("SPACE"):
        test = (lambda c: c in " \t\n\r\f\v") if ascii_only else str.isspace
    elif code.endswith("WORD"):
        test = functools.partial(_word_test, ascii_only=ascii_only)
    else:
        raise PatternError(f"the class {code.lower()} is not supported")
    if negative:
        positive = test
        return lambda c: not positive(c)
    return test


def _word_test(c: str, *, ascii_only: bool) -> bool:
    return _is_word(c, ascii_only)


def _holds(assertion: tuple[str, bool, bool], text: str, p: int) -> bool:
    code, multiline, ascii_only = assertion
    n = len(text)
    if code == "AT_BEGINNING":
        return p == 0 or (multiline and text[p - 1] == "\n")
    if code == "AT_BEGINNING_STRING":
        return p == 0
    if code == "AT_END":
        if multiline:
            return p == n or text[p] == "\n"
        return p == n or (p == n - 1 and text[p] == "\n")
    if code == "AT_END_STRING":
        return p == n
    if code in ("AT_BOUNDARY", "AT_NON_BOUNDARY"):
        if n == 0:
            return False
        before = p > 0 and _is_word(text[p - 1], ascii_only)
        after = p < n and _is_word(text[p], ascii_only)
        return (before != after) == (code == "AT_BOUNDARY")
    return False  # unreachable: _item admits only _ASSERTIONS
