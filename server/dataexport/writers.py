"""Table files written a frame at a time, so a result of any size never sits whole in memory.

Both writers take the frames the data source streams (`DataFrame` batches, masked already) and
keep only the open file between them.

CSV: UTF-8 with a byte order mark (so spreadsheet programs read the encoding right), one header
row, RFC 4180 quoting and CRLF line ends. Every value is PostgreSQL's canonical text (the texts
masking hashes), NULL is the empty field. A text value that a spreadsheet would run as a formula
(it starts with = + - @, a tab or a carriage return) gets a leading apostrophe: opening an export
must never execute what a row held (OWASP's "CSV injection").

XLSX: XlsxWriter in constant-memory mode (each row flushed to a temporary file as it is
written). Numbers are numbers (integers beyond 2**53 and NaN/Infinity, which Excel cannot hold,
as text), dates and timestamps are Excel dates with a date format (TIMESTAMPTZ in UTC), what
Excel cannot represent (before 1900, infinity) is text. A sheet holds 1,048,575 rows under its
header; more go to a next sheet ("data 2", ...). Texts are never read as formulas or URLs.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Protocol

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from dashboard.v1 import common_pb2
from dashboard.v1.common_pb2 import DataFrame
from tessera_client.frames import EPOCH_NAIVE, EPOCH_ORDINAL, column_texts

__all__ = ["XLSX_ROWS_PER_SHEET", "CsvTableWriter", "TableWriter", "XlsxTableWriter"]

XLSX_ROWS_PER_SHEET = 1_048_575  # Excel's 1,048,576 rows, one of them the header
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_TEXT_TYPES = frozenset(
    {
        common_pb2.COLUMN_TYPE_STRING,
        common_pb2.COLUMN_TYPE_JSON,
        common_pb2.COLUMN_TYPE_UUID,
        common_pb2.COLUMN_TYPE_INTERVAL,
        common_pb2.COLUMN_TYPE_BYTES,
    }
)
_EXACT_INT = 2**53
_EXCEL_FIRST_DAY = dt.date(1900, 3, 1)  # Excel's serial dates are wrong before (the 1900 leap bug)


class TableWriter(Protocol):
    def write(self, frame: DataFrame) -> None:
        """Appends the frame's rows (the first frame's columns make the header)."""

    def close(self) -> int:
        """Finishes the file; returns the data rows written."""


def _with_nulls(column: common_pb2.Column, values: list[Any]) -> list[Any]:
    if not column.nulls:
        return values
    return [None if null else value for null, value in zip(column.nulls, values, strict=True)]


# --- CSV --------------------------------------------------------------------------------------


def _guarded(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_column(column: common_pb2.Column) -> list[Any]:
    texts = column_texts(column)
    if column.type in _TEXT_TYPES:
        texts = [_guarded(text) for text in texts]
    return _with_nulls(column, texts)


class CsvTableWriter:
    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("w", encoding="utf-8-sig", newline="")
        self._csv = csv.writer(self._file, lineterminator="\r\n")
        self._started = False
        self._rows = 0

    def write(self, frame: DataFrame) -> None:
        if not self._started:
            self._csv.writerow([_guarded(column.name) for column in frame.columns])
            self._started = True
        if not frame.row_count:
            return
        columns = [_csv_column(column) for column in frame.columns]
        self._csv.writerows(zip(*columns, strict=True))
        self._rows += frame.row_count

    def close(self) -> int:
        self._file.close()
        return self._rows


# --- XLSX -------------------------------------------------------------------------------------

Cell = Callable[[Worksheet, int, int, Any], None]


class XlsxTableWriter:
    def __init__(self, path: Path, temp_dir: Path) -> None:
        self._book = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "tmpdir": str(temp_dir),
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "remove_timezone": True,
            },
        )
        self._date = self._book.add_format({"num_format": "yyyy-mm-dd"})
        self._stamp = self._book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self._header = self._book.add_format({"bold": True})
        self._sheet: Worksheet | None = None
        self._sheets = 0
        self._row = 0  # the next row of the current sheet
        self._names: list[str] = []
        self._cells: list[Cell] = []
        self._decoders: list[Callable[[common_pb2.Column], list[Any]]] = []
        self._rows = 0

    def _new_sheet(self) -> Worksheet:
        self._sheets += 1
        sheet = self._book.add_worksheet("data" if self._sheets == 1 else f"data {self._sheets}")
        for index, name in enumerate(self._names):
            sheet.write_string(0, index, name, self._header)
        sheet.freeze_panes(1, 0)
        self._row = 1
        self._sheet = sheet
        return sheet

    def write(self, frame: DataFrame) -> None:
        if self._sheet is None:
            self._names = [column.name for column in frame.columns]
            plans = [self._plan(column.type) for column in frame.columns]
            self._decoders = [decode for decode, _ in plans]
            self._cells = [cell for _, cell in plans]
            self._new_sheet()
        if not frame.row_count:
            return
        columns = [decode(column) for decode, column in zip(self._decoders, frame.columns, strict=True)]
        cells = list(enumerate(self._cells))
        sheet = self._sheet
        assert sheet is not None
        for values in zip(*columns, strict=True):
            if self._row > XLSX_ROWS_PER_SHEET:
                sheet = self._new_sheet()
            row = self._row
            for index, cell in cells:
                value = values[index]
                if value is None:
                    continue  # an empty cell
                cell(sheet, row, index, value)
            self._row += 1
        self._rows += frame.row_count

    def close(self) -> int:
        if self._sheet is None:
            self._new_sheet()  # a workbook needs a sheet, even for a result without columns
        self._book.close()
        return self._rows

    def _plan(self, column_type: int) -> tuple[Callable[[common_pb2.Column], list[Any]], Cell]:
        """How a column of this type is decoded (a whole column at once) and how one value becomes a cell."""
        if column_type == common_pb2.COLUMN_TYPE_INT64:
            return _raw, _integer_cell
        if column_type == common_pb2.COLUMN_TYPE_FLOAT64:
            return _raw, _float_cell
        if column_type == common_pb2.COLUMN_TYPE_BOOL:
            return _raw, _bool_cell
        if column_type == common_pb2.COLUMN_TYPE_DECIMAL:
            return _texts, _decimal_cell
        if column_type == common_pb2.COLUMN_TYPE_DATE:
            return _dates, _date_cell(self._date)
        if column_type in (common_pb2.COLUMN_TYPE_TIMESTAMP, common_pb2.COLUMN_TYPE_TIMESTAMP_TZ):
            return _timestamps, _date_cell(self._stamp)
        return _texts, _string_cell


def _raw(column: common_pb2.Column) -> list[Any]:
    member = column.WhichOneof("values")
    values = list(getattr(column, member).values) if member else []
    return _with_nulls(column, values)


def _texts(column: common_pb2.Column) -> list[Any]:
    return _with_nulls(column, column_texts(column))


def _dates(column: common_pb2.Column) -> list[Any]:
    # Excel cannot show what precedes 1900-03-01 or follows 9999: those stay PostgreSQL's text.
    texts = column_texts(column)
    out: list[Any] = []
    for days, text in zip(column.date_values.values, texts, strict=True):
        ordinal = days + EPOCH_ORDINAL
        if _EXCEL_FIRST_DAY.toordinal() <= ordinal <= dt.date.max.toordinal():
            out.append(dt.date.fromordinal(ordinal))
        else:
            out.append(text)
    return _with_nulls(column, out)


_FIRST_STAMP = (dt.datetime(1900, 3, 1) - EPOCH_NAIVE) // dt.timedelta(microseconds=1)
_LAST_STAMP = (dt.datetime(9999, 12, 31, 23, 59, 59) - EPOCH_NAIVE) // dt.timedelta(microseconds=1)


def _timestamps(column: common_pb2.Column) -> list[Any]:
    # TIMESTAMPTZ micros count from the UTC epoch: the naive datetime is the UTC wall time.
    texts = column_texts(column)
    out: list[Any] = []
    for micros, text in zip(column.timestamp_values.values, texts, strict=True):
        if _FIRST_STAMP <= micros <= _LAST_STAMP:
            out.append(EPOCH_NAIVE + dt.timedelta(microseconds=micros))
        else:
            out.append(text)
    return _with_nulls(column, out)


def _string_cell(sheet: Worksheet, row: int, col: int, value: Any) -> None:
    sheet.write_string(row, col, value)


def _integer_cell(sheet: Worksheet, row: int, col: int, value: Any) -> None:
    if -_EXACT_INT <= value <= _EXACT_INT:
        sheet.write_number(row, col, value)
    else:
        sheet.write_string(row, col, str(value))  # a double would change the digits


def _float_cell(sheet: Worksheet, row: int, col: int, value: Any) -> None:
    if math.isfinite(value):
        sheet.write_number(row, col, value)
    else:
        sheet.write_string(row, col, "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"))


def _bool_cell(sheet: Worksheet, row: int, col: int, value: Any) -> None:
    sheet.write_boolean(row, col, value)


def _decimal_cell(sheet: Worksheet, row: int, col: int, value: Any) -> None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        sheet.write_string(row, col, value)
        return
    if number.is_finite():
        sheet.write_number(row, col, float(number))
    else:
        sheet.write_string(row, col, value)


def _date_cell(cell_format: Format) -> Cell:
    def cell(sheet: Worksheet, row: int, col: int, value: Any) -> None:
        if isinstance(value, str):
            sheet.write_string(row, col, value)
        else:
            sheet.write_datetime(row, col, value, cell_format)

    return cell
