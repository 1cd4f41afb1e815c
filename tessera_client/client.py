"""The synchronous client: one channel, the five services, retries, deadlines, pagination,
resumable job watches and verified downloads.

    from tessera_client import Client

    with Client("127.0.0.1:50051", token=os.environ["TESSERA_TOKEN"]) as client:
        for board in client.dashboards.list(tags=["icu"]):
            print(board.title)

Every call has a deadline (`timeout`, default 30 s, covering all its attempts) and is retried
per `RetryPolicy` when its rpc is safe to repeat, or whatever the rpc when the server refused it
before doing anything (overload, rate limit; see `tessera_client.retry`). Any rpc is
reachable typed through `client.call(rpcs.X, request)` / `client.stream(...)`; the service
helpers (`client.dashboards`, `.widgets`, `.queries`, `.exports`, `.shares`) wrap them with
keyword arguments and Python values.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import EllipsisType, TracebackType
from typing import Any, TypeVar

import grpc

from dashboard.v1 import export_pb2 as e
from tessera_client import rpcs
from tessera_client.alerts import Alerts
from tessera_client.core import CallCore, OnRetry, balanced_target, channel_options
from tessera_client.credentials import TokenSource
from tessera_client.errors import ApiError, UnavailableError, error_from_rpc
from tessera_client.jobs import Download, DownloadSink, Follow, JobKind
from tessera_client.reports import Reports
from tessera_client.retry import DEFAULT_RETRY, Idempotency, RetryPolicy
from tessera_client.rpcs import Req, Resp
from tessera_client.search import Search
from tessera_client.services import Dashboards, Exports, Queries, Shares, Widgets
from tessera_client.tls import credentials_from_env

__all__ = ["DEFAULT_ADDRESS", "Client", "Download"]

log = logging.getLogger("tessera_client")

DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 30.0
# Longer than a few server heartbeats (10 s by default): a watch this quiet is dead; reopen it.
DEFAULT_STALL_TIMEOUT = 45.0

Job = TypeVar("Job")


class Client(CallCore):
    """A Tessera client over one channel.

    target          "host:port"; several ("h1:p1,h2:p2" or a list) for client-side round robin
                    over them; "dns:///name:port" for round robin over a name's addresses
                    (a Kubernetes headless service); or a grpc.Channel you built yourself.
    token           a bearer JWT, or a function returning a current one (see CachedToken).
    link_token      a public link token instead of a JWT (reads one published dashboard).
    timeout         default deadline of a call in seconds, across its retries; None for none.
    retry           the RetryPolicy; NO_RETRY turns retries off.
    credentials     grpc.ssl_channel_credentials(...) for TLS; plaintext otherwise.
    correlation_id  sent as x-correlation-id so the server's log lines carry it.
    on_retry        called as on_retry(method, error, delay) before each retry (for metrics).
    """

    _channel: grpc.Channel

    def __init__(
        self,
        target: str | Sequence[str] | grpc.Channel = DEFAULT_ADDRESS,
        *,
        token: TokenSource | None = None,
        link_token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        correlation_id: str = "",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_retry: OnRetry | None = None,
    ) -> None:
        self._setup(
            token=token,
            link_token=link_token,
            correlation_id=correlation_id,
            timeout=timeout,
            retry=retry,
            stall_timeout=stall_timeout,
            sleep=sleep,
            clock=clock,
            on_retry=on_retry,
        )
        if isinstance(target, grpc.Channel):
            self._channel, self._owns_channel = target, False
        else:
            address, balanced = balanced_target(target)
            self._channel = (
                grpc.secure_channel(address, credentials, options=channel_options(options, balanced=balanced))
                if credentials is not None
                else grpc.insecure_channel(address, options=channel_options(options, balanced=balanced))
            )
            self._owns_channel = True
        self.dashboards = Dashboards(self)
        self.widgets = Widgets(self)
        self.queries = Queries(self)
        self.exports = Exports(self)
        self.shares = Shares(self)
        self.reports = Reports(self)
        self.alerts = Alerts(self)
        self.search = Search(self)

    @classmethod
    def from_env(cls, **overrides: Any) -> Client:
        """A client for TESSERA_ADDRESS with TESSERA_TOKEN (or TESSERA_LINK_TOKEN), over TLS when
        TESSERA_CA_FILE or TESSERA_CLIENT_CERT_FILE/KEY_FILE are set (see tessera_client.tls)."""
        settings: dict[str, Any] = {"target": os.environ.get("TESSERA_ADDRESS", DEFAULT_ADDRESS)}
        if (credentials := credentials_from_env()) is not None:
            settings["credentials"] = credentials
        if os.environ.get("TESSERA_TOKEN"):
            settings["token"] = os.environ["TESSERA_TOKEN"]
        elif os.environ.get("TESSERA_LINK_TOKEN"):
            settings["link_token"] = os.environ["TESSERA_LINK_TOKEN"]
        return cls(**(settings | overrides))

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Blocks until the channel connects; UnavailableError after `timeout` seconds."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise UnavailableError(f"no connection to the server within {timeout:g} s") from None

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- calls --------------------------------------------------------------------------------

    def call(
        self,
        rpc: rpcs.Unary[Req, Resp],
        request: Req,
        *,
        timeout: float | EllipsisType | None = ...,
        retry: RetryPolicy | None = None,
    ) -> Resp:
        """Calls a unary rpc: ApiError on failure, after the retries the policy allows. A KEYED
        rpc gets a request_id filled in once, so every attempt is the same logical call."""
        policy = retry or self.retry
        request = self._prepared(rpc, request)
        deadline = self._deadline(timeout)
        method = self._method(rpc)
        attempt, refreshed = 0, False
        last: ApiError | None = None
        while True:
            attempt += 1
            remaining = self._remaining(deadline, rpc, last)
            try:
                response: Resp
                response, call = method.with_call(request, metadata=self._metadata(), timeout=remaining)
                self._saw(call.trailing_metadata())
                return response
            except grpc.RpcError as exc:
                last = error_from_rpc(exc, rpc.full_name)
            if self._refresh_after(last, refreshed):
                refreshed, attempt = True, attempt - 1  # a new token is not a retry
                continue
            self._sleep(self._retry_delay(policy, attempt, last, rpc, deadline))

    def stream(
        self, rpc: rpcs.ServerStream[Req, Resp], request: Req, *, timeout: float | None = None
    ) -> Iterator[Resp]:
        """The messages of a server-streaming rpc, as they come; ApiError when it fails. Only a
        refusal before the first message (overload, rate limit) is retried here: resuming later
        is rpc-specific (see `follow` and `download`). `timeout` covers every attempt. Leaving the
        loop early cancels the call."""
        request = self._checked(rpc, request)
        deadline = None if timeout is None else self._clock() + timeout
        method = self._method(rpc)
        attempt = 0
        last: ApiError | None = None
        while True:
            attempt += 1
            remaining = self._remaining(deadline, rpc, last)
            call = method(request, metadata=self._metadata(), timeout=remaining)
            received = False
            try:
                for message in call:
                    received = True
                    yield message
                return
            except grpc.RpcError as exc:
                last = error_from_rpc(exc, rpc.full_name)
            finally:
                call.cancel()
            self._sleep(self._stream_retry_delay(attempt, last, rpc, deadline, received))

    def pages(self, rpc: rpcs.Unary[Req, Resp], request: Req, items: str) -> Iterator[Any]:
        """Every item of a paginated list: calls again with `next_page_token` until it is empty."""
        current: Any = type(request)()
        current.CopyFrom(request)
        while True:
            response: Any = self.call(rpc, current)
            yield from getattr(response, items)
            if not response.next_page_token:
                return
            current.page_token = response.next_page_token

    # --- jobs and downloads -------------------------------------------------------------------

    def follow(
        self,
        kind: JobKind[Any],
        job_id: str,
        *,
        on_progress: Callable[[Any], None] | None = None,
        start: Any = None,
        timeout: float | None = None,
        stall_timeout: float | None = None,
    ) -> Any:
        """Watches a job until it reaches a terminal state and returns that final snapshot,
        calling `on_progress(job)` once per new revision. A dropped or stalled stream (no
        message, not even a heartbeat, for `stall_timeout` s) is reopened with since_revision,
        so no revision is seen twice or skipped; the retry policy bounds reopenings without
        progress. `start` is a snapshot already in hand (the create call's answer): it is
        reported first and the watch begins after it. `timeout` (default none) bounds the wait."""
        follow: Follow[Any] = Follow(
            kind,
            job_id,
            stall=stall_timeout or self.stall_timeout,
            retry=self.retry,
            refresh_after=self._refresh_after,
            on_progress=on_progress,
            start=start,
        )
        deadline = None if timeout is None else self._clock() + timeout
        method = self._method(kind.watch)
        while not follow.done:
            remaining = self._remaining(deadline, kind.watch, follow.last)
            call = method(follow.watch_request(), metadata=self._metadata(), timeout=remaining)
            watchdog = _Watchdog(follow.stall, call.cancel)
            error: ApiError | None = None
            try:
                for event in call:
                    watchdog.kick()
                    follow.on_event(event)
                    if follow.done:
                        return follow.latest
            except grpc.RpcError as exc:
                error = error_from_rpc(exc, kind.watch.full_name)
            finally:
                watchdog.stop()
                call.cancel()
            delay = follow.stream_ended(error, watchdog.fired)
            if delay is None:
                follow.row_read(self.call(kind.get, kind.get_request(job_id)))
                if follow.done:
                    break
                delay = follow.ended_early()
            elif error is not None:
                self._retried(kind.watch.full_name, error, delay)
            if delay:
                self._sleep(delay)
        return follow.latest

    def download(
        self,
        export_id: str,
        destination: str | os.PathLike[str],
        *,
        chunk_size: int = 0,
        on_bytes: Callable[[int, int], None] | None = None,
        timeout: float | None = None,
    ) -> Download:
        """Downloads a SUCCEEDED export to `destination` (a file path, or a directory for the
        server's suggested name). A dropped stream resumes at the byte offset already written;
        the file appears only once its size and sha256 match (DownloadVerificationError, and
        nothing left behind, otherwise)."""
        sink = DownloadSink(export_id, Path(destination), on_bytes)
        deadline = None if timeout is None else self._clock() + timeout
        method = self._method(rpcs.DOWNLOAD_EXPORT)
        failures, refreshed = 0, False
        last: ApiError | None = None
        try:
            while True:
                remaining = self._remaining(deadline, rpcs.DOWNLOAD_EXPORT, last)
                request = e.DownloadExportRequest(id=export_id, chunk_size=chunk_size, offset=sink.received)
                call = method(request, metadata=self._metadata(), timeout=remaining)
                try:
                    for part in call:
                        if part.WhichOneof("part") == "file":
                            sink.announce(part.file)
                        else:
                            sink.write(part.chunk)
                            failures = 0
                    return Download(sink.commit(), sink.expected or e.ExportFile())
                except grpc.RpcError as exc:
                    last = error_from_rpc(exc, rpcs.DOWNLOAD_EXPORT.full_name)
                finally:
                    call.cancel()
                if self._refresh_after(last, refreshed):
                    refreshed = True
                    continue
                failures += 1
                if failures >= self.retry.max_attempts or not self.retry.retryable(last, Idempotency.SAFE):
                    raise last
                delay = self.retry.delay(failures, last)
                log.info("resuming the download of %s at byte %d in %.3f s (%s)", export_id, sink.received, delay, last)
                self._retried(rpcs.DOWNLOAD_EXPORT.full_name, last, delay)
                self._sleep(delay)
        except BaseException:
            sink.abort()
            raise


class _Watchdog:
    """Calls `on_fire` when `kick()` has not been called for `seconds`."""

    def __init__(self, seconds: float, on_fire: Callable[[], object]) -> None:
        self._seconds = seconds
        self._on_fire = on_fire
        self._kicked = threading.Event()
        self._stopped = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._run, name="tessera-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            if not self._kicked.wait(self._seconds):
                if not self._stopped.is_set():
                    self.fired = True
                    self._on_fire()
                return
            self._kicked.clear()

    def kick(self) -> None:
        self._kicked.set()

    def stop(self) -> None:
        self._stopped.set()
        self._kicked.set()
