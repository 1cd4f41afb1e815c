"""Export files encrypted at rest: AES-256-GCM in fixed-size chunks, so a download decrypts and
streams one chunk at a time (and resumes at any offset) instead of holding the whole file.

A file is a header followed by its chunks:

    header  = b"TSXE" | version (1) | key id length (1) | key id | nonce prefix (7)
              | chunk size (4, big-endian) | plaintext length (8, big-endian)
    chunk i = AES-GCM(key, nonce = prefix | i (4, big-endian) | last (1), chunk, aad = header)

Every chunk authenticates the whole header (key id, sizes) and its own position, and only the
last chunk is sealed with last=1, so a chunk that is altered, dropped, repeated, reordered or cut
off fails authentication: such a file is refused (`TamperedFile`), never served. A new random
prefix per file keeps nonces unique under one key.

Keys come from `TESSERA_EXPORT_KEYS`: `id:base64-of-32-bytes`, comma-separated. The first
encrypts; every one listed decrypts (the header names the key), so a key is rotated by putting a
new one first and keeping the old one until the files it wrote have expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.config import Mode, Settings

__all__ = [
    "CHUNK_BYTES",
    "ExportKeys",
    "FileCipher",
    "TamperedFile",
    "UnknownKey",
    "export_keys",
    "new_key_spec",
    "parse_keys",
]

MAGIC = b"TSXE"
VERSION = 1
CHUNK_BYTES = 64 * 1024
TAG_BYTES = 16
_PREFIX_BYTES = 7
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Development only (like the masking key's): files written by `make dev` and the tests.
_DEVELOPMENT_KEY_ID = "dev"
_DEVELOPMENT_KEY = hashlib.sha256(b"tessera-development-export-key").digest()


class TamperedFile(Exception):
    """The file is not what this deployment wrote: altered, truncated, or not encrypted."""


class UnknownKey(Exception):
    """The file names a key id that is not configured (a rotated-out key removed too early)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"the file was encrypted with key {key_id!r}, which TESSERA_EXPORT_KEYS does not hold")
        self.key_id = key_id


@dataclass(frozen=True)
class ExportKeys:
    current: str
    keys: Mapping[str, bytes]


def parse_keys(spec: str) -> ExportKeys:
    """`id:base64,id:base64,...`; the first is current. Raises ValueError naming the problem
    (never the key material)."""
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for number, item in enumerate((part.strip() for part in spec.split(",") if part.strip()), start=1):
        key_id, sep, encoded = item.partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise ValueError(
                f"TESSERA_EXPORT_KEYS entry {number}: expected ID:BASE64 with ID of [A-Za-z0-9._-]{{1,64}}"
            )
        try:
            material = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=False)
        except (binascii.Error, ValueError):
            raise ValueError(f"TESSERA_EXPORT_KEYS key {key_id!r}: not base64") from None
        if len(material) != 32:
            raise ValueError(f"TESSERA_EXPORT_KEYS key {key_id!r}: must be 32 bytes (AES-256), got {len(material)}")
        if key_id in keys:
            raise ValueError(f"TESSERA_EXPORT_KEYS: key id {key_id!r} appears twice")
        keys[key_id] = material
        order.append(key_id)
    if not order:
        raise ValueError("TESSERA_EXPORT_KEYS holds no key")
    return ExportKeys(order[0], keys)


def export_keys(settings: Settings) -> ExportKeys:
    """The configured keys; in development without any, a fixed development key."""
    spec = settings.export_keys.get_secret_value()
    if spec:
        return parse_keys(spec)
    if settings.mode is Mode.PRODUCTION:
        raise ValueError("production mode needs TESSERA_EXPORT_KEYS")
    return ExportKeys(_DEVELOPMENT_KEY_ID, {_DEVELOPMENT_KEY_ID: _DEVELOPMENT_KEY})


def new_key_spec(key_id: str) -> str:
    """A fresh `id:base64` entry for TESSERA_EXPORT_KEYS."""
    if not _KEY_ID.match(key_id):
        raise ValueError("a key id is 1-64 characters of [A-Za-z0-9._-]")
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


