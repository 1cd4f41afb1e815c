"""Usage example 5: export generation.

Exports the published version of a dashboard to PDF (A4 landscape, margins, header and footer)
and to PNG (2x scale, 1024 px wide), following each export job live through its watch stream and
downloading the file with its size and sha256 verified; then exports two versions in one batch
call; exports the table widget's data as CSV and XLSX (PHI masked for a caller without
`phi:read`; numbers and dates typed in the workbook); and lists the dashboard's exports. A
Celery worker on the `exports` queue renders them (`tessera dev` runs one). Files go to --out
(default ./example-exports).
Deletes the dashboard unless --keep (the files stay).
"""

from __future__ import annotations

from pathlib import Path

from _common import arguments, connect, expect, main, run_tag, say, step

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from tessera_client import Client

PDF_MAGIC, PNG_MAGIC = b"%PDF-", b"\x89PNG\r\n\x1a\n"


def progress(job: e.ExportJob) -> None:
    stage = e.ExportStage.Name(job.stage).removeprefix("EXPORT_STAGE_")
    state = c.JobState.Name(job.state).removeprefix("JOB_STATE_")
    say(f"revision {job.revision:>2} {job.progress.percent:>3}% {state:<9} {stage:<9} {job.progress.message}")


def build(client: Client, tag: str) -> tuple[str, list[str], str]:
    board = client.dashboards.create(title="Monthly admissions report", tags=[tag])
    specs = [
        ("SELECT count(*) AS admissions FROM demo.admissions", w.Widget(kpi=w.KpiConfig(value_column="admissions"))),
        (
            "SELECT unit, count(*) AS admissions FROM demo.admissions GROUP BY unit ORDER BY unit",
            w.Widget(bar=w.BarChartConfig(category_column="unit", value_columns=["admissions"])),
        ),
        (
            "SELECT admitted_at::date AS day, count(*) AS admissions FROM demo.admissions GROUP BY 1 ORDER BY 1",
            w.Widget(line=w.LineChartConfig(x_column="day", y_columns=["admissions"])),
        ),
        (
            "SELECT unit, age, patient_name FROM demo.admissions ORDER BY admitted_at DESC, id LIMIT 40",
            w.Widget(table=w.TableConfig()),
        ),
    ]
    query_ids = []
    table_id = ""
    for i, (sql, widget) in enumerate(specs):
        query = client.queries.create(
            name=f"report {i}",
            sql=sql,
            tags=[tag],
            sensitive_columns=[q.SensitiveColumn(column="patient_name")] if "patient_name" in sql else [],
        )
        query_ids.append(query.id)
        widget.dashboard_id, widget.title = board.id, f"Part {i + 1}"
        widget.position.CopyFrom(w.GridPosition(x=(i % 2) * 6, y=(i // 2) * 4, width=6, height=4))
        widget.query.CopyFrom(w.QueryBinding(query_id=query.id))
        created = client.widgets.create(widget)
        if widget.HasField("table"):
            table_id = created.id
    client.dashboards.publish(board.id)
    return board.id, query_ids, table_id


def run() -> None:
    args = arguments(
        __doc__ or "",
        lambda p: p.add_argument("--out", type=Path, default=Path("example-exports"), help="where files go"),
    )
    tag = run_tag()
    args.out.mkdir(parents=True, exist_ok=True)
    with connect(args) as client:
        step("A published dashboard with a KPI, a bar chart, a line chart and a table")
        board_id, query_ids, table_id = build(client, tag)
        say(f"dashboard {board_id}")

        step("PDF: A4 landscape, 12 mm margins, a header and a footer")
        pdf = client.exports.export(
            board_id,
            args.out,
            format=e.EXPORT_FORMAT_PDF,
            options=e.ExportOptions(
                paper_size=e.PAPER_SIZE_A4,
                orientation=e.ORIENTATION_LANDSCAPE,
                margins=e.Margins(top_mm=12, right_mm=12, bottom_mm=12, left_mm=12),
                header_text="North General - admissions",
                footer_text="Confidential",
            ),
            on_progress=progress,
            timeout=180,
        )
        say(f"{pdf.path}: {pdf.file.size_bytes} bytes, {pdf.file.page_count} page(s), sha256 {pdf.file.sha256[:16]}...")
        expect(pdf.path.read_bytes().startswith(PDF_MAGIC), "a PDF file")
        expect(pdf.job.options.paper_size == e.PAPER_SIZE_A4, "the options the job reports are the ones asked for")

        step("PNG: 2x device scale, 1024 CSS px wide")
        png = client.exports.export(
            board_id,
            args.out / "report.png",
            format=e.EXPORT_FORMAT_PNG,
            options=e.ExportOptions(scale_factor=2, width_px=1024),
            on_progress=progress,
            timeout=180,
        )
        say(f"{png.path}: {png.file.width_px}x{png.file.height_px} px, {png.file.size_bytes} bytes")
        expect(png.path.read_bytes().startswith(PNG_MAGIC), "a PNG file")
        expect(png.file.width_px == 2048, "1024 CSS px at 2x")

        step("Batch: Letter portrait and Legal landscape in one call")
        batch = client.exports.export_many(
            [
                client.exports.request(
                    board_id,
                    options=e.ExportOptions(paper_size=e.PAPER_SIZE_LETTER, orientation=e.ORIENTATION_PORTRAIT),
                ),
                client.exports.request(
                    board_id,
                    options=e.ExportOptions(paper_size=e.PAPER_SIZE_LEGAL, orientation=e.ORIENTATION_LANDSCAPE),
                ),
            ],
            args.out / "batch",
            timeout=180,
        )
        for result in batch:
            paper = e.PaperSize.Name(result.job.options.paper_size).removeprefix("PAPER_SIZE_")
            say(f"{paper:<7} {result.path}: {result.file.page_count} page(s), {result.file.size_bytes} bytes")
        expect(len(batch) == 2 and all(r.path.exists() for r in batch), "both files")

        step("The table widget's data: CSV (UTF-8 with BOM) and XLSX, streamed by the worker")
        for data_format, name in ((e.EXPORT_FORMAT_CSV, "admissions.csv"), (e.EXPORT_FORMAT_XLSX, "admissions.xlsx")):
            data = client.exports.export(
                board_id, args.out / name, format=data_format, widget_id=table_id, on_progress=progress, timeout=180
            )
            say(f"{data.path}: {data.file.row_count} rows, {data.file.size_bytes} bytes, {data.file.content_type}")
            expect(data.file.row_count == 40, "the table's 40 rows")
        csv_text = (args.out / "admissions.csv").read_text(encoding="utf-8-sig")
        expect(csv_text.startswith("unit,age,patient_name"), "a header row")
        masked = "[REDACTED]" in csv_text
        say("patient names " + ("masked: this token has no phi:read" if masked else "shown: this token has phi:read"))

        step("The dashboard's exports, newest first")
        listed = list(client.exports.list(dashboard_id=board_id))
        for job in listed:
            kind = e.ExportFormat.Name(job.format).removeprefix("EXPORT_FORMAT_")
            say(f"{job.id} {kind} {c.JobState.Name(job.state).removeprefix('JOB_STATE_')} by {job.requested_by}")
        expect(len(listed) == 6, "six exports")

        if not args.keep:
            step("Clean up")
            client.dashboards.delete(board_id)
            for query_id in query_ids:
                client.queries.delete(query_id)
            say(f"deleted the dashboard and its queries; the files stay in {args.out}")


if __name__ == "__main__":
    main(run)
