"""ValueFormats on chart axes and legends, as Vega-Lite axis properties, and categories in order.

Numbers: a `labelExpr` that puts the format's prefix, suffix, currency symbol or percent sign
around Vega's d3-format of the value, the same rounding as tessera_client.formats. Dates and
timestamps: the format's strftime pattern as a d3 time format (the directives the proto allows
mean the same in both), on values already moved to the time zone's wall clock (`zoned_ms`), so
the axis reads in the zone whatever the renderer's own zone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from dashboard.v1 import common_pb2, widget_pb2
from tessera_client.formats import CURRENCY_SYMBOLS, zone

__all__ = ["category_order", "number_axis", "temporal_axis", "zoned_ms"]

_V = widget_pb2.ValueFormat
_UNIT_SECONDS = {
    _V.DURATION_UNIT_UNSPECIFIED: 1,
    _V.DURATION_UNIT_SECONDS: 1,
    _V.DURATION_UNIT_MINUTES: 60,
    _V.DURATION_UNIT_HOURS: 3600,
    _V.DURATION_UNIT_DAYS: 86400,
}


def _literal(text: str) -> str:
    """A Vega expression string literal (JSON's double-quoted form is a valid one)."""
    return json.dumps(text)


def number_axis(fmt: widget_pb2.ValueFormat | None, values: Sequence[object]) -> dict[str, Any]:
    """Axis (or legend) properties that label numbers as `fmt` shows them; {} without a format."""
    if fmt is None:
        return {}
    style = fmt.style
    decimals = fmt.decimals if fmt.HasField("decimals") else None
    group = "," if fmt.thousands_separator else ""
    prefix, suffix = fmt.prefix, fmt.suffix
    if style == _V.STYLE_PERCENT:
        digits = f"format(datum.value, {_literal(f'{group}.{decimals or 0}%')})"
    elif style == _V.STYLE_CURRENCY:
        symbol = CURRENCY_SYMBOLS.get(fmt.currency_code, f"{fmt.currency_code} " if fmt.currency_code else "")
        prefix += symbol
        digits = f"format(datum.value, {_literal(f',.{2 if decimals is None else decimals}f')})"
    elif style == _V.STYLE_DURATION:
        # One unit for the whole axis, the largest the values reach twice.
        unit = _UNIT_SECONDS.get(fmt.duration_unit, 1)
        top = max((abs(float(v)) * unit for v in values if isinstance(v, int | float)), default=0.0)
        name, size = next(((n, s) for n, s in (("d", 86400), ("h", 3600), ("min", 60)) if top >= 2 * s), ("s", 1))
        digits = f"format(datum.value * {unit / size!r}, ',.3~f')"
        suffix = f" {name}{suffix}"
    elif decimals is not None or group:
        digits = f"format(datum.value, {_literal(f'{group}.{decimals}f' if decimals is not None else group)})"
    else:
        digits = "datum.label"
    if not prefix and not suffix and digits == "datum.label":
        return {}
    return {"labelExpr": f"{_literal(prefix)} + {digits} + {_literal(suffix)}"}


def temporal_axis(fmt: widget_pb2.ValueFormat | None) -> dict[str, Any]:
    """Axis properties for dates and timestamps: the format's pattern, read as UTC (values are
    already on the zone's wall clock); {} without a pattern (Vega picks per tick spacing)."""
    if fmt is None or not fmt.date_pattern:
        return {}
    return {"format": fmt.date_pattern, "formatType": "utc"}


def zoned_ms(
    column: common_pb2.Column, values: list[object], fmt: widget_pb2.ValueFormat | None, default: str
) -> list[object]:
    """TIMESTAMPTZ epoch milliseconds moved to the wall clock of the format's zone (else the
    dashboard's), for a UTC scale; other columns unchanged."""
    name = (fmt.time_zone if fmt is not None else "") or default
    if column.type != common_pb2.COLUMN_TYPE_TIMESTAMP_TZ or not name or name == "UTC":
        return values
    tz = zone(name)
    out: list[object] = []
    for value in values:
        if isinstance(value, int):
            moment = dt.datetime.fromtimestamp(value / 1000, dt.UTC)
            offset = moment.astimezone(tz).utcoffset()
            out.append(value + int((offset or dt.timedelta()).total_seconds() * 1000))
        else:
            out.append(value)
    return out


def category_order(values: Sequence[object], configured: Sequence[str]) -> list[object]:
    """Every distinct value once: the configured ones first (those present), then the rest in
    the data's order."""
    present = list(dict.fromkeys(values))
    texts = {str(value): value for value in present}
    first = [texts[name] for name in dict.fromkeys(configured) if name in texts]
    chosen = set(map(str, first))
    return first + [value for value in present if str(value) not in chosen]
