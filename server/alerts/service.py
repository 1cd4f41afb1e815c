"""The alert-rule domain behind AlertService.

A rule reads its widget's data as its owner (the creator), so creating one checks what
GetWidgetData would check for that owner (access, filter values), plus the rule's own fields and
recipients. Rules are the owner's and their facility admins' (server/access/subscriptions.py).
The state machine itself runs in the workers (server/alerts/runner.py); here are its results.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import alert_pb2, common_pb2, widget_pb2
from server import idempotency, pagination
from server.access.subscriptions import (
    SubscriptionFacts,
    load_owned,
    require_recipients,
    require_subscriber,
    subscription_visible,
    visible_subscriptions,
)
from server.alerts.convert import event_from_row, rule_etag, rule_from_row
from server.alerts.measure import Condition, measure
from server.audit import facts as audit_facts
from server.auth.principal import Principal
from server.config import Settings
from server.db.engine import Database
from server.db.schema import alert_events, alert_rules, widgets
from server.errors import Aborted, FieldViolation, InvalidArgument
from server.exports.crypto import export_keys
from server.exports.principals import principal_from_json, principal_to_json
from server.exports.sealed import seal
from server.notify.targets import saved_target_problem
from server.notify.webhook import check_url
from server.protojson import to_json
from server.widgetdata.service import WidgetDataDomain

__all__ = ["MIN_INTERVAL_SECONDS", "AlertDomain"]

PREFIX = "rule."
RESOURCE = "alert_rule"
MIN_INTERVAL_SECONDS = 60
MUTABLE = (
    "title",
    "column",
    "reducer",
    "comparison",
    "threshold",
    "for_duration",
    "interval",
    "filter_values",
    "recipients",
    "severity",
)
SCALARS = ("title", "column", "reducer", "comparison", "threshold", "severity")


class AlertDomain:
    def __init__(self, db: Database, widget_data: WidgetDataDomain, settings: Settings) -> None:
        self._db = db
        self._widget_data = widget_data
        self._settings = settings

    # --- validation -----------------------------------------------------------------------------

    async def _problems(self, rule: alert_pb2.AlertRule) -> list[FieldViolation]:
        problems: list[FieldViolation] = []
        if not rule.column.strip():
            problems.append(FieldViolation(f"{PREFIX}column", "a column of the widget's data is required", "REQUIRED"))
        if rule.reducer == alert_pb2.ALERT_REDUCER_UNSPECIFIED:
            problems.append(FieldViolation(f"{PREFIX}reducer", "last, min, max, mean or sum is required", "REQUIRED"))
        if rule.comparison == alert_pb2.ALERT_COMPARISON_UNSPECIFIED:
            problems.append(FieldViolation(f"{PREFIX}comparison", "a comparison is required", "REQUIRED"))
        if 0 < rule.interval.ToSeconds() < MIN_INTERVAL_SECONDS or rule.interval.nanos:
            problems.append(
                FieldViolation(
                    f"{PREFIX}interval", f"whole seconds, at least {MIN_INTERVAL_SECONDS} (0: the default)", "TOO_SHORT"
                )
            )
        if rule.for_duration.nanos:
            problems.append(FieldViolation(f"{PREFIX}for_duration", "whole seconds", "INVALID_FIELD"))
        if not rule.recipients.emails and not rule.recipients.webhooks:
            problems.append(
                FieldViolation(f"{PREFIX}recipients", "at least one e-mail address or webhook URL", "REQUIRED")
            )
        for i, url in enumerate(rule.recipients.webhooks):
            why = check_url(url, self._settings)
            if why is None:
                why = await saved_target_problem(url, self._settings)
            if why is not None:
                problems.append(FieldViolation(f"{PREFIX}recipients.webhooks[{i}]", why, "WEBHOOK_URL_REFUSED"))
        return problems

    async def _check(self, caller: Principal, owner: Principal, rule: alert_pb2.AlertRule) -> Any:
        """Everything an evaluation would trip on at once; returns the widget's row."""
        require_subscriber(caller)
        problems = await self._problems(rule)
        if problems:
            raise InvalidArgument(f"{problems[0].field}: {problems[0].description}", violations=problems)
        require_recipients(caller, list(rule.recipients.emails), list(rule.recipients.webhooks))
        await self._check_data(owner, rule)
        async with self._db.read() as conn:
            widget = (
                await conn.execute(
                    select(widgets.c.id, widgets.c.dashboard_id, widgets.c.facility_id).where(
                        widgets.c.id == uuid.UUID(rule.widget_id)
                    )
                )
            ).one()
        return widget

    async def _check_data(self, owner: Principal, rule: alert_pb2.AlertRule) -> None:
        request = widget_pb2.GetWidgetDataRequest(widget_id=rule.widget_id, filter_values=rule.filter_values)
        try:
            await self._widget_data.check(owner, request)
        except InvalidArgument as exc:
            raise InvalidArgument(
                exc.message,
                violations=[FieldViolation(f"{PREFIX}{v.field}", v.description, v.reason) for v in exc.violations],
                reason=exc.reason,
            ) from exc

    # --- create and read -------------------------------------------------------------------------

    async def create(
        self, principal: Principal, request: alert_pb2.CreateAlertRuleRequest, digest: bytes
    ) -> alert_pb2.AlertRule:
        rule = request.rule
        try:
            uuid.UUID(rule.widget_id)
        except ValueError:
            raise InvalidArgument.field(f"{PREFIX}widget_id", "a widget UUID is required", "REQUIRED") from None
        widget = await self._check(principal, principal, rule)

        async def insert(conn: AsyncConnection, _: None, __: int) -> tuple[uuid.UUID, alert_pb2.AlertRule]:
            secret = secrets.token_urlsafe(32)
            row = (
                await conn.execute(
                    alert_rules.insert()
                    .values(
                        widget_id=widget.id,
                        dashboard_id=widget.dashboard_id,
                        facility_id=widget.facility_id,
                        owner_id=principal.subject,
                        owner=principal_to_json(principal),
                        webhook_secret=seal(export_keys(self._settings), secret),
                        **_values(rule),
                    )
                    .returning(alert_rules)
                )
            ).one()
            made = rule_from_row(row)
            made.webhook_secret = secret  # shown once, here
            return row.id, made

        async def existing(rule_id: uuid.UUID) -> alert_pb2.AlertRule:
            return rule_from_row(await self._visible(principal, str(rule_id)))

        key = idempotency.RequestKey(principal.subject, "CreateAlertRule", request.request_id, digest)
        (out,) = await idempotency.create_once(
            self._db, [key], insert, existing, prepare=idempotency.nothing_to_prepare
        )
        return out

    async def _visible(self, principal: Principal, rule_id: str, conn: AsyncConnection | None = None) -> Any:
        row = await load_owned(self._db, principal, alert_rules, rule_id, RESOURCE, conn)
        audit_facts.note_facility(row.facility_id)
        return row

    async def get(self, principal: Principal, rule_id: str) -> alert_pb2.AlertRule:
        return rule_from_row(await self._visible(principal, rule_id))

    async def list_rules(
        self, principal: Principal, request: alert_pb2.ListAlertRulesRequest
    ) -> tuple[list[alert_pb2.AlertRule], str]:
        size = pagination.page_size(request.page_size)
        filters = pagination.fingerprint("alert_rules", request.widget_id)
        cursor = pagination.decode(request.page_token, filters)
        table = alert_rules
        conditions = [visible_subscriptions(principal, table)]
        if request.widget_id:
            conditions.append(table.c.widget_id == uuid.UUID(request.widget_id))
        if cursor is not None:
            conditions.append(pagination.older_than(table, cursor))
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(table).where(*conditions).order_by(*pagination.newest_first(table)).limit(size + 1)
                )
            ).all()
        # The policy re-checks each row.
        page = [row for row in rows[:size] if subscription_visible(principal, SubscriptionFacts.of(row))]
        return [rule_from_row(row) for row in page], pagination.next_token(rows, size, filters)

    # --- change ---------------------------------------------------------------------------------

    async def update(self, principal: Principal, request: alert_pb2.UpdateAlertRuleRequest) -> alert_pb2.AlertRule:
        change = request.rule
        paths = list(request.update_mask.paths) or list(MUTABLE)
        unknown = [p for p in paths if p not in MUTABLE]
        if unknown:
            raise InvalidArgument.field("update_mask", f"not a field that can be changed: {unknown[0]!r}")
        async with self._db.transaction() as conn:
            row = await self._visible(principal, change.id, conn)
            if change.etag and change.etag != rule_etag(row):
                raise Aborted("the rule changed since it was read", metadata={"etag": rule_etag(row)})
            merged = rule_from_row(row)
            for path in paths:
                if path in SCALARS:
                    setattr(merged, path, getattr(change, path))
                elif path == "filter_values":
                    merged.filter_values.clear()
                    for name, value in change.filter_values.items():
                        merged.filter_values[name].CopyFrom(value)
                else:
                    merged.ClearField(path)
                    if change.HasField(path):
                        getattr(merged, path).CopyFrom(getattr(change, path))
            owner = principal if principal.subject == row.owner_id else principal_from_json(row.owner)
            await self._check(principal, owner, merged)
            updated = (
                await conn.execute(
                    update(alert_rules)
                    .where(alert_rules.c.id == row.id)
                    .values(owner=principal_to_json(owner), edit_revision=row.edit_revision + 1, **_values(merged))
                    .returning(alert_rules)
                )
            ).one()
        return rule_from_row(updated)

    async def delete(self, principal: Principal, rule_id: str, etag: str) -> None:
        async with self._db.transaction() as conn:
            row = await self._visible(principal, rule_id, conn)
            if etag and etag != rule_etag(row):
                raise Aborted("the rule changed since it was read", metadata={"etag": rule_etag(row)})
            await conn.execute(delete(alert_rules).where(alert_rules.c.id == row.id))

    async def silence(self, principal: Principal, request: alert_pb2.SilenceAlertRuleRequest) -> alert_pb2.AlertRule:
        until = request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None
        async with self._db.transaction() as conn:
            row = await self._visible(principal, request.id, conn)
            updated = (
                await conn.execute(
                    update(alert_rules)
                    .where(alert_rules.c.id == row.id)
                    .values(silenced_until=until, edit_revision=row.edit_revision + 1)
                    .returning(alert_rules)
                )
            ).one()
        return rule_from_row(updated)

    async def preview(
        self, principal: Principal, request: alert_pb2.PreviewAlertRuleRequest
    ) -> alert_pb2.PreviewAlertRuleResponse:
        rule = request.rule
        try:
            uuid.UUID(rule.widget_id)
        except ValueError:
            raise InvalidArgument.field(f"{PREFIX}widget_id", "a widget UUID is required", "REQUIRED") from None
        require_subscriber(principal)
        problems = [p for p in await self._problems(rule) if not p.field.startswith(f"{PREFIX}recipients")]
        if problems:
            raise InvalidArgument(f"{problems[0].field}: {problems[0].description}", violations=problems)
        await self._check_data(principal, rule)  # access and filters raise as GetWidgetData would
        condition = Condition(
            rule.widget_id, rule.filter_values, rule.column.strip(), rule.reducer, rule.comparison, rule.threshold
        )
        found = await measure(self._widget_data, principal, condition)
        out = alert_pb2.PreviewAlertRuleResponse(holds=bool(found.holds), error=found.error, row_count=found.row_count)
        if found.value is not None:
            out.value = found.value
        return out

    # --- history --------------------------------------------------------------------------------

    async def list_events(
        self, principal: Principal, request: alert_pb2.ListAlertEventsRequest
    ) -> tuple[list[alert_pb2.AlertEvent], str]:
        row = await self._visible(principal, request.rule_id)
        size = pagination.page_size(request.page_size)
        filters = pagination.fingerprint("alert_events", request.rule_id)
        cursor = pagination.decode(request.page_token, filters)
        conditions = [alert_events.c.rule_id == row.id]
        if cursor is not None:
            conditions.append(alert_events.c.revision < int(cursor.id))
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(alert_events).where(*conditions).order_by(alert_events.c.revision.desc()).limit(size + 1)
                )
            ).all()
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            token = pagination.encode(pagination.Cursor(str(last.revision), str(last.revision)), filters)
        return [event_from_row(event) for event in rows[:size]], token

    async def watch(
        self, principal: Principal, rule_id: str, since_revision: int
    ) -> AsyncIterator[alert_pb2.WatchAlertRuleResponse]:
        """The rule (unless resuming), then every state change after `since_revision` in order,
        read from the database (so any server process serves any rule), heartbeats between."""
        row = await self._visible(principal, rule_id)
        seen = since_revision
        if since_revision == 0:
            yield alert_pb2.WatchAlertRuleResponse(rule=rule_from_row(row))
            seen = row.revision
        pause = self._settings.job_heartbeat_seconds
        while True:
            changes = await self._changes(row.id, seen)
            for change in changes:
                yield alert_pb2.WatchAlertRuleResponse(change=event_from_row(change))
                seen = change.revision
            if not changes:
                beat = common_pb2.Heartbeat(revision=seen)
                beat.time.GetCurrentTime()
                yield alert_pb2.WatchAlertRuleResponse(heartbeat=beat)
                await asyncio.sleep(pause)
            await self._visible(principal, rule_id)  # deleted, or out of sight since: NOT_FOUND ends it

    async def _changes(self, rule_id: uuid.UUID, after: int) -> Sequence[Any]:
        async with self._db.read() as conn:
            return (
                await conn.execute(
                    select(alert_events)
                    .where(alert_events.c.rule_id == rule_id, alert_events.c.revision > after)
                    .order_by(alert_events.c.revision)
                    .limit(100)
                )
            ).all()


def _values(rule: alert_pb2.AlertRule) -> dict[str, Any]:
    return {
        "title": rule.title,
        "column_name": rule.column.strip(),
        "reducer": int(rule.reducer),
        "comparison": int(rule.comparison),
        "threshold": rule.threshold,
        "for_seconds": int(rule.for_duration.ToSeconds()),
        "interval_seconds": int(rule.interval.ToSeconds()) or MIN_INTERVAL_SECONDS,
        "filter_values": {name: to_json(value) for name, value in rule.filter_values.items()},
        "emails": list(rule.recipients.emails),
        "webhooks": list(rule.recipients.webhooks),
        "severity": int(rule.severity) or alert_pb2.ALERT_SEVERITY_WARNING,
    }
