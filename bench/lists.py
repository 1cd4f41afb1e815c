"""Issue 13: lists and reads at scale. 100,000 dashboards (50 facilities of 2,000, with owners,
tags, user and role shares, public and published ones with their version snapshots) and
1,000,000 widgets (one dashboard in 20 has 50), seeded once with generate_series into a database
of their own (`tessera_bench_lists`, kept between runs: seeding takes about a minute).

`tessera serve` runs as its own process on that database; h2load (gRPC framing) calls it at 1 and
8 connections for each shape, as an editor of one facility (the visibility predicate with owner,
shares and public dashboards: the hard case): ListDashboards first page, tag filter, title
search, published filter, page 20 by its token, and GetDashboard of a dashboard with 50 widgets.
Each workload repeats one request with nothing changing, so after its first call the server
answers from the pages and dashboards it keeps (server/dashboards/kept.py): `c1` and `c8`. The
statements' path (what a call after a change costs, and every call with a read replica) is
measured again on a server that keeps nothing (`TESSERA_KEPT_ANSWERS_MAX_BYTES=0`):
`c1_not_kept`, `c8_not_kept`. `c1_changes_elsewhere`: the kept server at 1 connection while
another connection changes, 20 times a second in turn, a dashboard of another facility and a
widget of another dashboard of the caller's facility (migration 0018: neither drops what the
caller's calls keep; before it, each dropped every kept page or every kept dashboard).
p50/p99 come from h2load's per-request log; the server's CPU per call from its processes'
CPU time (the robust figure on a shared machine). Baseline, same run: the bare grpc.aio server
answering the same reply bytes (the transport's share of the latency). Each shape is measured at
8 connections once more on a server with a read pool of one connection per process
(`TESSERA_DB_READ_POOL_SIZE`, `c8_read_pool_1`, keeping nothing): what bounding the statements in
flight does to the tail when PostgreSQL shares the server's cores.

Plans (EXPLAIN ANALYZE on this data set, the bench's caller; migration 0007):
* first page, published filter, page 20 by token: ix_dashboards_facility_updated read in order
  (the caller's one facility an equality: with facility_id = ANY(array) PostgreSQL 15 cannot
  return the index's order and sorted all 2,000 rows of the facility from 1,992 heap pages: 3 ms
  instead of 0.9)
  (the token as an index condition, ROW(updated_at, id) < ROW(...)), stopping after the page;
  the visibility filter hashes the caller's shares of its facilities once, from two index-only
  scans of ix_dashboard_shares_grantee_facility (about 1,000 rows; 1.4 ms in all). Before: a
  bitmap scan of the 52,000 role shares of every facility for each list (70 ms).
* tag filter: ix_dashboards_facility_tags_gin (migration 0015: facility and tags in one GIN index
  through btree_gin) answers the facility's 1,000 matches, then a top-N sort (2.9 ms on the loaded
  machine). Before 0015: a BitmapAnd of the facility index and the tags GIN index (5,000 TIDs
  from every facility; 14.7 ms).
* title search: ix_dashboards_facility_title_trgm_gin (0015: facility and pg_trgm trigrams)
  answers the facility's 200 matches in 0.25 ms, then a top-N sort (2.0 ms in all). Before 0015:
  a BitmapAnd of the facility index and ix_dashboards_title_trgm, whose scan returned every
  facility's 10,000 matches (5.8 ms of 15 ms); before 0007 the facility's rows were filtered by
  ILIKE one by one in update order.
The seed ends with VACUUM ANALYZE, as autovacuum would: without it the shares' index-only scans
fetch heap pages (no visibility map) and every tag filter scans the GIN index's pending list."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import psycopg

from bench import h2load
from bench.harness import Bench
from bench.served import bare_grpc, tessera_serve, with_connection_split
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc
from server.auth.tokens import mint_token
from server.config import Settings
from server.db.migrate import upgrade

# Its own database, kept between runs; another name for branches whose migrations differ.
DATABASE = os.environ.get("TESSERA_BENCH_LISTS_DATABASE", "tessera_bench_lists")
FACILITIES = 50
PER_FACILITY = 2000
CALLER, FACILITY = "user-7", "fac-07"
# TESSERA_DB_READ_POOL_SIZE of the second c8 run of each shape.
READ_POOL = 1
# Title words: one in ten titles holds "sepsis".
WORDS = ["census", "beds", "sepsis", "flow", "triage", "pharmacy", "labs", "imaging", "staffing", "wait"]

SEED = f"""
INSERT INTO dashboards (id, facility_id, owner_id, title, description, tags, visibility, version,
                        published_version, publish_time, created_at, updated_at)
