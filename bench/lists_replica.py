"""Issue 13: lists and reads at scale with a read replica. The data set of bench/lists.py (100,000
dashboards, 1,000,000 widgets) on a primary of its own with a real streaming replica
(tests/harness/replica.py: initdb, pg_basebackup -R), and `tessera serve` reading through
`DATABASE_REPLICA_URL`, as the bench's caller (an editor of one facility; no writes of its own,
so routing sends its reads to the replica).

For the first page and GetDashboard of 50 widgets, at 1 and 8 connections (h2load, gRPC framing):
`kept`, the server as deployed (an answer read on a replica that had replayed every change heard
is kept: server/dashboards/kept.py), against `not_kept`, the same server keeping nothing (every
call reads the replica, which is what every call cost before kept answers followed a replica).
Each says where its reads ran (`tessera_db_reads_total{target}` over the run) and the server's CPU
per call. Baseline, same run: the bare grpc.aio server answering the same reply bytes.

Only when named (`--only lists_replica`): seeding the pair and replaying it takes minutes.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import psycopg

from bench import h2load, lists
from bench.harness import Bench
from bench.served import Served, bare_grpc, tessera_serve, with_connection_split
from server.auth.tokens import mint_token
from server.config import Settings
from server.db.migrate import upgrade
from tests.harness.killable_postgres import postgres_binaries, server_folder
from tests.harness.replica import start_replicated

WORKLOADS = ("list_first_page", "get_dashboard_50_widgets")
# The seed writes about a gigabyte of WAL for the replica to replay.
REPLAY_SECONDS = 900.0


def _seed(url: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(lists.plain(url), autocommit=True) as conn:
        conn.execute(lists.SEED)
        conn.execute("VACUUM ANALYZE")
    return round(time.perf_counter() - started)


def _reads(served: Served) -> dict[str, float]:
    """tessera_db_reads_total by target, summed over the server's processes."""
    return {target: served.total("tessera_db_reads_total", target=target) for target in ("primary", "replica")}


def _measure(
    served: Served, method: str, request: bytes, md: Any, reply: bytes, clients: int, duration: float
) -> dict[str, Any]:
    reads_before, cpu_before = _reads(served), served.cpu_seconds()
    load = functools.partial(
        h2load.run_grpc, served.address, method, request, metadata=md, clients=clients, duration=duration
    )
    measured, split = with_connection_split(served, load, after=h2load.DEFAULT_WARMUP_SECONDS + duration / 2)
    measured.check(len(reply))
    calls = max(measured.data_bytes // (len(reply) + h2load.FRAME_PREFIX_BYTES), 1)
    reads_after = _reads(served)
    return {
        "p50_ms": round(measured.p50_ms, 2),
        "p99_ms": round(measured.p99_ms, 2),
        "rps": round(measured.rps),
        "server_cpu_ms_per_call": round((served.cpu_seconds() - cpu_before) * 1000 / calls, 3),
        "reads_on_replica": round(reads_after["replica"] - reads_before["replica"]),
        "reads_on_primary": round(reads_after["primary"] - reads_before["primary"]),
        "calls": calls,
        "connections_per_process": split,
    }


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    if postgres_binaries() is None:
        return [{"workload": "lists_replica", "skipped": "no PostgreSQL binaries under /usr/lib/postgresql"}]
    duration = 10.0 if full else 4.0
    with server_folder("tessera-bench-replica-") as folder:
        pair = start_replicated(folder)
        try:
            upgrade(pair.primary.url)
            seed_seconds = _seed(pair.primary.url)
            pair.wait_replayed(timeout=REPLAY_SECONDS)
            settings = Settings(
                **(
                    bench.settings.model_dump()
                    | {"database_url": pair.primary.url, "database_replica_url": pair.replica.url}
                )
            )
            token = mint_token(settings, subject=lists.CALLER, roles=["editor"], facilities=[lists.FACILITY])
            md = (("authorization", f"Bearer {token}"),)
            results: dict[str, dict[str, Any]] = {}
            for label, env in (("kept", {}), ("not_kept", {"TESSERA_KEPT_ANSWERS_MAX_BYTES": "0"})):
                with tessera_serve(settings, extra_env=env) as served:
                    shapes = lists.shapes(served.address, md, pair.primary.url)
                    for name in WORKLOADS:
                        method, request = shapes[name]
                        reply = lists.reply_of(served.address, md, method, request)
                        figures = results.setdefault(
                            name,
                            {"workload": f"{name}_replica", "seed_seconds": seed_seconds, "reply_bytes": len(reply)},
                        )
                        for clients in (1, 8):
                            figures[f"c{clients}_{label}"] = _measure(
                                served, method, request, md, reply, clients, duration
                            )
                        if label == "kept":
                            with bare_grpc(method, reply) as bare:
                                ceiling = h2load.run_grpc(bare.address, method, request, clients=1, duration=duration)
                            figures["baseline"] = {
                                "what": "bare grpc.aio answering the same reply bytes, same run, h2load, 1 connection",
                                "p50_ms": round(ceiling.p50_ms, 3),
                                "p99_ms": round(ceiling.p99_ms, 3),
                            }
                            figures["ratio_p50_c1_kept"] = round(figures["c1_kept"]["p50_ms"] / ceiling.p50_ms, 1)
        finally:
            pair.stop()
    return list(results.values())
