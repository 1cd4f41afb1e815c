"""The export file over HTTP: the bytes themselves with Content-Type, Content-Length,
Content-Disposition and an ETag from the sha256; Range requests (206) reassemble the file; the
same access rules as DownloadExport. A real worker renders with Chromium."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import export_pb2 as e
from server.config import Settings
from tests.harness.exports import ExportKit, Stubs, stubs_for
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import broker_url_for, jobs_settings, worker_env
from workers.testing import WorkerProcess


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rest-exports")


@pytest.fixture(scope="module")
def export_settings(settings: Settings, migrated: str, storage: Path) -> Settings:
    return jobs_settings(settings, broker_url_for(settings.redis_url), export_storage_url=f"file://{storage}")


@pytest.fixture(scope="module")
def export_server(export_settings: Settings) -> Iterator[ServerHandle]:
    handle = start_in_thread(export_settings)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def worker(export_settings: Settings, storage: Path) -> Iterator[WorkerProcess]:
    env = worker_env(export_settings, TESSERA_EXPORT_STORAGE_URL=f"file://{storage}")
    process = WorkerProcess(env, queues="exports").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def stubs(export_server: ServerHandle) -> Iterator[Stubs]:
    with grpc.insecure_channel(export_server.address) as channel:
        yield stubs_for(channel)


def test_download_is_the_file_with_ranges_and_access_rules(
    export_server: ServerHandle, stubs: Stubs, worker: WorkerProcess, auth: Any, facility: str
) -> None:
    kit = ExportKit(stubs, auth("alice", "editor", facility), facility)
    board = kit.small_board()
    job = kit.create(board.id, e.EXPORT_FORMAT_PDF)
    assert kit.wait(job.id).state == c.JOB_STATE_SUCCEEDED
    meta, data = kit.download(job.id)
    path = f"/api/v1/dashboard/exports/{job.id}:download"
    headers = dict(kit.md)
    with httpx.Client(base_url=f"http://127.0.0.1:{export_server.running.http_port}", timeout=60) as rest:
        whole = rest.get(path, headers=headers)
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "application/pdf"
        assert int(whole.headers["content-length"]) == meta.size_bytes == len(whole.content)
        assert whole.headers["etag"] == f'"{meta.sha256}"'
        assert whole.headers["content-disposition"].startswith("attachment; filename=")
        assert hashlib.sha256(whole.content).hexdigest() == meta.sha256 and whole.content == data
        half = meta.size_bytes // 2
        second = rest.get(path, headers={**headers, "range": f"bytes={half}-", "if-range": whole.headers["etag"]})
        assert second.status_code == 206
        assert second.headers["content-range"] == f"bytes {half}-{meta.size_bytes - 1}/{meta.size_bytes}"
        first = rest.get(path, headers={**headers, "range": f"bytes=0-{half - 1}"})
        assert first.status_code == 206 and len(first.content) == half
        assert hashlib.sha256(first.content + second.content).hexdigest() == meta.sha256
        stale = rest.get(path, headers={**headers, "range": f"bytes={half}-", "if-range": '"another"'})
        assert stale.status_code == 200 and stale.content == data
        someone_else = rest.get(path, headers=dict(auth("mallory", "editor", facility)))
        assert someone_else.status_code == 404 and someone_else.json()["code"] == 5
        anonymous = rest.get(path)
        assert anonymous.status_code == 401
