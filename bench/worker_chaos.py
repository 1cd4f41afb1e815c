"""A worker SIGKILLed mid-job, 3 trials (quick) or 20 (`--full`) each for an export and a
materialization, run only when named (`python -m bench --only worker_chaos`).

One server, the bench's Redis as the broker (3 s visibility timeout, so the broker gives a dead
worker's task back quickly) and one worker at a time. A trial starts a job, waits for it to be in
the middle of its work (an export RENDERING a board with a slow table; a materialization RUNNING
its slow widget), SIGKILLs the worker and starts a new one, which takes the task back; that new
worker is the next trial's victim. Reported per kind: jobs that ended SUCCEEDED, the terminal
state written once per job (no terminal revision before the last), revisions without gap or
repeat across the kill; for exports exactly one file per job in storage (no `.partial` left) whose
download matches the announced sha256 twice (stable); seconds from the kill to SUCCEEDED."""

from __future__ import annotations

import hashlib
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.harness import Bench
from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from tests.harness.exports import ExportKit, stubs_for
from tests.harness.server import start_in_thread
from tests.integration.test_jobs import Kit, broker_url_for, collect, jobs_settings, watch, worker_env
from workers.testing import WorkerProcess

TERMINAL = {c.JOB_STATE_SUCCEEDED, c.JOB_STATE_FAILED, c.JOB_STATE_CANCELLED}


@dataclass
class Trial:
    succeeded: bool
    terminal_writes: int
    gap_free: bool
    seconds_to_done: float
    files: int = 1
    sha256_stable: bool = True
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.succeeded
            and self.terminal_writes == 1
            and self.gap_free
            and self.files == 1
            and self.sha256_stable
            and not self.problems
        )


def _export_trial(kit: ExportKit, board_id: str, storage: Path, restart: Callable[[], None]) -> Trial | None:
    """One trial, or None when the job ended before the worker could be killed mid-render."""
    job = kit.create(board_id, e.EXPORT_FORMAT_PDF)
    seen = 0
    rendering = False
    for event in kit.stubs.exports.WatchExport(e.WatchExportRequest(id=job.id), metadata=kit.md, timeout=180):
        if event.HasField("export"):
            seen = event.export.revision
            if event.export.state in TERMINAL:
                break
            if event.export.stage == e.EXPORT_STAGE_RENDERING:
                rendering = True
                break
    if not rendering:
        return None
    killed = time.monotonic()
    restart()
    events: list[e.ExportJob] = []
    for event in kit.stubs.exports.WatchExport(
        e.WatchExportRequest(id=job.id, since_revision=seen), metadata=kit.md, timeout=180
    ):
        if event.HasField("export"):
            events.append(event.export)
    seconds = time.monotonic() - killed
    last = events[-1] if events else kit.stubs.exports.GetExport(e.GetExportRequest(id=job.id), metadata=kit.md)
    files = sorted(p.name for p in storage.rglob(f"{job.id}*") if p.is_file())
    trial = Trial(
        succeeded=last.state == c.JOB_STATE_SUCCEEDED,
        terminal_writes=sum(1 for x in events if x.state in TERMINAL),
        gap_free=[x.revision for x in events] == list(range(seen + 1, seen + 1 + len(events))),
        seconds_to_done=seconds,
        files=len(files),
    )
    if files != [f"{job.id}.pdf"]:
        trial.problems.append(f"files {files}")
    if trial.succeeded:
        digests = {hashlib.sha256(kit.download(job.id)[1]).hexdigest() for _ in range(2)}
        trial.sha256_stable = digests == {last.file.sha256}
    else:
        trial.problems.append(f"state {c.JobState.Name(last.state)}: {last.error.message}")
    return trial


