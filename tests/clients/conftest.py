"""Fixtures of the polyglot client tests: the TypeScript SDK built once with tsc (strict), a
server with a real Celery worker on the demo data, shared by the package's tests, and the web
server of the browser page (its origin is one the server's CORS allows)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from server.auth.tokens import mint_token
from server.config import Settings
from server.devtools.demo_data import install as install_demo_data
from tests.harness.jobstack import JobStack, job_stack

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "ts"
FACILITY = "north-general"  # the demo data's


def need(tool: str | None, name: str) -> str:
    """A tool the tests cannot do without: missing in CI is a failure (bootstrap installs it)."""
    if tool:
        return tool
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI (scripts/bootstrap.sh installs it)")
    pytest.skip(f"{name} is not installed (run make bootstrap)")


@pytest.fixture(scope="session")
def node() -> str:
    return need(shutil.which("node"), "node")


@pytest.fixture(scope="session")
def ts_build(node: str) -> Path:
    """Compiles clients/ts (SDK, examples) and tests/clients/node with tsc --strict into build/ts."""
    tsc = ROOT / "node_modules" / ".bin" / "tsc"
    need(str(tsc) if tsc.exists() else None, "typescript (npm ci)")
    done = subprocess.run(
        [str(tsc), "-p", "clients/ts"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return BUILD


@dataclass
class Stack:
    jobs: JobStack
    settings: Settings

    @property
    def address(self) -> str:
        return self.jobs.address

    def token(self, subject: str = "dev-admin", role: str = "admin", *, permissions: tuple[str, ...] = ()) -> str:
        return mint_token(
            self.jobs.settings, subject=subject, roles=[role], facilities=[FACILITY], permissions=list(permissions)
        )


class _PageHandler(http.server.SimpleHTTPRequestHandler):
    """Serves build/browser; records every POST (an rpc sent here) and answers it 404."""

    site: PageSite

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        self.site.posts.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "size": len(body)}
        )
        self.send_response(404)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"no rpcs here")

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class PageSite:
    origin: str
    posts: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="package")
def page_site() -> Iterator[PageSite]:
    """The browser page's own web server (started before the stack, whose CORS allows its origin)."""
    directory = ROOT / "build" / "browser"
    site = PageSite("")
    handler = type("Handler", (_PageHandler,), {"site": site})

    def make(*args: Any) -> _PageHandler:
        made: _PageHandler = handler(*args, directory=str(directory))
        return made

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    site.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="package")
def stack(settings: Settings, migrated: str, page_site: PageSite) -> Iterator[Stack]:
    install_demo_data(migrated)
    origins = ",".join(o for o in (settings.http_cors_origins, page_site.origin) if o)
    with job_stack(Settings(**(settings.model_dump() | {"http_cors_origins": origins}))) as running:
        yield Stack(running, settings)


def run_node(
    node: str, script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(script), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