SELECT md5('dash' || i)::uuid,
       'fac-' || lpad((i % {FACILITIES})::text, 2, '0'),
       'user-' || ((i / {FACILITIES}) % 50),
       'Dashboard ' || i || ' ' || (ARRAY{WORDS!r})[1 + (i / {FACILITIES}) % 10],
       'seeded',
       ARRAY['tag-' || (i % 20), 'team-' || (i % 7)],
       CASE WHEN i % 10 = 0 THEN 2 ELSE 1 END,
       1,
       CASE WHEN i % 3 = 0 THEN 1 END,
       CASE WHEN i % 3 = 0 THEN now() END,
       now() - make_interval(secs => i),
       now() - make_interval(secs => i)
FROM generate_series(0, {FACILITIES * PER_FACILITY - 1}) i;

INSERT INTO dashboard_versions (dashboard_id, version, snapshot, reason, author_id)
SELECT id, 1, jsonb_build_object('id', id::text, 'facility_id', facility_id, 'owner_id', owner_id,
                                 'title', title, 'tags', to_jsonb(tags), 'visibility', 'VISIBILITY_PUBLIC'),
       1, owner_id
FROM dashboards;

-- Each dashboard shared with the next user (VIEW); every other one with the role viewer.
INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)
SELECT id, facility_id, 'user', 'user-' || ((substr(owner_id, 6)::int + 1) % 50), 1, owner_id FROM dashboards;
INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)
SELECT id, facility_id, 'role', 'viewer', 1, owner_id FROM dashboards
WHERE ('x' || substr(id::text, 1, 2))::bit(8)::int % 2 = 0;

-- 1,000,000 widgets: 50 on one dashboard in 20, 8 on most others, 7 on one in 10.
INSERT INTO widgets (dashboard_id, facility_id, title, type, x, y, width, height, spec)
SELECT d.id, d.facility_id, 'w' || n, 1, (n % 6) * 2, (n / 6) * 2, 2, 2,
       jsonb_build_object('title', 'w' || n, 'kpi', jsonb_build_object('value_column', 'n'))
FROM (SELECT id, facility_id, row_number() OVER (ORDER BY id) AS r FROM dashboards) d,
     LATERAL generate_series(0, CASE WHEN d.r % 20 = 0 THEN 49 WHEN d.r % 10 = 1 THEN 6 ELSE 7 END) n;
