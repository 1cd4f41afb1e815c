"""A real Celery worker in a subprocess, for tests and benchmarks: started with the environment
the caller gives (database, Redis, broker, key prefix), ready when it logs so, killed by
process group (SIGKILL kills the main process and its prefork children at once)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

__all__ = ["WorkerProcess"]


class WorkerProcess:
    def __init__(
        self,
        env: Mapping[str, str],
        *,
        queues: str = "materialize,maintenance",
        concurrency: int = 2,
        cwd: str | None = None,
    ) -> None:
        # Metrics on a free port unless the caller names one (tests run side by side).
        self._env = {**os.environ, "C_FORCE_ROOT": "1", "TESSERA_WORKER_METRICS_PORT": "0", **env}
        self._queues = queues
        self._concurrency = concurrency
        self._cwd = cwd or str(Path(__file__).resolve().parent.parent)
        self._log = Path(tempfile.mkstemp(prefix="tessera-worker-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        return self._log.read_text(errors="replace")

    @property
    def metrics_port(self) -> int | None:
        """The port of the worker's /metrics, from its start-up log line (text or JSON)."""
        found = re.search(r"worker metrics exported\W.*?address\W+[\w.:\[\]-]*?:(\d+)", self.log)
        return int(found.group(1)) if found else None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "-Q",
            self._queues,
            "--pool",
            "prefork",
            "-c",
            str(self._concurrency),
            "-n",
            f"test-{uuid.uuid4().hex[:8]}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ]
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=self._cwd, env=self._env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.log[-4000:]}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the worker was not ready within {timeout} s:\n{self.log[-4000:]}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: no clean-up, no acks, like a lost machine."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
