"""The one way server and workers build their asyncio Redis client: one Redis, or a Redis Cluster.

A cluster is named by its scheme, `redis+cluster://host:port[,host:port...][/0]` (or
`rediss+cluster://` for TLS): the hosts are startup nodes, the client learns the slot map from
them. Every key that must share a slot with another one in a multi-key command (MGET, a Lua
script) carries a hash tag (`server/widgetdata/key.py`); everything else is one key per command.
Celery's Redis transport does not speak Cluster, so a cluster `REDIS_URL` needs a `BROKER_URL` of
its own (server/config.py refuses the settings otherwise).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.connection import parse_url

from server.config import REDIS_CLUSTER_SCHEMES, names_redis_cluster

__all__ = ["RedisClient", "cluster_nodes", "is_cluster_url", "make_redis", "plain_url"]

# What the rest of the code holds: both answer the same single-key and same-slot commands.
RedisClient = aioredis.Redis | RedisCluster

# Connections one process keeps to one Redis. Past them a command waits for a free one (up to the
# socket timeout) instead of failing: redis-py's default pool raises MaxConnectionsError at 100,
# which under load (more calls in flight than that) made the cache take Redis for down and send
# every read to PostgreSQL (seen by bench/load_ceiling.py).
POOL_CONNECTIONS = 128
POOL_WAIT_SECONDS = 5.0


def is_cluster_url(url: str) -> bool:
    return names_redis_cluster(url)


def _netloc_hosts(parts: SplitResult) -> tuple[str, list[str]]:
    """The credentials (`user:pass@`, kept whole) and the comma-separated host:port list."""
    credentials, _, hosts = parts.netloc.rpartition("@")
    return (credentials + "@" if credentials else ""), [h for h in hosts.split(",") if h.strip()]


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The startup nodes a cluster URL names; ValueError for a URL that names none."""
    _, hosts = _netloc_hosts(urlsplit(url))
    nodes: list[tuple[str, int]] = []
    for item in hosts:
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"a Redis Cluster node must be host:port, not {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError("a redis+cluster:// URL names at least one host:port")
    return nodes


def plain_url(url: str) -> str:
    """The URL of the first node with a plain scheme (credentials and query kept): what a
    one-node client or a tool such as redis-cli is given."""
    parts = urlsplit(url)
    scheme = REDIS_CLUSTER_SCHEMES.get(parts.scheme.lower(), parts.scheme)
    credentials, hosts = _netloc_hosts(parts)
    return SplitResult(scheme, credentials + (hosts[0] if hosts else ""), parts.path, parts.query, "").geturl()


def make_redis(url: str) -> RedisClient:
    # A restarted Redis leaves every pooled connection dead: one immediate retry on a fresh
    # connection hides that, while a Redis that is really down still fails fast (refused).
    retry = Retry(NoBackoff(), 1)
    if not is_cluster_url(url):
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_CONNECTIONS,
            timeout=POOL_WAIT_SECONDS,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=retry,
            retry_on_error=[redis_errors.ConnectionError],
        )
        return aioredis.Redis.from_pool(pool)  # the client closes its pool
    kwargs: dict[str, Any] = parse_url(plain_url(url))  # type: ignore[no-untyped-call]
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_nodes(url)],
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        ssl=urlsplit(url).scheme.lower().startswith("rediss"),
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=retry,
        retry_on_error=[redis_errors.ConnectionError],
    )
