"""The README's "Running in production" section, followed as written: the variables of its
first shell block are read from README.md (so the docs and this test cannot drift), given real
values made here (a migrated database, an RS256 key pair, certificates, a masking key, an export
key), and `tessera serve` runs in production mode from exactly those (plus test plumbing: port,
key prefixes). It serves over TLS, refuses plaintext, accepts the identity provider's RS256
token; without any one required variable it does not start; `tessera token` refuses to mint."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError
from typer.testing import CliRunner

from dashboard.v1 import dashboard_pb2, dashboard_pb2_grpc
from server.cli import app as cli_app
from server.config import Settings
from server.exports.crypto import new_key_spec
from server.tls import PlaintextRefused, server_credentials
from tessera_client import tls_credentials
from tests.harness.certs import Issued, make_authority

ROOT = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING


def readme_production_variables() -> dict[str, str]:
    """NAME -> value as written, from the first ```bash block under "## Running in production"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Running in production\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the production section has no shell block"
    found: dict[str, str] = {}
    for line in block.group(1).splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"export ([A-Z_][A-Z0-9_]*)=(.+)", line)
        assert match, f"not one `export NAME=value` per line: {line!r}"
        found[match.group(1)] = match.group(2)
    return found


README = readme_production_variables()


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[rsa.RSAPrivateKey, Path]:
    """The identity provider's key pair: tokens are signed with the private key, the server
    gets the public one."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = tmp_path_factory.mktemp("idp") / "jwt.pem"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key, public


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Issued]:
    ca = make_authority(tmp_path_factory.mktemp("pki"), "operator")
    return ca.cert, ca.issue("tessera.internal", server=True)


@pytest.fixture(scope="module")
def production_env(
    settings: Settings, migrated: str, identity: tuple[rsa.RSAPrivateKey, Path], pki: tuple[Path, Issued]
) -> dict[str, str]:
    """A value for every variable the README names, and for nothing else."""
    _, server = pki
    values = {
        "TESSERA_MODE": README["TESSERA_MODE"],
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "TESSERA_JWT_PUBLIC_KEY_FILE": str(identity[1]),
        "TESSERA_MASKING_KEY": secrets.token_urlsafe(32),
        "TESSERA_EXPORT_KEYS": new_key_spec("2026-12"),
        "TESSERA_TLS_CERT_FILE": str(server.cert),
        "TESSERA_TLS_KEY_FILE": str(server.key),
    }
    assert set(values) == set(README), (
        f"README's production variables changed: give this test values for {sorted(set(README) - set(values))}, "
        f"drop {sorted(set(values) - set(README))}"
    )
    assert README["TESSERA_MODE"] == "production"
    return values


def _plumbing(settings: Settings, tmp: Path, port: int) -> dict[str, str]:
    """What a test run needs beyond the README: its own port and key prefixes, nowhere to log."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "TESSERA_PORT": str(port),
        "TESSERA_METRICS_PORT": "-1",
        "TESSERA_REDIS_PREFIX": settings.redis_prefix,
        "TESSERA_BROKER_KEY_PREFIX": f"{settings.redis_prefix}broker:",
        "TESSERA_AUDIT_DEAD_LETTER_PATH": str(tmp / "dead-letter.jsonl"),
        "TESSERA_SHUTDOWN_GRACE": "1",
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def production_server(
    settings: Settings, production_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("production")
    port = _free_port()
    log = (tmp / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve"],
        cwd=tmp,  # no .env to pick up: exactly these variables
        env=production_env | _plumbing(settings, tmp, port),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while b'"serving"' not in (tmp / "serve.log").read_bytes():  # the JSON log line of a bound port
            assert process.poll() is None, (tmp / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "tessera serve did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_serve_from_the_readme_variables_serves_tls_only(
    production_server: str, pki: tuple[Path, Issued], identity: tuple[rsa.RSAPrivateKey, Path]
) -> None:
    ca, _ = pki
    now = int(time.time())
    token = jwt.encode(
        {
            "sub": "operator",
            "iss": "tessera",
            "aud": "tessera",
            "iat": now,
            "exp": now + 300,
            "roles": ["viewer"],
            "facilities": ["readme-facility"],
        },
        identity[0],
        algorithm="RS256",
    )
    with grpc.secure_channel(production_server, tls_credentials(ca_file=ca)) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        while health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status != SERVING:
            assert time.monotonic() < deadline, "never SERVING"
            time.sleep(0.2)
        listed = dashboard_pb2_grpc.DashboardServiceStub(channel).ListDashboards(
            dashboard_pb2.ListDashboardsRequest(page_size=1),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
        assert list(listed.dashboards) == []
    with grpc.insecure_channel(production_server) as plain, pytest.raises(grpc.RpcError) as refused:
        health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_without_any_one_readme_variable_production_does_not_start(
    production_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TESSERA_") or n in {"DATABASE_URL", "REDIS_URL"}]:
        monkeypatch.delenv(name)
    for missing in sorted(set(production_env) - {"TESSERA_MODE"}):
        for name, value in production_env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv(missing)
        with pytest.raises((ValidationError, PlaintextRefused)):
            server_credentials(Settings())
            pytest.fail(f"production started without {missing}")
    for name, value in production_env.items():
        monkeypatch.setenv(name, value)
    assert server_credentials(Settings()) is not None


def test_tessera_token_refuses_in_production(production_env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli_app, ["token"], env=production_env)
    assert result.exit_code == 2
    assert "refused" in result.output and "eyJ" not in result.output
