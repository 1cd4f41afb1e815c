"""Real gRPC servers for the client's tests: `ScriptedServer` hosts servicers written in a test
(to produce failures the real server cannot be made to produce on cue: an UNAVAILABLE on the
second attempt, a stream cut after two messages), and `DroppingProxy` is a TCP proxy in front of
the real server whose connections a test can cut mid-stream."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "tessera.dashboard.v1"


def rich_status(code: grpc.StatusCode, message: str, *details: Message) -> grpc.Status:
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    return rpc_status.to_status(status)


def error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    whole = int(seconds)
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
    )


def fail(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, *details: Message) -> Any:
    context.abort_with_status(rich_status(code, message, *details))


class ScriptedServer:
    """A sync grpc server on an ephemeral port hosting the given servicers:
    `ScriptedServer((add_DashboardServiceServicer_to_server, servicer), ...)`."""

    def __init__(self, *servicers: tuple[Callable[[Any, grpc.Server], None], Any]) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)])
        for add, servicer in servicers:
            add(servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)


def metadata_of(context: grpc.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}


class DroppingProxy:
    """Forwards TCP connections to `upstream` ("host:port"); `drop()` cuts every open one, as a
    lost network would. `connections` counts the connections accepted so far. With
    `hold_after`, the first connection forwards only that many bytes towards the client and then
    stalls until `drop()`: otherwise a small answer can reach the client's buffers whole before the
    cut, and there would be nothing left to resume."""

    def __init__(self, upstream: str, hold_after: int | None = None) -> None:
        self._hold_after = hold_after
        self._dropped = threading.Event()
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self.connections += 1
                self._open += [client, upstream]
            first = self.connections == 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            limit = self._hold_after if first else None
            threading.Thread(target=self._pump, args=(upstream, client, limit), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None = None) -> None:
        try:
            while data := source.recv(65536 if limit is None else max(1, min(65536, limit))):
                sink.sendall(data)
                if limit is not None:
                    limit -= len(data)
                    if limit <= 0:
                        self._dropped.wait(timeout=60)  # stalled until the test cuts the line
                        return
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        self._dropped.set()
        with self._lock:
            victims, self._open = self._open, []
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.drop()


def chunks(data: bytes, size: int) -> Iterable[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))
