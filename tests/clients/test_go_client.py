"""The Go client: stubs generated from proto/ with Debian's protoc-gen-go and protoc-gen-go-grpc
(clients/go/buf.gen.go.yaml, into build/go, at test time, so they cannot drift from the protos),
a program built in GOPATH mode against Debian's Go libraries, run against a real server and worker
on the demo data. It lists dashboards, reads widget data, follows an export's watch, downloads and
verifies the file, has a report delivered to a webhook of its own (checking the signature) and
previews an alert rule, and checks each step itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.clients.conftest import ROOT, Stack, need
from tests.harness.server import start_in_thread


@pytest.fixture(scope="module")
def go_binary() -> Path:
    """Generates the stubs and builds the program once for the module (about 12 s, more on a
    loaded machine), running the Go unit tests (the retry package) on the way."""
    need(shutil.which("go"), "go (Debian golang-go)")
    need(shutil.which("protoc-gen-go"), "protoc-gen-go (Debian)")
    need(shutil.which("protoc-gen-go-grpc"), "protoc-gen-go-grpc (Debian)")
    built = subprocess.run(
        ["bash", "clients/go/build.sh", "test"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "ok  \ttessera.example/client/retry" in built.stderr, built.stderr
    return ROOT / built.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_the_go_program_builds_and_runs_against_the_server(stack: Stack, go_binary: Path) -> None:
    binary = go_binary
    generated = ROOT / "build/go/src/tessera.example/gen/dashboard/v1"
    # One gRPC stub file per proto file that declares a service: every service is generated.
    with_services = {
        path.stem for path in (ROOT / "proto/dashboard/v1").glob("*.proto") if "\nservice " in path.read_text()
    }
    assert {"dashboard", "widget", "query", "export", "share"} <= with_services
    assert {p.name for p in generated.glob("*_grpc.pb.go")} == {f"{name}_grpc.pb.go" for name in with_services}
    env = {**os.environ, "TESSERA_ADDRESS": stack.address, "TESSERA_TOKEN": stack.token()}
    done = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert done.stdout.rstrip().endswith("OK"), output[-2000:]
    assert "first DATA_SOURCE_COMPUTED, second DATA_SOURCE_MEMORY" in done.stdout
    assert "JOB_STATE_SUCCEEDED" in done.stdout and "dashboard.title" in done.stdout
    assert "DELIVERY_STATE_DELIVERED" in done.stdout and "the webhook arrived, signed" in done.stdout
    assert "holds false" in done.stdout


def test_a_go_program_that_finds_a_wrong_result_fails(stack: Stack, go_binary: Path) -> None:
    """The program's checks bite: with a token of a facility without the demo data, reading the
    widget gives no rows and it exits 1 naming the step."""
    binary = go_binary
    from server.auth.tokens import mint_token

    token = mint_token(stack.jobs.settings, subject="eve", roles=["admin"], facilities=["no-demo-data"])
    env = {**os.environ, "TESSERA_ADDRESS": stack.address, "TESSERA_TOKEN": token}
    done = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED: rows of the demo data" in done.stderr, done.stdout + done.stderr


def test_the_go_program_balances_over_several_addresses_one_of_them_dead(stack: Stack, go_binary: Path) -> None:
    """`-address a,b`: one channel with round_robin over both; the dead address never answers a
    call (round_robin picks only connected servers), so every step passes."""
    binary = go_binary
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
        env = {**os.environ, "TESSERA_ADDRESS": f"{dead},{stack.address}", "TESSERA_TOKEN": stack.token()}
        done = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert done.stdout.rstrip().endswith("OK")


def test_a_go_update_refused_by_the_rate_limit_is_retried_and_applied_once(stack: Stack, go_binary: Path) -> None:
    """retry.RetryRefused against a real server with a per-principal limit (2 a second, bursts of
    3): the program spends its budget, then an etag UpdateDashboard is refused with RATE_LIMITED,
    sent again after the advice, and lands once (version + 1; the program checks it)."""
    limited = start_in_thread(
        stack.jobs.settings.model_copy(update={"rate_limit_per_principal": 2.0, "rate_limit_burst": 3})
    )
    try:
        token = stack.token(f"go-refused-{uuid.uuid4().hex[:8]}", "editor")
        env = {**os.environ, "TESSERA_ADDRESS": limited.address, "TESSERA_TOKEN": token}
        done = subprocess.run(
            [str(go_binary), "-check-refused-update"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        limited.stop()
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "UpdateDashboard RATE_LIMITED in" in done.stdout and "applied once" in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith("OK")
