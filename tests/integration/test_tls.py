"""TLS on the gRPC port (server/tls.py), with certificates made here: a TLS call works and
plaintext is refused; with a client CA (mTLS) a caller without a certificate or with one from
another CA is refused and the right one is accepted. Health and reflection answer over TLS, the
Python client and the CLI take the CA and client certificate, and production refuses to start
without TLS unless a terminating proxy is declared."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from typer.testing import CliRunner

from dashboard.v1 import dashboard_pb2, dashboard_pb2_grpc
from server.auth.tokens import mint_token
from server.cli import app as cli_app
from server.config import Mode, Settings
from server.tls import PlaintextRefused, server_credentials, ssl_context
from tessera_client import Client, TlsFileError, credentials_from_env, tls_credentials
from tests.harness.certs import Authority, Issued, make_authority
from tests.harness.server import ServerHandle, start_in_thread

SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class Pki:
    ca: Authority
    stranger: Authority
    server: Issued
    client: Issued
    stranger_client: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = make_authority(folder, "trusted"), make_authority(folder, "stranger")
    return Pki(
        ca=ca,
        stranger=stranger,
        server=ca.issue("tessera-server", server=True),
        client=ca.issue("reporting-service", server=False),
        stranger_client=stranger.issue("reporting-service", server=False),
    )


@pytest.fixture(scope="module")
def tls_server(settings: Settings, migrated: str, pki: Pki) -> Iterator[ServerHandle]:
    handle = start_in_thread(
        settings.model_copy(update={"tls_cert_file": pki.server.cert, "tls_key_file": pki.server.key})
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def mtls_server(settings: Settings, migrated: str, pki: Pki) -> Iterator[ServerHandle]:
    handle = start_in_thread(
        settings.model_copy(
            update={
                "tls_cert_file": pki.server.cert,
                "tls_key_file": pki.server.key,
                "tls_client_ca_file": pki.ca.cert,
            }
        )
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def token(settings: Settings) -> str:
    return mint_token(settings, subject="tls-user", roles=["viewer"], facilities=["tls-facility"])


def _list(channel: grpc.Channel, token: str) -> dashboard_pb2.ListDashboardsResponse:
    stub = dashboard_pb2_grpc.DashboardServiceStub(channel)
    response: dashboard_pb2.ListDashboardsResponse = stub.ListDashboards(
        dashboard_pb2.ListDashboardsRequest(page_size=1), metadata=(("authorization", f"Bearer {token}"),), timeout=10
    )
    return response


def _refused(channel: grpc.Channel, token: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        _list(channel, token)
    return caught.value


def test_a_tls_call_works_and_health_and_reflection_answer_over_tls(
    tls_server: ServerHandle, pki: Pki, token: str
) -> None:
    with grpc.secure_channel(tls_server.address, tls_credentials(ca_file=pki.ca.cert)) as channel:
        assert len(_list(channel, token).dashboards) == 0
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert health.status == SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = list(
            reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        )
        names = {s.name for s in answers[0].list_services_response.service}
        assert {"dashboard.v1.DashboardService", "grpc.health.v1.Health"} <= names
    # The Prometheus endpoint keeps answering (plain HTTP on its own port).
    port = tls_server.running.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert b"tessera_rpc_duration_seconds" in reply.read()


def test_plaintext_is_refused_by_a_tls_server(tls_server: ServerHandle, token: str) -> None:
    with grpc.insecure_channel(tls_server.address) as channel:
        assert _refused(channel, token).code() == grpc.StatusCode.UNAVAILABLE


def test_a_server_certificate_from_another_ca_is_refused_by_the_client(
    tls_server: ServerHandle, pki: Pki, token: str
) -> None:
    with grpc.secure_channel(tls_server.address, tls_credentials(ca_file=pki.stranger.cert)) as channel:
        assert _refused(channel, token).code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_refuses_callers_without_the_right_client_certificate(
    mtls_server: ServerHandle, pki: Pki, token: str
) -> None:
    without = tls_credentials(ca_file=pki.ca.cert)
    wrong = tls_credentials(ca_file=pki.ca.cert, cert_file=pki.stranger_client.cert, key_file=pki.stranger_client.key)
    for credentials in (without, wrong):
        with grpc.secure_channel(mtls_server.address, credentials) as channel:
            assert _refused(channel, token).code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(mtls_server.address) as channel:
        assert _refused(channel, token).code() == grpc.StatusCode.UNAVAILABLE
    right = tls_credentials(ca_file=pki.ca.cert, cert_file=pki.client.cert, key_file=pki.client.key)
    with grpc.secure_channel(mtls_server.address, right) as channel:
        assert len(_list(channel, token).dashboards) == 0


def test_the_python_client_takes_its_tls_files_from_the_environment(
    mtls_server: ServerHandle, pki: Pki, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESSERA_ADDRESS", mtls_server.address)
    monkeypatch.setenv("TESSERA_TOKEN", token)
    monkeypatch.setenv("TESSERA_CA_FILE", str(pki.ca.cert))
    monkeypatch.setenv("TESSERA_CLIENT_CERT_FILE", str(pki.client.cert))
    monkeypatch.setenv("TESSERA_CLIENT_KEY_FILE", str(pki.client.key))
    with Client.from_env() as client:
        assert list(client.dashboards.list()) == []
    assert credentials_from_env({}) is None
    with pytest.raises(TlsFileError, match="needs its key"):
        tls_credentials(ca_file=pki.ca.cert, cert_file=pki.client.cert)
    with pytest.raises(TlsFileError, match="cannot read the CA file"):
        tls_credentials(ca_file=Path("/nonexistent/ca.pem"))


def test_the_cli_takes_a_ca_and_a_client_certificate(mtls_server: ServerHandle, pki: Pki, token: str) -> None:
    runner = CliRunner()
    common = ["dashboards", "list", "--json", "--address", mtls_server.address, "--token", token]
    env = {"TESSERA_CA_FILE": "", "TESSERA_CLIENT_CERT_FILE": "", "TESSERA_CLIENT_KEY_FILE": ""}
    ok = runner.invoke(
        cli_app,
        [
            *common,
            "--ca-file",
            str(pki.ca.cert),
            "--cert-file",
            str(pki.client.cert),
            "--key-file",
            str(pki.client.key),
        ],
        env=env,
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == []
    refused = runner.invoke(cli_app, [*common, "--ca-file", str(pki.ca.cert)], env=env)
    assert refused.exit_code == 1
    assert "UNAVAILABLE" in refused.output


def test_production_refuses_to_serve_without_tls(tmp_path: Path, pki: Pki) -> None:
    public_key = tmp_path / "jwt.pem"
    public_key.write_text("unused here")
    production = {
        "mode": Mode.PRODUCTION,
        "database_url": "postgresql://db",
        "redis_url": "redis://cache",
        "jwt_public_key_file": public_key,
        "masking_key": "m" * 32,
        "export_keys": "k1:" + "A" * 43,
    }
    with pytest.raises(PlaintextRefused, match="TESSERA_TLS_CERT_FILE"):
        server_credentials(Settings(**production))
    with pytest.raises(PlaintextRefused, match="TESSERA_TLS_TERMINATED_BY_PROXY"):
        ssl_context(Settings(**production))
    behind_proxy = Settings(**production, tls_terminated_by_proxy=True)
    assert server_credentials(behind_proxy) is None and ssl_context(behind_proxy) is None
    served = Settings(**production, tls_cert_file=pki.server.cert, tls_key_file=pki.server.key)
    assert server_credentials(served) is not None and ssl_context(served) is not None
    with pytest.raises(ValueError, match="set together"):
        Settings(tls_cert_file=pki.server.cert)
    with pytest.raises(ValueError, match="needs TESSERA_TLS_CERT_FILE"):
        Settings(tls_client_ca_file=pki.ca.cert)


def _handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> str:
    """One real TLS handshake over loopback; returns the negotiated version."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        outcome: list[BaseException | None] = []

        def accept() -> None:
            connection, _ = listener.accept()
            try:
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    tls.recv(1)
                outcome.append(None)
            except (ssl.SSLError, OSError) as error:
                outcome.append(error)

        thread = threading.Thread(target=accept)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client_context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                tls.sendall(b"x")
                version = tls.version() or ""
                tls.recv(1)  # the server's verdict on our certificate arrives after the handshake in TLS 1.3
        finally:
            thread.join(timeout=10)
        if outcome and outcome[0] is not None:
            raise outcome[0]
        return version


