"""`tessera dev`: the whole system in one process tree, for a newcomer's first run."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from server.config import Settings

log = logging.getLogger("tessera.dev")


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "server.cli", *args], env=env)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited during start-up (see its log above)")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the server did not listen on port {port} within {timeout:.0f} s")


def _banner(port: int, token: str) -> str:
    grpcurl = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    return f"""
────────────────────────────────────────────────────────────────────────────
 Tessera is running on 127.0.0.1:{port}  (gRPC, plaintext, reflection on)

 A development token (admin of facility north-general, 8 h):
   export TOKEN={token}

 Try:
   {grpcurl} -plaintext 127.0.0.1:{port} list
   {grpcurl} -plaintext -H "authorization: Bearer $TOKEN" \\
       -d '{{"page_size": 5}}' 127.0.0.1:{port} dashboard.v1.DashboardService/ListDashboards

 Mint other tokens:  .venv/bin/tessera token --role viewer --facility north-general
 Stop with Ctrl-C.
────────────────────────────────────────────────────────────────────────────
"""


def run_dev(*, port: int, data_dir: str, demo: bool) -> int:
    from server.db.migrate import upgrade
    from server.devtools import embedded

    base = Path(data_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    services: list[embedded.EmbeddedService] = []
    children: list[subprocess.Popen[bytes]] = []
    try:
        if not env.get("DATABASE_URL"):
            pg = embedded.start_postgres(base / "postgres")
            services.append(pg)
            env["DATABASE_URL"] = pg.url
            log.info("embedded PostgreSQL started", extra={"url": pg.url})
        if not env.get("REDIS_URL"):
            rd = embedded.start_redis(base / "redis")
            services.append(rd)
            env["REDIS_URL"] = rd.url
            log.info("embedded Redis started", extra={"url": rd.url})
        env.setdefault("TESSERA_PORT", str(port))
        env.setdefault("TESSERA_WORKER_CONCURRENCY", "2")  # gentle on a laptop; production default is 10
        env.setdefault("TESSERA_EXPORT_STORAGE_URL", (base / "exports").as_uri())
        env.setdefault("TESSERA_AUDIT_DEAD_LETTER_PATH", str(base / "audit-dead-letter.jsonl"))
        env.setdefault("C_FORCE_ROOT", "1")
        os.environ.update(env)
        settings = Settings()
        upgrade(settings.database_url)
        log.info("migrations applied")
        if demo:
            from server.devtools.demo import load_demo

            asyncio.run(load_demo(settings))
        server = _spawn(["serve", "--port", str(port)], env)
        children.append(server)
        _wait_for_port(port, server)
        children.append(_spawn(["worker"], env))
        children.append(_spawn(["beat", "--schedule-file", str(base / "celerybeat-schedule")], env))

        from server.auth.tokens import mint_token

        token = mint_token(
            settings,
            subject="dev-admin",
            roles=["admin"],
            facilities=["north-general"],
            permissions=["phi:read"],
            ttl_seconds=8 * 3600,
        )
        print(_banner(port, token), flush=True)
        stop = {"now": False}

        def _stop(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stop["now"]:
            if any(c.poll() is not None for c in children):
                log.error("a child process exited; stopping everything")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        for service in reversed(services):
            service.stop()
