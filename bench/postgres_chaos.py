"""PostgreSQL SIGKILLed and restarted under read/write load, 3 trials (quick) or 20 (`--full`), run
only when named (`python -m bench --only postgres_chaos`).

A PostgreSQL of the bench's own (tests/harness/killable_postgres.py, Debian's binaries), migrated,
behind one server in a thread; two readers (GetDashboard, ListDashboards) and two writers
(UpdateDashboard with the etag they last saw; CreateDashboard with a request id, repeated with the
same id until it is answered) call it without pause. Each trial SIGKILLs the postmaster and every
backend, keeps the load on for 1.5 s, starts PostgreSQL again on the same data directory and
waits until every caller has had an OK call. Reported: the status codes seen while it was down
and after (only UNAVAILABLE is allowed besides OK; ABORTED ETAG_MISMATCH is counted apart: an
update whose commit happened but whose answer was lost makes the next etag stale, as it should),
seconds from PostgreSQL answering to the first OK and to every caller's OK (the promise: within
5 s), and at the end what the database holds: every dashboard's version equals its newest
version row (no half-written change) and every create request id made exactly one dashboard."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psycopg
from google.protobuf import field_mask_pb2

from bench.harness import Bench
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc
from server.db.migrate import upgrade
from tests.harness.killable_postgres import KillablePostgres, postgres_binaries
from tests.harness.rpc import failure_of
from tests.harness.server import start_in_thread

RECOVERY_BUDGET_S = 5.0
DOWN_S = 1.5
CALLERS = ("read-get", "read-list", "write-update", "write-create")


@dataclass
class _Load:
    stub: dashboard_pb2_grpc.DashboardServiceStub
    md: Any
    facility: str
    boards: list[str]
    codes: dict[str, Counter[str]] = field(default_factory=lambda: {"down": Counter(), "after": Counter()})
    last_ok: dict[str, float] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)  # request ids answered OK
    phase: str = "after"
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def _record(self, caller: str, code: str) -> None:
        with self.lock:
            self.codes[self.phase][code] += 1
            if code == "OK":
                self.last_ok[caller] = time.monotonic()

    def _call(self, caller: str, method: Any, request: Any) -> Any:
        try:
            result = method(request, metadata=self.md, timeout=5)
        except grpc.RpcError as error:
            failure = failure_of(error)
            name = failure.code.name
            if failure.code is grpc.StatusCode.ABORTED and failure.reason == "ETAG_MISMATCH":
                name = "ABORTED_ETAG_MISMATCH"
            self._record(caller, name)
            time.sleep(0.02)
            return None
        self._record(caller, "OK")
        return result

    def read_get(self) -> None:
        i = 0
        while not self.stop.is_set():
            board = self.boards[i % len(self.boards)]
            self._call("read-get", self.stub.GetDashboard, d.GetDashboardRequest(id=board))
            i += 1

    def read_list(self) -> None:
        while not self.stop.is_set():
            self._call(
                "read-list",
                self.stub.ListDashboards,
                d.ListDashboardsRequest(page_size=20),
            )

    def write_update(self) -> None:
        board = self.boards[0]
        etag = ""
        n = 0
        while not self.stop.is_set():
            if not etag:
                got = self._call(
                    "write-update",
                    self.stub.GetDashboard,
                    d.GetDashboardRequest(id=board),
                )
                etag = got.etag if got is not None else ""
                continue
            n += 1
            request = d.UpdateDashboardRequest(
                dashboard=d.Dashboard(id=board, title=f"updated {n}", etag=etag),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            )
            updated = self._call("write-update", self.stub.UpdateDashboard, request)
            etag = updated.etag if updated is not None else ""  # unknown after a failure: read it again

    def write_create(self) -> None:
        while not self.stop.is_set():
            request_id = str(uuid.uuid4())
            request = d.CreateDashboardRequest(
                dashboard=d.Dashboard(facility_id=self.facility, title=f"pgc-{request_id}"), request_id=request_id
            )
            # The same request id until answered: a create whose answer was lost is not made twice.
            while not self.stop.is_set():
                if self._call("write-create", self.stub.CreateDashboard, request):
                    with self.lock:
                        self.created.add(request_id)
                    break


@dataclass
class _Trial:
    first_ok_s: float
    all_ok_s: float


def _wait_all_ok(load: _Load, since: float, limit: float = 30.0) -> _Trial:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with load.lock:
            after = [load.last_ok.get(c, 0.0) for c in CALLERS]
        if all(t > since for t in after):
            return _Trial(min(after) - since, max(after) - since)
        time.sleep(0.01)
    with load.lock:
        after = [load.last_ok.get(c, 0.0) for c in CALLERS]
    oks = [t - since for t in after if t > since]
    return _Trial(min(oks) if oks else float("inf"), float("inf"))


def _database_checks(url: str, created: set[str]) -> dict[str, int]:
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        half = conn.execute(
            "SELECT count(*) FROM dashboards AS b WHERE b.version <> COALESCE("
            "(SELECT max(v.version) FROM dashboard_versions AS v WHERE v.dashboard_id = b.id), -1)"
        ).fetchone()
        per_request = conn.execute(
            "SELECT title, count(*) FROM dashboards WHERE title LIKE 'pgc-%' GROUP BY title"
        ).fetchall()
    counts = {str(title).removeprefix("pgc-"): int(n) for title, n in per_request}
    return {
        "dashboards_whose_version_row_is_missing": int(half[0]) if half else -1,
        "create_request_ids_answered": len(created),
        "request_ids_with_not_exactly_one_dashboard": sum(1 for rid in created if counts.get(rid) != 1),
        "dashboards_made_twice": sum(1 for n in counts.values() if n > 1),
    }


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    if postgres_binaries() is None:
        return [{"workload": "postgres_chaos.restart_under_load", "skipped": "no PostgreSQL binaries"}]
    trials = 20 if full else 3
    folder = Path(tempfile.mkdtemp(prefix="tessera-pg-chaos-"))
    pg = KillablePostgres(folder).start()
    upgrade(pg.url)
    settings = bench.settings.model_copy(
        update={
            "database_url": pg.url,
            "redis_prefix": f"pgchaos-{uuid.uuid4().hex[:6]}:",
            "metrics_port": -1,
            "http_port": -1,
        }
    )
    server = start_in_thread(settings)
    facility = f"pgc-{uuid.uuid4().hex[:8]}"
    md = bench.metadata("editor", facility)
    results: list[_Trial] = []
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = dashboard_pb2_grpc.DashboardServiceStub(channel)
            boards = [
                stub.CreateDashboard(
                    d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title=f"seed {i}")),
                    metadata=md,
                ).id
                for i in range(5)
            ]
            load = _Load(stub, md, facility, boards)
            threads = [
                threading.Thread(target=fn, daemon=True)
                for fn in (load.read_get, load.read_list, load.write_update, load.write_create)
            ]
            for thread in threads:
                thread.start()
            try:
                time.sleep(1.0)
                for _ in range(trials):
                    with load.lock:
                        load.phase = "down"
                    pg.kill()
                    time.sleep(DOWN_S)
                    pg.start()  # returns once PostgreSQL answers
                    back = time.monotonic()
                    with load.lock:
                        load.phase = "after"
                    results.append(_wait_all_ok(load, back))
                    time.sleep(1.0)  # steady load between trials
            finally:
                load.stop.set()
                for thread in threads:
                    thread.join(timeout=15)
        checks = _database_checks(pg.url, load.created)
    finally:
        server.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
    all_ok = [r.all_ok_s for r in results]
    allowed = {"OK", "UNAVAILABLE", "ABORTED_ETAG_MISMATCH"}
    unexpected = {phase: {k: v for k, v in codes.items() if k not in allowed} for phase, codes in load.codes.items()}
    return [
        {
            "workload": "postgres_chaos.restart_under_load",
            "trials": trials,
            "down_s": DOWN_S,
            "codes_while_down": dict(load.codes["down"]),
            "codes_otherwise": dict(load.codes["after"]),
            "unexpected_codes": unexpected,
            "first_ok_after_back_s_p50": round(statistics.median(r.first_ok_s for r in results), 3),
            "all_callers_ok_after_back_s_p50": round(statistics.median(all_ok), 3),
            "all_callers_ok_after_back_s_max": round(max(all_ok), 3),
            "trials_recovered_within_5_s": sum(1 for x in all_ok if x <= RECOVERY_BUDGET_S),
            **checks,
        }
    ]
