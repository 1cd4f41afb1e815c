"""AuditInterceptor: one audit event per rpc, including the ones refused before authentication.

It sits outside the authentication interceptor, so it also sees UNAUTHENTICATED calls: those go
to `AuditLog.record_refusal` (no subject; the method, the peer's address, the kind of credential
and the reason; never the credential), which aggregates them so a flood cannot crowd the log.

For authenticated calls: denials (PERMISSION_DENIED, NOT_FOUND from the access checks) are DENIED
events; other failures ERROR events; data reads (GetWidgetData, BatchGetWidgetData: one event per
widget; RunQuery) carry the row count and `phi_unmasked`, which is true exactly when the response
showed at least one PHI column unmasked (the domain notes which, see server/audit/facts.py). The
event's facility is that of the resource the rpc loaded, so a caller of several facilities is
still recorded where it acted. Recording only appends to the AuditLog's buffer.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from server.api import context as rpc_context
from server.api.context import Ctx
from server.api.interceptors import PUBLIC_SERVICES, Streaming, Unary, _iterate, _Wrapping
from server.audit import facts as audit_facts
from server.audit.facts import RpcFacts
from server.audit.log import DENIED, ERROR, SUCCESS, AuditEvent, AuditLog
from server.audit.refusals import RefusalKey, peer_host
from server.auth.authenticator import LINK_HEADER
from server.auth.principal import Principal
from server.errors import NotFound, PermissionDenied, TesseraError, Unauthenticated

log = logging.getLogger("tessera.audit")

RESOURCE_OF_SERVICE = {
    "DashboardService": "dashboard",
    "WidgetService": "widget",
    "QueryService": "query",
    "ExportService": "export",
    "ShareService": "dashboard",
    "ReportService": "report_subscription",
    "AlertService": "alert_rule",
    "SearchService": "dashboard",
}
RESOURCE_OF_METHOD = {
    "RevokePublicLink": "public_link",
    "ListAuditEvents": "audit_log",
    "MaterializeDashboard": "dashboard",
    "GetMaterializationJob": "job",
    "WatchMaterializationJob": "job",
    "GetReportDelivery": "report_delivery",
    "WatchReportDelivery": "report_delivery",
    "Search": "search",
}
ID_FIELDS = ("id", "widget_id", "dashboard_id", "query_id", "job_id", "subscription_id", "rule_id")


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
    inner = (
        getattr(request, "dashboard", None)
        or getattr(request, "widget", None)
        or getattr(request, "query", None)
        or getattr(request, "subscription", None)
        or getattr(request, "rule", None)
    )
    value = getattr(inner, "id", "") if inner is not None else ""
    return kind, value if isinstance(value, str) else ""


def _imported(event: AuditEvent, response: Any) -> AuditEvent:
    """An import names the dashboard it made (a clone: in details, its resource is the source),
    where it went, and what became of each query of the document."""
    made = response.dashboard
    details = {
        **event.details,
        "validate_only": response.validate_only,
        "queries": {x.key: {"action": int(x.action), "query_id": x.query_id} for x in response.queries},
    }
    if made.id:
        details.update(created_dashboard_id=made.id, target_facility_id=made.facility_id)
    if not event.resource_id and made.id:
        return dataclasses.replace(event, resource_id=made.id, facility_id=made.facility_id, details=details)
    return dataclasses.replace(event, details=details)


def _facility(principal: Principal, facts: RpcFacts, response: Any = None) -> str:
    """The resource's facility (noted by the domain, or named by the response); else the caller's
    only facility; for a caller of several, none that cannot be proved."""
    if facts.facility_id:
        return facts.facility_id
    value = getattr(response, "facility_id", "") if response is not None else ""
    if isinstance(value, str) and value:
        return value
    return next(iter(principal.facilities)) if len(principal.facilities) == 1 else ""


def credential_kind(ctx: Ctx) -> str:
    """What kind of credential the call presented (never the credential itself)."""
    metadata = {k: v for k, v in (ctx.invocation_metadata() or ()) if isinstance(v, str)}
    header = metadata.get("authorization", "")
    if header:
        return "bearer" if header[:7].lower() == "bearer " else "other"
    return "link" if metadata.get(LINK_HEADER, "").strip() else "none"


class AuditInterceptor(_Wrapping):
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def _event(
        self, method: str, request: Any, principal: Principal, facts: RpcFacts, outcome: int, **fields: Any
    ) -> AuditEvent:
        kind, resource_id = _resource(method, request)
        values: dict[str, Any] = {
            "actor": principal.subject,
            "method": method.lstrip("/"),
            "outcome": outcome,
            "facility_id": _facility(principal, facts),
            "resource_type": kind,
            "resource_id": resource_id,
            "correlation_id": rpc_context.correlation_id.get(),
        }
        values.update(fields)
        values["details"] = {**values.get("details", {}), "transport": rpc_context.transport.get()}
        return AuditEvent(**values)

    def _success(self, method: str, request: Any, principal: Principal, facts: RpcFacts, response: Any) -> None:
        name = method.rsplit("/", 1)[-1]
        if name == "GetWidgetData":
            self._audit.record(self._data_event(method, request, principal, facts, response))
            return
        if name == "BatchGetWidgetData":
            for item in response.data:
                self._audit.record(self._data_event(method, request, principal, facts, item))
            return
        if name == "BatchCloneDashboards":
            for event in self._batch_clone_events(method, request, principal, facts, response):
                self._audit.record(event)
            return
        if name == "RunQuery":
            phi, fields = self._phi(principal, facts, "", response)
            self._audit.record(
                self._event(
                    method,
                    request,
                    principal,
                    facts,
                    SUCCESS,
                    resource_version=response.query_version or None,
                    row_count=response.frame.row_count,
                    phi_unmasked=phi,
                    **fields,
                )
            )
            return
        version = getattr(response, "version", None)
        event = self._event(
            method,
            request,
            principal,
            facts,
            SUCCESS,
            facility_id=_facility(principal, facts, response),
            resource_version=version if isinstance(version, int) and version else None,
        )
        created = getattr(response, "id", None)
        if not event.resource_id and isinstance(created, str) and created:
            event = dataclasses.replace(event, resource_id=created)  # a create names it in the response
        if name in ("ImportDashboard", "CloneDashboard"):
            event = _imported(event, response)
        self._audit.record(event)

    def _batch_clone_events(
        self, method: str, request: Any, principal: Principal, facts: RpcFacts, response: Any
    ) -> list[AuditEvent]:
        """One event per copy, as CloneDashboard's: its resource is the source, in the source's
        facility, and its details name the copy (and the copy's place in the batch)."""
        events = []
        for i, (item, made) in enumerate(zip(request.requests, response.clones, strict=True)):
            facility = facts.item_facilities[i] if i < len(facts.item_facilities) else made.dashboard.facility_id
            event = self._event(
                method, item, principal, facts, SUCCESS, facility_id=facility, details={"batch_index": i}
            )
            events.append(_imported(event, made))
        return events

    def _phi(self, principal: Principal, facts: RpcFacts, widget_id: str, data: Any) -> tuple[bool, dict[str, Any]]:
        """(phi_unmasked, extra event fields) for one frame of a response."""
        found = facts.disclosure(widget_id, data.query_version)
        if found is None:
            # The domain did not say (a bug): err towards recording an unmasked read.
            log.warning("data read without disclosure facts", extra={"widget_id": widget_id})
            phi = principal.can_read_phi and not data.masked and len(data.frame.columns) > 0
            return phi, {"details": {"phi_columns": "unknown"}}
        fields: dict[str, Any] = {"details": {"phi_columns": list(found.phi_columns)}}
        if found.facility_id:
            fields["facility_id"] = found.facility_id
        return bool(found.phi_columns), fields

    def _data_event(self, method: str, request: Any, principal: Principal, facts: RpcFacts, data: Any) -> AuditEvent:
        phi, fields = self._phi(principal, facts, data.widget_id, data)
        fields["details"].update(source=int(data.source), masked=bool(data.masked))
        return self._event(
            method,
            request,
            principal,
            facts,
            SUCCESS,
            resource_type="widget",
            resource_id=data.widget_id,
            resource_version=data.query_version or None,
            row_count=data.frame.row_count,
            phi_unmasked=phi,
            **fields,
        )

    def _failure(self, method: str, request: Any, ctx: Ctx, facts: RpcFacts, exc: BaseException) -> None:
        principal = _principal_or_none()
        if principal is None:
            # Refused before anyone was identified (or authentication itself failed).
            reason = exc.reason if isinstance(exc, TesseraError) else "INTERNAL"
            outcome = DENIED if isinstance(exc, Unauthenticated) else ERROR
            key = RefusalKey(
                method.lstrip("/"),
                peer_host(ctx.peer() or ""),
                credential_kind(ctx),
                reason,
                outcome,
                rpc_context.transport.get(),
            )
            self._audit.record_refusal(key, rpc_context.correlation_id.get())
            return
        if isinstance(exc, (PermissionDenied, NotFound)):
            fields: dict[str, Any] = {"details": {"reason": exc.reason}}
            if isinstance(exc, NotFound):
                fields.update(resource_type=exc.resource_type, resource_id=exc.resource_id)
            self._audit.record(self._event(method, request, principal, facts, DENIED, **fields))
        else:
            reason = exc.reason if isinstance(exc, TesseraError) else "INTERNAL"
            self._audit.record(self._event(method, request, principal, facts, ERROR, details={"reason": reason}))

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        if method.startswith(PUBLIC_SERVICES):
            return behaviour

        async def audited(request: Any, ctx: Ctx) -> Any:
            rpc_context.set_principal(None)  # whoever this call is, the auth interceptor says so
            with audit_facts.collecting() as facts:
                try:
                    response = await behaviour(request, ctx)
                except Exception as exc:
                    self._failure(method, request, ctx, facts, exc)
                    raise
                principal = _principal_or_none()
                if principal is not None:
                    self._success(method, request, principal, facts, response)
            return response

        return audited

    def wrap_stream(self, method: str, behaviour: Streaming) -> Streaming:
        if method.startswith(PUBLIC_SERVICES):
            return behaviour

        async def audited(request: Any, ctx: Ctx) -> AsyncIterator[Any]:
            rpc_context.set_principal(None)
            with audit_facts.collecting() as facts:
                try:
                    async for item in _iterate(behaviour(request, ctx)):
                        yield item
                except Exception as exc:
                    self._failure(method, request, ctx, facts, exc)
                    raise
                principal = _principal_or_none()
                if principal is not None:
                    self._audit.record(self._event(method, request, principal, facts, SUCCESS))

        return audited
