"""Exports through the client, the CLI and the asyncio client, against a real server, a real
Celery worker on the `exports` queue and real Chromium: progress from WatchExport (every revision
once), the downloaded file verified (size, sha256) and checked as a real PDF/PNG with the asked
options, batch exports, a download resumed after a cut connection, cancel, and bad input.

These need the ExportService (the exports work); until it lands they fail with UNIMPLEMENTED."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader
from typer.testing import CliRunner

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import widget_pb2 as w
from server.cli import app
from tessera_client import (
    TERMINAL_STATES,
    AsyncClient,
    Client,
    InvalidArgumentError,
    JobFailedError,
    RetryPolicy,
)
from tests.client.conftest import JobStack, Mint
from tests.client.scripted import DroppingProxy

MM_TO_PT = 72 / 25.4


@pytest.fixture
def token(mint: Mint, facility: str) -> str:
    return mint("exa", "editor", facility)


@pytest.fixture
def client(job_stack: JobStack, token: str) -> Iterator[Client]:
    with Client(job_stack.address, token=token) as made:
        yield made


def published_board(client: Client, facility: str) -> str:
    board = client.dashboards.create(title="Export me", facility_id=facility)
    for i, (sql, config) in enumerate(
        [
            ("SELECT 42 AS beds", {"kpi": w.KpiConfig(value_column="beds")}),
            (
                "SELECT unit, n FROM (VALUES ('ICU', 3), ('ER', 5)) AS t(unit, n)",
                {"bar": w.BarChartConfig(category_column="unit", value_columns=["n"])},
            ),
            ("SELECT g AS n, g * 2 AS doubled FROM generate_series(1, 30) AS g", {"table": w.TableConfig()}),
        ]
    ):
        query = client.queries.create(name=f"q{i}", facility_id=facility, sql=sql)
        client.widgets.create(
            dashboard_id=board.id,
            title=f"w{i}",
            position=w.GridPosition(x=0, y=i * 3, width=6, height=3),
            query=w.QueryBinding(query_id=query.id),
            **config,
        )
    client.dashboards.publish(board.id)
    return board.id


def contiguous(revisions: list[int]) -> bool:
    return revisions == list(range(revisions[0], revisions[0] + len(revisions)))


def test_a_pdf_export_with_options_is_followed_and_verified(client: Client, facility: str, tmp_path: Path) -> None:
    board_id = published_board(client, facility)
    seen: list[e.ExportJob] = []
    options = e.ExportOptions(
        paper_size=e.PAPER_SIZE_A4,
        orientation=e.ORIENTATION_LANDSCAPE,
        margins=e.Margins(top_mm=15, right_mm=15, bottom_mm=15, left_mm=15),
        header_text="Tessera export test",
    )
    result = client.exports.export(board_id, tmp_path, options=options, on_progress=seen.append, timeout=180)
    revisions = [job.revision for job in seen]
    assert revisions[0] == 1 and contiguous(revisions), revisions
    assert result.job.state == c.JOB_STATE_SUCCEEDED and result.job.stage == e.EXPORT_STAGE_DONE
    assert [job.progress.percent for job in seen] == sorted(job.progress.percent for job in seen)
    data = result.path.read_bytes()
    assert result.path.parent == tmp_path and result.path.name == Path(result.file.filename).name
    assert len(data) == result.file.size_bytes and hashlib.sha256(data).hexdigest() == result.file.sha256
    assert result.file.content_type == "application/pdf"
    pdf = PdfReader(str(result.path))
    assert len(pdf.pages) == result.file.page_count >= 1
    width, height = float(pdf.pages[0].mediabox.width), float(pdf.pages[0].mediabox.height)
    # Chromium rounds the page to whole CSS pixels: within 1.5 pt of the paper size.
    assert abs(width - 297 * MM_TO_PT) <= 1.5 and abs(height - 210 * MM_TO_PT) <= 1.5, "A4 landscape"
    assert "Tessera export test" in (pdf.pages[0].extract_text() or "")


def test_a_png_export_has_the_asked_scale_and_width(client: Client, facility: str, tmp_path: Path) -> None:
    board_id = published_board(client, facility)
    options = e.ExportOptions(scale_factor=2, width_px=900, transparent_background=True)
    result = client.exports.export(
        board_id, tmp_path / "board.png", format=e.EXPORT_FORMAT_PNG, options=options, timeout=180
    )
    assert result.path == tmp_path / "board.png" and result.file.content_type == "image/png"
    with Image.open(result.path) as image:
        assert image.size == (result.file.width_px, result.file.height_px)
        assert image.width == 1800, "900 CSS px at scale 2"
        assert image.mode == "RGBA"


def test_batch_exports_are_created_together_and_listed(client: Client, facility: str, tmp_path: Path) -> None:
    board_id = published_board(client, facility)
    requests = [
        client.exports.request(board_id, options=e.ExportOptions(paper_size=e.PAPER_SIZE_LETTER)),
        client.exports.request(board_id, format=e.EXPORT_FORMAT_PNG, options=e.ExportOptions(scale_factor=1)),
    ]
    results = client.exports.export_many(requests, tmp_path / "batch", timeout=180)
    assert [r.file.content_type for r in results] == ["application/pdf", "image/png"]
    assert all(r.path.read_bytes() and r.path.parent == tmp_path / "batch" for r in results)
    listed = {job.id for job in client.exports.list(dashboard_id=board_id)}
    assert {r.job.id for r in results} <= listed
    succeeded = {job.id for job in client.exports.list(dashboard_id=board_id, state=c.JOB_STATE_SUCCEEDED)}
    assert {r.job.id for r in results} <= succeeded


def test_a_download_cut_mid_way_resumes_at_its_offset(
    job_stack: JobStack, client: Client, token: str, facility: str, tmp_path: Path
) -> None:
    board_id = published_board(client, facility)
    job = client.exports.wait(client.exports.create(board_id), timeout=180)
    proxy = DroppingProxy(job_stack.address, hold_after=16 * 1024)
    cut: list[int] = []

    def received(done: int, total: int) -> None:
        if not cut and done < total:
            cut.append(done)
            proxy.drop()

    try:
        with Client(proxy.address, token=token, retry=RetryPolicy(initial_backoff=0.05)) as through_proxy:
            download = through_proxy.exports.download(job.id, tmp_path / "cut.pdf", chunk_size=4096, on_bytes=received)
    finally:
        proxy.close()
    assert cut and proxy.connections >= 2, "the stream was cut and opened again"
    assert hashlib.sha256(download.path.read_bytes()).hexdigest() == job.file.sha256


def test_cancel_and_bad_input(client: Client, facility: str) -> None:
    board_id = published_board(client, facility)
    job = client.exports.create(board_id)
    client.exports.cancel(job.id)
    final = client.exports.wait(job.id, check=False, timeout=180)
    assert final.state in TERMINAL_STATES
    if final.state == c.JOB_STATE_CANCELLED:
        with pytest.raises(JobFailedError):
            client.exports.wait(job.id)
    with pytest.raises(InvalidArgumentError) as caught:
        client.exports.create(board_id, format=e.EXPORT_FORMAT_UNSPECIFIED)
    assert "format" in caught.value.fields
    with pytest.raises(InvalidArgumentError) as margins:
        client.exports.create(board_id, options=e.ExportOptions(margins=e.Margins(top_mm=500)))
    assert "options.margins.top_mm" in margins.value.fields


def test_the_async_client_follows_and_downloads_an_export(
    job_stack: JobStack, client: Client, token: str, facility: str, tmp_path: Path
) -> None:
    from tessera_client.jobs import EXPORT

    board_id = published_board(client, facility)
    job = client.exports.create(board_id, format=e.EXPORT_FORMAT_PNG)

    async def scenario() -> tuple[e.ExportJob, Path]:
        async with AsyncClient(job_stack.address, token=token) as aclient:
            final: e.ExportJob = await aclient.follow(EXPORT, job.id, timeout=180)
            download = await aclient.download(job.id, tmp_path)
            return final, download.path

    final, path = asyncio.run(scenario())
    assert final.state == c.JOB_STATE_SUCCEEDED
    assert hashlib.sha256(path.read_bytes()).hexdigest() == final.file.sha256


def test_the_cli_exports_with_a_progress_bar(
    job_stack: JobStack, client: Client, token: str, facility: str, tmp_path: Path
) -> None:
    board_id = published_board(client, facility)
    env = {"TESSERA_ADDRESS": job_stack.address, "TESSERA_TOKEN": token, "COLUMNS": "200"}
    out = tmp_path / "cli.pdf"
    result = CliRunner().invoke(
        app,
        [
            "export",
            board_id,
            "--paper",
            "letter",
            "--orientation",
            "portrait",
            "--margins",
            "10,12,10,12",
            "--out",
            str(out),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF-")
    assert hashlib.sha256(out.read_bytes()).hexdigest() in result.stdout
    assert "100%" in result.stderr and "downloading" in result.stderr
    page = PdfReader(str(out)).pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (612, 792), "Letter portrait"
    png = CliRunner().invoke(
        app, ["export", board_id, "--format", "png", "--scale", "1", "--out", str(tmp_path)], env=env
    )
    assert png.exit_code == 0, png.output
    assert any(path.suffix == ".png" for path in tmp_path.iterdir())
