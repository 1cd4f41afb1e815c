"""Every script in examples/ runs as its own process, the way a person runs it, against a real
server and a real Celery worker on the demo data, and must exit 0 and end with OK. Each
example checks what it demonstrates (a cache miss then a hit, a stale etag refused, ...) and
exits 1 when a step does not do what it says.

`test_the_export_example_runs` needs the ExportService (it lands with the exports work)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.auth.tokens import mint_token
from server.config import Settings
from server.devtools.demo_data import install as install_demo_data
from tests.harness.jobstack import JobStack, job_stack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(path.name for path in (ROOT / "examples").glob("[0-9]*.py"))
EXPORT_EXAMPLE = "05_export.py"
QUERY_EXPORT_EXAMPLE = "10_query_export.py"
WRITES_FILES = (EXPORT_EXAMPLE, QUERY_EXPORT_EXAMPLE)  # run with --out a temporary directory
FACILITY = "north-general"  # the demo data's


@pytest.fixture(scope="module")
def stack(settings: Settings, migrated: str) -> Iterator[JobStack]:
    install_demo_data(migrated)
    with job_stack(settings) as running:
        yield running


@pytest.fixture(scope="module")
def env(stack: JobStack, settings: Settings) -> dict[str, str]:
    """What `export TESSERA_TOKEN=$(tessera token)` gives a developer, plus a viewer's token."""
    admin = mint_token(settings, subject="dev-admin", roles=["admin"], facilities=[FACILITY])
    viewer = mint_token(settings, subject="bob", roles=["viewer"], facilities=[FACILITY])
    return {
        **os.environ,
        "TESSERA_ADDRESS": stack.address,
        "TESSERA_TOKEN": admin,
        "TESSERA_VIEWER_TOKEN": viewer,
        "PYTHONUNBUFFERED": "1",
    }


def run_example(name: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{output[-6000:]}"
    assert done.stdout.rstrip().endswith("OK"), output[-3000:]
    return done.stdout


def test_every_usage_example_of_the_specification_has_a_script() -> None:
    assert EXAMPLES == [
        "01_dashboards.py",
        "02_widgets.py",
        "03_queries.py",
        "04_data_and_caching.py",
        EXPORT_EXAMPLE,
        "06_sharing.py",
        "07_reports.py",
        "08_alerts.py",
        "09_portability.py",
        QUERY_EXPORT_EXAMPLE,
        "11_search.py",
    ]


@pytest.mark.parametrize("name", [name for name in EXAMPLES if name not in WRITES_FILES])
def test_the_example_runs(name: str, env: dict[str, str]) -> None:
    output = run_example(name, env)
    assert output.count("\n== ") >= 4, "the example prints what it did, step by step"


def test_the_data_example_shows_a_miss_then_a_hit(env: dict[str, str]) -> None:
    output = run_example("04_data_and_caching.py", env)
    assert "first  source COMPUTED" in output and "second source MEMORY" in output
    assert "reading min_age 40 now: MEMORY" in output, "the worker warmed the cache"


def test_the_export_example_runs(env: dict[str, str], tmp_path: Path) -> None:
    """Needs the ExportService and an exports worker (Chromium)."""
    output = run_example(EXPORT_EXAMPLE, env, "--out", str(tmp_path))
    files = sorted(path.suffix for path in tmp_path.rglob("*") if path.is_file())
    assert files == [".csv", ".pdf", ".pdf", ".pdf", ".png", ".xlsx"], files
    assert "SUCCEEDED" in output


def test_the_query_export_example_runs(env: dict[str, str], tmp_path: Path) -> None:
    """A saved query's run as CSV and XLSX (an exports worker; no Chromium needed)."""
    output = run_example(QUERY_EXPORT_EXAMPLE, env, "--out", str(tmp_path))
    files = sorted(path.name for path in tmp_path.iterdir())
    assert files == ["older-patients-v1.csv", "older-patients.csv", "older-patients.xlsx"], files
    assert output.count("\n== ") >= 7 and "PERMISSION_DENIED" in output  # the viewer's refusal
    assert "masked: this token has no phi:read" in output  # dev-admin holds no phi:read


def test_an_example_fails_loudly(env: dict[str, str]) -> None:
    broken = {**env, "TESSERA_TOKEN": "not-a-token"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "01_dashboards.py")],
        cwd=ROOT,
        env=broken,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "FAILED: UNAUTHENTICATED" in done.stderr, done.stderr
