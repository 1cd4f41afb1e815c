"""Tenant isolation as a property test (issue 6, adversarial suite).

A fixed world (dashboards of every visibility, owners, user and role shares at every level, a
widget on each, a saved query per owner) is built once in two fresh facilities A and B. Hypothesis
then draws random principals (subject from owners, grantees and strangers; viewer/editor/admin;
a non-empty subset of {A, B}) and random operations over every rpc family that takes a resource
id, and checks each answer against an oracle written here from the rules in ARCHITECTURE.md and
the docstrings of server/access/policy.py (deliberately not importing it):

1. never a success the oracle does not allow (no unauthorized read or write);
2. a resource the principal cannot see answers NOT_FOUND, never PERMISSION_DENIED;
3. visible-but-forbidden answers PERMISSION_DENIED;
4. lists hold exactly the visible resources of the caller's facilities, nothing else.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w

Code = grpc.StatusCode
OK = "OK"
MAX_EXAMPLES = 1200
OPS_PER_EXAMPLE = 3
SINK_USER = "isolation-sink-user"  # grantee of shares made by random principals; never a principal


class Lvl(IntEnum):
    NONE = 0
    READ_PUBLISHED = 1
    VIEW = 2
    EDIT = 3
    MANAGE = 4


ROLES = {"viewer": 1, "editor": 2, "admin": 3}
SHARE_LEVEL = {s.SHARE_LEVEL_VIEW: Lvl.VIEW, s.SHARE_LEVEL_EDIT: Lvl.EDIT, s.SHARE_LEVEL_MANAGE: Lvl.MANAGE}
ROLE_ENUM = {"viewer": s.ROLE_VIEWER, "editor": s.ROLE_EDITOR, "admin": s.ROLE_ADMIN}

OWNERS = ("alice", "bob", "carol", "dave")
SUBJECTS = (*OWNERS, "erin", "mallory")  # erin and mallory own nothing and hold no user share


@dataclass
class Board:
    key: str
    facility: str
    owner: str
    public: bool
    publish: bool
    grants: tuple[tuple[str, str, int], ...]  # (user|role, grantee, share level)
    id: str = ""
    widget_id: str = ""
    restore_version: int = 0
    published_version: int = 0
    next_slot: int = 0


@dataclass
class SavedQuery:
    key: str
    facility: str
    owner: str
    id: str = ""


@dataclass
class World:
    a: str
    b: str
    boards: list[Board]
    queries: list[SavedQuery]
    stats: Counter[str] = field(default_factory=Counter)
    pairs: set[tuple[Any, ...]] = field(default_factory=set)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Visible dashboards ListDashboards left out: not a leak (fails closed) but a policy/SQL-twin drift.
    missing: set[tuple[str, str, str, str]] = field(default_factory=set)


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    facilities: frozenset[str]


# --- the oracle -----------------------------------------------------------------------------


def board_access(p: Principal, b: Board) -> Lvl:
    if b.facility not in p.facilities:
        return Lvl.NONE  # tenancy is absolute
    if p.role == "admin":
        return Lvl.MANAGE
    level = Lvl.MANAGE if b.owner == p.subject else Lvl.NONE
    for kind, grantee, share in b.grants:
        reaches = grantee == p.subject if kind == "user" else ROLES[p.role] >= ROLES[grantee]
        if reaches:
            level = max(level, SHARE_LEVEL[share])
    if b.public and b.published_version:
        level = max(level, Lvl.READ_PUBLISHED)
    if p.role == "viewer":
        level = min(level, Lvl.VIEW)  # viewers never write
    return level


def expect_board(p: Principal, b: Board, needed: Lvl) -> str | Code:
    level = board_access(p, b)
    if level is Lvl.NONE:
        return Code.NOT_FOUND
    return OK if level >= needed else Code.PERMISSION_DENIED


def expect_query(p: Principal, sq: SavedQuery, *, write: bool, run_in: str = "") -> str | Code:
    if sq.facility not in p.facilities:
        return Code.NOT_FOUND
    if p.role == "viewer":
        return Code.PERMISSION_DENIED  # viewers never work with saved queries
    if write and p.role != "admin" and sq.owner != p.subject:
        return Code.PERMISSION_DENIED
    if run_in and run_in not in p.facilities:
        return Code.PERMISSION_DENIED
    return OK


# --- the world --------------------------------------------------------------------------------


def _md(auth: Any, p: Principal) -> Any:
    return auth(p.subject, p.role, *sorted(p.facilities))


@pytest.fixture(scope="module")
def world(dashboards: Any, widgets: Any, queries: Any, shares: Any, auth: Any) -> World:
    tag = uuid.uuid4().hex[:8]
    a, b = f"iso-a-{tag}", f"iso-b-{tag}"
    V, E, M = s.SHARE_LEVEL_VIEW, s.SHARE_LEVEL_EDIT, s.SHARE_LEVEL_MANAGE
    boards = [
        Board("A-private", a, "alice", False, False, (("user", "bob", E), ("user", "erin", V))),
        Board("A-public", a, "alice", True, True, (("role", "editor", V),)),
        Board("A-public-draft", a, "bob", True, False, (("user", "carol", M), ("role", "viewer", V))),
        Board("A-private-2", a, "carol", False, True, (("user", "dave", V), ("role", "admin", E))),
        Board("A-private-3", a, "dave", False, False, (("role", "editor", E), ("user", "mallory", M))),
        Board("B-private", b, "alice", False, False, (("user", "bob", M),)),
        Board("B-public", b, "dave", True, True, ()),
        Board("B-public-draft", b, "carol", True, False, (("role", "viewer", E), ("user", "erin", V))),
        Board("B-private-2", b, "bob", False, True, (("user", "carol", E), ("role", "editor", M))),
    ]
    saved = [
        SavedQuery("A-q-alice", a, "alice"),
        SavedQuery("A-q-bob", a, "bob"),
        SavedQuery("B-q-dave", b, "dave"),
        SavedQuery("B-q-carol", b, "carol"),
    ]
    by_facility: dict[str, str] = {}
    for sq in saved:
        md = auth(sq.owner, "editor", sq.facility)
        created = queries.CreateQuery(
            q.CreateQueryRequest(
                query=q.Query(facility_id=sq.facility, name=f"iso {sq.key}", sql="SELECT 1 AS one", tags=[tag])
            ),
            metadata=md,
        )
        sq.id = created.id
        by_facility.setdefault(sq.facility, created.id)
    for board in boards:
        md = auth(board.owner, "editor", board.facility)
        visibility = d.VISIBILITY_PUBLIC if board.public else d.VISIBILITY_PRIVATE
        created = dashboards.CreateDashboard(
            d.CreateDashboardRequest(
                dashboard=d.Dashboard(facility_id=board.facility, title=f"iso {board.key}", visibility=visibility)
            ),
            metadata=md,
        )
        board.id = created.id
        widget = widgets.CreateWidget(
            w.CreateWidgetRequest(
                widget=w.Widget(
                    dashboard_id=board.id,
                    title="iso widget",
                    position=w.GridPosition(x=0, y=0, width=4, height=2),
                    table=w.TableConfig(),
                    query=w.QueryBinding(query_id=by_facility[board.facility]),
                )
            ),
            metadata=md,
        )
        board.widget_id = widget.id
        board.restore_version = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=md).version
        for kind, grantee, level in board.grants:
            request = s.ShareDashboardRequest(dashboard_id=board.id, level=level)
            if kind == "user":
                request.user_id = grantee
            else:
                request.role = ROLE_ENUM[grantee]
            shares.ShareDashboard(request, metadata=md)
        if board.publish:
            published = dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=md)
            board.published_version = published.published_version
            assert board.published_version
    return World(a, b, boards, saved)


# --- operations ---------------------------------------------------------------------------------

BOARD_OPS = (
    "GetDashboard",
    "UpdateDashboard",
    "PublishDashboard",
    "RestoreDashboardVersion",
    "ListDashboardVersions",
    "GetDashboardVersion",
    "GetWidget",
    "ListWidgets",
    "UpdateWidget",
    "CreateWidget",
    "GetWidgetData",
    "ShareDashboard",
    "ListShares",
    "CreatePublicLink",
)
QUERY_OPS = ("GetQuery", "RunQuery", "UpdateQuery")
GLOBAL_OPS = ("ListDashboards", "ListQueries", "ListAuditEvents")
ALL_OPS = BOARD_OPS + QUERY_OPS + GLOBAL_OPS


def call(fn: Any) -> tuple[str | Code, Any]:
    try:
        return OK, fn()
    except grpc.RpcError as error:
        return error.code(), error  # type: ignore[attr-defined]


class Runner:
    def __init__(self, world: World, stubs: dict[str, Any], auth: Any) -> None:
        self.world, self.stubs, self.auth = world, stubs, auth
        self._titles = itertools.count()

    def title(self) -> str:
        return f"iso title {next(self._titles)}"

    def board(self, op: str, p: Principal, b: Board, variant: int) -> None:
        dash, wid, sh = self.stubs["dashboards"], self.stubs["widgets"], self.stubs["shares"]
        md = _md(self.auth, p)
        level = board_access(p, b)
        read = expect_board(p, b, Lvl.READ_PUBLISHED)
        tolerated: set[str | Code] = set()
        check: Any = None
        if op == "GetDashboard":
            expected = read

            def fn() -> Any:
                return dash.GetDashboard(d.GetDashboardRequest(id=b.id), metadata=md)

            def check(r: Any) -> None:
                assert r.id == b.id and r.facility_id == b.facility

        elif op == "UpdateDashboard":
            expected = expect_board(p, b, Lvl.EDIT)

            def fn() -> Any:
                req = d.UpdateDashboardRequest(
                    dashboard=d.Dashboard(id=b.id, title=self.title()), update_mask={"paths": ["title"]}
                )
                return dash.UpdateDashboard(req, metadata=md)

        elif op == "PublishDashboard":
            expected = expect_board(p, b, Lvl.MANAGE)

            def fn() -> Any:
                return dash.PublishDashboard(d.PublishDashboardRequest(id=b.id), metadata=md)

            def check(r: Any) -> None:
                b.published_version = r.published_version  # the oracle follows the world

        elif op == "RestoreDashboardVersion":
            expected = expect_board(p, b, Lvl.EDIT)

            def fn() -> Any:
                req = d.RestoreDashboardVersionRequest(dashboard_id=b.id, version=b.restore_version)
                return dash.RestoreDashboardVersion(req, metadata=md)

        elif op == "ListDashboardVersions":
            expected = read

            def fn() -> Any:
                req = d.ListDashboardVersionsRequest(dashboard_id=b.id, page_size=1000)
                return dash.ListDashboardVersions(req, metadata=md)

            def check(r: Any) -> None:
                assert all(v.dashboard_id == b.id for v in r.versions)
                if level is Lvl.READ_PUBLISHED:
                    assert [v.version for v in r.versions] == [b.published_version]

        elif op == "GetDashboardVersion":
            version = 1 if variant % 2 or not b.published_version else b.published_version
            expected = read
            if level is Lvl.READ_PUBLISHED and version != b.published_version:
                expected = Code.NOT_FOUND  # only the published version exists for such readers

            def fn() -> Any:
                req = d.GetDashboardVersionRequest(dashboard_id=b.id, version=version)
                return dash.GetDashboardVersion(req, metadata=md)

            def check(r: Any) -> None:
                assert r.dashboard_id == b.id and r.version == version

        elif op == "GetWidget":
            expected = read

            def fn() -> Any:
                return wid.GetWidget(w.GetWidgetRequest(id=b.widget_id), metadata=md)

            def check(r: Any) -> None:
                assert r.id == b.widget_id and r.dashboard_id == b.id

        elif op == "ListWidgets":
            expected = read

            def fn() -> Any:
                return wid.ListWidgets(w.ListWidgetsRequest(dashboard_id=b.id, page_size=1000), metadata=md)

            def check(r: Any) -> None:
                assert all(x.dashboard_id == b.id for x in r.widgets)
                assert b.widget_id in {x.id for x in r.widgets}

        elif op == "UpdateWidget":
            expected = expect_board(p, b, Lvl.EDIT)

            def fn() -> Any:
                req = w.UpdateWidgetRequest(
                    widget=w.Widget(id=b.widget_id, title=self.title()), update_mask={"paths": ["title"]}
                )
                return wid.UpdateWidget(req, metadata=md)

        elif op == "CreateWidget":
            expected = expect_board(p, b, Lvl.EDIT)
            slot = b.next_slot
            b.next_slot += 1

            def fn() -> Any:
                widget = w.Widget(
                    dashboard_id=b.id,
                    title="iso extra",
                    position=w.GridPosition(x=slot % 12, y=10 + slot // 12, width=1, height=1),
                    table=w.TableConfig(),
                )
                return wid.CreateWidget(w.CreateWidgetRequest(widget=widget), metadata=md)

            def check(r: Any) -> None:
                assert r.dashboard_id == b.id

        elif op == "GetWidgetData":
            expected = read
            if expected == OK:
                tolerated.add(Code.FAILED_PRECONDITION)  # a widget without a query is visible too

            def fn() -> Any:
                return wid.GetWidgetData(w.GetWidgetDataRequest(widget_id=b.widget_id), metadata=md, timeout=30)

        elif op == "ShareDashboard":
            expected = expect_board(p, b, Lvl.MANAGE)

            def fn() -> Any:
                req = s.ShareDashboardRequest(dashboard_id=b.id, user_id=SINK_USER, level=s.SHARE_LEVEL_VIEW)
                return sh.ShareDashboard(req, metadata=md)

            def check(r: Any) -> None:
                assert r.dashboard_id == b.id

        elif op == "ListShares":
            expected = expect_board(p, b, Lvl.VIEW)

            def fn() -> Any:
                return sh.ListShares(s.ListSharesRequest(dashboard_id=b.id, page_size=1000), metadata=md)

            def check(r: Any) -> None:
                assert all(x.dashboard_id == b.id for x in r.shares)

        elif op == "CreatePublicLink":
            expected = expect_board(p, b, Lvl.MANAGE)
            if expected == OK and not b.published_version:
                tolerated.add(Code.FAILED_PRECONDITION)  # nothing published to link to yet

            def fn() -> Any:
                return sh.CreatePublicLink(s.CreatePublicLinkRequest(dashboard_id=b.id), metadata=md)

            def check(r: Any) -> None:
                assert r.dashboard_id == b.id

        else:  # pragma: no cover
            raise AssertionError(op)
        self.judge(op, p, b.key, expected, tolerated, fn, check, level=level.name)

    def query(self, op: str, p: Principal, sq: SavedQuery, variant: int) -> None:
        qs = self.stubs["queries"]
        md = _md(self.auth, p)
        check: Any = None
        if op == "GetQuery":
            expected = expect_query(p, sq, write=False)

            def fn() -> Any:
                return qs.GetQuery(q.GetQueryRequest(id=sq.id), metadata=md)

            def check(r: Any) -> None:
                assert r.id == sq.id and r.facility_id == sq.facility

        elif op == "RunQuery":
            run_in = ("", self.world.a, self.world.b)[variant % 3]
            expected = expect_query(p, sq, write=False, run_in=run_in)

            def fn() -> Any:
                req = q.RunQueryRequest(id=sq.id, facility_id=run_in)
                return qs.RunQuery(req, metadata=md, timeout=30)

        elif op == "UpdateQuery":
            expected = expect_query(p, sq, write=True)

            def fn() -> Any:
                req = q.UpdateQueryRequest(
                    query=q.Query(id=sq.id, name=f"iso {sq.key} {next(self._titles)}"), update_mask={"paths": ["name"]}
                )
                return qs.UpdateQuery(req, metadata=md)

        else:  # pragma: no cover
            raise AssertionError(op)
        self.judge(op, p, sq.key, expected, set(), fn, check)

    def listing(self, op: str, p: Principal) -> None:
        md = _md(self.auth, p)
        world = self.world
        mine = {world.a, world.b}
        check: Any = None
        if op == "ListDashboards":
            expected: str | Code = OK

            def fn() -> Any:
                return self.stubs["dashboards"].ListDashboards(d.ListDashboardsRequest(page_size=1000), metadata=md)

            def check(r: Any) -> None:
                assert not r.next_page_token
                got = {x.id for x in r.dashboards}
                want = {b.id for b in world.boards if board_access(p, b) >= Lvl.READ_PUBLISHED}
                assert all(x.facility_id in p.facilities for x in r.dashboards), "another facility's dashboard"
                keys = {b.id: b.key for b in world.boards}
                assert not got - want, f"INVISIBLE DASHBOARDS LISTED: {[keys.get(i, i) for i in got - want]}"
                for missing in sorted(keys[i] for i in want - got):
                    world.missing.add((p.subject, p.role, "".join(sorted(f[4] for f in p.facilities)), missing))

        elif op == "ListQueries":
            expected = Code.PERMISSION_DENIED if p.role == "viewer" else OK

            def fn() -> Any:
                return self.stubs["queries"].ListQueries(q.ListQueriesRequest(page_size=1000), metadata=md)

            def check(r: Any) -> None:
                assert all(x.facility_id in p.facilities for x in r.queries), "another facility's query"
                got = {x.id for x in r.queries if x.facility_id in mine}
                assert got == {sq.id for sq in world.queries if sq.facility in p.facilities}

        elif op == "ListAuditEvents":
            expected = OK if p.role == "admin" else Code.PERMISSION_DENIED

            def fn() -> Any:
                return self.stubs["shares"].ListAuditEvents(s.ListAuditEventsRequest(page_size=1000), metadata=md)

            def check(r: Any) -> None:
                leaked = {e.facility_id for e in r.events} - set(p.facilities)
                assert not leaked, f"audit events of other facilities: {leaked}"

        else:  # pragma: no cover
            raise AssertionError(op)
        self.judge(op, p, "-", expected, set(), fn, check)

    def judge(
        self,
        op: str,
        p: Principal,
        target: str,
        expected: str | Code,
        tolerated: set[str | Code],
        fn: Any,
        check: Any,
        *,
        level: str = "",
    ) -> None:
        got, result = call(fn)
        self.world.stats["calls"] += 1
        self.world.pairs.add((p, op, target))
        self.world.outcomes[(op, got if isinstance(got, str) else got.name)] += 1
        where = f"{op} on {target} by {p.subject}/{p.role}/{sorted(p.facilities)} (oracle access {level or 'n/a'})"
        allowed = {expected} | tolerated
        if got == OK and expected != OK:
            raise AssertionError(f"UNAUTHORIZED SUCCESS: {where}: expected {expected}")
        if got == Code.PERMISSION_DENIED and expected == Code.NOT_FOUND:
            raise AssertionError(f"EXISTENCE LEAK (PERMISSION_DENIED for an invisible resource): {where}")
        assert got in allowed, f"{where}: got {got}, expected {sorted(map(str, allowed))}: {result}"
        if got == OK and check is not None:
            check(result)


# --- the property -------------------------------------------------------------------------------

principals = st.builds(
    lambda subject, role, facilities: (subject, role, facilities),
    st.sampled_from(SUBJECTS),
    st.sampled_from(tuple(ROLES)),
    st.sampled_from(("A", "B", "AB")),
)
operations = st.lists(
    st.tuples(st.sampled_from(ALL_OPS), st.integers(min_value=0, max_value=63), st.integers(0, 5)),
    min_size=1,
    max_size=OPS_PER_EXAMPLE,
)


@pytest.fixture(scope="module")
def runner(world: World, dashboards: Any, widgets: Any, queries: Any, shares: Any, auth: Any) -> Runner:
    stubs = {"dashboards": dashboards, "widgets": widgets, "queries": queries, "shares": shares}
    return Runner(world, stubs, auth)


@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(who=principals, ops=operations)
def test_no_access_outside_the_policy(runner: Runner, who: tuple[str, str, str], ops: list[Any]) -> None:
    world = runner.world
    subject, role, facs = who
    facilities = frozenset({"A": world.a, "B": world.b}[f] for f in facs)
    p = Principal(subject, role, facilities)
    world.stats["examples"] += 1
    for op, pick, variant in ops:
        if op in BOARD_OPS:
            runner.board(op, p, world.boards[pick % len(world.boards)], variant)
        elif op in QUERY_OPS:
            runner.query(op, p, world.queries[pick % len(world.queries)], variant)
        else:
            runner.listing(op, p)


def test_summary(runner: Runner) -> None:
    """Runs after the property (file order): prints the size of the matrix and of the corpus."""
    world = runner.world
    assert world.stats["examples"] > 0, "run the property test first (same module)"
    principals_seen = {p for p, _, _ in world.pairs}
    ops_seen = {op for _, op, _ in world.pairs}
    print(
        f"\n[tenant isolation] world: 2 facilities, {len(world.boards)} dashboards "
        f"({sum(len(b.grants) for b in world.boards)} shares, {len(world.boards)} widgets), "
        f"{len(world.queries)} saved queries; principal space {len(SUBJECTS)} subjects x {len(ROLES)} roles x 3 "
        f"facility sets = {len(SUBJECTS) * len(ROLES) * 3}; {len(ALL_OPS)} rpcs"
        f"\n[tenant isolation] examples {world.stats['examples']}, calls {world.stats['calls']}, "
        f"distinct principals {len(principals_seen)}, rpcs exercised {len(ops_seen)}, "
        f"distinct (principal, rpc) pairs {len({(p, op) for p, op, _ in world.pairs})}, "
        f"distinct (principal, rpc, resource) triples {len(world.pairs)}"
    )
    by_code = Counter[str]()
    for (_, code), n in world.outcomes.items():
        by_code[code] += n
    print(f"[tenant isolation] outcomes by code: {dict(sorted(by_code.items()))}")
    assert ops_seen == set(ALL_OPS), f"rpcs never exercised: {set(ALL_OPS) - ops_seen}"


def test_lists_are_complete(runner: Runner) -> None:
    """Lists must also hold every resource the policy lets the caller see (the SQL twin must not
    drift from the Python policy). Kept apart from the property so a fail-closed drift does not
    hide the security results."""
    world = runner.world
    assert world.stats["examples"] > 0, "run the property test first (same module)"
    assert not world.missing, (
        f"ListDashboards omitted {len(world.missing)} visible (principal, dashboard) pairs, "
        f"e.g. {sorted(world.missing)[:8]}"
    )
