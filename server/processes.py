"""`tessera serve --processes N`: N server processes on one port.

One grpc.aio process uses about one core, so a server is N of them (one per core by default),
each with its own event loop, engines, pools and Redis client, all bound to the same gRPC and
HTTP ports with SO_REUSEPORT (the kernel spreads new connections across them). This parent
process only supervises:

* it reserves the ports first (a bound, non-listening SO_REUSEPORT socket each), so a port taken
  by another server fails here, and port 0 names one port every child then binds;
* it points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the children start, so every
  child's metric values live in files there, and serves the one /metrics endpoint that adds
  them up (prometheus_client's MultiProcessCollector), with the broker's queue depth;
* SIGTERM or SIGINT goes to every child, each drains its in-flight calls (NOT_SERVING first,
  then `shutdown_grace`), and the directory is removed; a child that dies stops them all
  (exit 1) so the process manager restarts the whole server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
from multiprocessing.process import BaseProcess

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from server import event_loop
from server.broker.probe import BrokerProbe
from server.broker.queue_metrics import QueueDepthCollector
from server.config import Settings
from server.grpc_server import serve
from server.logs import configure
from server.metrics import Exporter, serve_registry

__all__ = ["default_processes", "run"]

log = logging.getLogger("tessera.server")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def default_processes() -> int:
    """One per core this process may run on."""
    return len(os.sched_getaffinity(0)) or os.cpu_count() or 1


def run(settings: Settings, processes: int) -> int:
    """Serves until SIGTERM/SIGINT; the exit status."""
    if processes <= 1:
        event_loop.run(serve(settings))
        return 0
    return _Supervisor(settings, processes).run()


def _reserve(host: str, port: int) -> socket.socket:
    """Binds host:port with SO_REUSEPORT without listening: holds the port (and picks one for
    port 0) for the children, who bind it the same way and listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise RuntimeError(f"could not bind {host}:{port}: {error}") from None
    return sock


def _child(settings: Settings, index: int) -> None:
    configure(settings.log_level, settings.json_logs)
    logging.getLogger("tessera.server").info("server process started", extra={"index": index, "pid": os.getpid()})
    event_loop.run(serve(settings, reuse_port=True))


class _Supervisor:
    def __init__(self, settings: Settings, processes: int) -> None:
        self._settings = settings
        self._processes = processes
        self._own_dir: str | None = None
        self._held: list[socket.socket] = []
        self._exporter: Exporter | None = None
        self._stop = threading.Event()

    def run(self) -> int:
        # Handled from the start (Python runs handlers in the main thread, whichever thread the
        # signal reaches), so a signal during start-up still stops the children and removes the
        # directory. Spawned children start with the default handlers.
        previous = {sig: signal.signal(sig, lambda *_: self._stop.set()) for sig in STOP_SIGNALS}
        try:
            child_settings = self._prepare()
            return self._supervise(child_settings)
        finally:
            self._close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _prepare(self) -> Settings:
        settings = self._settings
        configured = os.environ.get(MULTIPROC_ENV)
        if configured:  # an operator's directory: emptied, files of an earlier run would count again
            os.makedirs(configured, exist_ok=True)
            for name in os.listdir(configured):
                if name.endswith(".db"):
                    os.remove(os.path.join(configured, name))
        else:
            self._own_dir = tempfile.mkdtemp(prefix="tessera-server-metrics-")
            os.environ[MULTIPROC_ENV] = self._own_dir
        grpc_sock = _reserve(settings.host, settings.port)
        self._held.append(grpc_sock)
        update: dict[str, object] = {"port": grpc_sock.getsockname()[1], "metrics_port": -1}
        if settings.http_port >= 0:
            http_sock = _reserve(settings.host, settings.http_port)
            self._held.append(http_sock)
            update["http_port"] = http_sock.getsockname()[1]
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(QueueDepthCollector(BrokerProbe(settings)))
        self._exporter = serve_registry(registry, settings.metrics_port, settings.host)
        return settings.model_copy(update=update)

    def _supervise(self, settings: Settings) -> int:
        spawn = multiprocessing.get_context("spawn")
        children: list[BaseProcess] = []
        for index in range(self._processes):
            started = spawn.Process(target=_child, args=(settings, index), name=f"tessera-serve-{index}")
            started.start()
            children.append(started)
        # Each child logs "serving" once it has bound the ports.
        log.info("supervising", extra={"address": f"{settings.host}:{settings.port}", "processes": self._processes})
        status = 0
        while True:
            if self._stop.wait(0.5):
                log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace})
                break
            dead = [c for c in children if not c.is_alive()]
            if dead:
                log.error("a server process exited; stopping the others", extra={"exitcode": dead[0].exitcode})
                status = 1
                break
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(timeout=settings.shutdown_grace + 15)
            if child.is_alive():
                child.kill()
                child.join(timeout=5)
            if child.pid is not None:
                mark_process_dead(child.pid)  # type: ignore[no-untyped-call]
        return status

    def _close(self) -> None:
        if self._exporter is not None:
            self._exporter.stop()
        for sock in self._held:
            sock.close()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            if os.environ.get(MULTIPROC_ENV) == self._own_dir:
                del os.environ[MULTIPROC_ENV]
