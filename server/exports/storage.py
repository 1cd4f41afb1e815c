"""Export files, stored through fsspec at `Settings.export_storage_url` (a local directory by
default; any fsspec URL works: memory://, s3://... with its package installed).

A job's file has one deterministic path, `{root}/{facility}/{job id}.{ext}`, so a task delivered
twice writes the same file twice and never leaves two. Bytes go to a `.partial` sibling first and
are moved into place, so a reader never sees half a file. Calls block: the async wrappers run them
in a thread.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Generator

import fsspec
from fsspec.spec import AbstractFileSystem

__all__ = ["ExportStorage"]

EXTENSIONS = {"application/pdf": "pdf", "image/png": "png"}
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class ExportStorage:
    def __init__(self, url: str) -> None:
        self._fs, self._root = fsspec.url_to_fs(url)

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
        fs.pipe_file(partial, data)
        fs.mv(partial, path)

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
        """The file from `offset`, `size` bytes at a time."""
        fs, path = self._locate(url)
        with fs.open(path, "rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(size):
                yield chunk

    async def awrite(self, url: str, data: bytes) -> None:
        await asyncio.to_thread(self.write, url, data)

    async def adelete(self, url: str) -> bool:
        return await asyncio.to_thread(self.delete, url)
