"""Loading a dashboard together with what the policy needs to decide about it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from server.access.policy import (
    Access,
    DashboardFacts,
    grants_from_rows,
    require_dashboard,
)
from server.audit import facts as audit_facts
from server.auth.principal import Principal
from server.db.schema import dashboard_shares, dashboards
from server.errors import NotFound


def grants_column() -> Any:
    """The dashboard's shares as a JSON array of [grantee_type, grantee, level], correlated to
    `dashboards`: selected with the row, so the policy's inputs come in the same round trip."""
    return (
        select(
            func.coalesce(
                func.jsonb_agg(
                    func.jsonb_build_array(
                        dashboard_shares.c.grantee_type, dashboard_shares.c.grantee, dashboard_shares.c.level
                    )
                ),
                text("'[]'::jsonb"),
            )
        )
        .where(dashboard_shares.c.dashboard_id == dashboards.c.id)
        .scalar_subquery()
    )


def decide(principal: Principal, row: Any, needed: Access) -> Access:
    """The caller's access to a dashboard row loaded with its `grants` (grants_column()), or
    NOT_FOUND / PERMISSION_DENIED."""
    audit_facts.note_facility(row.facility_id)  # denials too are recorded in the resource's facility
    facts = DashboardFacts(
        id=str(row.id),
        facility_id=row.facility_id,
        owner_id=row.owner_id,
        visibility=row.visibility,
        published_version=row.published_version,
        grants=grants_from_rows((kind, grantee, level) for kind, grantee, level in row.grants),
    )
    return require_dashboard(principal, facts, needed)


async def load_dashboard(
    conn: AsyncConnection, principal: Principal, dashboard_id: str, needed: Access, *, lock: bool = False
) -> tuple[Any, Access]:
    """The dashboard row and the caller's access to it, or NOT_FOUND / PERMISSION_DENIED.

    With `lock`, the row is locked FOR UPDATE: every change to a dashboard or its widgets
    takes this lock first, so versions and grid checks never interleave.
    """
    # One round trip: the row and its shares (as a JSON array) together; this runs on every rpc.
    query = select(dashboards, grants_column().label("grants")).where(dashboards.c.id == uuid.UUID(dashboard_id))
    if lock:
        query = query.with_for_update(of=dashboards)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("dashboard", dashboard_id)
    return row, decide(principal, row, needed)
