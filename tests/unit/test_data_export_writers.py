"""The CSV and XLSX writers of data exports (server/dataexport/writers.py), on frames built by
the server's own frame builder: typed values, NULLs, formula guards, sheets that roll over."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import openpyxl
import pytest

from dashboard.v1.common_pb2 import DataFrame
from server.dataexport import writers
from server.dataexport.writers import CsvTableWriter, XlsxTableWriter
from server.queries.frame import build_frame

COLUMNS = [("id", 20, "int8"), ("at", 1184, "timestamptz"), ("day", 1082, "date"), ("note", 25, "text")]


def _frame(rows: list[tuple[object, ...]]) -> DataFrame:
    return build_frame(COLUMNS, rows, False)


ROWS = [
    (1, "2024-01-02 03:04:05+00", "2024-01-02", '=HYPERLINK("x")'),
    (2, "infinity", "1800-01-01", None),
    (2**60, "2024-01-02 03:04:05.5+00", "infinity", "plain"),
]


def test_csv_has_a_bom_a_header_texts_and_guards_formulas(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    writer = CsvTableWriter(path)
    writer.write(_frame(ROWS[:2]))
    writer.write(_frame(ROWS[2:]))
    assert writer.close() == 3
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    rows = list(csv.reader(path.open(encoding="utf-8-sig", newline="")))
    assert rows[0] == ["id", "at", "day", "note"]
    assert rows[1] == ["1", "2024-01-02 03:04:05+00", "2024-01-02", '\'=HYPERLINK("x")']
    assert rows[2][3] == "" and rows[2][1] == "infinity"
    assert rows[3][0] == str(2**60)


def test_xlsx_types_cells_and_keeps_what_excel_cannot_hold_as_text(tmp_path: Path) -> None:
    path = tmp_path / "a.xlsx"
    writer = XlsxTableWriter(path, tmp_path)
    writer.write(_frame(ROWS))
    assert writer.close() == 3
    rows = list(openpyxl.load_workbook(path, read_only=True)["data"].iter_rows(values_only=True))
    assert rows[0] == ("id", "at", "day", "note")
    assert rows[1] == (1, dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2), '=HYPERLINK("x")')
    assert rows[2] == (2, "infinity", "1800-01-01", None)
    assert rows[3][0] == str(2**60) and rows[3][2] == "infinity"


def test_xlsx_rolls_over_to_a_new_sheet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "XLSX_ROWS_PER_SHEET", 2)  # Excel's limit, made small
    path = tmp_path / "b.xlsx"
    writer = XlsxTableWriter(path, tmp_path)
    writer.write(_frame([(i, None, None, "n") for i in range(5)]))
    assert writer.close() == 5
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames == ["data", "data 2", "data 3"]
    ids = [row[0] for name in book.sheetnames for row in list(book[name].iter_rows(values_only=True))[1:]]
    assert ids == [0, 1, 2, 3, 4]
