"""Finding a widget's configured columns in its data, with errors that name the config field."""

from __future__ import annotations

from dashboard.v1 import common_pb2
from server.exports.render.values import NUMERIC_TYPES

__all__ = ["WidgetConfigError", "find_column", "numeric_column"]


class WidgetConfigError(ValueError):
    """The widget's configuration does not match its data (or is invalid); shown in the widget's
    box, naming the config field, instead of failing the whole export."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def find_column(frame: common_pb2.DataFrame, name: str, field: str) -> common_pb2.Column:
    """The first column called `name` (names are matched exactly, as the query labels them)."""
    for column in frame.columns:
        if column.name == name:
            return column
    raise WidgetConfigError(field, f"column {name!r} is not in the widget's data")


def numeric_column(frame: common_pb2.DataFrame, name: str, field: str) -> common_pb2.Column:
    column = find_column(frame, name, field)
    if column.type not in NUMERIC_TYPES:
        reason = "masked (PHI)" if column.masked else f"of type {column.db_type or 'text'}"
        raise WidgetConfigError(field, f"column {name!r} must be numeric, it is {reason}")
    return column