@dataclass(frozen=True)
class _Header:
    raw: bytes
    key_id: str
    prefix: bytes
    chunk_bytes: int
    size: int

    @property
    def chunk_count(self) -> int:
        return max(1, -(-self.size // self.chunk_bytes))

    def nonce(self, index: int) -> bytes:
        return self.prefix + struct.pack(">IB", index, index == self.chunk_count - 1)

    def sealed_length(self, index: int) -> int:
        last = index == self.chunk_count - 1
        plain = self.size - index * self.chunk_bytes if last else self.chunk_bytes
        return plain + TAG_BYTES


class FileCipher:
    def __init__(self, keys: ExportKeys, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._keys = keys
        self._ciphers = {key_id: AESGCM(material) for key_id, material in keys.keys.items()}
        self._chunk_bytes = chunk_bytes

    def _header(self, size: int) -> _Header:
        key_id = self._keys.current.encode()
        raw = (
            MAGIC
            + struct.pack(">BB", VERSION, len(key_id))
            + key_id
            + os.urandom(_PREFIX_BYTES)
            + struct.pack(">IQ", self._chunk_bytes, size)
        )
        return _parse_header(raw)

    def encrypt(self, plaintext: bytes) -> bytes:
        header = self._header(len(plaintext))
        cipher = self._ciphers[self._keys.current]
        parts = [header.raw]
        for index in range(header.chunk_count):
            start = index * self._chunk_bytes
            parts.append(cipher.encrypt(header.nonce(index), plaintext[start : start + self._chunk_bytes], header.raw))
        return b"".join(parts)

    def encrypt_stream(self, source: BinaryIO, size: int, sink: BinaryIO) -> str:
        """`encrypt` of the `size` bytes `source` holds, into `sink`, one chunk in memory at a
        time (for files too big to hold: data exports). Returns the plaintext's hex sha256.
        Raises ValueError when `source` holds more or fewer bytes than `size`."""
        header = self._header(size)
        cipher = self._ciphers[self._keys.current]
        digest = hashlib.sha256()
        sink.write(header.raw)
        for index in range(header.chunk_count):
            want = min(self._chunk_bytes, size - index * self._chunk_bytes)
            plain = source.read(want)
            if len(plain) != want:
                raise ValueError("the source is shorter than its announced size")
            digest.update(plain)
            sink.write(cipher.encrypt(header.nonce(index), plain, header.raw))
        if source.read(1):
            raise ValueError("the source is longer than its announced size")
        return digest.hexdigest()

    def decrypt(self, handle: BinaryIO, offset: int = 0) -> Generator[bytes, None, None]:
        """The plaintext from `offset`, one authenticated chunk at a time. The whole file is
        authenticated before the first byte is yielded, so a tampered file yields nothing."""
        header = _read_header(handle)
        cipher = self._ciphers.get(header.key_id)
        if cipher is None:
            raise UnknownKey(header.key_id)
        start = handle.tell()
        for _ in self._chunks(handle, header, cipher, 0):
            pass
        if handle.read(1):
            raise TamperedFile("bytes follow the last chunk")
        if offset > header.size:
            raise ValueError("offset beyond the end of the file")
        first = offset // header.chunk_bytes if header.size else 0
        handle.seek(start + first * (header.chunk_bytes + TAG_BYTES))
        skip = offset - first * header.chunk_bytes
        for plain in self._chunks(handle, header, cipher, first):
            if skip:
                plain, skip = plain[skip:], 0
            if plain:
                yield plain

    def _chunks(self, handle: BinaryIO, header: _Header, cipher: AESGCM, first: int) -> Generator[bytes, None, None]:
        for index in range(first, header.chunk_count):
            sealed = handle.read(header.sealed_length(index))
            if len(sealed) != header.sealed_length(index):
                raise TamperedFile(f"chunk {index} is cut short")
            try:
                yield cipher.decrypt(header.nonce(index), sealed, header.raw)
            except InvalidTag:
                raise TamperedFile(f"chunk {index} fails authentication") from None


def _read_header(handle: BinaryIO) -> _Header:
    fixed = handle.read(len(MAGIC) + 2)
    if len(fixed) != len(MAGIC) + 2 or fixed[: len(MAGIC)] != MAGIC:
        raise TamperedFile("not an encrypted export file")
    version, id_length = struct.unpack(">BB", fixed[len(MAGIC) :])
    if version != VERSION:
        raise TamperedFile(f"unknown format version {version}")
    rest = handle.read(id_length + _PREFIX_BYTES + 12)
    if len(rest) != id_length + _PREFIX_BYTES + 12:
        raise TamperedFile("the header is cut short")
    return _parse_header(fixed + rest)


def _parse_header(raw: bytes) -> _Header:
    id_length = raw[len(MAGIC) + 1]
    at = len(MAGIC) + 2
    try:
        key_id = raw[at : at + id_length].decode("ascii")
    except UnicodeDecodeError:
        raise TamperedFile("the key id is not ASCII") from None
    at += id_length
    prefix = raw[at : at + _PREFIX_BYTES]
    chunk_bytes, size = struct.unpack(">IQ", raw[at + _PREFIX_BYTES :])
    if chunk_bytes == 0:
        raise TamperedFile("chunk size 0")
    return _Header(raw, key_id, prefix, chunk_bytes, size)
