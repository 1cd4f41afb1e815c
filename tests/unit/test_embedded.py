"""server.devtools.embedded starts real PostgreSQL and Redis servers, reachable over TCP, and stops them."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from server.devtools.embedded import EmbeddedService, free_port, start_postgres, start_redis


@pytest.fixture
def scratch() -> Iterator[Path]:
    # Not tmp_path: pytest keeps old ones around, and a data directory is ~40 MB.
    path = Path(tempfile.mkdtemp(prefix="tessera-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def alive(pid: int) -> bool:
    """True for a live process; False when gone or a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state != "Z"


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (Linux; empty elsewhere)."""
    found = []
    for entry in Path("/proc").iterdir() if sys.platform.startswith("linux") else []:
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    assert 1024 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_postgres_and_redis_start_answer_and_stop(scratch: Path) -> None:
    pg = start_postgres(scratch / "postgres", durable=False)
    rd = start_redis(scratch / "redis")
    try:
        assert pg.name == "postgres"
        assert pg.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        assert rd.name == "redis"
        assert rd.url.startswith("redis://127.0.0.1:")

        with psycopg.connect(libpq(pg.url), connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            (version,) = conn.execute("SHOW server_version_num").fetchone() or ("0",)
            assert int(version) >= 160000
        client = redis.Redis.from_url(rd.url, socket_timeout=5)
        try:
            assert client.ping() is True
            assert client.set("k", "v") and client.get("k") == b"v"
        finally:
            client.close()
        assert alive(pg.pid) and alive(rd.pid)
    finally:
        pg.stop()
        rd.stop()

    assert not alive(pg.pid)
    assert not alive(rd.pid)
    assert processes_mentioning(str(scratch)) == []  # no postgres backends left either
    pg.stop()  # idempotent
    rd.stop()
    assert pg.stopped and rd.stopped


def test_sqlalchemy_url_works_from_another_process(scratch: Path) -> None:
    import subprocess

    with start_postgres(scratch / "postgres", durable=False, database="tessera") as pg:
        assert pg.url.endswith("/tessera")
        code = (
            "import sys, sqlalchemy as sa\n"
            "with sa.create_engine(sys.argv[1]).connect() as c:\n"
            "    print(c.execute(sa.text('SELECT current_database()')).scalar_one())\n"
        )
        result = subprocess.run([sys.executable, "-c", code, pg.url], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "tessera"
    assert not alive(pg.pid)


def test_postgres_data_survives_a_restart_and_handles_share_the_server(scratch: Path) -> None:
    data_dir = scratch / "postgres"
    first: EmbeddedService = start_postgres(data_dir)
    with psycopg.connect(libpq(first.url), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    second = start_postgres(data_dir)  # the same running server, another handle
    assert second.pid == first.pid and second.url == first.url
    first.stop()
    assert alive(second.pid), "the server stopped while a handle was still open"
    second.stop()
    assert not alive(second.pid)

    with start_postgres(data_dir) as again:
        assert again.pid != first.pid
        with psycopg.connect(libpq(again.url)) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
