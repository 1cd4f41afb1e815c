"""A Python client for Tessera: typed wrappers over the generated gRPC stubs with token
handling, retries with backoff, deadlines, pagination, resumable job watches, verified export
downloads, batch helpers and errors carrying the `google.rpc` details as Python objects.

    from tessera_client import Client

    with Client.from_env() as client:                     # TESSERA_ADDRESS, TESSERA_TOKEN
        board = client.dashboards.create(title="Beds", tags=["ops"])
        job = client.widgets.materialize_and_wait(board.id, on_progress=print)

See examples/ for every usage example of the specification, end to end.
"""

from tessera_client import rpcs
from tessera_client.aio import AsyncClient
from tessera_client.client import DEFAULT_ADDRESS, Client, Download
from tessera_client.credentials import CachedToken
from tessera_client.errors import (
    AbortedError,
    AlreadyExistsError,
    ApiError,
    CancelledError,
    DeadlineExceededError,
    DownloadVerificationError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionViolation,
    QuotaViolation,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    error_from_rpc,
)
from tessera_client.jobs import TERMINAL_STATES
from tessera_client.retry import DEFAULT_RETRY, NO_RETRY, Idempotency, RetryPolicy, is_refusal
from tessera_client.services import ExportResult
from tessera_client.tls import TlsFileError, credentials_from_env, tls_credentials
from tessera_client.values import date_range, duration, parameter_map, parameter_value, rows, table

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_RETRY",
    "NO_RETRY",
    "TERMINAL_STATES",
    "AbortedError",
    "AlreadyExistsError",
    "ApiError",
    "AsyncClient",
    "CachedToken",
    "CancelledError",
    "Client",
    "DeadlineExceededError",
    "Download",
    "DownloadVerificationError",
    "ExportResult",
    "FailedPreconditionError",
    "Idempotency",
    "InternalError",
    "InvalidArgumentError",
    "JobFailedError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionViolation",
    "QuotaViolation",
    "ResourceExhaustedError",
    "RetryPolicy",
    "TlsFileError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "credentials_from_env",
    "date_range",
    "duration",
    "error_from_rpc",
    "is_refusal",
    "parameter_map",
    "parameter_value",
    "rows",
    "rpcs",
    "table",
    "tls_credentials",
]
