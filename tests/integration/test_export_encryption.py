"""Export files are encrypted at rest (server/exports/crypto.py) through the whole path: a real
worker renders and stores, the server decrypts only on download. What lies in storage is not
the file; the announced sha256 is the plaintext's; a file altered in storage, or written with
a key the server does not hold, is refused with DATA_LOSS before a single message is sent."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import grpc
import pytest

from dashboard.v1 import export_pb2 as e
from server.config import Settings
from server.exports.crypto import FileCipher, export_keys, parse_keys
from tests.harness.exports import ExportKit
from tests.harness.rpc import expect_failure
from tests.integration import test_exports as export_suite
from workers.testing import WorkerProcess

# The export suite's module fixtures (a server, a real worker with Chromium, storage), one set
# for this module.
storage = export_suite.storage
export_settings = export_suite.export_settings
export_server = export_suite.export_server
worker = export_suite.worker
stubs = export_suite.stubs
kit = export_suite.kit


def _stored(storage: Path, job_id: str) -> Path:
    (path,) = storage.rglob(f"{job_id}.pdf")
    return path


def _messages(kit: ExportKit, job_id: str) -> list[Any]:
    """Every message the download sends before it ends (it must fail)."""
    received: list[Any] = []

    def download() -> None:
        for message in kit.stubs.exports.DownloadExport(
            e.DownloadExportRequest(id=job_id), metadata=kit.md, timeout=60
        ):
            received.append(message)

    expect_failure(download, grpc.StatusCode.DATA_LOSS, reason="EXPORT_FILE_TAMPERED")
    return received


@pytest.fixture
def exported(kit: ExportKit, worker: WorkerProcess, storage: Path) -> tuple[str, bytes, Path]:
    board = kit.small_board()
    done = kit.wait(kit.create(board.id, e.EXPORT_FORMAT_PDF).id)
    meta, data = kit.download(done.id, chunk_size=4096)
    assert hashlib.sha256(data).hexdigest() == meta.sha256 == done.file.sha256
    return done.id, data, _stored(storage, done.id)


def test_the_stored_file_is_ciphertext_and_the_download_its_plaintext(exported: tuple[str, bytes, Path]) -> None:
    _, plaintext, path = exported
    stored = path.read_bytes()
    assert plaintext.startswith(b"%PDF-")
    assert stored.startswith(b"TSXE") and b"%PDF" not in stored
    assert plaintext[200:264] not in stored


def test_a_file_altered_in_storage_is_refused_and_nothing_is_served(
    kit: ExportKit, exported: tuple[str, bytes, Path]
) -> None:
    job_id, _, path = exported
    original = path.read_bytes()
    for where in (len(original) // 2, len(original) - 1, 10):  # a chunk, the last tag, the header
        altered = bytearray(original)
        altered[where] ^= 0x01
        path.write_bytes(bytes(altered))
        assert _messages(kit, job_id) == []
    path.write_bytes(original[:-100])  # cut short
    assert _messages(kit, job_id) == []
    path.write_bytes(original)
    assert kit.download(job_id)[1].startswith(b"%PDF-")


def test_a_file_under_a_key_the_server_does_not_hold_is_refused(
    kit: ExportKit, export_settings: Settings, exported: tuple[str, bytes, Path]
) -> None:
    job_id, plaintext, path = exported
    foreign = FileCipher(parse_keys("retired:" + "Q" * 43))
    path.write_bytes(foreign.encrypt(plaintext))
    failure = expect_failure(lambda: kit.download(job_id), grpc.StatusCode.DATA_LOSS, reason="EXPORT_KEY_UNKNOWN")
    assert failure.metadata["key_id"] == "retired"
    # Re-encrypted under the server's own key, the same plaintext is served again.
    path.write_bytes(FileCipher(export_keys(export_settings)).encrypt(plaintext))
    assert kit.download(job_id)[1] == plaintext
