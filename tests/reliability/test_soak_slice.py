"""A 45-second slice of the soak (issue 15; the 30-minute run is `python -m bench --only soak
--full`): mixed traffic (cached and cold reads, lists, writes with etags, materializations
followed through their watch) across two `tessera serve` processes and a worker, through the
client's round robin. Zero errors, and after the first window RSS, open descriptors and database
connections stay flat."""

from __future__ import annotations

import json

import grpc
import pytest

from bench.harness import Bench
from bench.soak import soak
from server.config import Settings
from server.devtools.demo_data import install as install_demo_data
from tests.harness.server import ServerHandle
from tests.harness.services import TestServices

DURATION_S = 45.0
WINDOW_S = 5.0
# Flat, with room for what a short run still warms up (allocator arenas, pool connections).
RSS_GROWTH_MIB = 25
FD_GROWTH = 8
CONNECTION_GROWTH = 4


@pytest.mark.slow
@pytest.mark.timeout(DURATION_S + 300)
def test_mixed_traffic_across_two_servers_stays_flat(
    services: TestServices, settings: Settings, migrated: str, server: ServerHandle, channel: grpc.Channel
) -> None:
    install_demo_data(migrated)
    windows = soak(Bench(services, settings, server, channel), DURATION_S, WINDOW_S)
    *figures, summary = windows
    for window in figures:
        print(json.dumps({k: window[k] for k in ("at_s", "rpcs", "errors", "servers", "db_connections")}))
    print(json.dumps(summary))
    samples = [sample for window in figures for sample in window["error_samples"]]
    assert summary["errors"] == 0, samples
    assert summary["windows"] >= DURATION_S // WINDOW_S - 1
    served = {name for window in figures for name in window["rpcs"]}
    assert {"GetWidgetData(hit)", "GetWidgetData(cold)", "UpdateDashboard", "Materialize+watch"} <= served
    for warm, end in zip(summary["rss_mib_after_warmup"], summary["rss_mib_at_end"], strict=True):
        assert end <= warm + RSS_GROWTH_MIB, summary
    for warm, end in zip(summary["fds_after_warmup"], summary["fds_at_end"], strict=True):
        assert end <= warm + FD_GROWTH, summary
    assert summary["db_connections_at_end"] <= summary["db_connections_after_warmup"] + CONNECTION_GROWTH, summary
