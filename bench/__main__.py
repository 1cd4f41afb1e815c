"""`python -m bench [--full] [--only NAME]`: runs every benchmark and prints one JSON object per
workload (figures plus the ratio to its in-run baseline)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from bench import (
    broker_chaos,
    browser_vs_grpc,
    clients,
    data_export,
    exports,
    fuzz,
    job_progress,
    lists,
    lists_replica,
    load_ceiling,
    materialize_due,
    portability,
    postgres_chaos,
    query_overhead,
    redis_chaos,
    rest_vs_grpc,
    search,
    soak,
    widget_data,
    worker_chaos,
)
from bench.harness import Bench, bench_system

BENCHMARKS: dict[str, Callable[[Bench, bool], list[dict[str, Any]]]] = {
    "query_overhead": query_overhead.run,
    "job_progress": job_progress.run,
    "widget_data": widget_data.run,
    "widget_data_cached": widget_data.run_cached,
    "widget_data_cold": widget_data.run_cold,
    "widget_data_soak": widget_data.run_soak,
    "exports": exports.run,
    "data_export": data_export.run,
    "fuzz": fuzz.run,
    "rest_vs_grpc": rest_vs_grpc.run,
    "clients": clients.run,
    "browser_vs_grpc": browser_vs_grpc.run,
    "materialize_due": materialize_due.run,
    "lists": lists.run,
    "lists_replica": lists_replica.run,
    "portability": portability.run,
    "search": search.run,
    # Run only when named (--only soak / broker_chaos / redis_chaos / load_ceiling): long, restart
    # services or overload the machine.
    "soak": soak.run,
    "broker_chaos": broker_chaos.run,
    "redis_chaos": redis_chaos.run,
    "load_ceiling": load_ceiling.run,
    "worker_chaos": worker_chaos.run,
    "postgres_chaos": postgres_chaos.run,
}
ONLY_WHEN_NAMED = (
    "soak",
    "lists_replica",
    "broker_chaos",
    "redis_chaos",
    "load_ceiling",
    "worker_chaos",
    "postgres_chaos",
)
DEFAULT = [name for name in BENCHMARKS if name not in ONLY_WHEN_NAMED]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="more iterations (slower, steadier)")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only these")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with bench_system() as bench:
        for name in args.only or DEFAULT:
            for result in BENCHMARKS[name](bench, args.full):
                result["mode"] = "full" if args.full else "quick"
                print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
