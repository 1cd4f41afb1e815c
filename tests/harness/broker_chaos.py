"""One trial of "restart RabbitMQ with jobs in flight", shared by the CI test
(tests/reliability/test_rabbitmq_restart.py, one trial) and the benchmark (`python -m bench
--only broker_chaos`, 20 trials):

jobs are queued on a RabbitMQ node of the trial's own and one is running on a worker when the
node is SIGKILLed; it is started again on the same data directory, and beat's sweep (sent here as
beat sends it, until every job has ended) queues again whatever the broker lost. Every job must
end SUCCEEDED, with its terminal state written exactly once and every widget started once per
delivery that held the job (a delivery standing aside changes nothing)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import widget_pb2 as w
from server.broker.app import make_celery
from server.broker.names import TASK_REQUEUE_LOST
from server.config import Settings
from tests.harness.kit import Kit
from tests.harness.rabbitmq import PrivateRabbit
from workers.testing import WorkerProcess

__all__ = ["TrialResult", "restart_with_jobs_in_flight"]

TERMINAL = {c.JOB_STATE_SUCCEEDED, c.JOB_STATE_FAILED, c.JOB_STATE_CANCELLED}
SLOW_SQL = "SELECT count(*) AS n FROM generate_series(1, 1500) a CROSS JOIN generate_series(1, 2000) b"


@dataclass
class TrialResult:
    jobs: int
    succeeded: int = 0
    terminal_writes: list[int] = field(default_factory=list)
    requeued: int = 0
    seconds_to_all_done: float = 0.0  # from the kill, the restart included
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.succeeded == self.jobs and all(n == 1 for n in self.terminal_writes) and not self.problems


def _states(kit: Kit, ids: list[str]) -> list[w.MaterializationJob]:
    return [kit.widgets.GetMaterializationJob(w.GetMaterializationJobRequest(id=i), metadata=kit.md) for i in ids]


def _history(kit: Kit, job_id: str) -> list[w.MaterializationJob]:
    first = kit.widgets.GetMaterializationJob(w.GetMaterializationJobRequest(id=job_id), metadata=kit.md)
    if first.revision <= 1:
        return [first]
    events = kit.widgets.WatchMaterializationJob(
        w.WatchMaterializationJobRequest(id=job_id, since_revision=1), metadata=kit.md, timeout=30
    )
    return [e.job for e in events if e.HasField("job")]


def restart_with_jobs_in_flight(
    kit: Kit, rabbit: PrivateRabbit, settings: Settings, worker_env: dict[str, str], jobs: int = 4
) -> TrialResult:
    """`settings`/`worker_env`: the server's and the worker's, both on `rabbit`."""
    result = TrialResult(jobs)
    worker = WorkerProcess(
        {**worker_env, "TESSERA_JOB_QUEUED_TIMEOUT_SECONDS": "2"}, queues="materialize,maintenance", concurrency=1
    ).start(timeout=120)
    ids: list[str] = []
    try:
        for _ in range(jobs):
            board = kit.board()
            kit.widget(board, kit.query(SLOW_SQL))
            ids.append(kit.materialize(board).id)
        deadline = time.monotonic() + 60
        while True:  # one job running on the worker: the kill finds it in flight
            states = [
                kit.widgets.GetMaterializationJob(w.GetMaterializationJobRequest(id=i), metadata=kit.md) for i in ids
            ]
            if any(s.state == c.JOB_STATE_RUNNING for s in states):
                break
            if time.monotonic() > deadline:
                result.problems.append("no job started before the kill")
                return result
            time.sleep(0.05)
        killed_at = time.monotonic()
        rabbit.kill()
        rabbit.start()
        celery = make_celery(settings)
        try:
            deadline = killed_at + 240
            while True:
                states = [
                    kit.widgets.GetMaterializationJob(w.GetMaterializationJobRequest(id=i), metadata=kit.md)
                    for i in ids
                ]
                if all(s.state in TERMINAL for s in states):
                    break
                if time.monotonic() > deadline:
                    result.problems.append(f"jobs not ended: {[c.JobState.Name(s.state) for s in states]}")
                    break
                celery.send_task(TASK_REQUEUE_LOST)  # what beat sends every minute, more often here
                time.sleep(1.0)
        finally:
            celery.close()
        result.seconds_to_all_done = round(time.monotonic() - killed_at, 2)
    finally:
        worker.stop()
    for job_id in ids:
        history = _history(kit, job_id)
        final: Any = history[-1]
        result.succeeded += int(final.state == c.JOB_STATE_SUCCEEDED)
        result.terminal_writes.append(sum(1 for j in history if j.state in TERMINAL))
        result.requeued += sum(1 for j in history if j.progress.message.startswith("queued again"))
    return result
