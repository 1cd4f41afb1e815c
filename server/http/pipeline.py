"""Each rpc's servicer method wrapped by the same step objects, in the same order, as the gRPC
server's interceptors: HTTP calls the result, so no rule exists twice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from server.api.interceptors import Streaming, Unary, _Wrapping
from server.http.bindings import Binding


def wrapped_calls(
    bindings: Sequence[Binding], steps: Sequence[_Wrapping], services: Mapping[str, object]
) -> dict[str, Any]:
    """rpc path -> behaviour(request, ctx): the servicer's method inside every step, outermost
    first (as grpc.aio applies a server's interceptors)."""
    calls: dict[str, Any] = {}
    for binding in bindings:
        if binding.rpc in calls:
            continue
        servicer = services[binding.method.containing_service.full_name]
        behaviour: Unary | Streaming = getattr(servicer, binding.method.name)
        for step in reversed(steps):
            if binding.streaming:
                behaviour = step.wrap_stream(binding.rpc, behaviour)  # type: ignore[arg-type]
            else:
                behaviour = step.wrap_unary(binding.rpc, behaviour)  # type: ignore[arg-type]
        calls[binding.rpc] = behaviour
    return calls
