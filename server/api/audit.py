"""AuditInterceptor: one audit event per rpc (after authentication, so it knows the caller).

Denials (PERMISSION_DENIED, NOT_FOUND from the access checks) are DENIED events; data reads
(GetWidgetData, BatchGetWidgetData: one event per widget; RunQuery) carry the row count and
whether PHI was returned unmasked. Recording only appends to the AuditLog's buffer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from server.api import context as rpc_context
from server.api.context import Ctx
from server.api.interceptors import PUBLIC_SERVICES, Streaming, Unary, _iterate, _Wrapping
from server.audit.log import DENIED, ERROR, SUCCESS, AuditEvent, AuditLog
from server.auth.principal import Principal
from server.errors import NotFound, PermissionDenied, TesseraError, Unauthenticated

RESOURCE_OF_SERVICE = {
    "DashboardService": "dashboard",
    "WidgetService": "widget",
    "QueryService": "query",
    "ExportService": "export",
    "ShareService": "dashboard",
}
RESOURCE_OF_METHOD = {
    "RevokePublicLink": "public_link",
    "ListAuditEvents": "audit_log",
    "MaterializeDashboard": "dashboard",
    "GetMaterializationJob": "job",
    "WatchMaterializationJob": "job",
}
ID_FIELDS = ("id", "widget_id", "dashboard_id", "query_id", "job_id")


def _principal_or_none() -> Principal | None:
    try:
        return rpc_context.current_principal()
    except Unauthenticated:
        return None


def _resource(method: str, request: Any) -> tuple[str, str]:
    service, _, name = method.rpartition("/")
    service = service.rsplit(".", 1)[-1]
    kind = RESOURCE_OF_METHOD.get(name) or RESOURCE_OF_SERVICE.get(service, "")
    for attr in ID_FIELDS:
        value = getattr(request, attr, None)
        if isinstance(value, str) and value:
            if attr == "dashboard_id" and kind == "widget":
                kind = "dashboard"
            return kind, value
    inner = getattr(request, "dashboard", None) or getattr(request, "widget", None) or getattr(request, "query", None)
    value = getattr(inner, "id", "") if inner is not None else ""
    return kind, value if isinstance(value, str) else ""


def _facility(principal: Principal, response: Any = None) -> str:
    value = getattr(response, "facility_id", "") if response is not None else ""
    if isinstance(value, str) and value:
        return value
    # A caller of one facility acts in it; for several, the event names none it cannot prove.
    return next(iter(principal.facilities)) if len(principal.facilities) == 1 else ""


def _frame_phi(principal: Principal, data: Any) -> bool:
    """PHI left the server unmasked: a phi:read caller got data that was not masked. Whether
    the query has sensitive columns is not known here, so this errs towards recording."""
    frame = data.frame
    return principal.can_read_phi and not data.masked and len(frame.columns) > 0


class AuditInterceptor(_Wrapping):
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def _event(self, method: str, request: Any, principal: Principal, outcome: int, **fields: Any) -> AuditEvent:
        kind, resource_id = _resource(method, request)
        values: dict[str, Any] = {
            "actor": principal.subject,
            "method": method.lstrip("/"),
            "outcome": outcome,
            "facility_id": _facility(principal),
            "resource_type": kind,
            "resource_id": resource_id,
            "correlation_id": rpc_context.correlation_id.get(),
        }
        values.update(fields)
        return AuditEvent(**values)

    def _success(self, method: str, request: Any, principal: Principal, response: Any) -> None:
        name = method.rsplit("/", 1)[-1]
        if name == "GetWidgetData":
            self._audit.record(self._data_event(method, request, principal, response))
            return
        if name == "BatchGetWidgetData":
            for item in response.data:
                self._audit.record(self._data_event(method, request, principal, item))
            return
        if name == "RunQuery":
            self._audit.record(
                self._event(
                    method,
                    request,
                    principal,
                    SUCCESS,
                    resource_version=response.query_version or None,
                    row_count=response.frame.row_count,
                    phi_unmasked=_frame_phi(principal, response),
                )
            )
            return
        version = getattr(response, "version", None)
        event = self._event(
            method,
            request,
            principal,
            SUCCESS,
            facility_id=_facility(principal, response),
            resource_version=version if isinstance(version, int) and version else None,
        )
        created = getattr(response, "id", None)
        if not event.resource_id and isinstance(created, str) and created:
            event = dataclasses.replace(event, resource_id=created)  # a create names it in the response
        self._audit.record(event)

    def _data_event(self, method: str, request: Any, principal: Principal, data: Any) -> AuditEvent:
        return self._event(
            method,
            request,
            principal,
            SUCCESS,
            resource_type="widget",
            resource_id=data.widget_id,
            resource_version=data.query_version or None,
            row_count=data.frame.row_count,
            phi_unmasked=_frame_phi(principal, data),
            details={"source": int(data.source), "masked": bool(data.masked)},
        )

    def _failure(self, method: str, request: Any, principal: Principal | None, exc: BaseException) -> None:
        if principal is None:
            return
        if isinstance(exc, (PermissionDenied, NotFound)):
            fields: dict[str, Any] = {"details": {"reason": exc.reason}}
            if isinstance(exc, NotFound):
                fields.update(resource_type=exc.resource_type, resource_id=exc.resource_id)
            self._audit.record(self._event(method, request, principal, DENIED, **fields))
        else:
            reason = exc.reason if isinstance(exc, TesseraError) else "INTERNAL"
            self._audit.record(self._event(method, request, principal, ERROR, details={"reason": reason}))

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        if method.startswith(PUBLIC_SERVICES):
            return behaviour

        async def audited(request: Any, ctx: Ctx) -> Any:
            try:
                response = await behaviour(request, ctx)
            except Exception as exc:
                self._failure(method, request, _principal_or_none(), exc)
                raise
            principal = _principal_or_none()
            if principal is not None:
                self._success(method, request, principal, response)
            return response

        return audited

    def wrap_stream(self, method: str, behaviour: Streaming) -> Streaming:
        if method.startswith(PUBLIC_SERVICES):
            return behaviour

        async def audited(request: Any, ctx: Ctx) -> AsyncIterator[Any]:
            try:
                async for item in _iterate(behaviour(request, ctx)):
                    yield item
            except Exception as exc:
                self._failure(method, request, _principal_or_none(), exc)
                raise
            principal = _principal_or_none()
            if principal is not None:
                self._audit.record(self._event(method, request, principal, SUCCESS))

        return audited
