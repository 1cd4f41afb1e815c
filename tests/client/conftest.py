"""Fixtures of the client tests: tokens as strings (what a client holds), clients on the session
server, and a jobs stack of its own (server + a real Celery worker) for materialization and
export tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.auth.tokens import mint_token
from server.config import Settings
from tessera_client import Client
from tests.harness.jobstack import JobStack
from tests.harness.jobstack import job_stack as start_job_stack
from tests.harness.server import ServerHandle

__all__ = ["JobStack", "Mint"]

Mint = Callable[..., str]


@pytest.fixture(scope="session")
def mint(settings: Settings) -> Mint:
    """mint(subject, role, *facilities, permissions=(), ttl_seconds=3600) -> a bearer JWT."""

    def make(subject: str, role: str, *facilities: str, permissions: tuple[str, ...] = (), **kw: Any) -> str:
        return mint_token(
            settings, subject=subject, roles=[role], facilities=list(facilities), permissions=list(permissions), **kw
        )

    return make


@pytest.fixture
def clients(server: ServerHandle) -> Iterator[Callable[..., Client]]:
    """clients(token=..., **options) -> a Client on the session server, closed after the test."""
    made: list[Client] = []

    def make(address: str | None = None, **options: Any) -> Client:
        client = Client(address or server.address, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
def job_stack(settings: Settings, migrated: str) -> Iterator[JobStack]:
    with start_job_stack(settings) as stack:
        yield stack
