"""Per-rpc context (principal, correlation id) carried in contextvars: each rpc runs in its own
task, so values set by the interceptors are seen by the servicer and everything it calls."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, TypeAlias

import grpc

from server.auth.principal import Principal
from server.db import replica as db_replica
from server.errors import Unauthenticated

# The correlation id lives with logging (server.logs), which every layer may use; rpcs set it here.
from server.logs import correlation_id as correlation_id

# The servicer context type every handler receives.
Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]

_principal: ContextVar[Principal | None] = ContextVar("tessera_principal", default=None)
rpc_method: ContextVar[str] = ContextVar("tessera_rpc_method", default="")


def set_principal(principal: Principal | None) -> None:
    _principal.set(principal)
    db_replica.reader.set(principal.subject if principal is not None else None)  # read-your-writes


def current_principal() -> Principal:
    principal = _principal.get()
    if principal is None:  # the auth interceptor guarantees one on every rpc it does not exempt
        raise Unauthenticated("no credentials", reason="MISSING_CREDENTIALS")
    return principal


# Which transport carried the call ("grpc" or "http"): the HTTP face sets it, audit records it.
transport: ContextVar[str] = ContextVar("tessera_transport", default="grpc")
