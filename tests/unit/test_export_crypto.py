"""The at-rest format of export files (server/exports/crypto.py): round trips at every chunk
boundary and offset, every kind of tampering refused before a byte comes out, rotation by key id,
and key settings that say what is wrong with them."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from server.config import Mode, Settings
from server.exports.crypto import (
    FileCipher,
    TamperedFile,
    UnknownKey,
    export_keys,
    new_key_spec,
    parse_keys,
)
from server.exports.storage import ExportStorage

CHUNK = 1024  # small chunks, so a few KB span many


def _cipher(spec: str) -> FileCipher:
    return FileCipher(parse_keys(spec), chunk_bytes=CHUNK)


OLD, NEW = new_key_spec("2026-06"), new_key_spec("2026-12")


def _plain(stored: bytes, cipher: FileCipher, offset: int = 0) -> bytes:
    return b"".join(cipher.decrypt(io.BytesIO(stored), offset))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17])
def test_round_trip_at_every_boundary_and_offset(size: int) -> None:
    cipher = _cipher(NEW)
    data = os.urandom(size)
    stored = cipher.encrypt(data)
    assert size < 16 or data[:16] not in stored
    for offset in sorted({0, 1, CHUNK - 1, CHUNK, CHUNK + 5, size - 1, size} & set(range(size + 1))):
        assert _plain(stored, cipher, offset) == data[offset:], offset
    # A fresh nonce prefix per file: the same plaintext never encrypts the same way twice.
    assert cipher.encrypt(data) != stored


def _tampered(stored: bytes) -> dict[str, bytes]:
    header = 4 + 2 + len("2026-12") + 7 + 12
    sealed = CHUNK + 16
    first, second = stored[header : header + sealed], stored[header + sealed : header + 2 * sealed]
    flipped = {
        f"bit {at}": stored[:at] + bytes([stored[at] ^ 0x80]) + stored[at + 1 :]
        for at in (0, 5, header - 1, header - 12, header + 3, header + sealed - 1, len(stored) - 1)
    }
    return flipped | {
        "last chunk dropped": stored[: header + 2 * sealed],
        "cut inside a chunk": stored[:-7],
        "bytes appended": stored + b"\0",
        "chunks swapped": stored[:header] + second + first + stored[header + 2 * sealed :],
        "chunk repeated": stored[:header] + first + first + stored[header + 2 * sealed :],
        "empty": b"",
        "plaintext": b"%PDF-1.7 not encrypted at all" * 100,
    }


def test_any_tampering_is_refused_before_a_byte_comes_out() -> None:
    cipher = _cipher(NEW)
    stored = cipher.encrypt(os.urandom(3 * CHUNK + 100))
    for name, bad in _tampered(stored).items():
        chunks = cipher.decrypt(io.BytesIO(bad))
        with pytest.raises((TamperedFile, UnknownKey)):
            next(chunks)
            pytest.fail(f"{name}: a byte came out")


def test_rotation_decrypts_with_any_configured_key_and_encrypts_with_the_current() -> None:
    data = os.urandom(2 * CHUNK + 3)
    written_before = _cipher(OLD).encrypt(data)
    rotated = _cipher(f"{NEW},{OLD}")
    assert _plain(written_before, rotated) == data
    written_after = rotated.encrypt(data)
    assert _plain(written_after, _cipher(NEW)) == data
    with pytest.raises(UnknownKey) as caught:
        next(_cipher(OLD).decrypt(io.BytesIO(written_after)))
    assert caught.value.key_id == "2026-12"
    with pytest.raises(UnknownKey):
        next(_cipher(NEW).decrypt(io.BytesIO(written_before)))


def test_storage_writes_ciphertext_and_reads_plaintext_in_requested_sizes(tmp_path: Path) -> None:
    storage = ExportStorage(f"file://{tmp_path}", _cipher(NEW))
    url = storage.url_for("north", "00000000-0000-0000-0000-000000000001", "application/pdf")
    data = os.urandom(5000)
    storage.write(url, data)
    assert data[:100] not in Path(url.removeprefix("file://")).read_bytes()
    parts = list(storage.chunks(url, 10, 777))
    assert b"".join(parts) == data[10:] and {len(p) for p in parts[:-1]} == {777}


def test_key_settings_are_checked_and_production_requires_them() -> None:
    keys = parse_keys(f" {NEW} , {OLD} ")
    assert keys.current == "2026-12" and set(keys.keys) == {"2026-12", "2026-06"}
    for bad, problem in [
        ("", "holds no key"),
        ("nokey", "expected ID:BASE64"),
        ("bad id:" + "A" * 43, "expected ID:BASE64"),
        ("k:not*base64", "not base64"),
        ("k:" + "A" * 20, "must be 32 bytes"),
        (f"{NEW},{NEW}", "appears twice"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse_keys(bad)
    assert export_keys(Settings()).current == "dev"
    with pytest.raises(ValueError, match="TESSERA_EXPORT_KEYS"):
        export_keys(Settings.model_construct(mode=Mode.PRODUCTION, export_keys=Settings().export_keys))


@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 17])
def test_streamed_encryption_decrypts_like_the_whole_and_reports_the_plain_digest(size: int) -> None:
    import hashlib

    cipher = _cipher(NEW)
    data = os.urandom(size)
    sink = io.BytesIO()
    digest = cipher.encrypt_stream(io.BytesIO(data), size, sink)
    assert digest == hashlib.sha256(data).hexdigest()
    assert _plain(sink.getvalue(), cipher) == data


def test_streamed_encryption_refuses_a_source_of_another_size() -> None:
    cipher = _cipher(NEW)
    with pytest.raises(ValueError, match="shorter"):
        cipher.encrypt_stream(io.BytesIO(b"x" * 10), 11, io.BytesIO())
    with pytest.raises(ValueError, match="longer"):
        cipher.encrypt_stream(io.BytesIO(b"x" * 12), 11, io.BytesIO())
