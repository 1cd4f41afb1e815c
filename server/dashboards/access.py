"""Loading a dashboard (or a job hanging off one) together with what the policy needs to decide
about it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Uuid, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from server.access.policy import (
    Access,
    DashboardFacts,
    Grant,
    JobFacts,
    JobResource,
    grants_from_rows,
    job_may_be_visible,
    require_dashboard,
    require_job,
)
from server.audit import facts as audit_facts
from server.auth.principal import Principal
from server.db.compiled import Statement
from server.db.engine import Database
from server.db.schema import dashboard_shares, dashboards
from server.errors import NotFound, PermissionDenied
from server.jobs.revisions import RevisionStore


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


def dashboard_facts(row: Any, grants: Iterable[Sequence[Any]]) -> DashboardFacts:
    """What the policy needs of a dashboards row and its shares ([grantee_type, grantee, level])."""
    return facts_with_grants(row, grants_from_rows((kind, grantee, level) for kind, grantee, level in grants))


def facts_with_grants(row: Any, grants: tuple[Grant, ...]) -> DashboardFacts:
    return DashboardFacts(
        id=str(row.id),
        facility_id=row.facility_id,
        owner_id=row.owner_id,
        visibility=row.visibility,
        published_version=row.published_version,
        grants=grants,
    )


def decide(principal: Principal, row: Any, needed: Access) -> Access:
    """The caller's access to a dashboard row loaded with its `grants` (grants_column()), or
    NOT_FOUND / PERMISSION_DENIED."""
    audit_facts.note_facility(row.facility_id)  # denials too are recorded in the resource's facility
    return require_dashboard(principal, dashboard_facts(row, row.grants), needed)


async def load_dashboard(
    conn: AsyncConnection, principal: Principal, dashboard_id: str, needed: Access, *, lock: bool = False
) -> tuple[Any, Access]:
    """The dashboard row and the caller's access to it, or NOT_FOUND / PERMISSION_DENIED.

    With `lock`, the row is locked FOR UPDATE: every change to a dashboard or its widgets
    takes this lock first, so versions and grid checks never interleave.
    """
    row = await dashboard_row(conn, dashboard_id, lock=lock)
    return row, decide(principal, row, needed)


async def dashboard_row(conn: AsyncConnection, dashboard_id: str, *, lock: bool = False) -> Any:
    """The dashboard row with its shares (`grants`), or NOT_FOUND; nothing decided yet."""
    # One round trip: the row and its shares (as a JSON array) together; this runs on every rpc.
    statement = _DASHBOARD_FOR_UPDATE if lock else _DASHBOARD
    found = await statement.named_rows(conn, {"id": uuid.UUID(dashboard_id)})
    if not found:
        raise NotFound("dashboard", dashboard_id)
    return found[0]


# Compiled once and run on the driver: built and run through SQLAlchemy per call, the statement
# cost a GetDashboard of 50 widgets about a tenth of its server CPU (its cache key alone 3%).
_DASHBOARD_QUERY = select(dashboards, grants_column().label("grants")).where(
    dashboards.c.id == bindparam("id", type_=Uuid())
)
_DASHBOARD = Statement(_DASHBOARD_QUERY)
_DASHBOARD_FOR_UPDATE = Statement(_DASHBOARD_QUERY.with_for_update(of=dashboards))


async def readable_access(conn: AsyncConnection, principal: Principal, dashboard_id: str) -> Access:
    """The caller's access to a dashboard, NONE when it is gone or out of sight (what jobs need)."""
    try:
        _, access = await load_dashboard(conn, principal, dashboard_id, Access.READ_PUBLISHED)
    except (NotFound, PermissionDenied):
        return Access.NONE
    return access


def job_facts(resource: JobResource, row: Any) -> JobFacts:
    return JobFacts(resource, str(row.id), str(row.dashboard_id), row.facility_id, row.requested_by)


async def visible_job_row(
    db: Database,
    store: RevisionStore[Any, Any],
    principal: Principal,
    resource: JobResource,
    job_id: str,
    row: Any = None,
) -> Any:
    """A job's row if the policy lets the caller see it, else NOT_FOUND (never revealing it);
    `row`, when the caller already read it."""
    if row is None:
        row = await store.row(job_id)
    if row is None:
        raise NotFound(resource.value, job_id)
    job = job_facts(resource, row)
    if not job_may_be_visible(principal, job):  # decided without loading the dashboard
        raise NotFound(resource.value, job_id)
    async with db.read() as conn:
        require_job(principal, job, await readable_access(conn, principal, job.dashboard_id))
    return row
