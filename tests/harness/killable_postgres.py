"""A PostgreSQL server of the test's own (Debian's binaries, run as an unprivileged user), on a
fixed port so it can be SIGKILLed and started again at the same address: chaos tests never touch
the shared server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

__all__ = ["KillablePostgres", "postgres_binaries", "server_folder"]

USER = "tessera-chaos"


@contextmanager
def server_folder(prefix: str) -> Iterator[Path]:
    """A folder for servers of the test's own, removed on exit. Not under pytest's temp root:
    another pytest process (the suite's other workers, another run) resets that root's mode to
    0700, and the servers run as an unprivileged user that must reach their files."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def postgres_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> tuple[int, int] | None:
    """None when not root; else the uid/gid of an unprivileged user (created once)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


class KillablePostgres:
    def __init__(self, folder: Path) -> None:
        bin_dir = postgres_binaries()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql")
        self._bin = bin_dir
        self._folder = folder
        self._data = folder / "data"
        self._log = folder / "postgres.log"
        self.port = _free_port()
        self._ids = _run_as()
        self._process: subprocess.Popen[bytes] | None = None
        for directory in (folder, *folder.parents):
            directory.chmod(directory.stat().st_mode | 0o001)  # o+x: the user must reach its files
        if self._ids is not None:
            os.chown(folder, *self._ids)

    @property
    def binaries(self) -> Path:
        return self._bin

    @property
    def data(self) -> Path:
        return self._data

    def as_user(self) -> dict[str, object]:
        """subprocess arguments that run a command as the server's own user (when root)."""
        return self._as_user()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_user(self) -> dict[str, object]:
        if self._ids is None:
            return {}
        return {"user": self._ids[0], "group": self._ids[1], "extra_groups": []}

    def start(self, timeout: float = 30.0, attempts: int = 3) -> KillablePostgres:
        """Starts it (initdb the first time) and returns once it answers. A postmaster that exits
        at once (the killed one's backends still leaving) is started again."""
        for attempt in range(1, attempts + 1):
            if self._start_once(timeout):
                return self
            time.sleep(0.5 * attempt)
        raise RuntimeError(f"PostgreSQL did not start:\n{self._log.read_text()[-3000:]}")

    def _start_once(self, timeout: float) -> bool:
        if not (self._data / "PG_VERSION").exists():
            subprocess.run(
                [str(self._bin / "initdb"), "-D", str(self._data), "-U", "postgres", "--auth=trust", "--no-sync"],
                check=True,
                capture_output=True,
                cwd="/",
                **self._as_user(),  # type: ignore[call-overload]
            )
        command = [
            str(self._bin / "postgres"),
            "-D", str(self._data), "-p", str(self.port), "-k", str(self._folder),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
                **self._as_user(),  # type: ignore[call-overload]
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                return False
            time.sleep(0.05)
        return True

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url.replace("+psycopg", ""), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def kill(self) -> None:
        """SIGKILL to the postmaster and every backend at once, like a lost machine."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the backends of the group go with it
                try:
                    os.killpg(self._process.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)
        self._process = None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._process = None
