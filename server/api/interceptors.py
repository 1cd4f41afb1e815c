"""Server interceptors, outermost first: access log -> error mapping -> authentication ->
request validation. Each wraps the method handler's behaviour, so it sees the request and the
outcome (grpc.aio interceptors otherwise see only the call details)."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import protovalidate
from google.protobuf.message import Message

from server.api import context as rpc_context
from server.api import input_rules
from server.api.context import Ctx
from server.api.status import internal_status, status_for
from server.auth.authenticator import Authenticator
from server.db import replica as db_replica
from server.db.errors import is_unavailable
from server.errors import FieldViolation, InvalidArgument, TesseraError, Unavailable
from server.logs import access_lines, new_correlation_id
from server.metrics import Metrics

log = logging.getLogger("tessera.rpc")

Unary = Callable[[Any, Ctx], Awaitable[Any]]
Streaming = Callable[[Any, Ctx], AsyncIterator[Any]]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]]

# Valid requests remembered by the validation step (a set of their bytes, cleared when full),
# small ones only: at most about 10 MB.
VALID_REQUESTS_KEPT = 10_000
VALID_REQUEST_BYTES_KEPT = 1_024

# Reachable without credentials: probes and tooling.
PUBLIC_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class _Wrapping(grpc.aio.ServerInterceptor):
    """Rebuilds a handler around wrapped unary and server-streaming behaviours."""

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        return behaviour

    def wrap_stream(self, method: str, behaviour: Streaming) -> Streaming:
        return behaviour

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        # A method's handler never changes once the server runs: wrap it once, not per call (the
        # interceptors inside are then not asked again either).
        built: dict[str, grpc.RpcMethodHandler[Any, Any]] = self.__dict__.setdefault("_built_handlers", {})
        handler = built.get(handler_call_details.method)
        if handler is None:
            handler = await self.build_handler(continuation, handler_call_details)
            if handler is None:
                return None
            built[handler_call_details.method] = handler
        return handler

    async def build_handler(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self.wrap_unary(method, handler.unary_unary),  # type: ignore[arg-type]  # aio handlers are async
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(method, handler.unary_stream),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


class AccessLogInterceptor(_Wrapping):
    """Assigns the correlation id (or takes the caller's), logs one line per rpc and records
    its duration and status code in the metrics."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    def _begin(self, method: str, ctx: Ctx) -> float:
        metadata = {k: v for k, v in (ctx.invocation_metadata() or ()) if isinstance(v, str)}
        cid = metadata.get("x-correlation-id", "")[:64] or new_correlation_id()
        rpc_context.correlation_id.set(cid)
        rpc_context.rpc_method.set(method)
        return time.perf_counter()

    def _end(self, method: str, ctx: Ctx, started: float) -> None:
        code = ctx.code()
        name = code.name if isinstance(code, grpc.StatusCode) else "OK"
        seconds = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.observe_rpc(method, name, seconds)
        access_lines.record(method, name, seconds, rpc_context.correlation_id.get())

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        async def logged(request: Any, ctx: Ctx) -> Any:
            started = self._begin(method, ctx)
            try:
                return await behaviour(request, ctx)
            finally:
                self._end(method, ctx, started)

        return logged

    def wrap_stream(self, method: str, behaviour: Streaming) -> Streaming:
        async def logged(request: Any, ctx: Ctx) -> AsyncIterator[Any]:
            started = self._begin(method, ctx)
            try:
                async for item in _iterate(behaviour(request, ctx)):
                    yield item
            finally:
                self._end(method, ctx, started)

        return logged


class ErrorMappingInterceptor(_Wrapping):
    """Domain errors become canonical statuses with ErrorInfo (and BadRequest) details; a
    dependency failure becomes UNAVAILABLE; anything else is a bug: INTERNAL, logged with the
    correlation id and never with user data in the message."""

    async def _abort(self, ctx: Ctx, exc: Exception, method: str) -> None:
        cid = rpc_context.correlation_id.get()
        if isinstance(exc, TesseraError):
            await ctx.abort_with_status(status_for(exc, cid))
        dependency = _dependency_failure(exc)
        if dependency is not None:
            log.warning("dependency unavailable", extra={"method": method, "correlation_id": cid, "error": repr(exc)})
            await ctx.abort_with_status(status_for(dependency, cid))
        log.exception("unhandled error", extra={"method": method, "correlation_id": cid})
        await ctx.abort_with_status(internal_status(cid))

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        async def mapped(request: Any, ctx: Ctx) -> Any:
            try:
                return await behaviour(request, ctx)
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await self._abort(ctx, exc, method)

        return mapped

    def wrap_stream(self, method: str, behaviour: Streaming) -> Streaming:
        async def mapped(request: Any, ctx: Ctx) -> AsyncIterator[Any]:
            try:
                async for item in _iterate(behaviour(request, ctx)):
                    yield item
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await self._abort(ctx, exc, method)

        return mapped


class AuthInterceptor(_Wrapping):
    """Every rpc outside PUBLIC_SERVICES runs with an authenticated principal."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def _authenticate(self, method: str, ctx: Ctx) -> None:
        if method.startswith(PUBLIC_SERVICES):
            rpc_context.set_principal(None)
            return
        metadata = {k: v for k, v in (ctx.invocation_metadata() or ()) if isinstance(v, str)}
        rpc_context.set_principal(await self._authenticator.authenticate(metadata))
        # Read-your-writes across server processes (server/db/replica.py): the caller's last
        # write position in, this rpc's write position out.
        db_replica.read_after.set(db_replica.parse_lsn(metadata.get(db_replica.LSN_METADATA)))
        db_replica.write_mark.set(db_replica.WriteMark())

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        async def authed(request: Any, ctx: Ctx) -> Any:
            await self._authenticate(method, ctx)
            response = await behaviour(request, ctx)
            mark = db_replica.write_mark.get()
            if mark is not None and mark.lsn is not None:
                ctx.set_trailing_metadata(((db_replica.LSN_METADATA, db_replica.format_lsn(mark.lsn)),))
            return response

        return authed

    def wrap_stream(self, method: str, behaviour: Streaming) -> Streaming:
        async def authed(request: Any, ctx: Ctx) -> AsyncIterator[Any]:
            await self._authenticate(method, ctx)
            async for item in _iterate(behaviour(request, ctx)):
                yield item

        return authed


class MalformedRequest:
    """Stands in for a request whose bytes did not parse, so that the call reaches the
    validation step (after authentication and audit) and is refused there like any bad input,
    instead of grpc.aio answering UNKNOWN with a traceback in the log."""

    __slots__ = ("error", "refusal", "size")

    def __init__(self, error: str, size: int, refusal: TesseraError | None = None) -> None:
        self.error = error
        self.size = size
        # What to answer instead of MALFORMED_REQUEST: a transport's own finding about the
        # request (the HTTP face's malformed JSON, wrong media type, unknown field...).
        self.refusal = refusal


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, or a runtime's own complaint about the bytes
            return MalformedRequest(type(exc).__name__, len(data))

    return parse


class ValidationInterceptor(_Wrapping):
    """Refuses bad input once, before any handler runs: bytes that are not the request message,
    the rules every request obeys (server/api/input_rules.py: storable text, representable
    timestamps and durations), and the buf.validate rules written in the protos."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._validator = protovalidate.Validator()
        self._metrics = metrics
        # Requests found valid, by method and bytes: the rules are a pure function of the
        # message, so a repeated request (a dashboard's reads) is not walked again.
        self._valid: set[tuple[str, bytes]] = set()

    async def build_handler(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await super().build_handler(continuation, handler_call_details)
        if handler is None or (handler.unary_unary is None and handler.unary_stream is None):
            return handler
        # Innermost, so the interceptors outside rebuild their handlers with this parser.
        replaced: grpc.RpcMethodHandler[Any, Any] = handler._replace(  # type: ignore[attr-defined]
            request_deserializer=_tolerant(handler.request_deserializer)
        )
        return replaced

    def _validate(self, method: str, request: Any) -> None:
        if isinstance(request, MalformedRequest):
            if self._metrics is not None:
                self._metrics.malformed_requests.labels(method=method, transport=rpc_context.transport.get()).inc()
            if request.refusal is not None:
                raise request.refusal
            raise InvalidArgument(
                f"the request body is not a valid {method.rsplit('/', 1)[-1]} request message",
                reason="MALFORMED_REQUEST",
                metadata={"bytes": str(request.size), "error": request.error},
            )
        if not isinstance(request, Message):
            return
        seen = (method, request.SerializeToString(deterministic=True))
        if seen in self._valid:
            return
        found = input_rules.violations(request)
        if not found:
            found = [
                FieldViolation(
                    field=field_path(v.proto.field) or field_path(v.proto.rule) or "",
                    description=v.proto.message or v.proto.rule_id,
                    reason=v.proto.rule_id,
                )
                for v in self._validator.collect_violations(request)
            ]
        if found:
            first = found[0]
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise InvalidArgument(f"invalid request: {first.field}: {first.description}{more}", violations=found)
        if len(seen[1]) <= VALID_REQUEST_BYTES_KEPT:
            if len(self._valid) >= VALID_REQUESTS_KEPT:
                self._valid.clear()  # bounded; the next requests are checked again
            self._valid.add(seen)

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        async def validated(request: Any, ctx: Ctx) -> Any:
            self._validate(method, request)
            return await behaviour(request, ctx)

        return validated

    def wrap_stream(self, method: str, behaviour: Streaming) -> Streaming:
        async def validated(request: Any, ctx: Ctx) -> AsyncIterator[Any]:
            self._validate(method, request)
            async for item in _iterate(behaviour(request, ctx)):
                yield item

        return validated


def field_path(path: Any) -> str:
    """'dashboard.tags[0]', 'parameter_values["from"]' from a buf.validate FieldPath."""
    if path is None:
        return ""
    parts: list[str] = []
    for element in getattr(path, "elements", ()) or ():
        name = element.field_name or ""
        subscript = getattr(element, "subscript", None)
        if subscript is not None and getattr(subscript, "value", None) is not None:
            value = subscript.value
            name += f'["{value}"]' if isinstance(value, str) else f"[{int(value)}]"
        parts.append(name)
    return ".".join(parts)


async def _iterate(result: Any) -> AsyncIterator[Any]:
    """Server-streaming behaviours come in two shapes: async generators, and coroutines that
    write with context.write() (the health service's Watch). Both pass through."""
    if inspect.isawaitable(result):
        await result
        return
    async for item in result:
        yield item


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises this to end the rpc; it already carries its status.
    return type(exc).__name__ == "AbortError"


def _dependency_failure(exc: BaseException) -> Unavailable | None:
    import redis.exceptions

    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return Unavailable("the cache is unavailable; retry", reason="REDIS_UNAVAILABLE")
    if is_unavailable(exc):
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return Unavailable("a dependency is unavailable; retry", reason="DEPENDENCY_UNAVAILABLE")
        return Unavailable("the database is unavailable; retry", reason="DATABASE_UNAVAILABLE")
    return None
