"""Issue 3: the cost of running a saved query through QueryService.RunQuery (auth, validation,
parameter binding, READ ONLY transaction with timeout, role and facility scope, typed DataFrame,
protobuf over gRPC) against executing the same SQL directly with psycopg in the same run."""

from __future__ import annotations

from typing import Any

import psycopg

from bench.harness import Bench, sample, summary
from dashboard.v1 import common_pb2, query_pb2, query_pb2_grpc

WORKLOADS = {
    "small": (
        "SELECT count(*) AS admissions, sum(cost) AS cost FROM demo.admissions WHERE unit = :unit",
        {"unit": common_pb2.ParameterValue(string_value="Cardiology")},
    ),
    "large": (
        "SELECT g AS n, g * 1.5 AS x, 'row ' || g AS label, now() AS at FROM generate_series(1, 10000) AS g",
        {},
    ),
}


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    stub = query_pb2_grpc.QueryServiceStub(bench.channel)
    md = bench.metadata("editor")
    iterations = {"small": 300 if full else 60, "large": 40 if full else 10}
    results = []
    with psycopg.connect(bench.dsn) as direct:
        direct.execute("SELECT set_config('tessera.facility_id', 'north-general', false)")
        for name, (sql, values) in WORKLOADS.items():
            spec = [query_pb2.ParameterSpec(name="unit", type=query_pb2.PARAMETER_TYPE_STRING)] if values else []
            saved = stub.CreateQuery(
                query_pb2.CreateQueryRequest(query=query_pb2.Query(name=f"bench {name}", sql=sql, parameters=spec)),
                metadata=md,
            )
            request = query_pb2.RunQueryRequest(id=saved.id, parameter_values=values)
            reply = stub.RunQuery(request, metadata=md)
            raw_sql = sql.replace(":unit", "%(unit)s")
            raw_params = {"unit": "Cardiology"} if values else {}

            def raw(sql: str = raw_sql, params: dict[str, str] = raw_params) -> None:
                with direct.cursor() as cur:
                    cur.execute(sql, params)
                    cur.fetchall()

            def rpc(request: query_pb2.RunQueryRequest = request) -> None:
                stub.RunQuery(request, metadata=md)

            baseline = summary(sample(raw, iterations[name]))
            measured = summary(sample(rpc, iterations[name]))
            results.append(
                {
                    "workload": f"query_overhead.{name}",
                    "rows": reply.frame.row_count,
                    "rpc": measured,
                    "baseline": {"what": "psycopg execute+fetchall, same SQL, same database", **baseline},
                    "ratio_p50": round(measured["p50_ms"] / baseline["p50_ms"], 2),
                }
            )
    return results
