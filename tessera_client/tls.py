"""TLS for a client channel: the CA that signed the server's certificate and, for servers that
require client certificates (mTLS), this client's certificate and key. All files are PEM.

    credentials = tls_credentials(ca_file="ca.pem", cert_file="me.pem", key_file="me.key")
    Client("tessera.internal:50051", token=..., credentials=credentials)

`Client.from_env()` and the `tessera` client commands read TESSERA_CA_FILE,
TESSERA_CLIENT_CERT_FILE and TESSERA_CLIENT_KEY_FILE.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import grpc

__all__ = ["TlsFileError", "credentials_from_env", "tls_credentials"]

ENV_CA = "TESSERA_CA_FILE"
ENV_CERT = "TESSERA_CLIENT_CERT_FILE"
ENV_KEY = "TESSERA_CLIENT_KEY_FILE"


class TlsFileError(ValueError):
    """A TLS file is missing, unreadable, or half of a certificate/key pair was given."""


def _read(path: str | Path | None, what: str) -> bytes | None:
    if path is None or str(path) == "":
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TlsFileError(f"cannot read the {what} {path}: {error.strerror}") from None


def tls_credentials(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """Channel credentials for TLS. Without `ca_file` the system's trusted roots verify the
    server; `cert_file` and `key_file` (together) present a client certificate."""
    cert = _read(cert_file, "client certificate")
    key = _read(key_file, "client key")
    if (cert is None) != (key is None):
        raise TlsFileError("a client certificate needs its key and a key its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "CA file"), private_key=key, certificate_chain=cert
    )


def credentials_from_env(environ: Mapping[str, str] | None = None) -> grpc.ChannelCredentials | None:
    """TLS credentials when TESSERA_CA_FILE or a client certificate is configured; None
    (plaintext) otherwise."""
    env = os.environ if environ is None else environ
    ca, cert, key = env.get(ENV_CA, ""), env.get(ENV_CERT, ""), env.get(ENV_KEY, "")
    if not (ca or cert or key):
        return None
    return tls_credentials(ca_file=ca or None, cert_file=cert or None, key_file=key or None)
