"""The transport ceiling: bare grpc.aio processes answering one method with fixed bytes.

`python -m bench.bare_grpc --port P --method /pkg.Service/Method --payload FILE --processes N`
runs N processes on one port (SO_REUSEPORT), each a grpc.aio server with no interceptors and no
(de)serializers whose only handler returns the file's bytes as they are: what the transport
alone costs for the very same response. It prints `ready` once every process listens, and
stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import signal
import sys
from pathlib import Path


async def _serve(port: int, method: str, payload: bytes, ready: multiprocessing.synchronize.Event) -> None:
    import grpc

    service, name = method.strip("/").split("/")

    async def handler(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return payload

    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {name: grpc.unary_unary_rpc_method_handler(handler)}),)
    )
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise RuntimeError(f"could not bind port {port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready.set()
    await stop.wait()
    await server.stop(0)


def _child(port: int, method: str, payload: bytes, ready: multiprocessing.synchronize.Event) -> None:
    asyncio.run(_serve(port, method, payload, ready))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--payload", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    payload = args.payload.read_bytes()
    spawn = multiprocessing.get_context("spawn")
    events = [spawn.Event() for _ in range(args.processes)]
    children = [spawn.Process(target=_child, args=(args.port, args.method, payload, e)) for e in events]
    for child in children:
        child.start()
    for event in events:
        event.wait(timeout=30)
    print("ready", flush=True)
    # Blocked only now, so the children (started above) keep the default mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    while all(c.is_alive() for c in children):
        if signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, 0.5) is not None:
            break
    for child in children:
        if child.pid is not None and child.is_alive():
            child.terminate()
    for child in children:
        child.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
