"""A server and a real Celery worker wired to the loopback receivers of `receivers.py` (an SMTP
server, optionally requiring STARTTLS, and an HTTP receiver for webhooks): what the report, alert
and SMTP TLS tests deliver to. Exports are stored in a temporary directory of the stack's own."""

from __future__ import annotations

import shutil
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from server.config import Settings
from tests.harness.receivers import HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import jobs_settings, worker_env
from workers.testing import WorkerProcess

__all__ = ["MAIL_FROM", "NotifyStack", "notify_stack", "until"]

T = TypeVar("T")
MAIL_FROM = "reports@tessera.test"
BACKOFF_SECONDS = 0.05  # webhook retries, kept short so a retry is seen in a test's time


@dataclass
class NotifyStack:
    settings: Settings
    server: ServerHandle
    worker: WorkerProcess
    smtp: SmtpReceiver
    http: HttpReceiver
    env: dict[str, str]
    queues: str

    def restart_worker(self) -> None:
        """Kills the worker (no clean shutdown) and starts another on the same queues."""
        self.worker.kill()
        self.worker = WorkerProcess(self.env, queues=self.queues, concurrency=1).start()


@contextmanager
def notify_stack(
    settings: Settings,
    *,
    queues: str,
    smtp_tls: ssl.SSLContext | None = None,
    worker_extra: Mapping[str, str] | None = None,
    **settings_extra: Any,
) -> Iterator[NotifyStack]:
    """`settings` of a migrated database; yields a running server and worker (one process on
    `queues`, its metrics port in its INFO log) that deliver to the receivers; stops all.
    `smtp_tls`: the SMTP server offers STARTTLS with it and refuses mail in clear;
    `worker_extra`: more of the worker's environment (TESSERA_SMTP_STARTTLS, ...)."""
    export_dir = Path(tempfile.mkdtemp(prefix="tessera-notify-"))
    with smtp_receiver(smtp_tls) as (smtp, smtp_port), http_receiver() as http:
        own = jobs_settings(
            settings,
            settings.redis_url,
            export_storage_url=f"file://{export_dir}",
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_from=MAIL_FROM,
            webhook_backoff_seconds=BACKOFF_SECONDS,
            **settings_extra,
        )
        env = worker_env(
            own,
            TESSERA_SMTP_HOST="127.0.0.1",
            TESSERA_SMTP_PORT=str(smtp_port),
            TESSERA_SMTP_FROM=MAIL_FROM,
            TESSERA_WEBHOOK_BACKOFF_SECONDS=str(BACKOFF_SECONDS),
            TESSERA_LOG_LEVEL="INFO",  # the metrics port is read from the log
            **(worker_extra or {}),
        )
        handle = start_in_thread(own)
        stack = NotifyStack(
            own, handle, WorkerProcess(env, queues=queues, concurrency=1).start(), smtp, http, env, queues
        )
        try:
            yield stack
        finally:
            stack.worker.stop()
            handle.stop()
            shutil.rmtree(export_dir, ignore_errors=True)


def until(what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.1) -> T:
    """The first truthy answer of `probe`, polled every `interval` seconds, or AssertionError
    naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
