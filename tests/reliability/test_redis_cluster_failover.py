"""A Redis Cluster master SIGKILLed under widget-data reads (issue 15): while its replica is
promoted, reads keep answering from tier 2 or by computing, never with an error; once the
cluster is whole again the cache is served from Redis (tier 1) on the promoted node, and an
invalidation made after the failover is seen."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from server.widgetdata.key import generation_key
from tests.harness.kit import Kit
from tests.harness.redis_cluster import REDIS_SERVER, RedisClusterProcesses, start_redis_cluster
from tests.harness.server import ServerHandle, start_in_thread

COMPUTED, MEMORY = w.DATA_SOURCE_COMPUTED, w.DATA_SOURCE_MEMORY


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"{REDIS_SERVER} is not installed")
    with start_redis_cluster(tmp_path_factory.mktemp("failover"), masters=3, replicas=1) as started:
        yield started


@pytest.fixture(scope="module")
def served(settings: Settings, migrated: str, cluster: RedisClusterProcesses) -> Iterator[tuple[ServerHandle, str]]:
    prefix = f"failover-{uuid.uuid4().hex[:6]}:"
    handle = start_in_thread(settings.model_copy(update={"redis_url": cluster.url, "redis_prefix": prefix}))
    try:
        yield handle, prefix
    finally:
        handle.stop()


def test_reads_survive_a_master_failover_and_the_cache_comes_back(
    served: tuple[ServerHandle, str], cluster: RedisClusterProcesses, auth, facility: str
) -> None:
    handle, prefix = served
    md = auth("fay", "editor", facility)
    with grpc.insecure_channel(handle.address) as channel:
        widgets = widget_pb2_grpc.WidgetServiceStub(channel)
        queries = query_pb2_grpc.QueryServiceStub(channel)
        kit = Kit(queries, dashboard_pb2_grpc.DashboardServiceStub(channel), widgets, md, facility)
        query = kit.query("SELECT 'before' AS v, clock_timestamp() AS at")
        widget = kit.widget(kit.board(), query)
        request = w.GetWidgetDataRequest(widget_id=widget.id)
        assert widgets.GetWidgetData(request, metadata=md, timeout=30).source == COMPUTED
        assert widgets.GetWidgetData(request, metadata=md, timeout=30).source == MEMORY

        # Reads at a steady pace from another thread while the master of the query's slot dies.
        sources: Counter[str] = Counter()
        errors: list[str] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                try:
                    data = widgets.GetWidgetData(request, metadata=md, timeout=30)
                    sources[w.DataSource.Name(data.source)] += 1
                except grpc.RpcError as error:
                    errors.append(f"{error.code().name}: {error.details()}")
                time.sleep(0.02)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(0.3)
        victim, promoted, failover_s = cluster.fail_over(generation_key(prefix, query.id))
        time.sleep(2.0)  # reads after the failover, on the new topology
        stop.set()
        reader.join(timeout=60)
        assert not errors, errors[:5]
        assert promoted != victim
        assert sources["DATA_SOURCE_MEMORY"] > 0 and sum(sources.values()) > 50, sources

        # The cache is Redis's again: a hit from tier 1 on the promoted node.
        deadline = time.monotonic() + 10
        while widgets.GetWidgetData(request, metadata=md, timeout=30).source != MEMORY:
            assert time.monotonic() < deadline, "tier 1 never answered again after the failover"
            time.sleep(0.1)

        # An invalidation after the failover (a new query version) is seen at once.
        changed = q.Query(id=query.id, sql="SELECT 'after' AS v, clock_timestamp() AS at")
        queries.UpdateQuery(
            q.UpdateQueryRequest(query=changed, update_mask={"paths": ["sql"]}), metadata=md, timeout=30
        )
        after = widgets.GetWidgetData(request, metadata=md, timeout=30)
        assert after.source == COMPUTED
        assert widgets.GetWidgetData(request, metadata=md, timeout=30).source == MEMORY
    print(f"failover: {failover_s:.1f} s; reads by source during it: {dict(sources)}")
