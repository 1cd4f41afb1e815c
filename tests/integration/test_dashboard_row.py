"""The dashboard row every dashboard rpc loads with its shares (`load_dashboard`), read on the
driver from a statement compiled once: the same values, under the same names, as SQLAlchemy's
execution of the same statement gives."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import share_pb2 as s
from server.access.policy import Access
from server.auth.principal import Principal, Role
from server.dashboards.access import grants_column, load_dashboard
from server.db.engine import Database, make_engine
from server.db.schema import dashboards as dashboards_table


def test_the_loaded_row_is_sqlalchemys_row_value_for_value(
    migrated: str, dashboards, shares, auth, facility: str
) -> None:
    owner = auth("rowan", "editor", facility)
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="row twin", tags=["a", "b"])), metadata=owner
    )
    for grant in ({"user_id": "someone"}, {"role": s.ROLE_VIEWER}):
        shares.ShareDashboard(
            s.ShareDashboardRequest(dashboard_id=board.id, level=s.SHARE_LEVEL_VIEW, **grant), metadata=owner
        )
    principal = Principal(subject="rowan", role=Role.EDITOR, facilities=frozenset({facility}))

    async def both(lock: bool) -> tuple[object, object]:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        try:
            async with db.transaction() as conn:
                query = select(dashboards_table, grants_column().label("grants")).where(
                    dashboards_table.c.id == uuid.UUID(board.id)
                )
                expected = (await conn.execute(query.with_for_update(of=dashboards_table) if lock else query)).one()
                loaded, access = await load_dashboard(conn, principal, board.id, Access.READ_PUBLISHED, lock=lock)
                assert access is Access.MANAGE  # its owner
            return expected, loaded
        finally:
            await db.dispose()

    for lock in (False, True):
        expected, loaded = asyncio.run(both(lock))
        assert loaded._fields == tuple(expected._fields)  # type: ignore[attr-defined]
        assert tuple(loaded) == tuple(expected)  # type: ignore[arg-type]
        for name in loaded._fields:  # type: ignore[attr-defined]
            assert type(getattr(loaded, name)) is type(getattr(expected, name)), name
    assert sorted(map(tuple, loaded.grants)) == [("role", "viewer", 1), ("user", "someone", 1)]  # type: ignore[attr-defined]
