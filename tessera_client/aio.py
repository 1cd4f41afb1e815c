"""The asyncio client (grpc.aio): the same rpcs, retries, deadlines, token handling, pagination,
resumable job watches and verified downloads as `Client`, for asyncio programs. It offers the
typed core (`call`, `stream`, `pages`, `follow`, `download`); build requests with the proto
classes:

    async with AsyncClient(address, token=token) as client:
        board = await client.call(rpcs.GET_DASHBOARD, GetDashboardRequest(id=board_id))
        async for board in client.pages(rpcs.LIST_DASHBOARDS, ListDashboardsRequest(), "dashboards"):
            ...
        job = await client.follow(MATERIALIZATION, job_id, on_progress=print)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import EllipsisType, TracebackType
from typing import Any

import grpc
import grpc.aio

from dashboard.v1 import export_pb2 as e
from tessera_client import rpcs
from tessera_client.client import DEFAULT_ADDRESS, DEFAULT_STALL_TIMEOUT, DEFAULT_TIMEOUT
from tessera_client.core import CallCore, OnRetry, balanced_target, channel_options
from tessera_client.credentials import TokenSource
from tessera_client.errors import ApiError, UnavailableError, error_from_rpc
from tessera_client.jobs import Download, DownloadSink, Follow, JobKind
from tessera_client.retry import DEFAULT_RETRY, Idempotency, RetryPolicy
from tessera_client.rpcs import Req, Resp

__all__ = ["AsyncClient"]

log = logging.getLogger("tessera_client")


class AsyncClient(CallCore):
    """See `Client` for the arguments; `sleep` here is a coroutine function."""

    _channel: grpc.aio.Channel

    def __init__(
        self,
        target: str | Sequence[str] | grpc.aio.Channel = DEFAULT_ADDRESS,
        *,
        token: TokenSource | None = None,
        link_token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        correlation_id: str = "",
        sleep: Callable[[float], Any] = asyncio.sleep,
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
        if isinstance(target, grpc.aio.Channel):
            self._channel, self._owns_channel = target, False
        else:
            address, balanced = balanced_target(target)
            self._channel = (
                grpc.aio.secure_channel(address, credentials, options=channel_options(options, balanced=balanced))
                if credentials is not None
                else grpc.aio.insecure_channel(address, options=channel_options(options, balanced=balanced))
            )
            self._owns_channel = True

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def wait_ready(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise UnavailableError(f"no connection to the server within {timeout:g} s") from None

    async def call(
        self,
        rpc: rpcs.Unary[Req, Resp],
        request: Req,
        *,
        timeout: float | EllipsisType | None = ...,  # noqa: ASYNC109  (a gRPC deadline, sent to the server)
        retry: RetryPolicy | None = None,
    ) -> Resp:
        """As `Client.call`."""
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
                call = method(request, metadata=self._metadata(), timeout=remaining)
                response: Resp = await call
                self._saw(await call.trailing_metadata())
                return response
            except grpc.aio.AioRpcError as exc:
                last = error_from_rpc(exc, rpc.full_name)
            if self._refresh_after(last, refreshed):
                refreshed, attempt = True, attempt - 1
                continue
            await self._sleep(self._retry_delay(policy, attempt, last, rpc, deadline))

    async def stream(
        self,
        rpc: rpcs.ServerStream[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  (a gRPC deadline, sent to the server)
    ) -> AsyncIterator[Resp]:
        """As `Client.stream`."""
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
                async for message in call:
                    received = True
                    yield message
                return
            except grpc.aio.AioRpcError as exc:
                last = error_from_rpc(exc, rpc.full_name)
            finally:
                call.cancel()
            await self._sleep(self._stream_retry_delay(attempt, last, rpc, deadline, received))

    async def pages(self, rpc: rpcs.Unary[Req, Resp], request: Req, items: str) -> AsyncIterator[Any]:
        current: Any = type(request)()
        current.CopyFrom(request)
        while True:
            response: Any = await self.call(rpc, current)
            for item in getattr(response, items):
                yield item
            if not response.next_page_token:
                return
            current.page_token = response.next_page_token

    async def follow(
        self,
        kind: JobKind[Any],
        job_id: str,
        *,
        on_progress: Callable[[Any], None] | None = None,
        start: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109  (a gRPC deadline, sent to the server)
        stall_timeout: float | None = None,
    ) -> Any:
        """As `Client.follow`."""
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
            error: ApiError | None = None
            stalled = False
            try:
                while True:
                    try:
                        event = await asyncio.wait_for(call.read(), follow.stall)
                    except TimeoutError:
                        stalled = True
                        break
                    if event is grpc.aio.EOF:
                        break
                    follow.on_event(event)
                    if follow.done:
                        return follow.latest
            except grpc.aio.AioRpcError as exc:
                error = error_from_rpc(exc, kind.watch.full_name)
            finally:
                call.cancel()
            delay = follow.stream_ended(error, stalled)
            if delay is None:
                follow.row_read(await self.call(kind.get, kind.get_request(job_id)))
                if follow.done:
                    break
                delay = follow.ended_early()
            elif error is not None:
                self._retried(kind.watch.full_name, error, delay)
            if delay:
                await self._sleep(delay)
        return follow.latest

    async def download(
        self,
        export_id: str,
        destination: str | os.PathLike[str],
        *,
        chunk_size: int = 0,
        on_bytes: Callable[[int, int], None] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  (a gRPC deadline, sent to the server)
    ) -> Download:
        """As `Client.download` (file writes are small and local, so they stay synchronous)."""
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
                    async for part in call:
                        if part.WhichOneof("part") == "file":
                            sink.announce(part.file)
                        else:
                            sink.write(part.chunk)
                            failures = 0
                    return Download(sink.commit(), sink.expected or e.ExportFile())
                except grpc.aio.AioRpcError as exc:
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
                await self._sleep(delay)
        except BaseException:
            sink.abort()
            raise