def _materialization_trial(kit: Kit, restart: Callable[[], None]) -> Trial | None:
    board = kit.board()
    kit.widget(board, kit.slow_query(3000))
    kit.widget(board, kit.query("SELECT 1 AS n"))
    job = kit.materialize(board)
    seen = 0
    running = False
    for event in watch(kit.widgets, kit.md, job.id, timeout=180):
        if event.HasField("job"):
            seen = event.job.revision
            if event.job.state in TERMINAL:
                break
            if any(x.state == c.JOB_STATE_RUNNING for x in event.job.widgets):
                running = True
                break
    if not running:
        return None
    time.sleep(0.3)  # inside the slow query
    killed = time.monotonic()
    restart()
    jobs, _ = collect(watch(kit.widgets, kit.md, job.id, since=seen, timeout=180))
    seconds = time.monotonic() - killed
    final = jobs[-1] if jobs else w.MaterializationJob()
    trial = Trial(
        succeeded=final.state == c.JOB_STATE_SUCCEEDED,
        terminal_writes=sum(1 for j in jobs if j.state in TERMINAL),
        gap_free=[j.revision for j in jobs] == list(range(seen + 1, seen + 1 + len(jobs))),
        seconds_to_done=seconds,
    )
    if trial.succeeded and (final.progress.completed_steps, final.progress.failed_steps) != (2, 0):
        trial.problems.append(f"progress {final.progress}")
    return trial


def _summary(workload: str, trials: list[Trial]) -> dict[str, Any]:
    seconds = [t.seconds_to_done for t in trials]
    return {
        "workload": workload,
        "trials": len(trials),
        "trials_ok": sum(t.ok for t in trials),
        "jobs_succeeded": sum(t.succeeded for t in trials),
        "terminal_writes_per_job": sorted({t.terminal_writes for t in trials}),
        "revisions_gap_free": sum(t.gap_free for t in trials),
        "kill_to_succeeded_s_p50": round(statistics.median(seconds), 2),
        "kill_to_succeeded_s_max": round(max(seconds), 2),
        "problems": [p for t in trials for p in t.problems][:5],
    }


class _Victim:
    """The one worker of a phase: killed, and replaced by a fresh one that rescues the task."""

    def __init__(self, env: dict[str, str], queues: str) -> None:
        self._env, self._queues = env, queues
        self.worker = WorkerProcess(env, queues=queues, concurrency=1).start()

    def kill_and_replace(self) -> None:
        self.worker.kill()
        self.worker = WorkerProcess(self._env, queues=self._queues, concurrency=1).start()


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    trials = 20 if full else 3
    storage = Path(tempfile.mkdtemp(prefix="tessera-worker-chaos-"))
    config: Settings = jobs_settings(
        bench.settings,
        broker_url_for(bench.settings.redis_url),
        export_storage_url=f"file://{storage}",
        broker_visibility_timeout_seconds=3,
        broker_restore_interval_seconds=1,
    )
    env = worker_env(config, TESSERA_BROKER_VISIBILITY_TIMEOUT_SECONDS="3", TESSERA_BROKER_RESTORE_INTERVAL_SECONDS="1")
    server = start_in_thread(config)
    exports: list[Trial] = []
    materializations: list[Trial] = []
    missed = 0
    missed_materializations = 0
    try:
        with grpc.insecure_channel(server.address) as channel:
            facility = f"chaos-{uuid.uuid4().hex[:8]}"
            md = bench.metadata("editor", facility)
            kit = ExportKit(stubs_for(channel), md, facility)
            board = kit.small_board(slow=True)
            victim = _Victim(env, "exports")
            try:
                # A job that ended before the kill is no trial: another one is made (bounded).
                for _ in range(trials * 2):
                    trial = _export_trial(kit, board.id, storage, victim.kill_and_replace)
                    if trial is not None:
                        exports.append(trial)
                    else:
                        missed += 1
                    if len(exports) == trials:
                        break
            finally:
                victim.worker.stop()
            jobs_kit = Kit(
                query_pb2_grpc.QueryServiceStub(channel),
                dashboard_pb2_grpc.DashboardServiceStub(channel),
                widget_pb2_grpc.WidgetServiceStub(channel),
                md,
                facility,
            )
            victim = _Victim(env, "materialize")
            try:
                for _ in range(trials * 2):
                    done = _materialization_trial(jobs_kit, victim.kill_and_replace)
                    if done is not None:
                        materializations.append(done)
                    else:
                        missed_materializations += 1
                    if len(materializations) == trials:
                        break
            finally:
                victim.worker.stop()
    finally:
        server.stop()
        shutil.rmtree(storage, ignore_errors=True)
    return [
        {
            **_summary("worker_chaos.export_sigkill", exports),
            "files_per_job": sorted({t.files for t in exports}),
            "sha256_stable": sum(t.sha256_stable for t in exports),
            "jobs_done_before_the_kill_not_counted": missed,
        },
        {
            **_summary("worker_chaos.materialization_sigkill", materializations),
            "jobs_done_before_the_kill_not_counted": missed_materializations,
        },
    ]
