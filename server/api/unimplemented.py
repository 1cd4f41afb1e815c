"""Services whose behaviour belongs to later work answer UNIMPLEMENTED, clearly, instead of
pretending. One factory builds such servicers from the service descriptor, so the contract
(every rpc present, every stream a stream) always matches the protos."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from server.api.context import Ctx
from server.errors import Unimplemented


def not_yet(service: str, method: str, feature: str) -> Unimplemented:
    return Unimplemented(
        f"{service}.{method} is not available yet: {feature} is still being built",
        reason="NOT_YET_IMPLEMENTED",
        metadata={"service": service, "method": method},
    )


def unimplemented_methods(
    base: type, descriptor: ServiceDescriptor, feature: str, only: Iterable[str] | None = None
) -> type:
    """A subclass of the generated `base` servicer whose listed methods (default: all) raise
    UNIMPLEMENTED through the error interceptor."""
    names = set(only) if only is not None else {m.name for m in descriptor.methods}
    attrs: dict[str, Any] = {}
    for method in descriptor.methods:
        if method.name not in names:
            continue
        error = not_yet(descriptor.name, method.name, feature)
        if method.server_streaming:

            async def streaming(self: Any, request: Any, context: Ctx, _e: Exception = error) -> AsyncIterator[Any]:
                raise _e
                yield  # pragma: no cover - makes this an async generator

            attrs[method.name] = streaming
        else:

            async def unary(self: Any, request: Any, context: Ctx, _e: Exception = error) -> Any:
                raise _e

            attrs[method.name] = unary
    return type(f"Unimplemented{descriptor.name}", (base,), attrs)
