"""What `Client` and `AsyncClient` share, apart from their I/O: settings, channel options, stubs,
deadlines, token refresh and the retry decision. Each class keeps only its own blocking or
awaiting loop."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Sequence
from types import EllipsisType
from typing import Any

import grpc

from tessera_client import rpcs
from tessera_client.credentials import CallAuth, TokenSource
from tessera_client.errors import ApiError, DeadlineExceededError
from tessera_client.retry import RetryPolicy, is_refusal
from tessera_client.rpcs import Req

__all__ = ["LSN_METADATA_KEY", "MAX_MESSAGE_BYTES", "CallCore", "OnRetry", "balanced_target", "channel_options"]

# Told of every retry the client makes: (the rpc's full name, the error retried, the delay before
# it). Retries are otherwise invisible to the caller (bench/soak.py counts refusals with it).
OnRetry = Callable[[str, ApiError, float], None]

log = logging.getLogger("tessera_client")

# Widget data and query results can be large; the gRPC default is 4 MiB.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


# The WAL position of the caller's last write, from the server; sent back so that any server
# process answers this client's later reads no older than its writes (read replicas).
LSN_METADATA_KEY = "x-tessera-lsn"


def channel_options(options: Sequence[tuple[str, Any]], *, balanced: bool = False) -> list[tuple[str, Any]]:
    """Message limits for Tessera's large frames, round robin over several addresses, then the
    caller's own options (which win)."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        *((("grpc.lb_policy_name", "round_robin"),) if balanced else ()),
        *options,
    ]


def balanced_target(target: str | Sequence[str]) -> tuple[str, bool]:
    """A gRPC target for one address or several, and whether to balance over them. Several
    ("h1:p1,h2:p2" or a list) become one `ipv4:`/`ipv6:` target of their addresses (names
    resolved once, here) with `round_robin`: each call goes to the next server that is up, and
    a server that goes away leaves the rotation. A `dns:///name:port` target is balanced too, over
    every address the name has (a Kubernetes headless service)."""
    addresses = [a.strip() for a in (target.split(",") if isinstance(target, str) else target) if a.strip()]
    if not addresses:
        raise ValueError("no server address given")
    if len(addresses) == 1:
        return addresses[0], addresses[0].startswith("dns:")
    resolved = [_resolved(a) for a in addresses]
    families = {family for family, _ in resolved}
    if len(families) != 1:
        raise ValueError("the addresses to balance over are all IPv4 or all IPv6")
    return f"{families.pop()}:" + ",".join(hostport for _, hostport in resolved), True


def _resolved(address: str) -> tuple[str, str]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"a server address is host:port, not {address!r}")
    host = host.strip("[]")
    info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    if not info:
        raise ValueError(f"{host} has no address")
    family, *_, sockaddr = info[0]
    if family == socket.AF_INET6:
        return "ipv6", f"[{sockaddr[0]}]:{port}"
    return "ipv4", f"{sockaddr[0]}:{port}"


def _lsn_value(text: str) -> int | None:
    high, sep, low = text.partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16) if sep else None
    except ValueError:
        return None


class CallCore:
    """The state and decisions of a client's calls; subclasses own the channel and the loops."""

    _channel: Any

    def _setup(
        self,
        *,
        token: TokenSource | None,
        link_token: str | None,
        correlation_id: str,
        timeout: float | None,
        retry: RetryPolicy,
        stall_timeout: float,
        sleep: Callable[[float], Any],
        clock: Callable[[], float],
        on_retry: OnRetry | None = None,
    ) -> None:
        self._auth = CallAuth(token, link_token, correlation_id)
        self._on_retry = on_retry
        self.timeout = timeout
        self.retry = retry
        self.stall_timeout = stall_timeout
        self._sleep = sleep
        self._clock = clock
        self._stubs: dict[str, Any] = {}
        self._lsn: tuple[int, str] | None = None

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = self._auth.metadata()
        return pairs if self._lsn is None else (*pairs, (LSN_METADATA_KEY, self._lsn[1]))

    def _saw(self, trailing: Any) -> None:
        """Keeps the highest write position the server reported (see LSN_METADATA_KEY)."""
        for key, value in trailing or ():
            if key == LSN_METADATA_KEY and isinstance(value, str):
                lsn = _lsn_value(value)
                if lsn is not None and (self._lsn is None or lsn > self._lsn[0]):
                    self._lsn = (lsn, value)

    def _method(self, rpc: rpcs.Rpc[Any, Any]) -> Any:
        stub = self._stubs.get(rpc.service)
        if stub is None:
            stub = self._stubs[rpc.service] = rpcs.STUBS[rpc.service](self._channel)
        return getattr(stub, rpc.method)

    @staticmethod
    def _checked(rpc: rpcs.Rpc[Req, Any], request: Req) -> Req:
        if not isinstance(request, rpc.request_type):
            raise TypeError(f"{rpc.method} takes {rpc.request_type.__name__}, not {type(request).__name__}")
        return request

    def _prepared(self, rpc: rpcs.Rpc[Req, Any], request: Req) -> Req:
        """The request as every attempt sends it: checked, and a KEYED rpc's request_id filled in
        once, so every attempt is the same logical call."""
        return rpcs.with_request_ids(rpc, self._checked(rpc, request), lambda: str(uuid.uuid4()))

    def _deadline(self, timeout: float | EllipsisType | None) -> float | None:
        seconds = self.timeout if timeout is ... else timeout
        return None if seconds is None else self._clock() + seconds

    def _remaining(self, deadline: float | None, rpc: rpcs.Rpc[Any, Any], last: ApiError | None) -> float | None:
        if deadline is None:
            return None
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise last or DeadlineExceededError("the call's deadline passed", method=rpc.full_name)
        return remaining

    def _refresh_after(self, error: ApiError, refreshed: bool) -> bool:
        """UNAUTHENTICATED with a token function: fetch a new token and try once more (the
        server refuses before any handler runs, so this is safe for every rpc)."""
        if error.code() is grpc.StatusCode.UNAUTHENTICATED and self._auth.refreshable and not refreshed:
            self._auth.refresh()
            return True
        return False

    def _retry_delay(
        self, policy: RetryPolicy, attempt: int, last: ApiError, rpc: rpcs.Rpc[Any, Any], deadline: float | None
    ) -> float:
        """How long to wait before the next attempt; raises `last` when there is none (not
        retryable, attempts used up, or the wait would pass the deadline)."""
        delay = policy.delay_before_retry(attempt, last, rpc.idempotency)
        if delay is None or (deadline is not None and self._clock() + delay >= deadline):
            raise last
        log.info("retrying %s in %.3f s after %s (attempt %d)", rpc.method, delay, last.code().name, attempt)
        self._retried(rpc.full_name, last, delay)
        return delay

    def _stream_retry_delay(
        self, attempt: int, last: ApiError, rpc: rpcs.Rpc[Any, Any], deadline: float | None, received: bool
    ) -> float:
        """How long to wait before opening a stream again; raises `last` unless the server
        refused it before its first message (then nothing of it was seen or done: any stream,
        even one that changes something, may be opened again)."""
        if received or not is_refusal(last):
            raise last
        return self._retry_delay(self.retry, attempt, last, rpc, deadline)

    def _retried(self, method: str, error: ApiError, delay: float) -> None:
        if self._on_retry is not None:
            self._on_retry(method, error, delay)
