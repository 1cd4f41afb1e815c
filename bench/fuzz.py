"""Issue 11: the long fuzz run. The test suite's fuzzer (tests/fuzz) with many more examples per
rpc and per HTTP binding than CI's fixed-seed slice, in a pytest process of its own (it provisions its own database
and server), reporting the status-code histogram. Not a timing: a robustness figure, whose
"baseline" is the rule that no answer is INTERNAL or UNKNOWN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import Bench

REPORT = Path("build/fuzz-report.json")


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    del bench  # the fuzz run provisions its own server through the test fixtures
    examples = 2000 if full else 300
    env = {**os.environ, "TESSERA_FUZZ_EXAMPLES": str(examples), "TESSERA_FUZZ_HTTP_EXAMPLES": str(examples)}
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/fuzz"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {"requests": 0, "codes": {}}
    codes: dict[str, int] = report["codes"]
    bad = {code: n for code, n in codes.items() if code in ("INTERNAL", "UNKNOWN", "DATA_LOSS")}
    # The HTTP face's answers are counted as "http <status>".
    http = {code: n for code, n in codes.items() if code.startswith("http ")}
    server_errors = {code: n for code, n in http.items() if code >= "http 500"}
    return [
        {
            "workload": "fuzz",
            "examples_per_rpc": examples,
            "examples_per_http_binding": examples,
            "requests": report["requests"],
            "grpc_requests": report["requests"] - sum(http.values()),
            "http_requests": sum(http.values()),
            "codes": codes,
            "internal_or_unknown": sum(bad.values()),
            "http_5xx": sum(server_errors.values()),
            "passed": finished.returncode == 0,
            "seconds": round(time.monotonic() - started, 1),
            "failures": finished.stdout[-4000:] if finished.returncode else "",
        }
    ]
