"""Value formats (`ValueFormat` in widget.proto): one implementation for every place a value is
shown, the export page (KPIs and their change, tables, chart axes) and the Python client's table
output, so a number or a timestamp reads the same everywhere.

    column_display(column, fmt, default_zone)  ->  ["1,234.50", None, ...]   (None: NULL)
    number_text(Decimal("0.125"), fmt)          ->  "12.5%"
    format_problems(fmt, "kpi.value_format")    ->  [(field, message), ...]   (time zone, currency)

Numbers are rounded half away from zero from their exact decimal text. Timestamps are shown to
the second unless a pattern asks for fractions (%f); TIMESTAMPTZ values in the format's time zone,
else the dashboard's, else UTC. This module has no dependency beyond the generated protos and the
frame decoder, so the client can import it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from functools import cache

from google.protobuf.message import Message

from dashboard.v1 import common_pb2, widget_pb2
from tessera_client.frames import (
    DATE_INFINITY,
    DATE_MINUS_INFINITY,
    TIMESTAMP_INFINITY,
    TIMESTAMP_MINUS_INFINITY,
    column_texts,
)

__all__ = [
    "Style",
    "column_display",
    "column_formats",
    "effective_format",
    "format_problems",
    "number_text",
    "value_formats",
    "zone",
]

Style = widget_pb2.ValueFormat.Style
_V = widget_pb2.ValueFormat
NUMERIC_TYPES = frozenset(
    {common_pb2.COLUMN_TYPE_INT64, common_pb2.COLUMN_TYPE_FLOAT64, common_pb2.COLUMN_TYPE_DECIMAL}
)
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹", "KRW": "₩"}
DURATION_SECONDS = {
    _V.DURATION_UNIT_UNSPECIFIED: 1,
    _V.DURATION_UNIT_SECONDS: 1,
    _V.DURATION_UNIT_MINUTES: 60,
    _V.DURATION_UNIT_HOURS: 3600,
    _V.DURATION_UNIT_DAYS: 86400,
}
DATE_PATTERN = "%Y-%m-%d"
TIMESTAMP_PATTERN = "%Y-%m-%d %H:%M:%S"
FORMATTED_TIMESTAMP_PATTERN = "%Y-%m-%d %H:%M"
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DATE = dt.date(1970, 1, 1)


def effective_format(
    value_format: widget_pb2.ValueFormat | None, number_format: widget_pb2.NumberFormat | None
) -> widget_pb2.ValueFormat | None:
    """The format to apply: the ValueFormat when set, else the older NumberFormat as a NUMBER."""
    if value_format is not None:
        return value_format
    if number_format is None:
        return None
    return widget_pb2.ValueFormat(
        style=_V.STYLE_NUMBER,
        decimals=number_format.decimals,
        prefix=number_format.prefix,
        suffix=number_format.suffix,
        thousands_separator=number_format.thousands_separator,
    )


@cache
def zone(name: str) -> dt.tzinfo:
    """The IANA zone called `name` (UTC for ""); raises KeyError for an unknown name."""
    if not name or name == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise KeyError(name) from error


def _style(fmt: widget_pb2.ValueFormat) -> int:
    if fmt.style != _V.STYLE_UNSPECIFIED:
        return int(fmt.style)
    if fmt.HasField("decimals") or fmt.thousands_separator or fmt.prefix or fmt.suffix:
        return int(_V.STYLE_NUMBER)
    return int(_V.STYLE_UNSPECIFIED)


def _digits(value: Decimal, decimals: int | None, grouped: bool) -> str:
    with localcontext() as context:
        context.rounding = ROUND_HALF_UP
        context.prec = 60
        if decimals is None:
            return format(abs(value), ",f" if grouped else "f")
        return format(abs(value), f"{',' if grouped else ''}.{decimals}f")


def _duration(seconds: Decimal, decimals: int | None) -> str:
    total = abs(seconds)
    if total < 60:
        with localcontext() as context:
            context.rounding = ROUND_HALF_UP
            return f"{total:.{decimals or 0}f}s"
    whole = int(total.to_integral_value(rounding=ROUND_HALF_UP))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def number_text(value: Decimal, fmt: widget_pb2.ValueFormat | None) -> str:
    """A finite number as `fmt` shows it: sign first, then prefix, digits, suffix ("-$1,234.50")."""
    if fmt is None or _style(fmt) == _V.STYLE_UNSPECIFIED:
        return format(value, "f")
    style = _style(fmt)
    decimals = fmt.decimals if fmt.HasField("decimals") else None
    prefix, suffix = fmt.prefix, fmt.suffix
    if style == _V.STYLE_PERCENT:
        body = _digits(value * 100, 0 if decimals is None else decimals, fmt.thousands_separator)
        suffix = "%" + suffix
    elif style == _V.STYLE_CURRENCY:
        symbol = CURRENCY_SYMBOLS.get(fmt.currency_code, f"{fmt.currency_code} " if fmt.currency_code else "")
        body = _digits(value, 2 if decimals is None else decimals, True)
        prefix = prefix + symbol
    elif style == _V.STYLE_DURATION:
        body = _duration(value * DURATION_SECONDS.get(fmt.duration_unit, 1), decimals)
    else:
        body = _digits(value, decimals, fmt.thousands_separator)
    # A value that rounds to zero shows no sign ("-0.00" reads as a bug).
    negative = value < 0 and any(c in "123456789" for c in body)
    return f"{'-' if negative else ''}{prefix}{body}{suffix}"


def _exact(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _moment_text(micros: int, with_zone: bool, fmt: widget_pb2.ValueFormat | None, default_zone: str) -> str:
    if micros == TIMESTAMP_INFINITY:
        return "infinity"
    if micros == TIMESTAMP_MINUS_INFINITY:
        return "-infinity"
    moment = _EPOCH + dt.timedelta(microseconds=micros)
    dated = fmt is not None and fmt.style == _V.STYLE_DATE_TIME
    pattern = (fmt.date_pattern if fmt is not None else "") or (
        FORMATTED_TIMESTAMP_PATTERN if dated else TIMESTAMP_PATTERN
    )
    if with_zone:
        name = (fmt.time_zone if fmt is not None else "") or default_zone
        local = moment.replace(tzinfo=dt.UTC).astimezone(zone(name))
        text = local.strftime(pattern)
        # Without a pattern of its own, a zoned timestamp says which zone it is in.
        if not (fmt is not None and fmt.date_pattern):
            text += f" {local.tzname() or name}"
        return text
    return moment.strftime(pattern)


def _date_text(days: int, fmt: widget_pb2.ValueFormat | None) -> str:
    if days == DATE_INFINITY:
        return "infinity"
    if days == DATE_MINUS_INFINITY:
        return "-infinity"
    date = _EPOCH_DATE + dt.timedelta(days=days)
    return date.strftime((fmt.date_pattern if fmt is not None else "") or DATE_PATTERN)


def column_display(
    column: common_pb2.Column, fmt: widget_pb2.ValueFormat | None, default_zone: str = ""
) -> list[str | None]:
    """Each row's text as shown (None for NULL): numbers per `fmt` (exactly as carried without
    one), dates and timestamps by pattern and zone, anything else as its canonical text."""
    nulls = list(column.nulls)
    out: list[str | None]
    if column.type == common_pb2.COLUMN_TYPE_DATE and column.HasField("date_values"):
        out = [_date_text(days, fmt) for days in column.date_values.values]
    elif column.HasField("timestamp_values") and column.type in (
        common_pb2.COLUMN_TYPE_TIMESTAMP,
        common_pb2.COLUMN_TYPE_TIMESTAMP_TZ,
    ):
        zoned = column.type == common_pb2.COLUMN_TYPE_TIMESTAMP_TZ
        out = [_moment_text(micros, zoned, fmt, default_zone) for micros in column.timestamp_values.values]
    elif column.type in NUMERIC_TYPES and fmt is not None and _style(fmt) != _V.STYLE_UNSPECIFIED:
        out = []
        for text in column_texts(column):
            value = _exact(text)
            out.append(text if value is None else number_text(value, fmt))
    else:
        out = list(column_texts(column))
    return [None if nulls and nulls[row] else text for row, text in enumerate(out)]


def value_formats(message: Message, path: str) -> Iterator[tuple[str, widget_pb2.ValueFormat]]:
    """Every ValueFormat set inside `message` (a widget config), with its field path."""
    for field, value in message.ListFields():
        name = f"{path}.{field.name}"
        if field.message_type is None:
            continue
        items = list(value) if field.is_repeated else [value]
        for index, item in enumerate(items):
            item_path = f"{name}[{index}]" if field.is_repeated else name
            if isinstance(item, widget_pb2.ValueFormat):
                yield item_path, item
            elif isinstance(item, Message):
                yield from value_formats(item, item_path)


def format_problems(fmt: widget_pb2.ValueFormat, path: str) -> list[tuple[str, str]]:
    """What buf.validate cannot check: the time zone exists, CURRENCY names its currency."""
    problems: list[tuple[str, str]] = []
    if fmt.time_zone:
        try:
            zone(fmt.time_zone)
        except KeyError:
            problems.append((f"{path}.time_zone", f"{fmt.time_zone!r} is not an IANA time zone"))
    if fmt.style == _V.STYLE_CURRENCY and not fmt.currency_code:
        problems.append((f"{path}.currency_code", "a CURRENCY format needs an ISO 4217 code"))
    return problems


def column_formats(widget: widget_pb2.Widget) -> dict[str, widget_pb2.ValueFormat]:
    """The format each of a widget's columns is shown with (by column name), from its config."""
    kind = widget.WhichOneof("config")
    out: dict[str, widget_pb2.ValueFormat] = {}

    def put(column: str, value_format: widget_pb2.ValueFormat | None) -> None:
        if column and value_format is not None:
            out.setdefault(column, value_format)

    def get(config: Message, name: str) -> widget_pb2.ValueFormat | None:
        value = getattr(config, name)
        return value if config.HasField(name) and isinstance(value, widget_pb2.ValueFormat) else None

    if kind == "table":
        for spec in widget.table.columns:
            put(
                spec.column,
                effective_format(get(spec, "value_format"), spec.format if spec.HasField("format") else None),
            )
    elif kind == "kpi":
        kpi = widget.kpi
        fmt = effective_format(get(kpi, "value_format"), kpi.format if kpi.HasField("format") else None)
        put(kpi.value_column, fmt)
        put(kpi.comparison_column, fmt)
    elif kind in ("line", "area"):
        chart = widget.line if kind == "line" else widget.area
        put(chart.x_column, get(chart, "x_format"))
        for column in chart.y_columns:
            put(column, get(chart, "y_format"))
    elif kind == "bar":
        for column in widget.bar.value_columns:
            put(column, get(widget.bar, "value_format"))
    elif kind == "heatmap":
        put(widget.heatmap.value_column, get(widget.heatmap, "value_format"))
    elif kind == "map":
        put(widget.map.value_column, get(widget.map, "value_format"))
    return out
