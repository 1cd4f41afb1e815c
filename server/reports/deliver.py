"""The body of the delivery task: render the report as the subscription's owner, then send it.

The file is an ordinary export job of the owner, created with the delivery's id as its request
id (so a re-run finds the same job) and rendered here, in the worker that delivers it, through the
export runner (facility scope, masking and access exactly as for CreateExport). PHI stays masked
unless the owner held `phi:read` when they last saved the subscription and asked for it.

An owner who can no longer read the dashboard stops the subscription, with the reason on it.
Each recipient's outcome is written as soon as it is known, and a re-run (a worker died, the
task came again) sends only to those not yet served. One worker at a time works on a delivery
(a PostgreSQL advisory lock, released by the database if the worker dies). Every delivery leaves
one audit event naming its recipients.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text, update

from dashboard.v1 import common_pb2, export_pb2, report_pb2
from server import idempotency
from server.access.policy import Access
from server.access.subscriptions import acting_owner
from server.audit.log import ERROR, SUCCESS, AuditEvent, AuditLog
from server.auth.principal import Principal
from server.config import Settings
from server.dashboards.access import load_dashboard
from server.db.engine import Database
from server.db.schema import report_deliveries, report_subscriptions
from server.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from server.exports.principals import principal_from_json
from server.exports.runner import ExportDeps, run_export
from server.exports.sealed import opened_secret
from server.exports.service import ExportDomain
from server.notify.outcome import Outcome
from server.notify.smtp import Attachment, Mail, SmtpSender
from server.notify.webhook import WebhookSender
from server.protojson import from_json, to_json
from server.reports.convert import ENDED_DELIVERY, STOPPED, delivery_from_row

__all__ = ["AUDIT_METHOD", "ReportDeps", "run_delivery"]

log = logging.getLogger("tessera.reports")

AUDIT_METHOD = "tessera.reports.deliver"
S = report_pb2


@dataclass
class ReportDeps:
    """What a worker process delivers reports with."""

    settings: Settings
    db: Database
    exports: ExportDomain  # creates the owner's export job; this worker renders it
    export_run: ExportDeps
    smtp: SmtpSender
    webhooks: WebhookSender
    audit: AuditLog


@contextlib.asynccontextmanager
async def _exclusive(db: Database, delivery_id: str) -> AsyncIterator[bool]:
    """True while this process alone works on the delivery (a session-level advisory lock)."""
    async with db.engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        key = {"k": f"tessera.report_delivery:{delivery_id}"}
        mine = bool(await auto.scalar(text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), key))
        try:
            yield mine
        finally:
            if mine:
                await auto.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), key)


async def run_delivery(deps: ReportDeps, delivery_id: str, *, final_attempt: bool = True) -> S.ReportDelivery | None:
    """Runs (or resumes) one delivery; None when it is gone or another worker holds it."""
    async with _exclusive(deps.db, delivery_id) as mine:
        if not mine:
            log.info("reports: delivery %s is being worked on elsewhere", delivery_id)
            return None
        return await _deliver(deps, delivery_id, final_attempt)


async def _deliver(deps: ReportDeps, delivery_id: str, final_attempt: bool) -> S.ReportDelivery | None:
    async with deps.db.read() as conn:
        row = (
            await conn.execute(select(report_deliveries).where(report_deliveries.c.id == uuid.UUID(delivery_id)))
        ).first()
        sub = (
            (
                await conn.execute(select(report_subscriptions).where(report_subscriptions.c.id == row.subscription_id))
            ).first()
            if row is not None
            else None
        )
    if row is None or sub is None:
        return None
    if row.state in ENDED_DELIVERY:
        return delivery_from_row(row)
    owner = acting_owner(principal_from_json(sub.owner), sub.include_phi)
    try:
        async with deps.db.read() as conn:
            board, _ = await load_dashboard(conn, owner, str(sub.dashboard_id), Access.READ_PUBLISHED)
        export_id = row.export_id or await _create_export(deps, owner, sub, delivery_id)
    except (NotFound, PermissionDenied) as exc:
        reason = f"the owner {sub.owner_id!r} can no longer read the dashboard ({exc.message})"
        await _stop(deps.db, sub.id, reason)
        return await _end(deps, row, sub, S.DELIVERY_STATE_FAILED, [], ("OWNER_LOST_ACCESS", reason))
    except (FailedPrecondition, InvalidArgument) as exc:
        return await _end(deps, row, sub, S.DELIVERY_STATE_FAILED, [], ("EXPORT_REFUSED", exc.message))
    await _set(deps.db, row.id, state=S.DELIVERY_STATE_RENDERING, export_id=export_id)
    job = await run_export(deps.export_run, str(export_id), final_attempt=final_attempt)
    if job is None or job.state != common_pb2.JOB_STATE_SUCCEEDED:
        why = job.error.message if job is not None and job.HasField("error") else "the export did not finish"
        return await _end(deps, row, sub, S.DELIVERY_STATE_FAILED, [], ("EXPORT_FAILED", why))
    export_row = await deps.export_run.store.row(str(export_id))
    data = await asyncio.to_thread(_read, deps.export_run, export_row.storage_url, job.file.size_bytes)
    await _set(deps.db, row.id, state=S.DELIVERY_STATE_SENDING)
    outcomes = await _send_all(deps, row, sub, board.title, job, data, bool(export_row.phi_unmasked))
    delivered = sum(o.delivered for o in outcomes)
    state = (
        S.DELIVERY_STATE_DELIVERED
        if delivered == len(outcomes)
        else S.DELIVERY_STATE_PARTIALLY_DELIVERED
        if delivered
        else S.DELIVERY_STATE_FAILED
    )
    error = None if delivered == len(outcomes) else ("RECIPIENTS_FAILED", _failures(outcomes))
    return await _end(deps, row, sub, state, outcomes, error, job=job, phi_unmasked=bool(export_row.phi_unmasked))


async def _create_export(deps: ReportDeps, owner: Principal, sub: Any, delivery_id: str) -> uuid.UUID:
    request = export_pb2.CreateExportRequest(
        dashboard_id=str(sub.dashboard_id),
        format=sub.format,
        options=from_json(sub.options, export_pb2.ExportOptions()),
        request_id=delivery_id,  # a re-run finds the job it made
    )
    for name, value in (sub.filter_values or {}).items():
        request.filter_values[name].CopyFrom(from_json(value, common_pb2.ParameterValue()))
    job = await deps.exports.create(owner, request, idempotency.request_hash(request))
    return uuid.UUID(job.id)


def _read(export_run: ExportDeps, url: str, size: int) -> bytes:
    return b"".join(export_run.storage.chunks(url, 0, max(size, 1)))


async def _send_all(
    deps: ReportDeps, row: Any, sub: Any, board_title: str, job: export_pb2.ExportJob, data: bytes, phi: bool
) -> list[Outcome]:
    done = {item["recipient"]: Outcome(**item) for item in row.recipients or [] if item.get("delivered")}
    outcomes: list[Outcome] = []
    title = sub.title or board_title
    mail = Mail(
        subject=f"Report: {title}",
        text=_summary(sub, board_title, job, phi),
        attachment=Attachment(job.file.filename, job.file.content_type, data),
    )
    body = _webhook_body(deps.settings, row, sub, board_title, job, data, phi)
    for email in sub.emails:
        target = f"mailto:{email}"
        outcome = done.get(target) or await deps.smtp.send(email, mail)
        outcomes.append(outcome)
        await _record(deps.db, row.id, outcomes)
    secret, broken = opened_secret(deps.settings, sub.webhook_secret) if sub.webhooks else ("", "")
    for url in sub.webhooks:
        outcome = done.get(url) or (
            Outcome(url, False, 0, broken) if broken else await deps.webhooks.send(url, body, secret, str(row.id))
        )
        outcomes.append(outcome)
        await _record(deps.db, row.id, outcomes)
    return outcomes


def _summary(sub: Any, board_title: str, job: export_pb2.ExportJob, phi: bool) -> str:
    local = job.create_time.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo(sub.time_zone))
    filters = ", ".join(f"{name}={json.dumps(value)}" for name, value in sorted((sub.filter_values or {}).items()))
    lines = [
        f"{sub.title or board_title}",
        "",
        f"Dashboard: {board_title} (version {job.dashboard_version})",
        f"Generated: {local:%Y-%m-%d %H:%M} {sub.time_zone}",
        f"Attached: {job.file.filename} ({job.file.page_count} page(s), {job.file.size_bytes:,} bytes)",
        f"Filters: {filters or 'as the dashboard shows them'}",
        "Protected health information: " + ("included" if phi else "masked"),
        "",
        f"Sent by Tessera for {sub.owner_id} (subscription {sub.id}, schedule '{sub.cron}' {sub.time_zone}).",
    ]
    return "\n".join(lines) + "\n"


def _webhook_body(
    settings: Settings, row: Any, sub: Any, board_title: str, job: export_pb2.ExportJob, data: bytes, phi: bool
) -> bytes:
    inline = len(data) <= settings.webhook_inline_max_bytes
    payload = {
        "type": "report.delivery",
        "delivery_id": str(row.id),
        "subscription_id": str(sub.id),
        "dashboard_id": str(sub.dashboard_id),
        "dashboard_title": board_title,
        "title": sub.title or board_title,
        "trigger": S.DeliveryTrigger.Name(row.trigger),
        "due_time": row.due_at.astimezone(UTC).isoformat(),
        "export_id": job.id,
        "file": {
            "filename": job.file.filename,
            "content_type": job.file.content_type,
            "size_bytes": job.file.size_bytes,
            "sha256": job.file.sha256,
            "page_count": job.file.page_count,
        },
        "phi_included": phi,
        # Authenticated as the owner, until the file expires.
        "download_path": f"/api/v1/dashboard/exports/{job.id}:download",
        "content_base64": base64.b64encode(data).decode() if inline else None,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def _failures(outcomes: list[Outcome]) -> str:
    return "; ".join(f"{o.recipient}: {o.error}" for o in outcomes if not o.delivered)[:2000]


# --- row changes -----------------------------------------------------------------------------------


async def _set(db: Database, delivery_id: uuid.UUID, **values: Any) -> None:
    async with db.transaction() as conn:
        await conn.execute(update(report_deliveries).where(report_deliveries.c.id == delivery_id).values(**values))


async def _record(db: Database, delivery_id: uuid.UUID, outcomes: list[Outcome]) -> None:
    await _set(db, delivery_id, recipients=[dataclasses.asdict(o) for o in outcomes])


async def _stop(db: Database, sub_id: uuid.UUID, reason: str) -> None:
    log.warning("reports: subscription %s stopped: %s", sub_id, reason)
    async with db.transaction() as conn:
        await conn.execute(
            update(report_subscriptions)
            .where(report_subscriptions.c.id == sub_id)
            .values(
                state=STOPPED,
                stop_reason=reason,
                next_run_at=None,
                revision=report_subscriptions.c.revision + 1,
            )
        )


async def _end(
    deps: ReportDeps,
    row: Any,
    sub: Any,
    state: int,
    outcomes: list[Outcome],
    error: tuple[str, str] | None,
    *,
    job: export_pb2.ExportJob | None = None,
    phi_unmasked: bool = False,
) -> S.ReportDelivery:
    values: dict[str, Any] = {
        "state": state,
        "ended_at": datetime.now(UTC),
        "error": to_json(common_pb2.JobError(reason=error[0], message=error[1])) if error else None,
    }
    if outcomes:
        values["recipients"] = [dataclasses.asdict(o) for o in outcomes]
    deps.audit.record(
        AuditEvent(
            actor=sub.owner_id,
            method=AUDIT_METHOD,
            outcome=SUCCESS if state != S.DELIVERY_STATE_FAILED else ERROR,
            facility_id=sub.facility_id,
            resource_type="report_subscription",
            resource_id=str(sub.id),
            resource_version=job.dashboard_version if job is not None else None,
            phi_unmasked=phi_unmasked,
            details={
                "delivery_id": str(row.id),
                "dashboard_id": str(sub.dashboard_id),
                "export_id": job.id if job is not None else "",
                "trigger": S.DeliveryTrigger.Name(row.trigger),
                "state": S.DeliveryState.Name(state),
                "recipients": [*(f"mailto:{e}" for e in sub.emails), *sub.webhooks],
                "delivered": [o.recipient for o in outcomes if o.delivered],
                "failed": {o.recipient: o.error for o in outcomes if not o.delivered},
                "error": error[0] if error else "",
            },
        )
    )
    await deps.audit.flush()
    # Ended last: whoever sees the delivery ended finds its audit event written.
    async with deps.db.transaction() as conn:
        ended = (
            await conn.execute(
                update(report_deliveries)
                .where(report_deliveries.c.id == row.id)
                .values(**values)
                .returning(report_deliveries)
            )
        ).one()
    return delivery_from_row(ended)
