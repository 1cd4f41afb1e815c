"""The 12-column grid: bounds and overlap of widget rectangles. Pure functions, no I/O.

A rectangle covers the half-open cells [x, x + width) x [y, y + height), so widgets that only
share an edge do not overlap, and an empty rectangle (width or height <= 0) overlaps nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from server.errors import ViolationCollector

GRID_COLUMNS = 12
MAX_ROW = 1000
MAX_HEIGHT = 24


class Rect(Protocol):
    """Anything with a grid position: a GridPosition message, a widgets row."""

    @property
    def x(self) -> int: ...

    @property
    def y(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...


R = TypeVar("R", bound=Rect)


def overlaps(a: Rect, b: Rect) -> bool:
    """True when the two rectangles share at least one cell."""
    if a.width <= 0 or a.height <= 0 or b.width <= 0 or b.height <= 0:
        return False
    return a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height


def find_overlap(candidate: Rect, others: Iterable[R]) -> R | None:
    """The first of `others` that shares a cell with `candidate`, or None."""
    for other in others:
        if overlaps(candidate, other):
            return other
    return None


def check_position(position: Rect, path: str, problems: ViolationCollector) -> None:
    """Adds a violation for every way `position` leaves the grid.

    buf.validate checks the same rules at the edge; they are checked again here because the
    grid invariants (exports, layout, overlap) must hold whoever calls the domain.
    """
    if not 0 <= position.x < GRID_COLUMNS:
        problems.add(f"{path}.x", f"x must be between 0 and {GRID_COLUMNS - 1}", "OUTSIDE_GRID")
    if not 0 <= position.y <= MAX_ROW:
        problems.add(f"{path}.y", f"y must be between 0 and {MAX_ROW}", "OUTSIDE_GRID")
    if not 1 <= position.width <= GRID_COLUMNS:
        problems.add(f"{path}.width", f"width must be between 1 and {GRID_COLUMNS}", "OUTSIDE_GRID")
    if not 1 <= position.height <= MAX_HEIGHT:
        problems.add(f"{path}.height", f"height must be between 1 and {MAX_HEIGHT}", "OUTSIDE_GRID")
    # Only meaningful once x and width are each in range; otherwise it repeats their violation.
    x_ok = 0 <= position.x < GRID_COLUMNS
    width_ok = 1 <= position.width <= GRID_COLUMNS
    if x_ok and width_ok and position.x + position.width > GRID_COLUMNS:
        end = position.x + position.width
        problems.add(path, f"x + width is {end}; it must not exceed {GRID_COLUMNS}", "OUTSIDE_GRID")
