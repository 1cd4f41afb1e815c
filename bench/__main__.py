"""`python -m bench [--full] [--only NAME]`: runs every benchmark and prints one JSON object per
workload (figures plus the ratio to its in-run baseline)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from bench import clients, data_export, exports, fuzz, job_progress, query_overhead, rest_vs_grpc, widget_data
from bench.harness import Bench, bench_system

BENCHMARKS: dict[str, Callable[[Bench, bool], list[dict[str, Any]]]] = {
    "query_overhead": query_overhead.run,
    "job_progress": job_progress.run,
    "widget_data": widget_data.run,
    "exports": exports.run,
    "data_export": data_export.run,
    "fuzz": fuzz.run,
    "rest_vs_grpc": rest_vs_grpc.run,
    "clients": clients.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="more iterations (slower, steadier)")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only these")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with bench_system() as bench:
        for name in args.only or BENCHMARKS:
            for result in BENCHMARKS[name](bench, args.full):
                result["mode"] = "full" if args.full else "quick"
                print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
