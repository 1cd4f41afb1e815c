"""The six usage examples of the specification as TypeScript programs (clients/ts/examples),
compiled with tsc --strict and run as processes through the SDK over gRPC against a real server
and Celery worker on the demo data. Each checks what it shows and must exit 0 ending with OK."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import ROOT, Stack, run_node

EXAMPLES = sorted(path.stem for path in (ROOT / "clients/ts/examples").glob("[0-9]*.ts"))
# The specification's six usage examples (examples/01-06). The later Python examples (07 reports,
# 08 alerts) go beyond the specification and have no TypeScript program yet.
SPECIFICATION_EXAMPLES = 6


def test_every_usage_example_has_a_typescript_program() -> None:
    python = sorted(path.stem for path in (ROOT / "examples").glob("[0-9]*.py"))
    assert python[:SPECIFICATION_EXAMPLES] == EXAMPLES and len(EXAMPLES) == SPECIFICATION_EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_typescript_example_runs(name: str, node: str, ts_build: Path, stack: Stack, tmp_path: Path) -> None:
    env = {
        "TESSERA_ADDRESS": stack.address,
        "TESSERA_TOKEN": stack.token(),
        "TESSERA_VIEWER_TOKEN": stack.token("bob", "viewer"),
    }
    script = ts_build / "clients/ts/examples" / f"{name}.js"
    done = run_node(node, script, "--out", str(tmp_path), env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{output[-6000:]}"
    assert done.stdout.rstrip().endswith("OK"), output[-3000:]
    assert done.stdout.count("\n== ") >= 4, "the example prints what it did, step by step"
