"""A native load generator for the benchmarks: h2load (Debian's nghttp2-client) speaking gRPC.

A unary gRPC call is an HTTP/2 POST with `content-type: application/grpc`, `te: trailers` and a
length-prefixed body (one flag byte 0x00, a big-endian uint32 length, the serialized request).
h2load sends the same body on every stream and writes one line per request to `--log-file`
(start in µs since the epoch, HTTP status, µs to the end of the response), from which this
module computes p50/p99 itself.

h2load only checks the HTTP status, never `grpc-status`: a gRPC error is an HTTP 200 with no
message. So `Result.ok_bytes` checks the data received against what `expect_bytes` OK replies
would carry; a benchmark should refuse a run where that fails (see `Result.check`).

    result = run_grpc("127.0.0.1:50051", "/dashboard.v1.WidgetService/GetWidgetData",
                      request.SerializeToString(), metadata=md, clients=16, duration=5)
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["H2loadError", "Result", "combined", "grpc_frame", "h2load_binary", "run_grpc"]

# gRPC framing overhead of one message: the flag byte and the length.
FRAME_PREFIX_BYTES = 5
# Seconds of load before the measured period (h2load --warm-up-time).
DEFAULT_WARMUP_SECONDS = 1.0


class H2loadError(RuntimeError):
    pass


def h2load_binary() -> str:
    found = shutil.which("h2load")
    if found is None:
        raise H2loadError("h2load not found: install Debian's nghttp2-client (scripts/bootstrap.sh does)")
    return found


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


@dataclass(frozen=True)
class Result:
    clients: int
    streams_per_client: int
    requests: int  # completed with HTTP 200
    failed: int  # any other status, or a stream that failed
    seconds: float  # the measured period (after the warm-up)
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    data_bytes: int  # DATA payload received, warm-up included (gRPC messages with their framing)
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # the OK requests', sorted

    def ok_bytes(self, expect_bytes: int) -> bool:
        """Whether every completed request carried a reply of `expect_bytes` (serialized): a
        gRPC error reply has no message, so fewer bytes mean some calls failed."""
        return self.requests > 0 and self.data_bytes >= self.requests * (expect_bytes + FRAME_PREFIX_BYTES)

    def check(self, expect_bytes: int) -> Result:
        if self.failed or not self.ok_bytes(expect_bytes):
            raise H2loadError(
                f"h2load run had failed calls: {self.failed} failed streams, {self.data_bytes} data bytes "
                f"for {self.requests} replies of {expect_bytes} bytes"
            )
        return self

    def figures(self) -> dict[str, Any]:
        """The JSON-ready figures (rounded)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "latencies_ms"}
        for name in ("seconds", "p50_ms", "p99_ms", "mean_ms"):
            out[name] = round(out[name], 3)
        out["rps"] = round(self.rps)
        return out


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed")


def _data_bytes(stdout: str) -> int:
    # "traffic: 3.05MB (3197842) total, 33.22KB (34020) headers (space savings 95.27%), 2.99MB (3131936) data"
    line = next((x for x in stdout.splitlines() if x.startswith("traffic:")), "")
    match = re.search(r"\((\d+)\) data", line)
    if match is None:
        raise H2loadError(f"h2load printed no traffic line:\n{stdout}")
    return int(match.group(1))


def _latencies_ms(log_file: Path) -> tuple[list[float], int]:
    """Milliseconds of the HTTP 200 requests, and how many others there were."""
    ok: list[float] = []
    other = 0
    for line in log_file.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        if fields[1] == "200":
            ok.append(int(fields[2]) / 1000.0)
        else:
            other += 1
    return ok, other


def run_grpc(
    address: str,
    method: str,
    request: bytes,
    *,
    metadata: Sequence[tuple[str, str]] = (),
    clients: int = 1,
    streams_per_client: int = 1,
    duration: float = 5.0,
    warmup: float = DEFAULT_WARMUP_SECONDS,
    threads: int = 1,
    rps_per_client: int | None = None,
) -> Result:
    """Calls `method` (e.g. /pkg.Service/Method) on a plaintext HTTP/2 server at host:port
    for `duration` seconds after `warmup`, from `clients` connections with
    `streams_per_client` calls in flight on each; with `rps_per_client`, each connection starts
    that many calls a second (h2load's rate mode) instead of as many as it can."""
    binary = h2load_binary()
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        body = Path(tmp, "body")
        body.write_bytes(grpc_frame(request))
        log_file = Path(tmp, "requests.log")
        headers = [("content-type", "application/grpc"), ("te", "trailers"), *metadata]
        command = [
            binary,
            f"http://{address}{method}",
            "--data",
            str(body),
            "--clients",
            str(clients),
            "--max-concurrent-streams",
            str(streams_per_client),
            "--threads",
            str(min(threads, clients)),
            # h2load takes whole numbers with a unit: milliseconds keep fractions of a second.
            "--duration",
            f"{round(duration * 1000)}ms",
            "--warm-up-time",
            f"{round(warmup * 1000)}ms",
            "--log-file",
            str(log_file),
        ]
        if rps_per_client is not None:
            command += ["--rps", str(rps_per_client)]
        for name, value in headers:
            command += ["--header", f"{name}: {value}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + warmup + 60, check=False)
        if done.returncode != 0:
            raise H2loadError(f"h2load exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        finished = _FINISHED.search(done.stdout)
        counts = _REQUESTS.search(done.stdout)
        if finished is None or counts is None:
            raise H2loadError(f"unexpected h2load output:\n{done.stdout}")
        # "finished in" counts the warm-up too; req/s, the counts and the log are the main period's.
        rps = float(finished.group(3))
        latencies, other = _latencies_ms(log_file)
    if not latencies:
        raise H2loadError(f"h2load completed no request:\n{done.stdout}")
    return _result(
        clients,
        streams_per_client,
        sorted(latencies),
        other + int(counts.group(5)),
        duration,
        rps,
        _data_bytes(done.stdout),
    )


def _result(
    clients: int,
    streams_per_client: int,
    ordered: list[float],
    failed: int,
    seconds: float,
    rps: float,
    data_bytes: int,
) -> Result:
    return Result(
        clients=clients,
        streams_per_client=streams_per_client,
        requests=len(ordered),
        failed=failed,
        seconds=seconds,
        rps=rps,
        p50_ms=statistics.median(ordered),
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        mean_ms=statistics.fmean(ordered),
        data_bytes=data_bytes,
        latencies_ms=ordered,
    )


def combined(results: Sequence[Result]) -> Result:
    """Several runs of the same load (interleaved with a baseline's rounds) as one: their
    requests pooled for the percentiles, their periods added up for the rate."""
    first = results[0]
    seconds = sum(r.seconds for r in results)
    return _result(
        first.clients,
        first.streams_per_client,
        sorted(x for r in results for x in r.latencies_ms),
        sum(r.failed for r in results),
        seconds,
        sum(r.requests for r in results) / seconds,
        sum(r.data_bytes for r in results),
    )
