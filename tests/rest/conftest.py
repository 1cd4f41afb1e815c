"""The HTTP face of the session's server: an httpx client on its HTTP port."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness.server import ServerHandle


@pytest.fixture(scope="session")
def http_base(server: ServerHandle) -> str:
    port = server.running.http_port
    assert port, "the session server serves no HTTP"
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def rest(http_base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_base, timeout=30) as client:
        yield client
