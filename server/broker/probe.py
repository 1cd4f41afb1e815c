"""What the server and the workers ask the broker, for health and metrics: is it reachable, how
many messages wait in each queue, and which workers answer (and consume which queues).

Synchronous and bounded by a timeout: callers run these in a thread (the server's health loop)
or at scrape time (a metrics collector), never per rpc. One code path serves Redis and RabbitMQ:
a passive queue_declare reports a queue's ready messages on both (on Redis, kombu sums the
priority lists; a queue with nothing waiting has no key there and answers NOT_FOUND, i.e. 0).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from amqp.exceptions import ChannelError
from kombu import Connection

from server.broker.app import broker_transport_options, broker_url, make_celery
from server.config import Settings

__all__ = ["BrokerProbe", "QueueDepths", "RollCall"]

log = logging.getLogger("tessera.broker")


@dataclass(frozen=True)
class QueueDepths:
    """Messages waiting per queue; `reachable` False (and no depths) when the broker did not answer."""

    reachable: bool
    depths: dict[str, int]


@dataclass(frozen=True)
class RollCall:
    """The workers that answered, each with the queues it consumes."""

    workers: dict[str, frozenset[str]]

    @property
    def queues(self) -> frozenset[str]:
        return frozenset().union(*self.workers.values()) if self.workers else frozenset()


class BrokerProbe:
    def __init__(self, settings: Settings, timeout: float | None = None) -> None:
        self._settings = settings
        self._url = broker_url(settings)
        self._timeout = settings.health_probe_timeout_seconds if timeout is None else timeout
        self._celery: Any = None
        self._app_lock = threading.Lock()  # one thread at a time on the roll call's app

    def _transport_options(self) -> dict[str, Any]:
        # Every socket read bounded: a broker that accepts and then says nothing (a paused
        # Redis, a black-holed route) must not hold the caller's thread.
        return {
            **broker_transport_options(self._settings),
            "socket_timeout": self._timeout,
            "socket_connect_timeout": self._timeout,
        }

    def _connection(self) -> Connection:
        return Connection(self._url, connect_timeout=self._timeout, transport_options=self._transport_options())

    def _connect(self, conn: Connection) -> None:
        # One attempt, no back-off: a probe reports, it does not wait for the broker to return.
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=self._timeout)  # type: ignore[arg-type]  # a float works

    def answers(self) -> bool | None:
        """True when the broker accepts a connection and opens a channel; False when it refuses
        or fails (the reason is logged); None when it did not answer within the timeout, which
        on a saturated server may be this thread's wait for the interpreter, not the broker."""
        try:
            with self._connection() as conn:
                self._connect(conn)
                channel: Any = conn.channel()
                channel.close()
            return True
        except Exception as exc:  # any failure means unreachable
            if timed_out(exc):
                return None
            log.warning("broker unreachable: %r", exc)
            return False

    def depths(self, queues: Iterable[str]) -> QueueDepths:
        try:
            with self._connection() as conn:
                self._connect(conn)
                depths = {name: _depth(conn, name) for name in queues}
        except Exception as exc:
            log.warning("broker unreachable for queue depths: %r", exc)
            return QueueDepths(False, {})
        return QueueDepths(True, depths)

    def roll_call(self) -> RollCall:
        """Asks every worker for its queues, waiting the probe timeout for answers (remote
        control runs in each worker's main process, so busy children do not silence it)."""
        with self._app_lock:
            if self._celery is None:
                self._celery = make_celery(self._settings)
                self._celery.conf.update(
                    broker_transport_options=self._transport_options(),
                    broker_connection_timeout=self._timeout,
                    broker_connection_max_retries=1,
                )
            answers = self._celery.control.inspect(timeout=self._timeout).active_queues() or {}
        return RollCall(
            {
                str(worker): frozenset(str(queue.get("name", "")) for queue in (queues or ()))
                for worker, queues in answers.items()
            }
        )

    def close(self) -> None:
        # After a roll call still running (its caller was cancelled, its thread was not): a kombu
        # connection closed under another thread's read can leave this one reading for good.
        with self._app_lock:
            if self._celery is not None:
                self._celery.close()
                self._celery = None


def _depth(conn: Connection, queue: str) -> int:
    channel: Any = conn.channel()
    try:
        if conn.transport.driver_type == "redis":
            # kombu's passive declare asks EXISTS, which its key prefix does not cover; the
            # channel's own length count (LLEN over the priority lists) does.
            return int(channel._size(queue))
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError:  # no such queue (or, on Redis, nothing waiting in it)
        return 0
    finally:
        with contextlib.suppress(Exception):  # a channel the broker closed after NOT_FOUND (AMQP)
            channel.close()


def timed_out(error: BaseException) -> bool:
    """Whether `error`, or what it was raised from or while handling (kombu re-raises the
    transport's errors as its own), is a timeout."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, (TimeoutError, redis.exceptions.TimeoutError)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
