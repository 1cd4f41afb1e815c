"""Export files, stored through fsspec at `Settings.export_storage_url` (a local directory by
default; any fsspec URL works: memory://, s3://... with its package installed).

A job's file has one deterministic path, `{root}/{facility}/{job id}.{ext}`, so a task delivered
twice writes the same file twice and never leaves two. Bytes go to a `.partial` sibling first and
are moved into place, so a reader never sees half a file. Calls block: the async wrappers run them
in a thread.

What is stored is encrypted (server/exports/crypto.py: AES-GCM in chunks, the key id in the
header); `chunks` decrypts and refuses a file that does not authenticate (`TamperedFile`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Generator
from pathlib import Path

import fsspec
from fsspec.spec import AbstractFileSystem

from server.config import Settings
from server.exports.crypto import FileCipher, export_keys

__all__ = ["ExportStorage"]

EXTENSIONS = {
    "application/pdf": "pdf",
    "image/png": "png",
    "text/csv": "csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class ExportStorage:
    def __init__(self, url: str, cipher: FileCipher) -> None:
        self._fs, self._root = fsspec.url_to_fs(url)
        self._cipher = cipher

    @classmethod
    def for_settings(cls, settings: Settings) -> ExportStorage:
        return cls(settings.export_storage_url, FileCipher(export_keys(settings)))

    def url_for(self, facility_id: str, job_id: str, content_type: str) -> str:
        # Facility ids are validated elsewhere; this only keeps a path a path.
        folder = _SAFE.sub("_", facility_id) or "_"
        path = f"{self._root.rstrip('/')}/{folder}/{job_id.lower()}.{EXTENSIONS[content_type]}"
        return str(self._fs.unstrip_protocol(path))

    def _locate(self, url: str) -> tuple[AbstractFileSystem, str]:
        fs, path = fsspec.url_to_fs(url)
        return fs, str(path)

    def write(self, url: str, data: bytes) -> None:
        fs, path = self._locate(url)
        parent = path.rsplit("/", 1)[0]
        fs.makedirs(parent, exist_ok=True)
        partial = f"{path}.partial"
        fs.pipe_file(partial, self._cipher.encrypt(data))
        fs.mv(partial, path)

    def write_path(self, url: str, source: Path) -> str:
        """`write` of a local file's bytes, streamed (never read whole); returns their sha256."""
        fs, path = self._locate(url)
        parent = path.rsplit("/", 1)[0]
        fs.makedirs(parent, exist_ok=True)
        partial = f"{path}.partial"
        size = source.stat().st_size
        with source.open("rb") as plain, fs.open(partial, "wb") as sink:
            digest = self._cipher.encrypt_stream(plain, size, sink)
        fs.mv(partial, path)
        return digest

    def exists(self, url: str) -> bool:
        fs, path = self._locate(url)
        return bool(fs.exists(path))

    def delete(self, url: str) -> bool:
        """Removes the file (and any partial write); False when there was none."""
        fs, path = self._locate(url)
        removed = False
        for candidate in (path, f"{path}.partial"):
            if fs.exists(candidate):
                fs.rm_file(candidate)
                removed = True
        return removed

    def chunks(self, url: str, offset: int, size: int) -> Generator[bytes, None, None]:
        """The plaintext from `offset`, `size` bytes at a time (the last may be shorter). The
        first `next` authenticates the whole file: a tampered one raises `TamperedFile` (or
        `UnknownKey`) before any byte is yielded."""
        fs, path = self._locate(url)
        with fs.open(path, "rb") as handle:
            pending = b""
            for plain in self._cipher.decrypt(handle, offset):
                pending += plain
                while len(pending) >= size:
                    yield pending[:size]
                    pending = pending[size:]
            if pending:
                yield pending

    async def awrite(self, url: str, data: bytes) -> None:
        await asyncio.to_thread(self.write, url, data)

    async def awrite_path(self, url: str, source: Path) -> str:
        return await asyncio.to_thread(self.write_path, url, source)

    async def adelete(self, url: str) -> bool:
        return await asyncio.to_thread(self.delete, url)