def test_the_ssl_context_for_other_faces_uses_the_same_files(settings: Settings, pki: Pki) -> None:
    mtls = settings.model_copy(
        update={"tls_cert_file": pki.server.cert, "tls_key_file": pki.server.key, "tls_client_ca_file": pki.ca.cert}
    )
    server_context = ssl_context(mtls)
    assert server_context is not None and ssl_context(settings) is None
    client = ssl.create_default_context(cafile=str(pki.ca.cert))
    client.load_cert_chain(pki.client.cert, pki.client.key)
    assert _handshake(server_context, client) in {"TLSv1.2", "TLSv1.3"}
    anonymous = ssl.create_default_context(cafile=str(pki.ca.cert))
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(server_context, anonymous)


def _curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-w", "\n%{http_version} %{http_code}", *args, url],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_the_http_face_serves_https_with_the_same_files(tls_server: ServerHandle, pki: Pki, token: str) -> None:
    """HTTP/2 by ALPN and HTTP/1.1 over TLS with the gRPC port's certificate; no plaintext."""
    url = f"https://127.0.0.1:{tls_server.running.http_port}/api/v1/dashboard/dashboards"
    auth = ("-H", f"authorization: Bearer {token}")
    for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
        answer = _curl(url, flag, "--cacert", str(pki.ca.cert), *auth)
        body, _, status = answer.stdout.rpartition("\n")
        assert status == f"{version} 200" and json.loads(body)["dashboards"] == [], (flag, answer)
    untrusted = _curl(url, "--http2", *auth)  # the system's CAs do not know the test CA
    assert untrusted.returncode == 60, untrusted  # curl: peer certificate cannot be authenticated
    plaintext = _curl(url.replace("https://", "http://"), "--http1.1", *auth)
    assert not plaintext.stdout.endswith(" 200"), plaintext


def test_the_http_face_requires_client_certificates_under_mtls(mtls_server: ServerHandle, pki: Pki, token: str) -> None:
    url = f"https://127.0.0.1:{mtls_server.running.http_port}/api/v1/dashboard/dashboards"
    trust = ("--cacert", str(pki.ca.cert), "-H", f"authorization: Bearer {token}")
    without = _curl(url, *trust)
    assert without.returncode != 0 and not without.stdout.endswith(" 200"), without
    stranger = _curl(url, *trust, "--cert", str(pki.stranger_client.cert), "--key", str(pki.stranger_client.key))
    assert stranger.returncode != 0 and not stranger.stdout.endswith(" 200"), stranger
    client = _curl(url, *trust, "--cert", str(pki.client.cert), "--key", str(pki.client.key))
    assert client.returncode == 0 and client.stdout.endswith("2 200"), client
