"""The report-subscription domain behind ReportService.

A subscription renders its dashboard's published version as its owner (the creator), so creating
one validates exactly what CreateExport validates for that owner (access, a published version,
filters, page geometry), plus the schedule and the recipients. The owner as the worker will act
is kept on the row and refreshed whenever the owner changes the subscription; access to the
dashboard is checked again at every delivery (server/reports/deliver.py).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import common_pb2, export_pb2, report_pb2
from server import idempotency, pagination
from server.access.policy import Access
from server.access.subscriptions import (
    SubscriptionFacts,
    load_owned,
    require_include_phi,
    require_recipients,
    require_subscriber,
    require_subscription,
    subscription_visible,
    visible_subscriptions,
)
from server.audit import facts as audit_facts
from server.auth.principal import Principal
from server.broker.enqueue import Enqueue
from server.config import Settings
from server.dashboards.access import load_dashboard
from server.db.engine import Database
from server.db.schema import report_deliveries, report_subscriptions
from server.errors import Aborted, FieldViolation, InvalidArgument, NotFound, Unavailable
from server.exports.crypto import export_keys
from server.exports.jobs import ExportStore
from server.exports.principals import principal_from_json, principal_to_json
from server.exports.sealed import seal
from server.exports.service import ExportDomain
from server.notify.targets import saved_target_problem
from server.notify.webhook import check_url
from server.protojson import to_json
from server.reports.convert import (
    ACTIVE,
    ENDED_DELIVERY,
    PAUSED,
    delivery_from_row,
    subscription_etag,
    subscription_from_row,
)
from server.reports.schedule import next_due, schedule_problems

__all__ = ["ReportDomain"]

PREFIX = "subscription."
MUTABLE = ("title", "schedule", "format", "options", "filter_values", "recipients", "include_phi")
MANUAL = report_pb2.DELIVERY_TRIGGER_MANUAL


class ReportDomain:
    def __init__(
        self, db: Database, exports: ExportDomain, export_store: ExportStore, enqueue: Enqueue, settings: Settings
    ) -> None:
        self._db = db
        self._exports = exports
        self._export_store = export_store
        self._enqueue = enqueue
        self._settings = settings

    # --- validation -----------------------------------------------------------------------------

    async def _shape_problems(self, sub: report_pb2.ReportSubscription) -> list[FieldViolation]:
        problems: list[FieldViolation] = []
        if not sub.HasField("schedule"):
            problems.append(FieldViolation(f"{PREFIX}schedule", "a schedule is required", "REQUIRED"))
        else:
            problems += schedule_problems(sub.schedule.cron, sub.schedule.time_zone, f"{PREFIX}schedule")
        if sub.format == export_pb2.EXPORT_FORMAT_UNSPECIFIED:
            problems.append(FieldViolation(f"{PREFIX}format", "PDF or PNG is required", "REQUIRED"))
        if not sub.recipients.emails and not sub.recipients.webhooks:
            problems.append(
                FieldViolation(f"{PREFIX}recipients", "at least one e-mail address or webhook URL", "REQUIRED")
            )
        for i, url in enumerate(sub.recipients.webhooks):
            why = check_url(url, self._settings)
            if why is None:
                why = await saved_target_problem(url, self._settings)
            if why is not None:
                problems.append(FieldViolation(f"{PREFIX}recipients.webhooks[{i}]", why, "WEBHOOK_URL_REFUSED"))
        return problems

    async def _check(self, caller: Principal, owner: Principal, sub: report_pb2.ReportSubscription) -> str:
        """Everything a delivery would fail on, checked now; returns the dashboard's facility."""
        require_subscriber(caller)
        problems = await self._shape_problems(sub)
        if problems:
            raise InvalidArgument(f"{problems[0].field}: {problems[0].description}", violations=problems)
        require_recipients(caller, list(sub.recipients.emails), list(sub.recipients.webhooks))
        if sub.include_phi:
            require_include_phi(owner)
        # As the owner, exactly as CreateExport checks it (published version, filters, geometry).
        request = export_pb2.CreateExportRequest(
            dashboard_id=sub.dashboard_id, format=sub.format, options=sub.options, filter_values=sub.filter_values
        )
        return await self._exports.check(owner, request, PREFIX)

    # --- create -----------------------------------------------------------------------------------

    async def create(
        self, principal: Principal, request: report_pb2.CreateReportSubscriptionRequest, digest: bytes
    ) -> report_pb2.ReportSubscription:
        sub = request.subscription
        if not sub.dashboard_id:
            raise InvalidArgument.field(f"{PREFIX}dashboard_id", "a dashboard is required", "REQUIRED")
        try:
            uuid.UUID(sub.dashboard_id)
        except ValueError:
            raise InvalidArgument.field(f"{PREFIX}dashboard_id", "must be a UUID") from None
        facility = await self._check(principal, principal, sub)
        created: list[Any] = []

        async def insert(conn: AsyncConnection, _: None, __: int) -> tuple[uuid.UUID, report_pb2.ReportSubscription]:
            now = datetime.now(UTC)
            secret = secrets.token_urlsafe(32)
            row = (
                await conn.execute(
                    report_subscriptions.insert()
                    .values(
                        dashboard_id=uuid.UUID(sub.dashboard_id),
                        facility_id=facility,
                        owner_id=principal.subject,
                        owner=principal_to_json(principal),
                        webhook_secret=seal(export_keys(self._settings), secret),
                        state=ACTIVE,
                        next_run_at=next_due(sub.schedule.cron, sub.schedule.time_zone, now),
                        **_values(sub),
                    )
                    .returning(report_subscriptions)
                )
            ).one()
            created.append(row)
            made = subscription_from_row(row)
            made.webhook_secret = secret  # shown once, here
            return row.id, made

        async def existing(sub_id: uuid.UUID) -> report_pb2.ReportSubscription:
            return subscription_from_row(await self._visible(principal, str(sub_id)))

        key = idempotency.RequestKey(principal.subject, "CreateReportSubscription", request.request_id, digest)
        (out,) = await idempotency.create_once(
            self._db, [key], insert, existing, prepare=idempotency.nothing_to_prepare
        )
        return out

    # --- read -----------------------------------------------------------------------------------

    async def _visible(self, principal: Principal, sub_id: str, conn: AsyncConnection | None = None) -> Any:
        row = await load_owned(self._db, principal, report_subscriptions, sub_id, "report_subscription", conn)
        audit_facts.note_facility(row.facility_id)
        return row

    async def get(self, principal: Principal, sub_id: str) -> report_pb2.ReportSubscription:
        return subscription_from_row(await self._visible(principal, sub_id))

    async def list_subscriptions(
        self, principal: Principal, request: report_pb2.ListReportSubscriptionsRequest
    ) -> tuple[list[report_pb2.ReportSubscription], str]:
        size = pagination.page_size(request.page_size)
        filters = pagination.fingerprint("report_subscriptions", request.dashboard_id)
        cursor = pagination.decode(request.page_token, filters)
        table = report_subscriptions
        conditions = [visible_subscriptions(principal)]
        async with self._db.read() as conn:
            if request.dashboard_id:
                board, _ = await load_dashboard(conn, principal, request.dashboard_id, Access.READ_PUBLISHED)
                conditions.append(table.c.dashboard_id == board.id)
            if cursor is not None:
                conditions.append(pagination.older_than(table, cursor))
            rows = (
                await conn.execute(
                    select(table).where(*conditions).order_by(*pagination.newest_first(table)).limit(size + 1)
                )
            ).all()
        # The policy re-checks each row.
        page = [row for row in rows[:size] if subscription_visible(principal, SubscriptionFacts.of(row))]
        return [subscription_from_row(row) for row in page], pagination.next_token(rows, size, filters)

    # --- change ---------------------------------------------------------------------------------

    async def update(
        self, principal: Principal, request: report_pb2.UpdateReportSubscriptionRequest
    ) -> report_pb2.ReportSubscription:
        change = request.subscription
        paths = list(request.update_mask.paths) or list(MUTABLE)
        unknown = [p for p in paths if p not in MUTABLE]
        if unknown:
            raise InvalidArgument.field("update_mask", f"not a field that can be changed: {unknown[0]!r}")
        async with self._db.transaction() as conn:
            row = await self._visible(principal, change.id, conn)
            if change.etag and change.etag != subscription_etag(row):
                raise Aborted("the subscription changed since it was read", metadata={"etag": subscription_etag(row)})
            merged = subscription_from_row(row)
            for path in paths:
                if path in ("title", "format", "include_phi"):
                    setattr(merged, path, getattr(change, path))
                elif path == "filter_values":
                    merged.filter_values.clear()
                    for name, value in change.filter_values.items():
                        merged.filter_values[name].CopyFrom(value)
                else:
                    merged.ClearField(path)
                    if change.HasField(path):
                        getattr(merged, path).CopyFrom(getattr(change, path))
            # The owner's identity is refreshed when the owner changes it; an admin's edit keeps it.
            owner = principal if principal.subject == row.owner_id else principal_from_json(row.owner)
            await self._check(principal, owner, merged)
            values = _values(merged) | {"owner": principal_to_json(owner), "revision": row.revision + 1}
            if row.state == ACTIVE and "schedule" in paths:
                values["next_run_at"] = next_due(merged.schedule.cron, merged.schedule.time_zone, datetime.now(UTC))
            updated = (
                await conn.execute(
                    update(report_subscriptions)
                    .where(report_subscriptions.c.id == row.id)
                    .values(**values)
                    .returning(report_subscriptions)
                )
            ).one()
        return subscription_from_row(updated)

    async def delete(self, principal: Principal, sub_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            row = await self._visible(principal, sub_id, conn)
            if etag and etag != subscription_etag(row):
                raise Aborted("the subscription changed since it was read", metadata={"etag": subscription_etag(row)})
            await conn.execute(delete(report_subscriptions).where(report_subscriptions.c.id == row.id))

    async def pause(self, principal: Principal, sub_id: str) -> report_pb2.ReportSubscription:
        return await self._set_state(principal, sub_id, active=False)

    async def resume(self, principal: Principal, sub_id: str) -> report_pb2.ReportSubscription:
        return await self._set_state(principal, sub_id, active=True)

    async def _set_state(self, principal: Principal, sub_id: str, *, active: bool) -> report_pb2.ReportSubscription:
        async with self._db.transaction() as conn:
            row = await self._visible(principal, sub_id, conn)
            if active:
                values: dict[str, Any] = {
                    "state": ACTIVE,
                    "stop_reason": "",
                    "next_run_at": next_due(row.cron, row.time_zone, datetime.now(UTC)),
                }
            else:
                values = {"state": PAUSED, "next_run_at": None}
            updated = (
                await conn.execute(
                    update(report_subscriptions)
                    .where(report_subscriptions.c.id == row.id)
                    .values(revision=row.revision + 1, **values)
                    .returning(report_subscriptions)
                )
            ).one()
        return subscription_from_row(updated)

    # --- deliveries -------------------------------------------------------------------------------

    async def send_now(
        self, principal: Principal, request: report_pb2.SendReportNowRequest, digest: bytes
    ) -> report_pb2.ReportDelivery:
        row = await self._visible(principal, request.id)
        fresh: list[report_pb2.ReportDelivery] = []

        async def insert(conn: AsyncConnection, _: None, __: int) -> tuple[uuid.UUID, report_pb2.ReportDelivery]:
            made = (
                await conn.execute(
                    report_deliveries.insert()
                    .values(
                        subscription_id=row.id, facility_id=row.facility_id, trigger=MANUAL, due_at=datetime.now(UTC)
                    )
                    .returning(report_deliveries)
                )
            ).one()
            fresh.append(delivery_from_row(made))
            return made.id, fresh[-1]

        async def existing(delivery_id: uuid.UUID) -> report_pb2.ReportDelivery:
            return delivery_from_row(await self._delivery_row(principal, str(delivery_id)))

        key = idempotency.RequestKey(principal.subject, "SendReportNow", request.request_id, digest)
        (out,) = await idempotency.create_once(
            self._db, [key], insert, existing, prepare=idempotency.nothing_to_prepare
        )
        if fresh and out is fresh[0]:
            await self._queue(out.id)
        return out

    async def _queue(self, delivery_id: str) -> None:
        try:
            await self._enqueue(delivery_id)
        except Exception as exc:
            async with self._db.transaction() as conn:
                await conn.execute(
                    update(report_deliveries)
                    .where(report_deliveries.c.id == uuid.UUID(delivery_id))
                    .values(
                        state=report_pb2.DELIVERY_STATE_FAILED,
                        ended_at=datetime.now(UTC),
                        error=to_json(
                            common_pb2.JobError(reason="BROKER_UNAVAILABLE", message="the delivery could not be queued")
                        ),
                    )
                )
            raise Unavailable("the report queue is unavailable; retry", reason="BROKER_UNAVAILABLE") from exc

    async def _delivery_row(self, principal: Principal, delivery_id: str) -> Any:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(report_deliveries).where(report_deliveries.c.id == uuid.UUID(delivery_id)))
            ).first()
            sub = (
                (
                    await conn.execute(
                        select(
                            report_subscriptions.c.id,
                            report_subscriptions.c.facility_id,
                            report_subscriptions.c.owner_id,
                        ).where(report_subscriptions.c.id == row.subscription_id)
                    )
                ).first()
                if row is not None
                else None
            )
        if row is None or sub is None:
            raise NotFound("report_delivery", delivery_id)
        try:
            require_subscription(principal, SubscriptionFacts.of(sub))
        except NotFound:
            raise NotFound("report_delivery", delivery_id) from None
        audit_facts.note_facility(sub.facility_id)
        return row

    async def get_delivery(self, principal: Principal, delivery_id: str) -> report_pb2.ReportDelivery:
        return delivery_from_row(await self._delivery_row(principal, delivery_id))

    async def list_deliveries(
        self, principal: Principal, request: report_pb2.ListReportDeliveriesRequest
    ) -> tuple[list[report_pb2.ReportDelivery], str]:
        sub = await self._visible(principal, request.subscription_id)
        size = pagination.page_size(request.page_size)
        filters = pagination.fingerprint("report_deliveries", request.subscription_id)
        cursor = pagination.decode(request.page_token, filters)
        table = report_deliveries
        conditions = [table.c.subscription_id == sub.id]
        if cursor is not None:
            conditions.append(pagination.older_than(table, cursor))
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(table).where(*conditions).order_by(*pagination.newest_first(table)).limit(size + 1)
                )
            ).all()
        return [delivery_from_row(row) for row in rows[:size]], pagination.next_token(rows, size, filters)

    async def watch_delivery(
        self, principal: Principal, delivery_id: str, since_revision: int
    ) -> AsyncIterator[report_pb2.WatchReportDeliveryResponse]:
        """The delivery's export job as WatchExport streams it, then the delivery once ended.
        Before the worker has made the export, and after it ended while recipients are being
        sent to, heartbeats."""
        row = await self._delivery_row(principal, delivery_id)
        pause = self._settings.job_heartbeat_seconds
        while not row.export_id and row.ended_at is None:
            yield report_pb2.WatchReportDeliveryResponse(heartbeat=_beat(since_revision))
            await asyncio.sleep(pause)
            row = await self._delivery_row(principal, delivery_id)
        if row.export_id:
            async for event in self._export_store.watch(str(row.export_id), since_revision):
                if event.HasField("export"):
                    yield report_pb2.WatchReportDeliveryResponse(export=event.export)
                else:
                    yield report_pb2.WatchReportDeliveryResponse(heartbeat=event.heartbeat)
        while row.state not in ENDED_DELIVERY:
            yield report_pb2.WatchReportDeliveryResponse(heartbeat=_beat(since_revision))
            await asyncio.sleep(pause)
            row = await self._delivery_row(principal, delivery_id)
        yield report_pb2.WatchReportDeliveryResponse(delivery=delivery_from_row(row))


def _values(sub: report_pb2.ReportSubscription) -> dict[str, Any]:
    return {
        "title": sub.title,
        "cron": sub.schedule.cron.strip(),
        "time_zone": sub.schedule.time_zone,
        "format": int(sub.format),
        "options": to_json(sub.options),
        "filter_values": {name: to_json(value) for name, value in sub.filter_values.items()},
        "emails": list(sub.recipients.emails),
        "webhooks": list(sub.recipients.webhooks),
        "include_phi": sub.include_phi,
    }


def _beat(revision: int) -> common_pb2.Heartbeat:
    beat = common_pb2.Heartbeat(revision=revision)
    beat.time.GetCurrentTime()
    return beat
