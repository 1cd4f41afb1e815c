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


async def load_dashboard(
    conn: AsyncConnection, principal: Principal, dashboard_id: str, needed: Access, *, lock: bool = False
) -> tuple[Any, Access]:
    """The dashboard row and the caller's access to it, or NOT_FOUND / PERMISSION_DENIED.

    With `lock`, the row is locked FOR UPDATE: every change to a dashboard or its widgets
    takes this lock first, so versions and grid checks never interleave.
    """
    # One round trip: the row and its shares (as a JSON array) together; this runs on every rpc.
    grants = (
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
    query = select(dashboards, grants.label("grants")).where(dashboards.c.id == uuid.UUID(dashboard_id))
    if lock:
        query = query.with_for_update(of=dashboards)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("dashboard", dashboard_id)
    audit_facts.note_facility(row.facility_id)  # denials too are recorded in the resource's facility
    facts = DashboardFacts(
        id=str(row.id),
        facility_id=row.facility_id,
        owner_id=row.owner_id,
        visibility=row.visibility,
        published_version=row.published_version,
        grants=grants_from_rows((kind, grantee, level) for kind, grantee, level in row.grants),
    )
    return row, require_dashboard(principal, facts, needed)
