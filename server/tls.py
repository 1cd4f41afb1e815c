"""TLS for the server's faces, from one place: the files named by `TESSERA_TLS_*`.

`server_credentials` gives grpc.aio its credentials and `ssl_context` gives an HTTP server (or
anything speaking TLS over a plain socket) the same certificate, key and client-certificate rule,
so every face of one deployment presents the same identity and asks the same of its callers.
Both return None when TLS is off (no certificate configured), which production mode allows only
with `TESSERA_TLS_TERMINATED_BY_PROXY=true`: otherwise they raise, and the server does not start.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from server.config import Mode, Settings

__all__ = ["PlaintextRefused", "TlsFiles", "server_credentials", "ssl_context", "tls_files"]


class PlaintextRefused(RuntimeError):
    """Production mode without TLS and without a declared terminating proxy."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    # Client certificates must chain to this CA (mTLS) when set.
    client_ca: Path | None


def tls_files(settings: Settings) -> TlsFiles | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        if settings.mode is Mode.PRODUCTION and not settings.tls_terminated_by_proxy:
            raise PlaintextRefused(
                "production mode serves only TLS: set TESSERA_TLS_CERT_FILE and TESSERA_TLS_KEY_FILE, or "
                "TESSERA_TLS_TERMINATED_BY_PROXY=true when a proxy in front terminates TLS"
            )
        return None
    return TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise RuntimeError(f"cannot read the TLS {what} {path}: {error.strerror}") from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    files = tls_files(settings)
    if files is None:
        return None
    chain = _read(files.cert, "certificate (TESSERA_TLS_CERT_FILE)")
    key = _read(files.key, "key (TESSERA_TLS_KEY_FILE)")
    _check_pair(files)
    client_ca = (
        _read(files.client_ca, "client CA (TESSERA_TLS_CLIENT_CA_FILE)") if files.client_ca is not None else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A server-side context with the same files (TLS 1.2 at least; client certificates
    required when a client CA is configured)."""
    files = tls_files(settings)
    if files is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as error:
        raise RuntimeError(f"cannot load the TLS certificate {files.cert} with key {files.key}: {error}") from None
    if files.client_ca is not None:
        context.load_verify_locations(cafile=str(files.client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def _check_pair(files: TlsFiles) -> None:
    """Fails at start-up, with the file names, when certificate and key do not belong together
    (grpc would only fail at the first handshake)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as error:
        raise RuntimeError(f"cannot load the TLS certificate {files.cert} with key {files.key}: {error}") from None
