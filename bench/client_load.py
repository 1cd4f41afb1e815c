"""`python -m bench.client_load ADDRESS TOKEN WIDGET_ID CONCURRENCY TOTAL`: the Python client's side
of bench/clients.py, in a process of its own (as the Node SDK's side is): `tessera_client.AsyncClient`
reading one widget's data with CONCURRENCY calls in flight until TOTAL are done; prints requests
per second and per-call latency percentiles as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench.harness import summary
from dashboard.v1 import widget_pb2 as w
from tessera_client import AsyncClient, rpcs


async def load(address: str, token: str, widget_id: str, concurrency: int, total: int) -> dict[str, float]:
    request = w.GetWidgetDataRequest(widget_id=widget_id)
    async with AsyncClient(address, token=token) as client:
        for _ in range(concurrency):  # warm the connection and the server's paths
            reply = await client.call(rpcs.GET_WIDGET_DATA, request)
            assert reply.source == w.DATA_SOURCE_MEMORY, reply.source
        remaining = total
        latencies: list[float] = []

        async def caller() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                await client.call(rpcs.GET_WIDGET_DATA, request)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"throughput_rps": round(total / elapsed), **summary(latencies)}


if __name__ == "__main__":
    address, token, widget_id, concurrency, total = sys.argv[1:6]
    print(json.dumps(asyncio.run(load(address, token, widget_id, int(concurrency), int(total)))))
