"""The policy's SQL twins (`visible_dashboards`, what every list filters with; `visible_exports`,
what ListExports filters with, against `job_visible`; `searchable_dashboards`, what search filters
with, against `dashboard_searchable`) and the loader
(`load_dashboard`, what every rpc on a dashboard starts with) against the Python policy, over the
whole matrix of tests/unit/test_policy.py stored in PostgreSQL: for every principal, the dashboards
the SQL selects are exactly those the policy lets it see, and the loader answers exactly the
policy's access (NOT_FOUND where it is none)."""

from __future__ import annotations

import asyncio
import itertools
import uuid

from sqlalchemy import insert, select

from server.access.policy import (
    Access,
    DashboardFacts,
    JobFacts,
    JobResource,
    dashboard_access,
    dashboard_searchable,
    job_visible,
    searchable_dashboards,
    visible_dashboards,
    visible_exports,
)
from server.auth.principal import Principal, Role
from server.dashboards.access import load_dashboard
from server.db.engine import Database, make_engine
from server.db.schema import dashboard_shares, dashboards, export_jobs
from server.errors import NotFound, PermissionDenied
from tests.unit.test_policy import GRANT_SETS, OWNERS, PUBLISHED, VISIBILITIES


def test_sql_twin_and_loader_agree_with_the_policy(migrated: str) -> None:
    tag = uuid.uuid4().hex[:8]
    fac, other = f"twin-a-{tag}", f"twin-b-{tag}"
    boards: list[DashboardFacts] = []
    for owner, facility, grants, visibility, published in itertools.product(
        OWNERS, (fac, other), GRANT_SETS, VISIBILITIES, PUBLISHED
    ):
        boards.append(DashboardFacts(str(uuid.uuid4()), facility, owner, visibility, published, grants))
    principals = [
        Principal(subject=subject, role=role, facilities=facilities)
        for subject, role, facilities in itertools.product(
            ("me", "someone", "bob"), list(Role), (frozenset({fac}), frozenset({other}), frozenset({fac, other}))
        )
    ]
    # One published dashboard in two changed since (its current state is version 2): search must
    # not find those by their current text for a reader of the published version only.
    version_of = {b.id: 2 if b.published_version and i % 2 else 1 for i, b in enumerate(boards)}
    published_ids = [b.id for b in boards if b.published_version][:3]
    unpublished_id = next(b.id for b in boards if not b.published_version)
    for i, linked in enumerate([*published_ids, unpublished_id]):
        facility = next(b.facility_id for b in boards if b.id == linked)
        principals.append(
            Principal(
                subject=f"link:{i}",
                role=Role.VIEWER,
                facilities=frozenset({facility}),
                link_id=str(i),
                link_dashboard_id=linked,
            )
        )

    async def scenario() -> dict[str, int]:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        counts = {
            "principals": len(principals),
            "dashboards": len(boards),
            "sql checks": 0,
            "loads": 0,
            "export sql checks": 0,
            "search sql checks": 0,
        }
        # Every dashboard has an export requested by each of two subjects.
        exports = [
            JobFacts(JobResource.EXPORT, str(uuid.uuid4()), b.id, b.facility_id, requester)
            for b in boards
            for requester in ("me", "someone")
        ]
        board_of = {b.id: b for b in boards}
        try:
            async with db.transaction() as conn:
                await conn.execute(
                    insert(dashboards),
                    [
                        {
                            "id": uuid.UUID(b.id),
                            "facility_id": b.facility_id,
                            "owner_id": b.owner_id,
                            "title": "twin",
                            "visibility": b.visibility,
                            "published_version": b.published_version,
                            "version": version_of[b.id],
                        }
                        for b in boards
                    ],
                )
                shares = [
                    {
                        "dashboard_id": uuid.UUID(b.id),
                        "facility_id": b.facility_id,
                        "grantee_type": g.grantee_type,
                        "grantee": g.grantee,
                        "level": int(g.level),
                        "granted_by": b.owner_id,
                    }
                    for b in boards
                    for g in b.grants
                ]
                await conn.execute(insert(dashboard_shares), shares)
                await conn.execute(
                    insert(export_jobs),
                    [
                        {
                            "id": uuid.UUID(job.id),
                            "dashboard_id": uuid.UUID(job.dashboard_id),
                            "facility_id": job.facility_id,
                            "requested_by": job.requested_by,
                            "dashboard_version": 1,
                            "format": 1,
                        }
                        for job in exports
                    ],
                )
            ours = [uuid.UUID(b.id) for b in boards]
            our_exports = [uuid.UUID(job.id) for job in exports]
            async with db.read() as conn:
                for p in principals:
                    expected = {b.id for b in boards if dashboard_access(p, b) >= Access.READ_PUBLISHED}
                    rows = await conn.execute(
                        select(dashboards.c.id).where(visible_dashboards(p), dashboards.c.id.in_(ours))
                    )
                    got = {str(r) for r in rows.scalars()}
                    assert got == expected, (
                        f"{p}: SQL selects {len(got - expected)} too many, {len(expected - got)} too few"
                    )
                    counts["sql checks"] += len(boards)
                    expected = {
                        job.id
                        for job in exports
                        if job_visible(p, job, dashboard_access(p, board_of[job.dashboard_id]))
                    }
                    rows = await conn.execute(
                        select(export_jobs.c.id).where(visible_exports(p), export_jobs.c.id.in_(our_exports))
                    )
                    got = {str(r) for r in rows.scalars()}
                    assert got == expected, (
                        f"{p}: exports SQL selects {len(got - expected)} too many, {len(expected - got)} too few"
                    )
                    counts["export sql checks"] += len(exports)
                    if p.is_link:
                        try:
                            searchable_dashboards(p)
                            raise AssertionError("a public link searched")
                        except PermissionDenied:
                            pass
                    else:
                        expected = {b.id for b in boards if dashboard_searchable(p, b, version_of[b.id])}
                        rows = await conn.execute(
                            select(dashboards.c.id).where(searchable_dashboards(p), dashboards.c.id.in_(ours))
                        )
                        got = {str(r) for r in rows.scalars()}
                        assert got == expected, (
                            f"{p}: search SQL selects {len(got - expected)} too many, {len(expected - got)} too few"
                        )
                        counts["search sql checks"] += len(boards)
                    if not p.is_link and len(p.facilities) == 1:
                        continue  # the loader's facts do not depend on the caller: fewer callers suffice
                    for b in boards:
                        access = dashboard_access(p, b)
                        try:
                            _, loaded = await load_dashboard(conn, p, b.id, Access.READ_PUBLISHED)
                        except NotFound:
                            loaded = Access.NONE
                        except Exception as exc:  # PERMISSION_DENIED cannot happen at READ_PUBLISHED
                            raise AssertionError(f"{p} on {b}: {exc!r}") from exc
                        assert loaded is access, f"{p} on {b}: loader {loaded.name}, policy {access.name}"
                        counts["loads"] += 1
        finally:
            await db.dispose()
        return counts

    counts = asyncio.run(scenario())
    print(f"\n[policy sql twin] {counts}")
    assert counts["sql checks"] == len(principals) * len(boards)
    assert counts["export sql checks"] == len(principals) * 2 * len(boards)
    assert counts["search sql checks"] == sum(1 for p in principals if not p.is_link) * len(boards)
    assert counts["loads"] == sum(1 for p in principals if p.is_link or len(p.facilities) == 2) * len(boards)
