"""Which client a REDIS_URL makes (one Redis or a cluster), and the settings a cluster needs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from server.config import Settings
from server.redis_client import cluster_nodes, is_cluster_url, make_redis, plain_url


def test_cluster_urls_name_their_startup_nodes() -> None:
    url = "redis+cluster://user:secret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002/0"
    assert is_cluster_url(url) and is_cluster_url("rediss+cluster://h:1") and not is_cluster_url("redis://h:1")
    assert cluster_nodes(url) == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)]
    assert plain_url(url) == "redis://user:secret@10.0.0.1:7000/0"
    assert plain_url("rediss+cluster://h:1,g:2?ssl_cert_reqs=none") == "rediss://h:1?ssl_cert_reqs=none"
    for bad in ("redis+cluster://", "redis+cluster://host-without-port", "redis+cluster://h:port"):
        with pytest.raises(ValueError, match="host:port"):
            cluster_nodes(bad)


async def test_make_redis_builds_the_client_the_url_names() -> None:
    one = make_redis("redis://127.0.0.1:6379/0")
    cluster = make_redis("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
    try:
        assert isinstance(one, Redis) and isinstance(cluster, RedisCluster)
    finally:
        await one.aclose()
        await cluster.aclose()


def test_a_cluster_cannot_be_the_celery_broker() -> None:
    with pytest.raises(ValidationError, match="BROKER_URL"):
        Settings(redis_url="redis+cluster://h:7000")
    with pytest.raises(ValidationError, match="BROKER_URL"):
        Settings(redis_url="redis://h:6379", broker_url="redis+cluster://h:7000")
    assert Settings(redis_url="redis+cluster://h:7000", broker_url="amqp://guest@h//").effective_broker_url.startswith(
        "amqp"
    )
    with pytest.raises(ValidationError, match="hash tags"):
        Settings(redis_prefix="{tenant}:")
