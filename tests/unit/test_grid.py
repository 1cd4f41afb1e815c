"""Grid geometry, table-driven: overlap is symmetric, edges touch without overlapping, and
positions outside the 12-column grid are reported field by field."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dashboard.v1 import widget_pb2
from server.errors import ViolationCollector
from server.widgets.grid import GRID_COLUMNS, check_position, find_overlap, overlaps


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int
    name: str = ""


BASE = Box(2, 2, 4, 3)  # columns 2-5, rows 2-4

OVERLAP_ROWS = [
    ("identical", BASE, BASE, True),
    ("contained", BASE, Box(3, 3, 1, 1), True),
    ("containing", BASE, Box(0, 0, 12, 10), True),
    ("partial, right and below", BASE, Box(5, 4, 3, 3), True),
    ("partial, left and above", BASE, Box(0, 0, 3, 3), True),
    ("crossing, wide and flat", BASE, Box(0, 3, 12, 1), True),
    ("crossing, narrow and tall", BASE, Box(4, 0, 1, 10), True),
    ("single shared cell at the corner", BASE, Box(5, 4, 1, 1), True),
    ("touching the right edge", BASE, Box(6, 2, 2, 3), False),
    ("touching the left edge", BASE, Box(0, 2, 2, 3), False),
    ("touching the bottom edge", BASE, Box(2, 5, 4, 2), False),
    ("touching the top edge", BASE, Box(2, 0, 4, 2), False),
    ("touching only at a corner", BASE, Box(6, 5, 2, 2), False),
    ("far away", BASE, Box(10, 20, 2, 2), False),
    ("same columns, later rows", BASE, Box(2, 9, 4, 3), False),
    ("same rows, other columns", BASE, Box(8, 2, 4, 3), False),
    ("empty width inside", BASE, Box(3, 3, 0, 1), False),
    ("empty height inside", BASE, Box(3, 3, 1, 0), False),
    ("negative width", BASE, Box(3, 3, -2, 1), False),
]


@pytest.mark.parametrize(("name", "a", "b", "expected"), OVERLAP_ROWS, ids=[r[0] for r in OVERLAP_ROWS])
def test_overlaps(name: str, a: Box, b: Box, expected: bool) -> None:
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected, "overlap must be symmetric"


def test_overlaps_accepts_grid_position_messages() -> None:
    a = widget_pb2.GridPosition(x=0, y=0, width=6, height=4)
    assert overlaps(a, widget_pb2.GridPosition(x=5, y=3, width=2, height=2))
    assert not overlaps(a, widget_pb2.GridPosition(x=6, y=0, width=6, height=4))


def test_overlaps_agrees_with_cell_sets() -> None:
    """Brute force over small rectangles: overlap iff the covered cell sets intersect."""

    def cells(b: Box) -> set[tuple[int, int]]:
        return {(x, y) for x in range(b.x, b.x + b.width) for y in range(b.y, b.y + b.height)}

    boxes = [Box(x, y, w, h) for x in range(4) for y in range(3) for w in range(3) for h in range(3)]
    for a in boxes:
        for b in boxes:
            assert overlaps(a, b) is bool(cells(a) & cells(b)), (a, b)


FIND_ROWS = [
    ("no others", BASE, [], None),
    ("only neighbours", BASE, [Box(6, 2, 2, 2, "r"), Box(2, 5, 2, 2, "b")], None),
    ("one overlapping", BASE, [Box(6, 2, 2, 2, "r"), Box(4, 4, 2, 2, "hit")], "hit"),
    ("the first of several", BASE, [Box(0, 0, 3, 3, "first"), Box(4, 4, 2, 2, "second")], "first"),
]


@pytest.mark.parametrize(("name", "candidate", "others", "expected"), FIND_ROWS, ids=[r[0] for r in FIND_ROWS])
def test_find_overlap(name: str, candidate: Box, others: list[Box], expected: str | None) -> None:
    found = find_overlap(candidate, others)
    assert (found.name if found is not None else None) == expected


def test_find_overlap_consumes_any_iterable() -> None:
    others = (b for b in [Box(8, 0, 2, 2, "no"), Box(0, 0, 12, 1, "yes")])
    found = find_overlap(Box(0, 0, 1, 1), others)
    assert found is not None and found.name == "yes"


POSITION_ROWS: list[tuple[str, Box, set[str]]] = [
    ("top left, one cell", Box(0, 0, 1, 1), set()),
    ("full width", Box(0, 0, GRID_COLUMNS, 24), set()),
    ("ends exactly at column 12", Box(8, 1000, 4, 1), set()),
    ("one column too wide", Box(8, 0, 5, 1), {"p"}),
    ("last column, width 2", Box(11, 0, 2, 1), {"p"}),
    ("negative x", Box(-1, 0, 2, 1), {"p.x"}),
    ("x past the grid", Box(12, 0, 1, 1), {"p.x"}),
    ("negative y", Box(0, -1, 1, 1), {"p.y"}),
    ("y past the last row", Box(0, 1001, 1, 1), {"p.y"}),
    ("zero width", Box(0, 0, 0, 1), {"p.width"}),
    ("width over 12", Box(0, 0, 13, 1), {"p.width"}),
    ("zero height", Box(0, 0, 1, 0), {"p.height"}),
    ("height over 24", Box(0, 0, 1, 25), {"p.height"}),
    ("everything wrong at once", Box(-1, -1, 0, 0), {"p.x", "p.y", "p.width", "p.height"}),
]


@pytest.mark.parametrize(("name", "box", "fields"), POSITION_ROWS, ids=[r[0] for r in POSITION_ROWS])
def test_check_position(name: str, box: Box, fields: set[str]) -> None:
    problems = ViolationCollector()
    check_position(box, "p", problems)
    assert {v.field for v in problems.violations} == fields
    assert len(problems.violations) == len(fields), "one violation per field"
    assert all(v.reason == "OUTSIDE_GRID" for v in problems.violations)


def test_check_position_appends_to_existing_problems() -> None:
    problems = ViolationCollector()
    problems.add("widget.title", "a title is required", "REQUIRED")
    check_position(widget_pb2.GridPosition(x=10, y=0, width=4, height=1), "widget.position", problems)
    assert [v.field for v in problems.violations] == ["widget.title", "widget.position"]
    assert "14" in problems.violations[1].description
