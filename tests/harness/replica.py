"""A PostgreSQL primary and a real streaming replica of it, for a test session: the primary from
initdb (tests/harness/killable_postgres.py, on a port of its own), the replica from
`pg_basebackup -R` (standby.signal and primary_conninfo written by it), started on another port.
Either can be stopped and started again at the same address.

    pair = start_replicated(tmp_path)
    pair.primary.url, pair.replica.url       # postgresql+psycopg://postgres@127.0.0.1:<port>/postgres
    pair.wait_replayed()                     # the replica has replayed everything the primary wrote
    pair.stop()

    with replicated_servers(settings) as deployment:   # migrated, and two servers on it
        deployment.servers[0].running.http_port        # ServerHandles from tests/harness/server.py
        deployment.replay(paused=True)                 # the replica really behind
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest

from server.config import Settings
from server.db.migrate import upgrade
from tests.harness.killable_postgres import KillablePostgres, postgres_binaries, server_folder
from tests.harness.server import ServerHandle, start_in_thread

__all__ = ["Replicated", "ReplicatedServers", "replicated_servers", "start_replicated"]


def _libpq(url: str) -> str:
    return url.replace("+psycopg", "")


@dataclass
class Replicated:
    primary: KillablePostgres
    replica: KillablePostgres

    def wait_replayed(self, timeout: float = 30.0) -> None:
        """Until the replica has replayed the primary's current WAL position (a condition, not a
        sleep: replication is asynchronous)."""
        with psycopg.connect(_libpq(self.primary.url), autocommit=True) as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert target is not None
        deadline = time.monotonic() + timeout
        with psycopg.connect(_libpq(self.replica.url), autocommit=True) as conn:
            while True:
                row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(target[0]),)).fetchone()
                if row is not None and row[0]:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError("the replica did not replay the primary's WAL in time")
                time.sleep(0.02)

    def stop(self) -> None:
        self.replica.stop()
        self.primary.stop()


def start_replicated(folder: Path) -> Replicated:
    for name in ("primary", "replica"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    primary = KillablePostgres(folder / "primary").start()
    try:
        replica = KillablePostgres(folder / "replica")
        backup = [
            str(replica.binaries / "pg_basebackup"),
            "-D", str(replica.data), "-R", "-X", "stream", "--no-sync",
            "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
        ]  # fmt: skip
        subprocess.run(backup, check=True, capture_output=True, cwd="/", timeout=120, **replica.as_user())  # type: ignore[call-overload]
        replica.start()
    except BaseException:
        primary.stop()
        raise
    return Replicated(primary, replica)


@dataclass
class ReplicatedServers:
    """Two server processes' worth of runtime (in threads) on one primary and its replica, so a
    write through one and a read through the other cross processes the way deployments do."""

    pg: Replicated
    servers: list[ServerHandle]
    channels: list[grpc.Channel]

    def reads(self, i: int, target: str) -> float:
        """Reads server `i` ran on `target` ("primary" or "replica") so far."""
        value = self.servers[i].running.app.metrics.registry.get_sample_value(
            "tessera_db_reads_total", {"target": target}
        )
        return float(value or 0.0)

    def replay(self, paused: bool) -> None:
        with psycopg.connect(_libpq(self.pg.replica.url), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


@contextmanager
def replicated_servers(settings: Settings) -> Iterator[ReplicatedServers]:
    """A migrated primary with its streaming replica and two servers reading from it (skips the
    test where Debian's PostgreSQL binaries are missing)."""
    if postgres_binaries() is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql")
    with server_folder("tessera-replicated-") as folder:
        pg = start_replicated(folder)
        try:
            upgrade(pg.primary.url)
            pg.wait_replayed()
            own = settings.model_copy(
                update={
                    "database_url": pg.primary.url,
                    "database_replica_url": pg.replica.url,
                    "redis_prefix": f"replica-{uuid.uuid4().hex[:6]}:",
                }
            )
            servers = [start_in_thread(own), start_in_thread(own)]
            channels = [grpc.insecure_channel(s.address) for s in servers]
            try:
                yield ReplicatedServers(pg, servers, channels)
            finally:
                for ch in channels:
                    ch.close()
                for server in servers:
                    server.stop()
        finally:
            pg.stop()
