"""What the workers run for alerts: claiming due rules, evaluating one, notifying its changes.

An evaluation reads the widget's data through the widget-data domain as the rule's owner, with
PHI masked whatever the owner may read (a notification goes to other people: a PHI column is
masked, so it reduces to no number and the rule shows ERROR), computed fresh (`force_refresh`:
single-flight still shares one execution with concurrent readers, and the result warms the
cache). The state change is a compare-and-set on the rule's revision that inserts the change's
row in the same transaction: two evaluations racing make one transition. A FIRING or RESOLVED
change is then notified once: its sender claims it (`notified_at`) before sending, and a change
whose notification was never claimed (a worker died in between) is sent by the next evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select, update

from dashboard.v1 import alert_pb2 as a
from dashboard.v1 import common_pb2
from server.alerts.evaluate import NOTIFIED, next_state
from server.alerts.measure import Condition, measure
from server.audit.log import ERROR, SUCCESS, AuditEvent, AuditLog
from server.config import Settings
from server.db.engine import Database
from server.db.schema import alert_events, alert_rules
from server.exports.principals import principal_from_json
from server.exports.sealed import opened_secret
from server.notify.outcome import Outcome
from server.notify.smtp import Mail, SmtpSender
from server.notify.webhook import WebhookSender
from server.protojson import from_json
from server.widgetdata.service import WidgetDataDomain

__all__ = ["AUDIT_METHOD", "AlertDeps", "claim_due_rules", "evaluate_rule"]

log = logging.getLogger("tessera.alerts")

AUDIT_METHOD = "tessera.alerts.notify"
COMPARISON_TEXT = {
    a.ALERT_COMPARISON_GREATER: ">",
    a.ALERT_COMPARISON_GREATER_OR_EQUAL: ">=",
    a.ALERT_COMPARISON_LESS: "<",
    a.ALERT_COMPARISON_LESS_OR_EQUAL: "<=",
    a.ALERT_COMPARISON_EQUAL: "==",
    a.ALERT_COMPARISON_NOT_EQUAL: "!=",
}


@dataclass
class AlertDeps:
    """What a worker process evaluates rules with."""

    settings: Settings
    db: Database
    widget_data: WidgetDataDomain
    smtp: SmtpSender
    webhooks: WebhookSender
    audit: AuditLog
    # Metrics (the worker's, through the composition root): every evaluation's outcome (ok,
    # holds, error, superseded), and the state every change moves a rule to (pending, firing, ...).
    on_evaluated: Callable[[str], None] | None = None
    on_transition: Callable[[str], None] | None = None

    def evaluated(self, outcome: str) -> None:
        if self.on_evaluated is not None:
            self.on_evaluated(outcome)

    def moved(self, state: int) -> None:
        if self.on_transition is not None:
            self.on_transition(a.AlertState.Name(state).removeprefix("ALERT_STATE_").lower())


async def claim_due_rules(db: Database, now: datetime, batch: int) -> list[str]:
    """Rules due at `now`, each moved to its next evaluation in the same statement (SKIP LOCKED:
    overlapping ticks never claim a rule twice)."""
    due = (
        select(alert_rules.c.id)
        .where(alert_rules.c.next_evaluation_at <= now)
        .order_by(alert_rules.c.next_evaluation_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    async with db.transaction() as conn:
        claimed = await conn.execute(
            update(alert_rules)
            .where(alert_rules.c.id.in_(due.scalar_subquery()))
            .values(
                next_evaluation_at=func.greatest(now, func.now())
                + alert_rules.c.interval_seconds * literal_column("interval '1 second'")
            )
            .returning(alert_rules.c.id)
        )
        found: list[uuid.UUID] = list(claimed.scalars())
    return [str(i) for i in found]


async def evaluate_rule(deps: AlertDeps, rule_id: str, now: datetime) -> int | None:
    """Evaluates one rule at `now`; returns its state after, None when it is gone."""
    async with deps.db.read() as conn:
        row = (await conn.execute(select(alert_rules).where(alert_rules.c.id == uuid.UUID(rule_id)))).first()
    if row is None:
        return None
    value, condition, error = await _measure(deps, row)
    state = next_state(row.state, row.state_at, condition, now, timedelta(seconds=row.for_seconds))
    values: dict[str, Any] = {"last_value": value, "last_error": error, "last_evaluated_at": now}
    if state != row.state:
        values |= {"state": state, "state_at": now, "revision": row.revision + 1}
    silenced = row.silenced_until is not None and row.silenced_until > now
    async with deps.db.transaction() as conn:
        won = (
            await conn.execute(
                update(alert_rules)
                .where(alert_rules.c.id == row.id, alert_rules.c.revision == row.revision)
                .values(**values)
                .returning(alert_rules.c.id)
            )
        ).first()
        if won is None:
            log.info("alerts: rule %s changed under this evaluation; the other one counts", rule_id)
            deps.evaluated("superseded")
            return None
        if state != row.state:
            await conn.execute(
                alert_events.insert().values(
                    rule_id=row.id,
                    revision=row.revision + 1,
                    from_state=row.state,
                    to_state=state,
                    value=value,
                    error=error,
                    at=now,
                    notification=a.NOTIFICATION_OUTCOME_SILENCED if silenced and state in NOTIFIED else 0,
                    notified_at=func.now() if silenced and state in NOTIFIED else None,
                )
            )
    deps.evaluated("error" if condition is None else "holds" if condition else "ok")
    if state != row.state:
        deps.moved(state)
    await _notify_pending(deps, row)
    return state


async def _measure(deps: AlertDeps, row: Any) -> tuple[float | None, bool | None, str]:
    """(value, whether the condition holds, error); a failed read or reduction is (None, None, why).
    A dependency that is down raises: the task retries and the state stays."""
    condition = Condition(
        widget_id=str(row.widget_id),
        filter_values={
            name: from_json(value, common_pb2.ParameterValue()) for name, value in (row.filter_values or {}).items()
        },
        column=row.column_name,
        reducer=row.reducer,
        comparison=row.comparison,
        threshold=row.threshold,
    )
    found = await measure(deps.widget_data, principal_from_json(row.owner), condition)
    return found.value, found.holds, found.error


async def _notify_pending(deps: AlertDeps, rule: Any) -> None:
    """Sends every FIRING/RESOLVED change of the rule nobody claimed yet, oldest first."""
    async with deps.db.read() as conn:
        pending = (
            await conn.execute(
                select(alert_events.c.revision)
                .where(
                    alert_events.c.rule_id == rule.id,
                    alert_events.c.to_state.in_(sorted(NOTIFIED)),
                    alert_events.c.notified_at.is_(None),
                )
                .order_by(alert_events.c.revision)
            )
        ).all()
    for (revision,) in pending:
        async with deps.db.transaction() as conn:
            claimed = (
                await conn.execute(
                    update(alert_events)
                    .where(
                        alert_events.c.rule_id == rule.id,
                        alert_events.c.revision == revision,
                        alert_events.c.notified_at.is_(None),
                    )
                    .values(notified_at=func.now())
                    .returning(alert_events)
                )
            ).first()
        if claimed is not None:
            await _send(deps, rule, claimed)


async def _send(deps: AlertDeps, rule: Any, event: Any) -> None:
    to_state = a.AlertState.Name(event.to_state).removeprefix("ALERT_STATE_")
    severity = a.AlertSeverity.Name(rule.severity).removeprefix("ALERT_SEVERITY_")
    title = rule.title or f"{rule.column_name} on widget {rule.widget_id}"
    condition = f"{a.AlertReducer.Name(rule.reducer).removeprefix('ALERT_REDUCER_').lower()}({rule.column_name}) "
    condition += f"{COMPARISON_TEXT.get(rule.comparison, '?')} {rule.threshold:g}"
    value = "-" if event.value is None else f"{event.value:g}"
    mail = Mail(
        subject=f"[{to_state}] {severity}: {title}",
        text=(
            f"{title} is {to_state} since {event.at.isoformat(timespec='seconds')}.\n\n"
            f"Condition: {condition}\nValue: {value}\n"
            f"Widget {rule.widget_id} on dashboard {rule.dashboard_id}.\n\n"
            f"Sent by Tessera for {rule.owner_id} (alert rule {rule.id}).\n"
        ),
    )
    body = json.dumps(
        {
            "type": "alert.state",
            "rule_id": str(rule.id),
            "revision": event.revision,
            "title": title,
            "severity": severity,
            "from_state": a.AlertState.Name(event.from_state).removeprefix("ALERT_STATE_"),
            "to_state": to_state,
            "value": event.value,
            "condition": condition,
            "time": event.at.isoformat(),
            "widget_id": str(rule.widget_id),
            "dashboard_id": str(rule.dashboard_id),
        },
        separators=(",", ":"),
    ).encode()
    outcomes: list[Outcome] = []
    for email in rule.emails:
        outcomes.append(await deps.smtp.send(email, mail))
    secret, broken = opened_secret(deps.settings, rule.webhook_secret) if rule.webhooks else ("", "")
    for url in rule.webhooks:
        if broken:
            outcomes.append(Outcome(url, False, 0, broken))
            continue
        outcomes.append(await deps.webhooks.send(url, body, secret, f"{rule.id}:{event.revision}"))
    sent = all(o.delivered for o in outcomes)
    deps.audit.record(
        AuditEvent(
            actor=rule.owner_id,
            method=AUDIT_METHOD,
            outcome=SUCCESS if sent else ERROR,
            facility_id=rule.facility_id,
            resource_type="alert_rule",
            resource_id=str(rule.id),
            details={
                "revision": event.revision,
                "to_state": to_state,
                "recipients": [o.recipient for o in outcomes],
                "failed": {o.recipient: o.error for o in outcomes if not o.delivered},
            },
        )
    )
    await deps.audit.flush()
    async with deps.db.transaction() as conn:
        await conn.execute(
            update(alert_events)
            .where(alert_events.c.rule_id == rule.id, alert_events.c.revision == event.revision)
            .values(
                notification=a.NOTIFICATION_OUTCOME_SENT if sent else a.NOTIFICATION_OUTCOME_FAILED,
                recipients=[dataclasses.asdict(o) for o in outcomes],
            )
        )
