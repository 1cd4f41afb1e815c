"""Issue 5: exports end to end against Chromium alone.

- `exports.end_to_end.{pdf,png}`: create -> SUCCEEDED (seen on the watch stream) of a 12-widget
  dashboard of every widget type, warm (browser launched, widget data cached), one at a time.
  Baseline: Chromium alone loading the same HTML page and printing it (bench/export_print.py),
  in the same run.
- `exports.batch`: one BatchCreateExports of 20 PDFs until all SUCCEEDED, with the default worker
  settings (concurrency from Settings). Baseline: the same 20 bare prints one after another.
  Warm means every worker process has its browser: the warm-up is a batch of twice as many
  exports as processes (one export after another would leave most prefork children cold, and
  the measured batch would pay their Chromium launches).
  `exports.batch.per_core`: the same with one worker process per core (what README recommends).

A real server (in a thread), a real Celery worker (a subprocess with its prefork children, each
with its own warm Chromium) and a broker database of its own.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc

from bench.export_print import bare_print, close_bare
from bench.harness import Bench, summary
from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import widget_pb2 as w
from server.exports.render import PageRenderer, PageSpec, WidgetContent
from tests.harness.exports import ExportKit, stubs_for
from tests.harness.server import start_in_thread
from tests.integration.test_jobs import broker_url_for, jobs_settings, worker_env
from workers.testing import WorkerProcess

PDF, PNG = e.EXPORT_FORMAT_PDF, e.EXPORT_FORMAT_PNG
BATCH = 20
SUCCEEDED = c.JOB_STATE_SUCCEEDED
# Ten prefork children take about 30 s to come up on a loaded 2-core machine.
WORKER_START_SECONDS = 120


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    iterations = 12 if full else 4
    folder = tempfile.mkdtemp(prefix="tessera-bench-exports-")
    config = jobs_settings(
        bench.settings, broker_url_for(bench.settings.redis_url), export_storage_url=f"file://{folder}"
    )
    server = start_in_thread(config)
    env = worker_env(config, TESSERA_EXPORT_STORAGE_URL=f"file://{folder}")
    worker = WorkerProcess(env, queues="exports", concurrency=config.worker_concurrency).start(
        timeout=WORKER_START_SECONDS
    )
    loop = asyncio.new_event_loop()  # bare_print keeps its browser on one loop
    try:
        with grpc.insecure_channel(server.address) as channel:
            facility = f"bench-{uuid.uuid4().hex[:8]}"
            kit = ExportKit(stubs_for(channel), bench.metadata("editor", facility), facility)
            board, widgets = kit.report_board(extra_kpis=4)
            assert len(widgets) == 12
            html = {fmt: _same_page(kit, board, fmt) for fmt in (PDF, PNG)}
            results = []
            for fmt, kind in ((PDF, "pdf"), (PNG, "png")):
                # Warm every worker process (each has its own browser) and the widget cache.
                _warm(kit, board.id, fmt, config.worker_concurrency)
                measured = summary([_export_once(kit, board.id, fmt) for _ in range(iterations)])
                for _ in range(3):
                    loop.run_until_complete(bare_print(html[fmt], kind))  # type: ignore[arg-type]
                bare = summary(
                    [loop.run_until_complete(bare_print(html[fmt], kind)) for _ in range(iterations)]  # type: ignore[arg-type]
                )
                results.append(
                    {
                        "workload": f"exports.end_to_end.{kind}",
                        "widgets": len(widgets),
                        "export": measured,
                        "baseline": {"what": "Chromium alone: set_content + print of the same page", **bare},
                        "ratio_p50": round(measured["p50_ms"] / bare["p50_ms"], 2),
                    }
                )
            results.append(_batch(kit, board.id, html[PDF], loop, config.worker_concurrency))
            # The setting README recommends for exports: one worker process per core.
            worker.stop()
            cores = os.cpu_count() or 1
            worker = WorkerProcess(env, queues="exports", concurrency=cores).start(timeout=WORKER_START_SECONDS)
            _warm(kit, board.id, PDF, cores)
            per_core = _batch(kit, board.id, html[PDF], loop, cores)
            per_core["workload"] = "exports.batch.per_core"
            results.append(per_core)
            return results
    finally:
        loop.run_until_complete(close_bare())
        loop.close()
        worker.stop()
        server.stop()


def _export_once(kit: ExportKit, dashboard_id: str, fmt: int) -> float:
    started = time.perf_counter()
    job = kit.create(dashboard_id, fmt)
    done = kit.wait(job.id)
    elapsed = time.perf_counter() - started
    assert done.state == SUCCEEDED, done
    return elapsed


def _warm(kit: ExportKit, dashboard_id: str, fmt: int, workers: int) -> None:
    """Exports at once, twice as many as worker processes: one after another, they may all go to
    the same few processes (the others' first export would then launch Chromium in a measured
    run); at once, every process takes some and launches its browser here."""
    request = e.BatchCreateExportsRequest(
        requests=[e.CreateExportRequest(dashboard_id=dashboard_id, format=fmt) for _ in range(2 * workers)]
    )
    for job in kit.stubs.exports.BatchCreateExports(request, metadata=kit.md, timeout=60).exports:
        assert kit.wait(job.id, timeout=600).state == SUCCEEDED


def _batch(
    kit: ExportKit, dashboard_id: str, html: str, loop: asyncio.AbstractEventLoop, workers: int
) -> dict[str, Any]:
    request = e.BatchCreateExportsRequest(
        requests=[e.CreateExportRequest(dashboard_id=dashboard_id, format=PDF) for _ in range(BATCH)]
    )
    started = time.perf_counter()
    jobs = kit.stubs.exports.BatchCreateExports(request, metadata=kit.md, timeout=60).exports
    for job in jobs:
        assert kit.wait(job.id, timeout=600).state == SUCCEEDED
    elapsed = time.perf_counter() - started
    bare_started = time.perf_counter()
    for _ in range(BATCH):
        loop.run_until_complete(bare_print(html, "pdf"))
    bare_elapsed = time.perf_counter() - bare_started
    return {
        "workload": "exports.batch",
        "exports": BATCH,
        "worker_concurrency": workers,
        "seconds": round(elapsed, 2),
        "exports_per_second": round(BATCH / elapsed, 2),
        "baseline": {
            "what": f"Chromium alone printing the same page {BATCH} times in a row",
            "seconds": round(bare_elapsed, 2),
            "prints_per_second": round(BATCH / bare_elapsed, 2),
        },
        "throughput_fraction_of_baseline": round(bare_elapsed / elapsed, 3),
    }


def _same_page(kit: ExportKit, board: d.Dashboard, fmt: int) -> str:
    """The page the worker renders for this dashboard, built here from the same widget data."""
    current = kit.stubs.dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=kit.md)
    renderer = PageRenderer(
        PageSpec(
            dashboard=current,
            version=board.published_version,
            filters={},
            generated_at=datetime.now(UTC),
            format=fmt,
            options=e.ExportOptions(),
        )
    )
    rendered = []
    for widget in sorted(current.widgets, key=lambda x: (x.position.y, x.position.x)):
        data = kit.stubs.widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=kit.md)
        rendered.append(renderer.widget(WidgetContent(widget=widget, frame=data.frame)))
    return renderer.document(rendered)