ANALYZE;
"""


def _database_url(bench: Bench) -> str:
    base, _, _ = bench.services.database_url.rpartition("/")
    return f"{base}/{DATABASE}"


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def ensure_seeded(bench: Bench) -> tuple[str, dict[str, int]]:
    """The data set's database, created and seeded on first use; migrated to head every run."""
    url = _database_url(bench)
    with psycopg.connect(plain(bench.services.admin_url), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            admin.execute(f"CREATE DATABASE {DATABASE}")
    upgrade(url)
    with psycopg.connect(plain(url), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM dashboards").fetchone()
        if row is None or row[0] == 0:
            started = time.perf_counter()
            conn.execute(SEED)
            # As autovacuum would leave them: visibility maps set (the shares' index-only scans)
            # and the tags GIN index's pending list merged (else every tag filter scans it).
            conn.execute("VACUUM ANALYZE")
            seeded = time.perf_counter() - started
        else:
            seeded = 0.0
        counts = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in ("dashboards", "widgets", "dashboard_shares")
        }
    counts["seed_seconds"] = round(seeded)
    return url, counts


def _page_token(address: str, md: Any, request: d.ListDashboardsRequest, page: int) -> str:
    with grpc.insecure_channel(address) as channel:
        stub = dashboard_pb2_grpc.DashboardServiceStub(channel)
        token = ""
        for _ in range(page - 1):
            reply = stub.ListDashboards(
                d.ListDashboardsRequest(page_size=request.page_size, page_token=token), metadata=md
            )
            token = reply.next_page_token
            if not token:
                raise RuntimeError(f"fewer than {page} pages visible to the bench's caller")
        return token


def _big_dashboard(url: str) -> str:
    with psycopg.connect(plain(url)) as conn:
        row = conn.execute(
            "SELECT d.id FROM dashboards d JOIN widgets w ON w.dashboard_id = d.id"
            " WHERE d.facility_id = %s AND d.owner_id = %s GROUP BY d.id HAVING count(*) = 50 LIMIT 1",
            (FACILITY, CALLER),
        ).fetchone()
        if row is None:
            raise RuntimeError("no dashboard with 50 widgets owned by the bench's caller")
        return str(row[0])


def shapes(address: str, md: Any, url: str) -> dict[str, tuple[str, bytes]]:
    """Each workload's method and serialized request."""
    list_method = "/dashboard.v1.DashboardService/ListDashboards"
    page = d.ListDashboardsRequest(page_size=50)
    return {
        "list_first_page": (list_method, page.SerializeToString()),
        "list_tag": (list_method, d.ListDashboardsRequest(page_size=50, tags=["tag-17"]).SerializeToString()),
        "list_title_search": (
            list_method,
            d.ListDashboardsRequest(page_size=50, title_contains="sepsis").SerializeToString(),
        ),
        "list_published": (list_method, d.ListDashboardsRequest(page_size=50, published=True).SerializeToString()),
        "list_page_20": (
            list_method,
            d.ListDashboardsRequest(page_size=50, page_token=_page_token(address, md, page, 20)).SerializeToString(),
        ),
        "get_dashboard_50_widgets": (
            "/dashboard.v1.DashboardService/GetDashboard",
            d.GetDashboardRequest(id=_big_dashboard(url)).SerializeToString(),
        ),
    }


# Changes made elsewhere while `c1_changes_elsewhere` runs: one every 50 ms.
CHANGE_EVERY_SECONDS = 0.05


@contextmanager
def _changes_elsewhere(url: str) -> Iterator[list[int]]:
    """Another connection changing, in turn, a dashboard of another facility and a widget of a
    dashboard of the caller's facility other than the bench's big one; yields the count made."""
    made = [0]
    stop = threading.Event()
    with psycopg.connect(plain(url), autocommit=True) as conn:
        elsewhere = conn.execute("SELECT id FROM dashboards WHERE facility_id <> %s LIMIT 1", (FACILITY,)).fetchone()
        widget = conn.execute(
            "SELECT w.id FROM widgets w JOIN dashboards d ON d.id = w.dashboard_id"
            " WHERE d.facility_id = %s AND d.id <> %s LIMIT 1",
            (FACILITY, _big_dashboard(url)),
        ).fetchone()
        if elsewhere is None or widget is None:
            raise RuntimeError("the data set has no other facility's dashboard or no other widget")
        statements = [
            ("UPDATE dashboards SET title = title WHERE id = %s", elsewhere[0]),
            ("UPDATE widgets SET title = title WHERE id = %s", widget[0]),
        ]

        def change() -> None:
            while not stop.wait(CHANGE_EVERY_SECONDS):
                statement, target = statements[made[0] % len(statements)]
                conn.execute(statement, (target,))
                made[0] += 1

        thread = threading.Thread(target=change, name="bench-changes-elsewhere", daemon=True)
        thread.start()
        try:
            yield made
        finally:
            stop.set()
            thread.join()


def reply_of(address: str, md: Any, method: str, request: bytes) -> bytes:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        return bytes(call(request, metadata=md, timeout=30))


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    url, counts = ensure_seeded(bench)
    settings = Settings(**(bench.settings.model_dump() | {"database_url": url}))
    token = mint_token(settings, subject=CALLER, roles=["editor"], facilities=[FACILITY])
    md = (("authorization", f"Bearer {token}"),)
    duration = 10.0 if full else 4.0
    results: list[dict[str, Any]] = []
    with tessera_serve(settings) as served:
        for name, (method, request) in shapes(served.address, md, url).items():
            reply = reply_of(served.address, md, method, request)
            figures: dict[str, Any] = {"workload": name, "data_set": counts, "reply_bytes": len(reply)}
            with bare_grpc(method, reply) as bare:
                for clients in (1, 8):
                    cpu_before = served.cpu_seconds()
                    load = functools.partial(
                        h2load.run_grpc,
                        served.address,
                        method,
                        request,
                        metadata=md,
                        clients=clients,
                        duration=duration,
                    )
                    measured, split = with_connection_split(
                        served, load, after=h2load.DEFAULT_WARMUP_SECONDS + duration / 2
                    )
                    measured.check(len(reply))
                    # The server's CPU (every process) over every call it answered, warm-up included.
                    calls = max(measured.data_bytes // (len(reply) + h2load.FRAME_PREFIX_BYTES), 1)
                    cpu_ms = (served.cpu_seconds() - cpu_before) * 1000 / calls
                    ceiling = h2load.run_grpc(bare.address, method, request, clients=clients, duration=duration / 2)
                    figures[f"c{clients}"] = {
                        "p50_ms": round(measured.p50_ms, 2),
                        "p99_ms": round(measured.p99_ms, 2),
                        "rps": round(measured.rps),
                        "server_cpu_ms_per_call": round(cpu_ms, 3),
                        "bare_p50_ms": round(ceiling.p50_ms, 3),
                        "bare_p99_ms": round(ceiling.p99_ms, 3),
                        "ratio_p50": round(measured.p50_ms / ceiling.p50_ms, 1),
                        "connections_per_process": split,
                    }
            with _changes_elsewhere(url) as made:
                measured = h2load.run_grpc(served.address, method, request, metadata=md, duration=duration).check(
                    len(reply)
                )
            figures["c1_changes_elsewhere"] = {
                "p50_ms": round(measured.p50_ms, 2),
                "p99_ms": round(measured.p99_ms, 2),
                "rps": round(measured.rps),
                "changes_made": made[0],
            }
            figures["baseline"] = "bare grpc.aio answering the same reply bytes, same run, h2load"
            results.append(figures)
    # The statements' path: the same with no answer kept (every call reads; what the first call
    # after a change costs, and every call of a deployment with a read replica).
    with tessera_serve(settings, extra_env={"TESSERA_KEPT_ANSWERS_MAX_BYTES": "0"}) as served:
        for figures, (method, request) in zip(results, shapes(served.address, md, url).values(), strict=True):
            for clients in (1, 8):
                cpu_before = served.cpu_seconds()
                load = functools.partial(
                    h2load.run_grpc, served.address, method, request, metadata=md, clients=clients, duration=duration
                )
                # How the connections fell on the processes (SO_REUSEPORT hashes them): at 8, a
                # process holding 6 of them sets the tail.
                measured, split = with_connection_split(
                    served, load, after=h2load.DEFAULT_WARMUP_SECONDS + duration / 2
                )
                measured.check(figures["reply_bytes"])
                calls = max(measured.data_bytes // (figures["reply_bytes"] + h2load.FRAME_PREFIX_BYTES), 1)
                figures[f"c{clients}_not_kept"] = {
                    "p50_ms": round(measured.p50_ms, 2),
                    "p99_ms": round(measured.p99_ms, 2),
                    "rps": round(measured.rps),
                    "server_cpu_ms_per_call": round((served.cpu_seconds() - cpu_before) * 1000 / calls, 3),
                    "connections_per_process": split,
                }
    # The same at 8 in flight with a read pool of one connection per process (README, sizing):
    # statements in flight bounded, for a PostgreSQL on the server's own cores.
    with tessera_serve(
        settings, extra_env={"TESSERA_DB_READ_POOL_SIZE": str(READ_POOL), "TESSERA_KEPT_ANSWERS_MAX_BYTES": "0"}
    ) as served:
        for figures, (method, request) in zip(results, shapes(served.address, md, url).values(), strict=True):
            load = functools.partial(
                h2load.run_grpc, served.address, method, request, metadata=md, clients=8, duration=duration
            )
            measured, split = with_connection_split(served, load, after=h2load.DEFAULT_WARMUP_SECONDS + duration / 2)
            measured.check(figures["reply_bytes"])
            figures[f"c8_read_pool_{READ_POOL}"] = {
                "p50_ms": round(measured.p50_ms, 2),
                "p99_ms": round(measured.p99_ms, 2),
                "rps": round(measured.rps),
                "connections_per_process": split,
            }
    return results
