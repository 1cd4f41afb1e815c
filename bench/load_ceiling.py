"""Issue 15: the largest sustained rate of cached GetWidgetData reads this machine holds with p99
under 50 ms, and what happens past it (`python -m bench --only load_ceiling`).

`tessera serve` runs in its own processes (the default: one per core) and h2load drives it in
rate mode (`--rps` per connection, 16 connections with up to 8 calls in flight each, so a slow
server makes calls pile up instead of slowing the generator down):

* the baseline: a server without saturation shedding (`TESSERA_SHED_MIN_IDLE=0`) driven
  closed-loop at 16 in flight, as fast as it answers (a shedding server would refuse part of it);
* steps of rising offered rate against a server shedding at 5% idle, in fractions of that baseline: a step
  is *sustained* when h2load achieved at least 95% of the offered rate, every call was OK and the
  p99 stayed under 50 ms; the ceiling is the largest sustained step;
* overload: 3x the baseline (and 1.5x with `--full`) from 64 connections with 32 calls in flight
  each (2,048 outstanding), against the server without saturation shedding (the in-flight cap of
  256 per process only), one with it at 5% idle, and (`--full`) one keeping 15% idle: the share of OK
  and RESOURCE_EXHAUSTED by status code (the server's own counters) and refusals by why
  (`tessera_rpcs_shed`), a probe client's RetryInfo on each refusal, how long its refused and OK
  calls took, the servers' RSS before, peak and after, the largest `tessera_rpcs_in_flight` and
  `tessera_shed_share` seen, and how soon the server serves every call promptly afterwards.

h2load shares the two cores with the server (one thread), and other work on the machine moves the
figures: read them as this machine's order of magnitude, not a constant."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from bench import h2load
from bench.harness import Bench
from bench.served import Served, bare_grpc, tessera_serve
from bench.widget_data import CACHED_SQL, METHOD, _min_cost, _setup
from dashboard.v1 import query_pb2, widget_pb2_grpc
from dashboard.v1 import widget_pb2 as w

P99_BUDGET_MS = 50.0
CLIENTS = 16
STREAMS = 8
OVERLOAD_CLIENTS = 64
OVERLOAD_STREAMS = 32


def _codes(served: Served) -> Counter[str]:
    """GetWidgetData calls answered so far, by status code (summed over the server's processes)."""
    out: Counter[str] = Counter()
    for labels, value in served.samples("tessera_rpc_duration_seconds_count"):
        if labels.get("method") == METHOD:
            out[labels["code"]] += round(value)
    return out


def _gauge(served: Served, name: str) -> float:
    found = served.samples(name)
    return found[0][1] if found else 0.0


def _shed(served: Served) -> Counter[str]:
    """Calls refused by load shedding so far, by why (in_flight, saturated)."""
    out: Counter[str] = Counter()
    for labels, value in served.samples("tessera_rpcs_shed_total"):
        out[labels["why"]] += round(value)
    return out


@dataclass
class _Watch:
    """Samples the server's RSS and in-flight gauge, and probes it with one sequential client
    (its own connection): status codes, RetryInfo on refusals, latency of OK calls."""

    served: Served
    stub: widget_pb2_grpc.WidgetServiceStub
    request: w.GetWidgetDataRequest
    metadata: tuple[tuple[str, str], ...]
    rss: list[int] = field(default_factory=list)
    in_flight: list[float] = field(default_factory=list)
    shed_share: list[float] = field(default_factory=list)
    probe_ok_ms: list[float] = field(default_factory=list)
    probe_refused_ms: list[float] = field(default_factory=list)
    probe_codes: Counter[str] = field(default_factory=Counter)
    refusals_with_retry_info: int = 0
    retry_delays_ms: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.rss.append(self.served.rss_bytes())
            self.in_flight.append(_gauge(self.served, "tessera_rpcs_in_flight"))
            self.shed_share.append(_gauge(self.served, "tessera_shed_share"))

    def _probe(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self.stub.GetWidgetData(self.request, metadata=self.metadata, timeout=10)
                self.probe_ok_ms.append((time.perf_counter() - started) * 1000)
                self.probe_codes["OK"] += 1
            except grpc.RpcError as error:
                code = error.code()
                self.probe_codes[code.name] += 1
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    self.probe_refused_ms.append((time.perf_counter() - started) * 1000)
                status = rpc_status.from_call(error)  # type: ignore[arg-type]
                for detail in status.details if status else []:
                    info = error_details_pb2.RetryInfo()
                    if detail.Unpack(info):
                        self.refusals_with_retry_info += 1
                        self.retry_delays_ms.append(info.retry_delay.ToMilliseconds())
            time.sleep(0.02)

    def __enter__(self) -> _Watch:
        self._threads = [threading.Thread(target=fn, daemon=True) for fn in (self._sample, self._probe)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2)


def _step(served: Served, body: bytes, md: Any, rate: int, seconds: float, reply_bytes: int) -> dict[str, Any]:
    per_client = max(1, round(rate / CLIENTS))
    codes_before, shed_before = _codes(served), _shed(served)
    result = h2load.run_grpc(
        served.address,
        METHOD,
        body,
        metadata=md,
        clients=CLIENTS,
        streams_per_client=STREAMS,
        duration=seconds,
        warmup=1.0,
        rps_per_client=per_client,
    )
    offered = per_client * CLIENTS
    all_ok = result.failed == 0 and result.ok_bytes(reply_bytes)
    sustained = all_ok and result.rps >= 0.95 * offered and result.p99_ms < P99_BUDGET_MS
    return {
        "offered_rps": offered,
        **result.figures(),
        # Warm-up included: what the server answered, by status, and what it shed, by why.
        "codes": dict(_codes(served) - codes_before),
        "shed_by_why": dict(_shed(served) - shed_before),
        "all_ok": all_ok,
        "sustained": sustained,
    }


def _overload(
    served: Served,
    stub: widget_pb2_grpc.WidgetServiceStub,
    request: w.GetWidgetDataRequest,
    md: Any,
    rate: int,
    seconds: float,
) -> dict[str, Any]:
    body = request.SerializeToString()
    per_client = max(1, round(rate / OVERLOAD_CLIENTS))
    rss_before = served.rss_bytes()
    codes_before = _codes(served)
    shed_before = _shed(served)
    with _Watch(served, stub, request, md) as watch:
        result = h2load.run_grpc(
            served.address,
            METHOD,
            body,
            metadata=md,
            clients=OVERLOAD_CLIENTS,
            streams_per_client=OVERLOAD_STREAMS,
            duration=seconds,
            warmup=1.0,
            rps_per_client=per_client,
        )
    codes = _codes(served) - codes_before
    shed = _shed(served) - shed_before
    total = sum(codes.values())
    # Afterwards: how soon the server serves every call again, and how promptly. Refusals are
    # retried after their RetryInfo delay, as the client does: the loop may still be draining
    # what the load generator left behind.
    ended = time.perf_counter()
    time.sleep(1.0)
    after_ms: list[float] = []
    after_refused = 0
    while len(after_ms) < 20 and time.perf_counter() - ended < 60:
        started = time.perf_counter()
        try:
            stub.GetWidgetData(request, metadata=md, timeout=10)
            after_ms.append((time.perf_counter() - started) * 1000)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            after_refused += 1
            after_ms.clear()
            time.sleep(0.1)
    serving_again_s = round(time.perf_counter() - ended, 2)
    refused = watch.probe_codes.get("RESOURCE_EXHAUSTED", 0)
    return {
        "offered_rps": per_client * OVERLOAD_CLIENTS,
        "outstanding_max": OVERLOAD_CLIENTS * OVERLOAD_STREAMS,
        "h2load": result.figures(),
        "answered_rps": round(total / (seconds + 1.0)),
        "codes": dict(codes),
        "ok_share": round(codes.get("OK", 0) / max(total, 1), 3),
        "resource_exhausted_share": round(codes.get("RESOURCE_EXHAUSTED", 0) / max(total, 1), 3),
        "other_codes": {k: v for k, v in codes.items() if k not in ("OK", "RESOURCE_EXHAUSTED")},
        "probe": {
            "codes": dict(watch.probe_codes),
            "ok_p50_ms": round(statistics.median(watch.probe_ok_ms), 2) if watch.probe_ok_ms else None,
            "ok_p99_ms": _p99(watch.probe_ok_ms),
            "refused_p50_ms": round(statistics.median(watch.probe_refused_ms), 2) if watch.probe_refused_ms else None,
            "refused_p99_ms": _p99(watch.probe_refused_ms),
            "refusals_with_retry_info": f"{watch.refusals_with_retry_info}/{refused}",
            "retry_delay_ms_range": [min(watch.retry_delays_ms), max(watch.retry_delays_ms)]
            if watch.retry_delays_ms
            else None,
        },
        "rss_mb": {
            "before": round(rss_before / 2**20, 1),
            "peak": round(max(watch.rss, default=rss_before) / 2**20, 1),
            "after": round(served.rss_bytes() / 2**20, 1),
        },
        "in_flight_peak": max(watch.in_flight, default=0.0),
        "shed_by_why": dict(shed),
        "shed_share_peak": max(watch.shed_share, default=0.0),
        "server_alive": served.process.poll() is None,
        "after_p50_ms": round(statistics.median(after_ms), 2) if after_ms else None,
        "after_refused": after_refused,
        "seconds_until_20_ok_in_a_row": serving_again_s,
    }


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    widget = _setup(bench, CACHED_SQL, [query_pb2.ParameterSpec(name="min_cost", type=query_pb2.PARAMETER_TYPE_INT)])
    md = bench.metadata("editor")
    request = w.GetWidgetDataRequest(widget_id=widget.id, parameter_values=_min_cost(0))
    seconds = 15.0 if full else 5.0
    body = request.SerializeToString()
    factors = (1.5, 3.0) if full else (3.0,)
    overload: list[dict[str, Any]] = []

    def overloaded(label: str, served: Served, stub: widget_pb2_grpc.WidgetServiceStub, rate: float) -> None:
        for factor in factors:
            figures = _overload(served, stub, request, md, round(rate * factor), seconds)
            overload.append({"shedding": label, "offered_x_closed_loop": factor, **figures})

    # Without saturation shedding (the in-flight cap only): the closed-loop baseline (a server that
    # sheds would refuse part of a closed loop, which is as fast as it can answer), then overload.
    with tessera_serve(bench.settings, extra_env={"TESSERA_SHED_MIN_IDLE": "0"}) as served:
        channel = grpc.insecure_channel(served.address)
        stub = widget_pb2_grpc.WidgetServiceStub(channel)
        reply = stub.GetWidgetData(request, metadata=md)
        reply_bytes = reply.ByteSize()
        closed = h2load.run_grpc(
            served.address, METHOD, body, metadata=md, clients=CLIENTS, duration=seconds, warmup=1.0
        ).check(reply_bytes)
        overloaded("in_flight_cap_only", served, stub, closed.rps)
        channel.close()
    # The floor: a bare grpc.aio server (no pipeline, fixed reply bytes) at the lowest step's rate,
    # what the transport and this machine's load alone cost each call.
    with bare_grpc(METHOD, reply.SerializeToString(), processes=2) as bare:
        floor = h2load.run_grpc(
            bare.address,
            METHOD,
            body,
            clients=CLIENTS,
            streams_per_client=STREAMS,
            duration=seconds,
            warmup=1.0,
            rps_per_client=max(1, round(closed.rps * 0.1 / CLIENTS)),
        )
    # More idle headroom kept (--full only: each server takes a minute to start on a loaded
    # machine): refuses more, so the queue ahead of the pipeline stays shorter.
    if full:
        with tessera_serve(bench.settings, extra_env={"TESSERA_SHED_MIN_IDLE": "0.15"}) as served:
            channel = grpc.insecure_channel(served.address)
            stub = widget_pb2_grpc.WidgetServiceStub(channel)
            stub.GetWidgetData(request, metadata=md)
            overloaded("min_idle_0.15", served, stub, closed.rps)
            channel.close()
    # Saturation shedding on (off by default): rising rates to the ceiling, then overload.
    with tessera_serve(bench.settings, extra_env={"TESSERA_SHED_MIN_IDLE": "0.05"}) as served:
        channel = grpc.insecure_channel(served.address)
        stub = widget_pb2_grpc.WidgetServiceStub(channel)
        stub.GetWidgetData(request, metadata=md)
        fractions = (0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1) if full else (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
        steps = [_step(served, body, md, round(closed.rps * f), seconds, reply_bytes) for f in fractions]
        overloaded("saturation_0.05", served, stub, closed.rps)
        channel.close()
    sustained = [s for s in steps if s["sustained"]]
    ceiling = max(sustained, key=lambda s: s["offered_rps"]) if sustained else None
    return [
        {
            "workload": "load_ceiling.cached_reads",
            "response_bytes": reply_bytes,
            "p99_budget_ms": P99_BUDGET_MS,
            "baseline": {
                "what": "closed loop at 16 in flight (as fast as it answers), saturation shedding off",
                **closed.figures(),
            },
            "floor_bare_grpc": {"what": "bare grpc.aio, the same reply, at the lowest step's rate", **floor.figures()},
            "steps": steps,
            "sustained_rps": ceiling["offered_rps"] if ceiling else 0,
            "sustained_p99_ms": ceiling["p99_ms"] if ceiling else None,
            "ratio_sustained_to_closed_loop": round(ceiling["offered_rps"] / closed.rps, 3) if ceiling else 0.0,
        },
        *({"workload": "load_ceiling.overload", **figures} for figures in overload),
    ]
