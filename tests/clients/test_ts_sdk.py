"""The TypeScript SDK over gRPC against a real server and Celery worker: every rpc of the eight
services (the specification's five, reports, alerts and search) called at least once (recorded by a
transport interceptor), the SDK's idempotency table the same as the Python client's, and a watch
whose connection is cut mid-stream resumed with no gap and no repeat."""

from __future__ import annotations

import json
from pathlib import Path

from tessera_client import rpcs
from tessera_client.alert_rpcs import ALERT_RPCS
from tessera_client.report_rpcs import REPORT_RPCS
from tessera_client.search_rpcs import SEARCH_RPCS
from tests.clients.conftest import Stack, run_node


def test_every_rpc_through_the_sdk(node: str, ts_build: Path, stack: Stack) -> None:
    env = {"TESSERA_ADDRESS": stack.address, "TESSERA_TOKEN": stack.token()}
    done = run_node(node, ts_build / "tests/clients/node/every_rpc.js", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    table = (*rpcs.ALL, *REPORT_RPCS, *ALERT_RPCS, *SEARCH_RPCS)
    everything = {rpc.full_name.lstrip("/") for rpc in table}
    assert len(everything) == 47 + 11 + 9 + 4
    assert set(report["answered"]) == everything, sorted(everything - set(report["answered"]))
    assert report["drift"] == {"missing": [], "unknown": []}
    assert report["idempotency"] == {rpc.full_name.lstrip("/"): rpc.idempotency.value for rpc in table}

    out = report["out"]
    assert out["queries"] == {
        "valid": True,
        "refreshedView": True,
        "version": "2",
        "versions": 2,
        "v1": "1",
        "rows": "5",
        "listed": 2,
    }
    boards = out["dashboards"]
    assert boards["sameOnRetry"] is True, "a create repeated with its request id returns the first dashboard"
    assert boards["title"] == "Every rpc 2" and boards["published"] == "2" and boards["versions"] == 2
    assert boards["v1Title"] == "Every rpc" and boards["restored"] == ["Every rpc", "3"]
    assert boards["listed"] == [True]
    assert boards["invalid"]["code"] == "INVALID_ARGUMENT" and boards["invalid"]["reason"]
    assert {"dashboard.title", "dashboard.tags[0]"} <= set(boards["invalid"]["fields"]), boards["invalid"]
    assert out["widgets"] == {"title": "Units 2", "listed": 1, "rows": "5", "batch": 1, "job": [True, True]}
    assert out["shares"] == {"shares": 1, "links": 1, "viaLink": True, "revoked": True, "audited": True}
    assert out["portability"] == {
        "schemaVersion": "tessera.dashboard/v1",
        "widgets": ["q1"],
        "validateOnly": [True, ["q1"], True],
        "clone": ["Every rpc copy", 1],
    }
    assert out["batchClone"] == ["Every rpc batch copy"]
    exports = out["exports"]
    assert exports["state"] and exports["sameRevision"]
    assert (
        str(exports["download"]["size"]) == exports["download"]["declared"] and len(exports["download"]["sha256"]) == 64
    )
    assert exports["batch"] == 2 and exports["cancelled"] == 2 and exports["ended"] == [True, True]
    assert exports["listed"] == 3
    assert out["reports"] == {
        "secretOnce": True,
        "title": "Every rpc daily",
        "paused": True,
        "resumed": True,
        "delivered": True,
        "gotDelivered": True,
        "hooks": 1,
        "deliveries": 1,
        "subscriptions": 1,
    }
    alerts = out["alerts"]
    assert alerts["previewHolds"] is False and int(alerts["rows"]) > 0 and alerts["threshold"] == 2_000_000
    assert alerts["silenced"] and alerts["rules"] == 1 and alerts["watched"] == "rule" and alerts["events"] >= 0
    assert out["search"] == {"favorite": True, "listed": True, "first": True, "highlighted": True}


def test_a_watch_cut_mid_stream_resumes_with_no_gap_and_no_repeat(node: str, ts_build: Path, stack: Stack) -> None:
    env = {"TESSERA_ADDRESS": stack.address, "TESSERA_TOKEN": stack.token("mia", "editor")}
    done = run_node(node, ts_build / "tests/clients/node/watch_drop.js", env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    seen = [int(revision) for revision in report["seen"]]
    assert report["succeeded"] and report["droppedAt"] == "2", report
    assert seen == list(range(1, len(seen) + 1)) and seen[-1] == int(report["final"]), seen
    assert int(report["final"]) > 2, "the cut came before the end"
    assert report["resumes"] >= 1 and report["retries"] and set(report["retries"]) == {"UNAVAILABLE"}, report
    assert report["connections"] >= 2, "the SDK connected again"
