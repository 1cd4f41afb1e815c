"""Usage example 10: a saved query's run as a spreadsheet (issue 17).

Saves a parameterised query with a sensitive column, then exports its run, with parameter values,
as CSV (UTF-8 with a byte order mark, what spreadsheets open) and as XLSX through the export jobs
(`CreateExportRequest.query`: no dashboard involved), follows each job live, downloads each file
with its size and sha256 verified, and reads both back: the row count the job reports, the
header, numbers as numbers and timestamps as dates in the workbook, patient names masked unless
the token holds `phi:read`. Then pins an older version of the query, shows a bad parameter value
refused by field with no job made, lists the caller's exports and, given a viewer's token
(TESSERA_VIEWER_TOKEN), shows that a viewer (who never runs SQL) cannot export a query. A Celery
worker on the `exports` queue writes the files (`tessera dev` runs one). Files go to --out
(default ./example-exports). Deletes the query unless --keep (the files stay). Reading the
workbook back needs openpyxl (a development dependency; the server writes with xlsxwriter).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from pathlib import Path

import openpyxl
from _common import ExampleFailed, arguments, connect, expect, explain, main, run_tag, say, step

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from tessera_client import Client, InvalidArgumentError, PermissionDeniedError, parameter_value

SQL = (
    "SELECT unit, admitted_at, age, cost, patient_name FROM demo.admissions"
    " WHERE age >= :min_age ORDER BY admitted_at, mrn"
)
HEADER = ["unit", "admitted_at", "age", "cost", "patient_name"]
MIN_AGE = 65


def progress(job: e.ExportJob) -> None:
    stage = e.ExportStage.Name(job.stage).removeprefix("EXPORT_STAGE_")
    state = c.JobState.Name(job.state).removeprefix("JOB_STATE_")
    say(f"revision {job.revision:>2} {job.progress.percent:>3}% {state:<9} {stage:<9} {job.progress.message}")


def run() -> None:
    def extra(parser: object) -> None:
        parser.add_argument("--out", type=Path, default=Path("example-exports"), help="where files go")  # type: ignore[attr-defined]
        parser.add_argument(  # type: ignore[attr-defined]
            "--viewer-token", default=os.environ.get("TESSERA_VIEWER_TOKEN", ""), help="a viewer's JWT"
        )

    args = arguments(__doc__ or "", extra)
    tag = run_tag()
    args.out.mkdir(parents=True, exist_ok=True)
    with connect(args) as client:
        step("A saved query: a typed parameter, a sensitive column")
        query = client.queries.create(
            name="Admissions of older patients",
            tags=[tag],
            sql=SQL,
            parameters=[q.ParameterSpec(name="min_age", type=q.PARAMETER_TYPE_INT, default_value=parameter_value(0))],
            sensitive_columns=[q.SensitiveColumn(column="patient_name")],
        )
        try:
            export_runs(client, args, query)
        finally:
            if not args.keep:
                step("Clean up")
                client.queries.delete(query.id, force=True)
                say(f"deleted the query; the files stay in {args.out}")


def export_runs(client: Client, args: object, query: q.Query) -> None:
    out: Path = args.out  # type: ignore[attr-defined]
    step(f"Its run with min_age = {MIN_AGE}, interactively (RunQuery): capped for a screen")
    preview = client.queries.run(query.id, parameters={"min_age": MIN_AGE}).frame
    say(f"{preview.row_count} rows shown" + (" (truncated by the interactive row cap)" if preview.truncated else ""))

    step("The same run as CSV, followed live and verified: every row, not the screen's cap")
    as_csv = client.exports.export_query(
        query.id,
        out / "older-patients.csv",
        format=e.EXPORT_FORMAT_CSV,
        parameters={"min_age": MIN_AGE},
        on_progress=progress,
        timeout=180,
    )
    file = as_csv.file
    say(f"{as_csv.path}: {file.row_count} rows, {file.size_bytes} bytes, sha256 {file.sha256[:16]}...")
    source = as_csv.job.query
    say(f"the job names query {source.query_id} version {source.query_version} and no dashboard")
    expect(source.query_id == query.id and not as_csv.job.dashboard_id, "a query's export names the query")
    expect(as_csv.file.row_count >= preview.row_count, "the export holds at least what the screen showed")
    raw = as_csv.path.read_bytes()
    expect(raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte order mark, for spreadsheets")
    with as_csv.path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    expect(rows[0] == HEADER, f"a header row, got {rows[0]}")
    body = rows[1:]
    expect(len(body) == as_csv.file.row_count > 0, "as many rows as the job reports")
    expect(all(int(row[2]) >= MIN_AGE for row in body), "the parameter value was bound")
    masked = all(row[4] == "[REDACTED]" for row in body)
    say("patient names " + ("masked: this token has no phi:read" if masked else "shown: this token has phi:read"))

    step("XLSX of the same run: numbers as numbers, timestamps as dates")
    as_xlsx = client.exports.export_query(
        query.id,
        out / "older-patients.xlsx",
        format=e.EXPORT_FORMAT_XLSX,
        parameters={"min_age": MIN_AGE},
        on_progress=progress,
        timeout=180,
    )
    say(f"{as_xlsx.path}: {as_xlsx.file.row_count} rows, {as_xlsx.file.size_bytes} bytes, {as_xlsx.file.content_type}")
    book = openpyxl.load_workbook(as_xlsx.path, read_only=True)
    sheet = book.worksheets[0]
    cells = list(sheet.iter_rows(values_only=True))
    book.close()
    expect(list(cells[0]) == HEADER, "the same header")
    expect(len(cells) - 1 == as_xlsx.file.row_count == as_csv.file.row_count, "the same rows as the CSV")
    first = cells[1]
    say(f"first row: {first}")
    expect(isinstance(first[1], dt.datetime), "admitted_at is a date in the workbook")
    expect(isinstance(first[2], int | float) and isinstance(first[3], int | float), "age and cost are numbers")
    expect((first[4] == "[REDACTED]") == masked, "masked the same way in both files")

    step("An older version, pinned: the query changes, the export of version 1 does not")
    changed = client.queries.update(
        q.Query(id=query.id, sql=SQL.replace("age >= :min_age", "age >= :min_age + 10")), ["sql"]
    )
    pinned = client.exports.export_query(
        query.id, out / "older-patients-v1.csv", parameters={"min_age": MIN_AGE}, query_version=1, timeout=180
    )
    say(f"the query is at version {changed.version}; the export read version {pinned.job.query.query_version}")
    expect(pinned.job.query.query_version == 1 and pinned.file.row_count == as_csv.file.row_count, "version 1's rows")

    step("A parameter value of the wrong type: refused by field, no job made")
    before = len(list(client.exports.list()))
    try:
        client.exports.create_query_export(query.id, parameters={"min_age": "sixty-five"})
    except InvalidArgumentError as error:
        explain(error)
        expect(any("min_age" in field for field in error.fields), "the field names the parameter")
    else:
        raise ExampleFailed("a text value was accepted for an INT parameter")
    expect(len(list(client.exports.list())) == before, "a refused export made a job")

    step("Your exports, newest first: the three runs of this query")
    mine = [job for job in client.exports.list() if job.query.query_id == query.id]
    for job in mine:
        kind = e.ExportFormat.Name(job.format).removeprefix("EXPORT_FORMAT_")
        say(f"{job.id} {kind} v{job.query.query_version} {c.JobState.Name(job.state).removeprefix('JOB_STATE_')}")
    expect(len(mine) == 3, "three exports of the query")

    viewer_token = args.viewer_token  # type: ignore[attr-defined]
    if viewer_token:
        step("A viewer cannot export a query's run (viewers never run SQL)")
        with Client(args.address, token=viewer_token) as viewer:  # type: ignore[attr-defined]
            try:
                viewer.exports.create_query_export(query.id)
            except PermissionDeniedError as error:
                explain(error)
            else:
                raise ExampleFailed("a viewer exported a query's run")


if __name__ == "__main__":
    main(run)
