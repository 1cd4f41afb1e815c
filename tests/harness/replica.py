"""A PostgreSQL primary and a real streaming replica of it, for a test session: the primary from
initdb (tests/harness/killable_postgres.py, on a port of its own), the replica from
`pg_basebackup -R` (standby.signal and primary_conninfo written by it), started on another port.
Either can be stopped and started again at the same address.

    pair = start_replicated(tmp_path)
    pair.primary.url, pair.replica.url       # postgresql+psycopg://postgres@127.0.0.1:<port>/postgres
    pair.wait_replayed()                     # the replica has replayed everything the primary wrote
    pair.stop()
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.harness.killable_postgres import KillablePostgres

__all__ = ["Replicated", "start_replicated"]


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
