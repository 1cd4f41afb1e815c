"""Fixtures of the polyglot client tests: the TypeScript SDK built once with tsc (strict), and a
server with a real Celery worker on the demo data, shared by the package's tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


@pytest.fixture(scope="package")
def stack(settings: Settings, migrated: str) -> Iterator[Stack]:
    install_demo_data(migrated)
    with job_stack(settings) as running:
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
