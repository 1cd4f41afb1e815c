"""Access decisions about report subscriptions (and their deliveries) and alert rules (and their
events): resources a person owns and the worker acts on as them.

A subscription (or rule) is its owner's: the owner and the admins of its facility see and change it; for
anyone else it does not exist (NOT_FOUND). Whoever creates one must be able to read the dashboard
(checked through the dashboard policy when the export is validated). A viewer may subscribe only
themselves: one e-mail recipient, their own subject, and no webhook; editors and admins may
name anyone. PHI goes out unmasked only while the owner holds `phi:read` and asked for it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from server.auth.principal import PHI_READ, Principal, Role
from server.db.engine import Database
from server.db.schema import report_subscriptions
from server.errors import NotFound, PermissionDenied

__all__ = [
    "SubscriptionFacts",
    "acting_owner",
    "load_owned",
    "require_include_phi",
    "require_recipients",
    "require_subscriber",
    "require_subscription",
    "subscription_visible",
    "visible_subscriptions",
]


@dataclass(frozen=True)
class SubscriptionFacts:
    id: str
    facility_id: str
    owner_id: str

    @classmethod
    def of(cls, row: Any) -> SubscriptionFacts:
        """The facts of a row of a table with id, facility_id and owner_id."""
        return cls(str(row.id), row.facility_id, row.owner_id)


def subscription_visible(principal: Principal, facts: SubscriptionFacts) -> bool:
    if principal.is_link or not principal.in_facility(facts.facility_id):
        return False
    return facts.owner_id == principal.subject or principal.role is Role.ADMIN


def require_subscription(principal: Principal, facts: SubscriptionFacts, resource: str = "report_subscription") -> None:
    if not subscription_visible(principal, facts):
        raise NotFound(resource, facts.id)


async def load_owned(
    db: Database,
    principal: Principal,
    table: Table,
    row_id: str,
    resource: str,
    conn: AsyncConnection | None = None,
) -> Any:
    """The row `row_id` of `table` (subscriptions, alert rules) when the caller may see it, else
    NOT_FOUND as `resource`. On `conn` (a transaction) it is locked FOR UPDATE; without, it is
    read on a connection of its own."""
    query = select(table).where(table.c.id == uuid.UUID(row_id))
    if conn is None:
        async with db.read() as own:
            row = (await own.execute(query)).first()
    else:
        row = (await conn.execute(query.with_for_update())).first()
    if row is None:
        raise NotFound(resource, row_id)
    require_subscription(principal, SubscriptionFacts.of(row), resource)
    return row


def visible_subscriptions(principal: Principal, table: Table = report_subscriptions) -> ColumnElement[bool]:
    """The SQL twin of `subscription_visible`, for lists (of any table with facility_id and owner_id)."""
    if principal.is_link:
        return and_(table.c.id.is_(None))
    in_facility = table.c.facility_id.in_(sorted(principal.facilities))
    if principal.role is Role.ADMIN:
        return in_facility
    return and_(in_facility, table.c.owner_id == principal.subject)


def require_subscriber(principal: Principal) -> None:
    """Public-link callers have no identity to deliver as."""
    if principal.is_link:
        raise PermissionDenied("a public link cannot subscribe to reports", reason="ROLE_REQUIRED", permission="viewer")


def require_recipients(principal: Principal, emails: Sequence[str], webhooks: Sequence[str]) -> None:
    if principal.at_least(Role.EDITOR):
        return
    if webhooks or any(email.lower() != principal.subject.lower() for email in emails):
        raise PermissionDenied(
            "a viewer may subscribe only themselves (their own e-mail address, no webhook)",
            reason="SUBSCRIBE_OTHERS_DENIED",
            permission="editor",
        )


def acting_owner(owner: Principal, include_phi: bool) -> Principal:
    """The owner as the worker acts for them: without `phi:read` unless PHI is asked for."""
    if include_phi:
        return owner
    return dataclasses.replace(owner, permissions=owner.permissions - {PHI_READ})


def require_include_phi(owner: Principal) -> None:
    if not owner.can_read_phi:
        raise PermissionDenied(
            "include_phi needs the owner to hold phi:read", reason="PHI_PERMISSION_REQUIRED", permission="phi:read"
        )
