"""Tenant isolation as a property test (issue 6, adversarial suite).

A fixed world (dashboards of every visibility, owners, user and role shares at every level, a
widget, a materialization job and exports by several requesters on each, public links to the
published ones, saved SQL queries and a materialized view) is built once in two fresh facilities
A and B. Hypothesis then draws random principals (a JWT subject from owners, grantees and
strangers; viewer/editor/admin; a non-empty subset of {A, B}; or a public link of one dashboard)
and random operations over every rpc of the five services (checked against the protos), and
checks each answer against an oracle written here from the rules in ARCHITECTURE.md and the
docstrings of server/access/policy.py and server/exports/service.py (deliberately importing
neither):

1. never a success the oracle does not allow (no unauthorized read or write);
2. a resource the principal cannot see answers NOT_FOUND, never PERMISSION_DENIED;
3. visible-but-forbidden answers PERMISSION_DENIED;
4. lists hold exactly the visible resources of the caller's facilities, nothing else;
5. a refused destructive call leaves its target in place.

Destructive rpcs (deletes, unshare, revoke, cancel) that the oracle allows run on a twin of the
drawn resource made for the purpose (same facility, owner, shares, visibility, publication; an
export by the same requester of the same dashboard), so the world stays as the oracle knows it;
refused ones run on the world's own resource. No worker runs here: exports stay QUEUED (or
CANCELLED), and their tasks are taken back off the broker at the end.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import grpc
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import search_pb2 as sr
from dashboard.v1 import search_pb2_grpc
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from server.db.migrate import sync_url
from server.devtools.demo_data import install as install_demo_data
from tests.harness.rpc import failure_of
from tests.security.queued import forget_queued_tasks

Code = grpc.StatusCode
OK = "OK"
MAX_EXAMPLES = 1400
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
class Export:
    id: str
    requester: str  # the subject that asked for it
    version: int
    cancelled: bool = False  # else QUEUED: no worker runs here


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
    link_id: str = ""
    link_token: str = ""
    # job id -> requested by (subject)
    jobs: dict[str, str] = field(default_factory=dict)
    exports: dict[str, Export] = field(default_factory=dict)


@dataclass
class SavedQuery:
    key: str
    facility: str
    owner: str
    view: bool = False
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
    job_ids: set[str] = field(default_factory=set)
    # (subject, board key): the favorites the oracle knows of (a favorite belongs to a subject).
    favorites: set[tuple[str, str]] = field(default_factory=set)
    dsn: str = ""

    def linked(self) -> list[Board]:
        return [b for b in self.boards if b.link_id]

    def board_of(self, key: str) -> Board:
        return next(b for b in self.boards if b.key == key)

    def exports(self) -> Iterator[tuple[Board, Export]]:
        return ((b, x) for b in self.boards for x in b.exports.values())

    def stored_exports(self) -> dict[str, tuple[str, int]]:
        """Every export row of the two facilities, read past the application: id -> (requester, state)."""
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT id::text, requested_by, state FROM export_jobs WHERE facility_id IN (%s, %s)", (self.a, self.b)
            ).fetchall()
        return {i: (by, state) for i, by, state in rows}


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    facilities: frozenset[str]
    link_board: str = ""  # a public link's principal: the key of its dashboard

    @property
    def is_link(self) -> bool:
        return bool(self.link_board)


# --- the oracle -----------------------------------------------------------------------------


def board_access(p: Principal, b: Board) -> Lvl:
    if p.is_link:  # one dashboard's published version, nothing else
        return Lvl.READ_PUBLISHED if p.link_board == b.key and b.published_version else Lvl.NONE
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


def expect_job(p: Principal, b: Board, requested_by: str) -> str | Code:
    """A job is seen through its dashboard; a reader of the published version only sees its own."""
    level = board_access(p, b)
    if level is Lvl.NONE or (level is Lvl.READ_PUBLISHED and requested_by != p.subject):
        return Code.NOT_FOUND
    return OK


def expect_role(p: Principal, role: str) -> str | Code:
    """Role-gated rpcs with no resource: links and lower roles are refused."""
    return Code.PERMISSION_DENIED if p.is_link or ROLES[p.role] < ROLES[role] else OK


def expect_favorite(p: Principal, b: Board) -> str | Code:
    """A favorite is of a dashboard the caller may read; a link (which reads one) keeps none."""
    seen = expect_board(p, b, Lvl.READ_PUBLISHED)
    return Code.PERMISSION_DENIED if seen == OK and p.is_link else seen


def expect_create_in(p: Principal, facility: str) -> str | Code:
    gate = expect_role(p, "editor")
    if gate != OK:
        return gate
    return OK if facility in p.facilities else Code.PERMISSION_DENIED


def expect_query(p: Principal, sq: SavedQuery, *, write: bool, run_in: str = "") -> str | Code:
    if p.is_link or sq.facility not in p.facilities:
        return Code.NOT_FOUND
    if p.role == "viewer":
        return Code.PERMISSION_DENIED  # viewers never work with saved queries
    if write and p.role != "admin" and sq.owner != p.subject:
        return Code.PERMISSION_DENIED
    if run_in and run_in not in p.facilities:
        return Code.PERMISSION_DENIED
    return OK


# Exports (ExportService), restated from ARCHITECTURE.md ("an export is its requester's alone") and
# the module docstring of server/exports/service.py.


def expect_export_create(p: Principal, b: Board, version: int) -> tuple[str | Code, str]:
    """(code, ErrorInfo reason) of CreateExport of `b` at `version` (0: the published one).
    Exporting takes read access: whoever reads the published version may export it, and only it."""
    level = board_access(p, b)
    if level is Lvl.NONE:
        return Code.NOT_FOUND, ""
    if version == 0:
        return (OK, "") if b.published_version else (Code.FAILED_PRECONDITION, "DASHBOARD_NOT_PUBLISHED")
    if level is Lvl.READ_PUBLISHED and version != b.published_version:
        return Code.NOT_FOUND, ""  # such a reader sees no other version: it does not exist for them
    return OK, ""


def expect_export(p: Principal, b: Board, x: Export) -> str | Code:
    """Get, Watch, Cancel, Download: the requester alone (same subject), within their facilities,
    and only while they can still read the dashboard; to anyone else it does not exist."""
    if x.requester != p.subject or b.facility not in p.facilities or board_access(p, b) is Lvl.NONE:
        return Code.NOT_FOUND
    return OK


def own_visible_exports(p: Principal, boards: list[Board], state: int = 0) -> set[str]:
    """What ListExports owes the caller: their own exports they could Get, nothing else."""
    return {
        x.id
        for b in boards
        for x in b.exports.values()
        if expect_export(p, b, x) == OK and (not state or state == _state(x))
    }


def _state(x: Export) -> int:
    return c.JOB_STATE_CANCELLED if x.cancelled else c.JOB_STATE_QUEUED


# --- the world --------------------------------------------------------------------------------


def _md(auth: Any, p: Principal, world: World | None = None) -> Any:
    if p.is_link:
        assert world is not None
        board = next(b for b in world.boards if b.key == p.link_board)
        return (("x-tessera-link", board.link_token),)
    return auth(p.subject, p.role, *sorted(p.facilities))


def _owner_md(auth: Any, b: Board) -> Any:
    return auth(b.owner, "editor", b.facility)


def _make_board(stubs: dict[str, Any], auth: Any, b: Board, title: str, *, widget: bool) -> tuple[str, str]:
    """Creates a dashboard as `b` describes (owner, facility, visibility, shares, publication);
    returns (dashboard id, widget id)."""
    dash, sh = stubs["dashboards"], stubs["shares"]
    md = _owner_md(auth, b)
    visibility = d.VISIBILITY_PUBLIC if b.public else d.VISIBILITY_PRIVATE
    created = dash.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=b.facility, title=title, visibility=visibility)),
        metadata=md,
    )
    widget_id = ""
    if widget:
        widget_id = (
            stubs["widgets"]
            .CreateWidget(
                w.CreateWidgetRequest(
                    widget=w.Widget(
                        dashboard_id=created.id,
                        title="iso widget",
                        position=w.GridPosition(x=0, y=0, width=4, height=2),
                        table=w.TableConfig(),
                        query=w.QueryBinding(query_id=stubs["query_of"][b.facility]),
                    )
                ),
                metadata=md,
            )
            .id
        )
    for kind, grantee, level in b.grants:
        request = s.ShareDashboardRequest(dashboard_id=created.id, level=level)
        if kind == "user":
            request.user_id = grantee
        else:
            request.role = ROLE_ENUM[grantee]
        sh.ShareDashboard(request, metadata=md)
    if b.published_version or (b.publish and not b.id):
        dash.PublishDashboard(d.PublishDashboardRequest(id=created.id), metadata=md)
    return created.id, widget_id


@pytest.fixture(scope="module")
def world(
    dashboards: Any,
    widgets: Any,
    queries: Any,
    shares: Any,
    exports: Any,
    auth: Any,
    settings: Settings,
    migrated: str,
) -> Iterator[World]:
    install_demo_data(migrated)  # what the materialized view reads
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
        SavedQuery("A-view-carol", a, "carol", view=True),
        SavedQuery("B-q-dave", b, "dave"),
        SavedQuery("B-q-carol", b, "carol"),
    ]
    stubs = {"dashboards": dashboards, "widgets": widgets, "queries": queries, "shares": shares, "query_of": {}}
    for sq in saved:
        query = q.Query(facility_id=sq.facility, name=f"iso {sq.key}", sql="SELECT 1 AS one", tags=[tag])
        if sq.view:
            query.kind = q.QUERY_KIND_MATERIALIZED_VIEW
            query.sql = "SELECT facility_id, count(*) AS n FROM demo.sites GROUP BY facility_id"
            query.view_key_columns.append("facility_id")
        created = queries.CreateQuery(q.CreateQueryRequest(query=query), metadata=auth(sq.owner, "editor", sq.facility))
        sq.id = created.id
        if not sq.view:
            stubs["query_of"].setdefault(sq.facility, created.id)
    for board in boards:
        board.id, board.widget_id = _make_board(stubs, auth, board, f"iso {board.key}", widget=True)
        md = _owner_md(auth, board)
        got = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=md)
        board.published_version, board.restore_version = got.published_version, got.version
        assert bool(board.published_version) == board.publish
        assert board.published_version != 1, "version 1 stands for an unpublished version"
        if board.publish:
            link = shares.CreatePublicLink(s.CreatePublicLinkRequest(dashboard_id=board.id), metadata=md)
            board.link_id, board.link_token = link.id, link.token
        job = widgets.MaterializeDashboard(w.MaterializeDashboardRequest(dashboard_id=board.id), metadata=md)
        board.jobs[job.id] = board.owner
    made = World(a, b, boards, saved, dsn=sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1))
    for board in boards:
        _make_exports(exports, auth, made, board)
    made.job_ids.update(j for board in boards for j in board.jobs)
    made.job_ids.update(x for board in boards for x in board.exports)
    yield made
    forget_queued_tasks(settings, made.job_ids | {x.id for _, x in made.exports()})


def _make_exports(exports: Any, auth: Any, world: World, b: Board) -> None:
    """Exports of `b` by its owner (one of them cancelled), its first user grantee, a subject
    reached only by its role share, and its public link: requesters whose access to the dashboard
    differs by role and facility set, so the same subject sees its export through one principal
    and not through another."""
    users = [g for kind, g, _ in b.grants if kind == "user"]
    roles = [g for kind, g, _ in b.grants if kind == "role"]
    requesters = [Principal(b.owner, "editor", frozenset({b.facility}))]
    if users:
        requesters.append(Principal(users[0], "editor", frozenset({b.facility})))
    if roles:
        stranger = next(x for x in SUBJECTS if x != b.owner and x not in users)
        requesters.append(Principal(stranger, roles[0], frozenset({b.facility})))
    if b.link_id:
        requesters.append(Principal(f"link:{b.link_id}", "viewer", frozenset({b.facility}), link_board=b.key))
    version = b.published_version or b.restore_version
    for p in requesters:
        md = _md(auth, p, world)
        job = exports.CreateExport(
            e.CreateExportRequest(dashboard_id=b.id, format=e.EXPORT_FORMAT_PDF, dashboard_version=version),
            metadata=md,
        )
        assert job.requested_by == p.subject and job.state == c.JOB_STATE_QUEUED
        b.exports[job.id] = Export(job.id, p.subject, version)
    md = _owner_md(auth, b)
    ended = exports.CreateExport(
        e.CreateExportRequest(dashboard_id=b.id, format=e.EXPORT_FORMAT_PNG, dashboard_version=version), metadata=md
    )
    exports.CancelExport(e.CancelExportRequest(id=ended.id), metadata=md)
    b.exports[ended.id] = Export(ended.id, b.owner, version, cancelled=True)


# --- operations ---------------------------------------------------------------------------------

BOARD_OPS = (
    "GetDashboard",
    "ExportDashboardDocument",
    "CloneDashboard",
    "BatchCloneDashboards",
    "UpdateDashboard",
    "DeleteDashboard",
    "PublishDashboard",
    "RestoreDashboardVersion",
    "ListDashboardVersions",
    "GetDashboardVersion",
    "GetWidget",
    "ListWidgets",
    "UpdateWidget",
    "CreateWidget",
    "DeleteWidget",
    "GetWidgetData",
    "BatchGetWidgetData",
    "MaterializeDashboard",
    "GetMaterializationJob",
    "WatchMaterializationJob",
    "ShareDashboard",
    "UnshareDashboard",
    "ListShares",
    "CreatePublicLink",
    "ListPublicLinks",
    "RevokePublicLink",
    "AddFavorite",
    "RemoveFavorite",
    *(
        "CreateExport",
        "BatchCreateExports",
        "GetExport",
        "ListExports",
        "CancelExport",
        "WatchExport",
        "DownloadExport",
    ),
)
QUERY_OPS = (
    "GetQuery",
    "RunQuery",
    "UpdateQuery",
    "DeleteQuery",
    "ListQueryVersions",
    "GetQueryVersion",
    "RefreshMaterializedView",
)
GLOBAL_OPS = (
    "ListDashboards",
    "CreateDashboard",
    "ImportDashboard",
    "ListQueries",
    "CreateQuery",
    "ValidateQuery",
    "ListAuditEvents",
    "Search",
    "ListFavorites",
)
ALL_OPS = BOARD_OPS + QUERY_OPS + GLOBAL_OPS
IMPLEMENTED_SERVICES = (d, w, q, s, e, sr)
EXPORT_OPS = ("GetExport", "WatchExport", "CancelExport", "DownloadExport")  # rpcs on one export
# ListExports: (by dashboard, state filter) per variant.
LIST_EXPORTS_VARIANTS = (
    (False, 0),
    (True, 0),
    (True, 0),
    (False, c.JOB_STATE_QUEUED),
    (True, c.JOB_STATE_QUEUED),
    (True, c.JOB_STATE_CANCELLED),
)


def call(fn: Any) -> tuple[str | Code, Any]:
    try:
        return OK, fn()
    except grpc.RpcError as error:
        return error.code(), error  # type: ignore[attr-defined]


@dataclass
class Case:
    """One call to judge: what the oracle expects, what else is tolerated, the call, and checks
    of a success (`check`) and of the world after a refusal (`after_refusal`)."""

    expected: str | Code
    fn: Callable[[], Any]
    tolerated: set[str | Code] = field(default_factory=set)
    check: Callable[[Any], None] | None = None
    after_refusal: Callable[[], None] | None = None
    reason: str = ""  # the ErrorInfo reason an expected refusal must carry


class Runner:
    def __init__(self, world: World, stubs: dict[str, Any], auth: Any) -> None:
        self.world, self.stubs, self.auth = world, stubs, auth
        self._titles = itertools.count()

    def title(self) -> str:
        return f"iso title {next(self._titles)}"

    def md(self, p: Principal) -> Any:
        return _md(self.auth, p, self.world)

    def admin_of(self, facility: str) -> Any:
        return self.auth("iso-auditor", "admin", facility)

    # --- rpcs on a dashboard (or what hangs off it) -------------------------------------------

    def board(self, op: str, p: Principal, b: Board, variant: int) -> None:
        if op in EXPORT_OPS:  # on one export: the drawn dashboard's, or one of the caller's own
            b, x = self._export(p, b, variant)
            case = getattr(self, f"_{op}")(p, b, x, variant)
        else:
            if op in ("CreateExport", "BatchCreateExports") and p.is_link and variant % 2 == 0:
                b = self.world.board_of(p.link_board)  # else a link would rarely try its own dashboard
            case = getattr(self, f"_{op}")(p, b, variant)
        self.judge(op, p, b.key, case, level=board_access(p, b).name)

    def _GetDashboard(self, p: Principal, b: Board, variant: int) -> Case:
        def check(r: Any) -> None:
            assert r.id == b.id and r.facility_id == b.facility
            if board_access(p, b) is Lvl.READ_PUBLISHED:
                assert r.version == b.published_version

        fn = lambda: self.stubs["dashboards"].GetDashboard(d.GetDashboardRequest(id=b.id), metadata=self.md(p))  # noqa: E731
        return Case(expect_board(p, b, Lvl.READ_PUBLISHED), fn, check=check)

    def _UpdateDashboard(self, p: Principal, b: Board, variant: int) -> Case:
        def fn() -> Any:
            req = d.UpdateDashboardRequest(
                dashboard=d.Dashboard(id=b.id, title=self.title()), update_mask={"paths": ["title"]}
            )
            return self.stubs["dashboards"].UpdateDashboard(req, metadata=self.md(p))

        return Case(expect_board(p, b, Lvl.EDIT), fn)

    def _DeleteDashboard(self, p: Principal, b: Board, variant: int) -> Case:
        expected = expect_board(p, b, Lvl.MANAGE)
        target = b.id
        if expected == OK:  # on a twin: the world keeps its dashboard
            target, _ = _make_board(self.stubs, self.auth, b, "iso twin", widget=False)
        dash = self.stubs["dashboards"]

        def still_there() -> None:
            assert dash.GetDashboard(d.GetDashboardRequest(id=b.id), metadata=self.admin_of(b.facility)).id == b.id

        fn = lambda: dash.DeleteDashboard(d.DeleteDashboardRequest(id=target), metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, after_refusal=still_there)

    def _PublishDashboard(self, p: Principal, b: Board, variant: int) -> Case:
        def check(r: Any) -> None:
            b.published_version = r.published_version  # the oracle follows the world

        fn = lambda: self.stubs["dashboards"].PublishDashboard(d.PublishDashboardRequest(id=b.id), metadata=self.md(p))  # noqa: E731
        return Case(expect_board(p, b, Lvl.MANAGE), fn, check=check)

    def _ExportDashboardDocument(self, p: Principal, b: Board, variant: int) -> Case:
        expected = expect_board(p, b, Lvl.VIEW)
        if expected == OK:
            expected = expect_role(p, "editor")  # the document holds SQL: editors only

        def check(r: Any) -> None:
            assert r.schema_version == "tessera.dashboard/v1" and r.dashboard.title.startswith("iso")

        req = d.ExportDashboardDocumentRequest(id=b.id)
        fn = lambda: self.stubs["dashboards"].ExportDashboardDocument(req, metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, check=check)

    def _clone_target(self, p: Principal, b: Board, variant: int) -> tuple[str, str | Code]:
        """Into the source's facility (editors) or the other one (admins of both only): the
        target and what the oracle expects."""
        world = self.world
        target = b.facility if variant % 2 == 0 else ({world.a, world.b} - {b.facility}).pop()
        expected = expect_board(p, b, Lvl.VIEW)
        if expected == OK:
            expected = expect_role(p, "editor" if target == b.facility else "admin")
        if expected == OK and target not in p.facilities:
            expected = Code.PERMISSION_DENIED
        return target, expected

    def _CloneDashboard(self, p: Principal, b: Board, variant: int) -> Case:
        target, expected = self._clone_target(p, b, variant)
        req = d.CloneDashboardRequest(
            id=b.id, facility_id=target, title=self.title(), query_mode=d.QUERY_IMPORT_MODE_REUSE_IDENTICAL
        )

        def check(r: Any) -> None:
            assert r.dashboard.facility_id == target and r.dashboard.owner_id == p.subject
            self._forget_import(p, r)

        fn = lambda: self.stubs["dashboards"].CloneDashboard(req, metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, check=check)

    def _BatchCloneDashboards(self, p: Principal, b: Board, variant: int) -> Case:
        """One item, or (a third of the time) two on different dashboards: all copies or none."""
        items = [(b, *self._clone_target(p, b, variant))]
        if variant % 3 == 2:
            boards = self.world.boards
            other = boards[(boards.index(b) + 1 + variant) % len(boards)]
            if other is not b:
                items.append((other, *self._clone_target(p, other, variant // 2)))
        refusals = [expected for _, _, expected in items if expected != OK]
        # Items are planned in order, so the first refusal answers; any item's is tolerated.
        expected = refusals[0] if refusals else OK
        titles = [self.title() for _ in items]
        req = d.BatchCloneDashboardsRequest(
            requests=[
                d.CloneDashboardRequest(
                    id=x.id, facility_id=target, title=title, query_mode=d.QUERY_IMPORT_MODE_REUSE_IDENTICAL
                )
                for (x, target, _), title in zip(items, titles, strict=True)
            ]
        )

        def check(r: Any) -> None:
            assert [c.dashboard.facility_id for c in r.clones] == [target for _, target, _ in items]
            assert all(c.dashboard.owner_id == p.subject for c in r.clones)
            for made in r.clones:
                self._forget_import(p, made)

        def nothing_copied() -> None:
            with psycopg.connect(self.world.dsn) as conn:
                found = conn.execute("SELECT count(*) FROM dashboards WHERE title = ANY(%s)", (titles,)).fetchone()
            assert found == (0,), f"COPIES MADE BY A REFUSED BATCH: {titles}"

        fn = lambda: self.stubs["dashboards"].BatchCloneDashboards(req, metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, set(refusals), check=check, after_refusal=nothing_copied)

    def _forget_import(self, p: Principal, r: Any) -> None:
        """Deletes what an import or clone made, so lists stay as the oracle knows them."""
        md = self.md(p)
        self.stubs["dashboards"].DeleteDashboard(d.DeleteDashboardRequest(id=r.dashboard.id), metadata=md)
        for made in r.queries:
            if made.action == d.QUERY_IMPORT_ACTION_CREATED:
                self.stubs["queries"].DeleteQuery(q.DeleteQueryRequest(id=made.query_id), metadata=md)

    def _RestoreDashboardVersion(self, p: Principal, b: Board, variant: int) -> Case:
        req = d.RestoreDashboardVersionRequest(dashboard_id=b.id, version=b.restore_version)
        return Case(
            expect_board(p, b, Lvl.EDIT),
            lambda: self.stubs["dashboards"].RestoreDashboardVersion(req, metadata=self.md(p)),
        )

    def _ListDashboardVersions(self, p: Principal, b: Board, variant: int) -> Case:
        def check(r: Any) -> None:
            assert all(v.dashboard_id == b.id for v in r.versions)
            if board_access(p, b) is Lvl.READ_PUBLISHED:
                assert [v.version for v in r.versions] == [b.published_version]

        req = d.ListDashboardVersionsRequest(dashboard_id=b.id, page_size=1000)
        fn = lambda: self.stubs["dashboards"].ListDashboardVersions(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_board(p, b, Lvl.READ_PUBLISHED), fn, check=check)

    def _GetDashboardVersion(self, p: Principal, b: Board, variant: int) -> Case:
        version = 1 if variant % 2 or not b.published_version else b.published_version
        expected = expect_board(p, b, Lvl.READ_PUBLISHED)
        if board_access(p, b) is Lvl.READ_PUBLISHED and version != b.published_version:
            expected = Code.NOT_FOUND  # only the published version exists for such readers

        def check(r: Any) -> None:
            assert r.dashboard_id == b.id and r.version == version

        req = d.GetDashboardVersionRequest(dashboard_id=b.id, version=version)
        fn = lambda: self.stubs["dashboards"].GetDashboardVersion(req, metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, check=check)

    def _GetWidget(self, p: Principal, b: Board, variant: int) -> Case:
        def check(r: Any) -> None:
            assert r.id == b.widget_id and r.dashboard_id == b.id

        fn = lambda: self.stubs["widgets"].GetWidget(w.GetWidgetRequest(id=b.widget_id), metadata=self.md(p))  # noqa: E731
        return Case(expect_board(p, b, Lvl.READ_PUBLISHED), fn, check=check)

    def _ListWidgets(self, p: Principal, b: Board, variant: int) -> Case:
        def check(r: Any) -> None:
            assert all(x.dashboard_id == b.id for x in r.widgets)
            assert b.widget_id in {x.id for x in r.widgets}

        req = w.ListWidgetsRequest(dashboard_id=b.id, page_size=1000)
        fn = lambda: self.stubs["widgets"].ListWidgets(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_board(p, b, Lvl.READ_PUBLISHED), fn, check=check)

    def _UpdateWidget(self, p: Principal, b: Board, variant: int) -> Case:
        def fn() -> Any:
            req = w.UpdateWidgetRequest(
                widget=w.Widget(id=b.widget_id, title=self.title()), update_mask={"paths": ["title"]}
            )
            return self.stubs["widgets"].UpdateWidget(req, metadata=self.md(p))

        return Case(expect_board(p, b, Lvl.EDIT), fn)

    def _new_widget(self, b: Board, md: Any) -> Any:
        slot = b.next_slot
        b.next_slot += 1
        widget = w.Widget(
            dashboard_id=b.id,
            title="iso extra",
            position=w.GridPosition(x=slot % 12, y=10 + slot // 12, width=1, height=1),
            table=w.TableConfig(),
        )
        return self.stubs["widgets"].CreateWidget(w.CreateWidgetRequest(widget=widget), metadata=md)

    def _CreateWidget(self, p: Principal, b: Board, variant: int) -> Case:
        def check(r: Any) -> None:
            assert r.dashboard_id == b.id

        return Case(expect_board(p, b, Lvl.EDIT), lambda: self._new_widget(b, self.md(p)), check=check)

    def _DeleteWidget(self, p: Principal, b: Board, variant: int) -> Case:
        expected = expect_board(p, b, Lvl.EDIT)
        target = b.widget_id
        if expected == OK:  # a widget made for the purpose: the world keeps its own
            target = self._new_widget(b, _owner_md(self.auth, b)).id
        wid = self.stubs["widgets"]

        def still_there() -> None:
            assert wid.GetWidget(w.GetWidgetRequest(id=b.widget_id), metadata=self.admin_of(b.facility)).id

        fn = lambda: wid.DeleteWidget(w.DeleteWidgetRequest(id=target), metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, after_refusal=still_there)

    def _GetWidgetData(self, p: Principal, b: Board, variant: int) -> Case:
        expected = expect_board(p, b, Lvl.READ_PUBLISHED)

        def fn() -> Any:
            req = w.GetWidgetDataRequest(widget_id=b.widget_id)
            return self.stubs["widgets"].GetWidgetData(req, metadata=self.md(p), timeout=30)

        return Case(expected, fn, check=lambda r: _assert_widget(r.widget_id, b))

    def _BatchGetWidgetData(self, p: Principal, b: Board, variant: int) -> Case:
        requests = [w.GetWidgetDataRequest(widget_id=b.widget_id)] * (1 + variant % 2)

        def fn() -> Any:
            req = w.BatchGetWidgetDataRequest(requests=requests)
            return self.stubs["widgets"].BatchGetWidgetData(req, metadata=self.md(p), timeout=30)

        def check(r: Any) -> None:
            assert len(r.data) == len(requests)
            for item in r.data:
                _assert_widget(item.widget_id, b)

        return Case(expect_board(p, b, Lvl.READ_PUBLISHED), fn, check=check)

    def _MaterializeDashboard(self, p: Principal, b: Board, variant: int) -> Case:
        def fn() -> Any:
            req = w.MaterializeDashboardRequest(dashboard_id=b.id)
            return self.stubs["widgets"].MaterializeDashboard(req, metadata=self.md(p), timeout=30)

        def check(r: Any) -> None:
            assert r.dashboard_id == b.id
            b.jobs[r.id] = p.subject
            self.world.job_ids.add(r.id)

        return Case(expect_board(p, b, Lvl.READ_PUBLISHED), fn, check=check)

    def _job(self, b: Board, variant: int) -> tuple[str, str]:
        jobs = sorted(b.jobs.items())
        return jobs[variant % len(jobs)]

    def _GetMaterializationJob(self, p: Principal, b: Board, variant: int) -> Case:
        job_id, requester = self._job(b, variant)

        def fn() -> Any:
            req = w.GetMaterializationJobRequest(id=job_id)
            return self.stubs["widgets"].GetMaterializationJob(req, metadata=self.md(p))

        def check(r: Any) -> None:
            assert r.id == job_id and r.dashboard_id == b.id

        return Case(expect_job(p, b, requester), fn, check=check)

    def _WatchMaterializationJob(self, p: Principal, b: Board, variant: int) -> Case:
        job_id, requester = self._job(b, variant)

        def fn() -> Any:
            stream = self.stubs["widgets"].WatchMaterializationJob(
                w.WatchMaterializationJobRequest(id=job_id), metadata=self.md(p), timeout=30
            )
            try:
                return next(stream)  # the snapshot; no worker runs here, so the stream would go on
            finally:
                stream.cancel()

        def check(r: Any) -> None:
            assert r.job.id == job_id and r.job.dashboard_id == b.id

        return Case(expect_job(p, b, requester), fn, check=check)

    def _ShareDashboard(self, p: Principal, b: Board, variant: int) -> Case:
        req = s.ShareDashboardRequest(dashboard_id=b.id, user_id=SINK_USER, level=s.SHARE_LEVEL_VIEW)

        def check(r: Any) -> None:
            assert r.dashboard_id == b.id

        return Case(
            expect_board(p, b, Lvl.MANAGE),
            lambda: self.stubs["shares"].ShareDashboard(req, metadata=self.md(p)),
            check=check,
        )

    def _UnshareDashboard(self, p: Principal, b: Board, variant: int) -> Case:
        expected = expect_board(p, b, Lvl.MANAGE)
        sh = self.stubs["shares"]
        if expected == OK:  # a share to remove (the sink user's: it grants no principal anything)
            sh.ShareDashboard(
                s.ShareDashboardRequest(dashboard_id=b.id, user_id=SINK_USER, level=s.SHARE_LEVEL_VIEW),
                metadata=_owner_md(self.auth, b),
            )
            req = s.UnshareDashboardRequest(dashboard_id=b.id, user_id=SINK_USER)
        else:  # a share the world relies on: it must survive the attempt
            kind, grantee, _ = b.grants[variant % len(b.grants)] if b.grants else ("user", SINK_USER, 0)
            req = s.UnshareDashboardRequest(dashboard_id=b.id)
            if kind == "user":
                req.user_id = grantee
            else:
                req.role = ROLE_ENUM[grantee]

        def grants_intact() -> None:
            listed = sh.ListShares(
                s.ListSharesRequest(dashboard_id=b.id, page_size=1000), metadata=self.admin_of(b.facility)
            )
            have = {
                ("user", x.user_id) if x.user_id else ("role", s.Role.Name(x.role)[5:].lower()) for x in listed.shares
            }
            assert {(k, g) for k, g, _ in b.grants} <= have

        return Case(expected, lambda: sh.UnshareDashboard(req, metadata=self.md(p)), after_refusal=grants_intact)

    def _ListShares(self, p: Principal, b: Board, variant: int) -> Case:
        def check(r: Any) -> None:
            assert all(x.dashboard_id == b.id for x in r.shares)

        req = s.ListSharesRequest(dashboard_id=b.id, page_size=1000)
        fn = lambda: self.stubs["shares"].ListShares(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_board(p, b, Lvl.VIEW), fn, check=check)

    def _CreatePublicLink(self, p: Principal, b: Board, variant: int) -> Case:
        expected = expect_board(p, b, Lvl.MANAGE)
        tolerated: set[str | Code] = set()
        if expected == OK and not b.published_version:
            tolerated.add(Code.FAILED_PRECONDITION)  # nothing published to link to yet

        def check(r: Any) -> None:
            assert r.dashboard_id == b.id

        req = s.CreatePublicLinkRequest(dashboard_id=b.id)
        fn = lambda: self.stubs["shares"].CreatePublicLink(req, metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, tolerated, check=check)

    def _ListPublicLinks(self, p: Principal, b: Board, variant: int) -> Case:
        def check(r: Any) -> None:
            assert all(x.dashboard_id == b.id and not x.token for x in r.links)

        req = s.ListPublicLinksRequest(dashboard_id=b.id, page_size=1000)
        fn = lambda: self.stubs["shares"].ListPublicLinks(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_board(p, b, Lvl.MANAGE), fn, check=check)

    def _RevokePublicLink(self, p: Principal, b: Board, variant: int) -> Case:
        # Only dashboards with a link: the drawn one, or else a linked one picked by the variant.
        if not b.link_id:
            linked = self.world.linked()
            b = linked[variant % len(linked)]
        expected = expect_board(p, b, Lvl.MANAGE)
        sh = self.stubs["shares"]
        target = b.link_id
        if expected == OK:  # a link made for the purpose: the world's link principals keep theirs
            target = sh.CreatePublicLink(
                s.CreatePublicLinkRequest(dashboard_id=b.id), metadata=_owner_md(self.auth, b)
            ).id

        def link_works() -> None:
            got = self.stubs["dashboards"].GetDashboard(
                d.GetDashboardRequest(id=b.id), metadata=(("x-tessera-link", b.link_token),)
            )
            assert got.id == b.id

        def check(r: Any) -> None:
            assert r.id == target and r.revoke_time.seconds > 0

        fn = lambda: sh.RevokePublicLink(s.RevokePublicLinkRequest(id=target), metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, check=check, after_refusal=link_works)

    # --- exports (ExportService) --------------------------------------------------------------

    def _export_version(self, b: Board, variant: int) -> int:
        """The published one by default (0), the first version (never the published one: the
        world's widgets came after it), or the published (else the current) version by number."""
        return (0, 1, b.published_version or b.restore_version)[variant % 3]

    def _export_request(self, b: Board, version: int) -> e.CreateExportRequest:
        return e.CreateExportRequest(dashboard_id=b.id, format=e.EXPORT_FORMAT_PDF, dashboard_version=version)

    def _record(self, p: Principal, b: Board, version: int, job: Any) -> None:
        assert job.dashboard_id == b.id and job.requested_by == p.subject and job.state == c.JOB_STATE_QUEUED
        assert job.dashboard_version == (version or b.published_version)
        b.exports[job.id] = Export(job.id, p.subject, job.dashboard_version)
        self.world.job_ids.add(job.id)

    def _nothing_created(self) -> None:
        """A refused create left no export row behind, in either facility, for anyone."""
        stored = self.world.stored_exports()
        known = {x.id for _, x in self.world.exports()}
        assert set(stored) == known, f"EXPORTS CREATED BY A REFUSED CALL: {set(stored) - known}"

    def _CreateExport(self, p: Principal, b: Board, variant: int) -> Case:
        version = self._export_version(b, variant)
        expected, reason = expect_export_create(p, b, version)
        if board_access(p, b) is Lvl.READ_PUBLISHED and version not in (0, b.published_version):
            self.world.stats["exports of another version by a published-only reader"] += 1
        req = self._export_request(b, version)
        fn = lambda: self.stubs["exports"].CreateExport(req, metadata=self.md(p), timeout=30)  # noqa: E731
        check = lambda r: self._record(p, b, version, r)  # noqa: E731
        return Case(expected, fn, check=check, after_refusal=self._nothing_created, reason=reason)

    def _BatchCreateExports(self, p: Principal, b: Board, variant: int) -> Case:
        """One item, or two on different dashboards: all are created or none."""
        items = [(b, self._export_version(b, variant))]
        if variant % 2:
            boards = self.world.boards
            other = boards[(boards.index(b) + 1 + variant) % len(boards)]
            items.append((other, self._export_version(other, variant // 2)))
        answers = [expect_export_create(p, x, v) for x, v in items]
        refusals = [a for a in answers if a[0] != OK]
        # Items are checked in order, so the first refusal is the answer; any item's refusal is tolerated.
        expected, reason = refusals[0] if refusals else (OK, "")
        req = e.BatchCreateExportsRequest(requests=[self._export_request(x, v) for x, v in items])

        def check(r: Any) -> None:
            assert len(r.exports) == len(items)
            for (x, v), job in zip(items, r.exports, strict=True):
                self._record(p, x, v, job)

        fn = lambda: self.stubs["exports"].BatchCreateExports(req, metadata=self.md(p), timeout=30)  # noqa: E731
        tolerated = {code for code, _ in refusals}
        return Case(expected, fn, tolerated, check=check, after_refusal=self._nothing_created, reason=reason)

    def _export(self, p: Principal, b: Board, variant: int) -> tuple[Board, Export]:
        """Half the time one of the caller's subject's own exports, on any dashboard (when it has
        one), so allowed calls are not rare; else any export of the drawn dashboard, whoever asked.
        In creation order (not by id), so a seed picks the same export in every run."""
        mine = [(y, x) for y, x in self.world.exports() if x.requester == p.subject]
        if mine and variant % 2 == 0:
            return mine[(variant // 2 + len(self.world.job_ids)) % len(mine)]
        every = list(b.exports.values())
        return b, every[variant % len(every)]

    def _GetExport(self, p: Principal, b: Board, x: Export, variant: int) -> Case:

        def check(r: Any) -> None:
            assert (r.id, r.dashboard_id, r.requested_by, r.state) == (x.id, b.id, p.subject, _state(x))
            assert r.dashboard_version == x.version

        fn = lambda: self.stubs["exports"].GetExport(e.GetExportRequest(id=x.id), metadata=self.md(p))  # noqa: E731
        return Case(expect_export(p, b, x), fn, check=check)

    def _WatchExport(self, p: Principal, b: Board, x: Export, variant: int) -> Case:

        def fn() -> Any:
            stream = self.stubs["exports"].WatchExport(e.WatchExportRequest(id=x.id), metadata=self.md(p), timeout=30)
            try:
                return next(stream)  # the snapshot; a QUEUED export's stream would go on
            finally:
                stream.cancel()

        def check(r: Any) -> None:
            assert (r.export.id, r.export.requested_by, r.export.state) == (x.id, p.subject, _state(x))

        return Case(expect_export(p, b, x), fn, check=check)

    def _DownloadExport(self, p: Principal, b: Board, x: Export, variant: int) -> Case:
        expected = expect_export(p, b, x)
        reason = ""
        if expected == OK:  # its requester may ask, but nothing was rendered: no worker runs here
            expected, reason = Code.FAILED_PRECONDITION, "EXPORT_NOT_READY"
        req = e.DownloadExportRequest(id=x.id)
        fn = lambda: list(self.stubs["exports"].DownloadExport(req, metadata=self.md(p), timeout=30))  # noqa: E731
        return Case(expected, fn, reason=reason)

    def _CancelExport(self, p: Principal, b: Board, x: Export, variant: int) -> Case:
        expected = expect_export(p, b, x)
        ex = self.stubs["exports"]
        reason, target = "", x
        if expected == OK and x.cancelled:
            expected, reason = Code.FAILED_PRECONDITION, "EXPORT_ALREADY_ENDED"
        elif expected == OK:  # a twin by the same requester: the world's export stays QUEUED
            version = b.published_version or 1  # no published version: the caller reads more than that
            job = ex.CreateExport(self._export_request(b, version), metadata=self.md(p), timeout=30)
            self._record(p, b, version, job)
            target = b.exports[job.id]

        def check(r: Any) -> None:
            assert (r.id, r.state) == (target.id, c.JOB_STATE_CANCELLED)
            target.cancelled = True

        def unchanged() -> None:
            assert self.world.stored_exports()[x.id] == (x.requester, _state(x)), "a refused cancel changed the export"

        fn = lambda: ex.CancelExport(e.CancelExportRequest(id=target.id), metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, check=check, after_refusal=unchanged, reason=reason)

    def _ListExports(self, p: Principal, b: Board, variant: int) -> Case:
        """With a dashboard (two variants in three): it must be readable, and only the caller's own
        exports of it are listed. Without: the caller's own exports they can still read."""
        by_board, state = LIST_EXPORTS_VARIANTS[variant % len(LIST_EXPORTS_VARIANTS)]
        expected = expect_board(p, b, Lvl.READ_PUBLISHED) if by_board else OK
        scope = [b] if by_board else self.world.boards

        def check(r: Any) -> None:
            assert not r.next_page_token
            got = {x.id for x in r.exports}
            want = own_visible_exports(p, scope, state)
            leaked = got - want
            assert not leaked, f"EXPORTS LISTED TO SOMEONE ELSE OR INVISIBLE: {leaked}"
            assert got == want, f"own visible exports missing from the list: {want - got}"
            assert all(x.requested_by == p.subject for x in r.exports)

        req = e.ListExportsRequest(dashboard_id=b.id if by_board else "", page_size=1000, state=state)
        fn = lambda: self.stubs["exports"].ListExports(req, metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, check=check)

    # --- rpcs on a saved query ----------------------------------------------------------------

    def query(self, op: str, p: Principal, sq: SavedQuery, variant: int) -> None:
        case = getattr(self, f"_{op}")(p, sq, variant)
        self.judge(op, p, sq.key, case)

    def _GetQuery(self, p: Principal, sq: SavedQuery, variant: int) -> Case:
        def check(r: Any) -> None:
            assert r.id == sq.id and r.facility_id == sq.facility

        fn = lambda: self.stubs["queries"].GetQuery(q.GetQueryRequest(id=sq.id), metadata=self.md(p))  # noqa: E731
        return Case(expect_query(p, sq, write=False), fn, check=check)

    def _RunQuery(self, p: Principal, sq: SavedQuery, variant: int) -> Case:
        run_in = ("", self.world.a, self.world.b)[variant % 3]
        req = q.RunQueryRequest(id=sq.id, facility_id=run_in)
        fn = lambda: self.stubs["queries"].RunQuery(req, metadata=self.md(p), timeout=30)  # noqa: E731
        return Case(expect_query(p, sq, write=False, run_in=run_in), fn)

    def _UpdateQuery(self, p: Principal, sq: SavedQuery, variant: int) -> Case:
        def fn() -> Any:
            req = q.UpdateQueryRequest(
                query=q.Query(id=sq.id, name=f"iso {sq.key} {next(self._titles)}"), update_mask={"paths": ["name"]}
            )
            return self.stubs["queries"].UpdateQuery(req, metadata=self.md(p))

        return Case(expect_query(p, sq, write=True), fn)

    def _DeleteQuery(self, p: Principal, sq: SavedQuery, variant: int) -> Case:
        expected = expect_query(p, sq, write=True)
        qs = self.stubs["queries"]
        target = sq.id
        if expected == OK:  # a twin (same owner and facility) made for the purpose
            twin = q.Query(facility_id=sq.facility, name=f"iso twin {next(self._titles)}", sql="SELECT 1 AS one")
            target = qs.CreateQuery(
                q.CreateQueryRequest(query=twin), metadata=self.auth(sq.owner, "editor", sq.facility)
            ).id

        def still_there() -> None:
            assert qs.GetQuery(q.GetQueryRequest(id=sq.id), metadata=self.admin_of(sq.facility)).id == sq.id

        fn = lambda: qs.DeleteQuery(q.DeleteQueryRequest(id=target), metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, after_refusal=still_there)

    def _ListQueryVersions(self, p: Principal, sq: SavedQuery, variant: int) -> Case:
        def check(r: Any) -> None:
            assert r.versions and all(v.query_id == sq.id for v in r.versions)

        req = q.ListQueryVersionsRequest(query_id=sq.id, page_size=1000)
        fn = lambda: self.stubs["queries"].ListQueryVersions(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_query(p, sq, write=False), fn, check=check)

    def _GetQueryVersion(self, p: Principal, sq: SavedQuery, variant: int) -> Case:
        version = 1 if variant % 3 else 10_000  # the first version, or one that does not exist
        expected = expect_query(p, sq, write=False)
        if expected == OK and version != 1:
            expected = Code.NOT_FOUND

        def check(r: Any) -> None:
            assert r.query_id == sq.id and r.version == 1

        req = q.GetQueryVersionRequest(query_id=sq.id, version=version)
        fn = lambda: self.stubs["queries"].GetQueryVersion(req, metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, check=check)

    def _RefreshMaterializedView(self, p: Principal, sq: SavedQuery, variant: int) -> Case:
        expected = expect_query(p, sq, write=False)
        tolerated: set[str | Code] = set()
        if expected == OK and not sq.view:
            expected = Code.FAILED_PRECONDITION  # allowed to ask, but a SQL query has no view

        def check(r: Any) -> None:
            assert r.id == sq.id and r.refresh_time.seconds > 0

        req = q.RefreshMaterializedViewRequest(id=sq.id)
        fn = lambda: self.stubs["queries"].RefreshMaterializedView(req, metadata=self.md(p), timeout=30)  # noqa: E731
        return Case(expected, fn, tolerated, check=check)

    # --- rpcs without a resource ----------------------------------------------------------------

    def listing(self, op: str, p: Principal, variant: int) -> None:
        case = getattr(self, f"_{op}")(p, variant)
        self.judge(op, p, "-", case)

    def _ListDashboards(self, p: Principal, variant: int) -> Case:
        world = self.world

        def check(r: Any) -> None:
            assert not r.next_page_token
            got = {x.id for x in r.dashboards}
            want = {b.id for b in world.boards if board_access(p, b) >= Lvl.READ_PUBLISHED}
            keys = {b.id: b.key for b in world.boards}
            if p.is_link:
                assert got == want, "a public link lists exactly its dashboard"
            assert all(x.facility_id in p.facilities for x in r.dashboards), "another facility's dashboard"
            assert not got - want, f"INVISIBLE DASHBOARDS LISTED: {[keys.get(i, i) for i in got - want]}"
            for missing in sorted(keys[i] for i in want - got):
                facs = "".join(sorted(f[4] for f in p.facilities))
                world.missing.add((p.subject, p.role, facs, missing))

        req = d.ListDashboardsRequest(page_size=1000)
        return Case(OK, lambda: self.stubs["dashboards"].ListDashboards(req, metadata=self.md(p)), check=check)

    # --- search and favorites (a favorite is kept by a subject, of a dashboard it may read) -----

    def _AddFavorite(self, p: Principal, b: Board, variant: int) -> Case:
        expected = expect_favorite(p, b)

        def check(r: Any) -> None:
            assert r.dashboard_id == b.id
            self.world.favorites.add((p.subject, b.key))

        fn = lambda: self.stubs["search"].AddFavorite(sr.AddFavoriteRequest(dashboard_id=b.id), metadata=self.md(p))  # noqa: E731
        return Case(expected, fn, check=check)

    def _RemoveFavorite(self, p: Principal, b: Board, variant: int) -> Case:
        favorites = self.world.favorites
        if variant % 2 == 0 and expect_favorite(p, b) == OK and (p.subject, b.key) not in favorites:
            # Often one to remove (else removals would rarely be allowed).
            self.stubs["search"].AddFavorite(sr.AddFavoriteRequest(dashboard_id=b.id), metadata=self.md(p))
            favorites.add((p.subject, b.key))
        # Only the caller's own row, whatever its access now; a link keeps none.
        expected = OK if (p.subject, b.key) in favorites and not p.is_link else Code.NOT_FOUND

        def fn() -> Any:
            reply = self.stubs["search"].RemoveFavorite(
                sr.RemoveFavoriteRequest(dashboard_id=b.id), metadata=self.md(p)
            )
            favorites.discard((p.subject, b.key))
            return reply

        return Case(expected, fn)

    def _ListFavorites(self, p: Principal, variant: int) -> Case:
        world = self.world

        def check(r: Any) -> None:
            assert not r.next_page_token
            keys = {b.id: b for b in world.boards}
            got = {f.dashboard_id for f in r.favorites}
            for f in r.favorites:
                assert f.dashboard.facility_id in p.facilities, "another facility's dashboard"
                b = keys.get(f.dashboard_id)
                assert b is not None and (p.subject, b.key) in world.favorites, "NOT THE CALLER'S FAVORITE"
                assert board_access(p, b) >= Lvl.READ_PUBLISHED, f"INVISIBLE FAVORITE LISTED: {b.key}"
            want = {
                b.id
                for b in world.boards
                if (p.subject, b.key) in world.favorites and board_access(p, b) >= Lvl.READ_PUBLISHED
            }
            assert got == want, f"favorites missing: {want - got}"

        req = sr.ListFavoritesRequest(page_size=1000)
        fn = lambda: self.stubs["search"].ListFavorites(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_role(p, "viewer"), fn, check=check)

    def _Search(self, p: Principal, variant: int) -> Case:
        world = self.world
        by_id = {b.id: b for b in world.boards}
        by_widget = {b.widget_id: b for b in world.boards if b.widget_id}
        saved = {sq.id: sq for sq in world.queries}
        # Words of the world's titles ("iso ..."), and a misspelt one (the trigram path).
        words = ("iso", "title", "widget", "isso titel")[variant % 4]

        def check(r: Any) -> None:
            for x in r.results:
                assert x.facility_id in p.facilities, f"ANOTHER FACILITY'S {sr.SearchResultKind.Name(x.kind)} FOUND"
                if x.kind == sr.SEARCH_RESULT_KIND_QUERY:
                    sq = saved.get(x.id)
                    assert sq is None or expect_query(p, sq, write=False) == OK, f"INVISIBLE QUERY FOUND: {sq}"
                    assert p.role != "viewer", "a viewer found a saved query"
                    continue
                board = by_id.get(x.dashboard_id) or by_widget.get(x.id)
                if board is None:
                    continue  # a dashboard of the caller's own facilities that the world does not track
                level = board_access(p, board)
                assert level >= Lvl.READ_PUBLISHED, f"INVISIBLE DASHBOARD FOUND: {board.key}"
                if level is Lvl.READ_PUBLISHED and x.kind == sr.SEARCH_RESULT_KIND_DASHBOARD:
                    # A reader of the published version finds the published text only.
                    seen = self.stubs["dashboards"].GetDashboard(
                        d.GetDashboardRequest(id=board.id), metadata=self.md(p)
                    )
                    assert x.title == seen.title, f"UNPUBLISHED DRAFT FOUND: {board.key}"

        req = sr.SearchRequest(query=words, page_size=100, favorites_first=variant >= 3)
        fn = lambda: self.stubs["search"].Search(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_role(p, "viewer"), fn, check=check)

    def _CreateDashboard(self, p: Principal, variant: int) -> Case:
        facility = (self.world.a, self.world.b)[variant % 2]
        dash = self.stubs["dashboards"]

        def fn() -> Any:
            req = d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title=self.title()))
            return dash.CreateDashboard(req, metadata=self.md(p))

        def check(r: Any) -> None:
            assert r.facility_id == facility and r.owner_id == p.subject
            dash.DeleteDashboard(d.DeleteDashboardRequest(id=r.id), metadata=self.md(p))  # keeps lists as known

        return Case(expect_create_in(p, facility), fn, check=check)

    def _ImportDashboard(self, p: Principal, variant: int) -> Case:
        facility = (self.world.a, self.world.b)[variant % 2]
        document = d.DashboardDocument(
            schema_version="tessera.dashboard/v1",
            dashboard=d.Dashboard(title=self.title()),
            widgets=[
                d.DocumentWidget(
                    key="w1",
                    query_key="q1",
                    widget=w.Widget(
                        title="iso imported",
                        position=w.GridPosition(x=0, y=0, width=4, height=2),
                        table=w.TableConfig(),
                    ),
                )
            ],
            queries=[d.DocumentQuery(key="q1", query=q.Query(name="iso imported", sql="SELECT 2 AS two"))],
        )
        req = d.ImportDashboardRequest(facility_id=facility, document=document, validate_only=variant >= 4)

        def check(r: Any) -> None:
            if req.validate_only:
                assert not r.dashboard.id and [x.action for x in r.queries] == [d.QUERY_IMPORT_ACTION_CREATED]
                return
            assert r.dashboard.facility_id == facility and r.dashboard.owner_id == p.subject
            self._forget_import(p, r)

        fn = lambda: self.stubs["dashboards"].ImportDashboard(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_create_in(p, facility), fn, check=check)

    def _ListQueries(self, p: Principal, variant: int) -> Case:
        world = self.world
        mine = {world.a, world.b}

        def check(r: Any) -> None:
            assert all(x.facility_id in p.facilities for x in r.queries), "another facility's query"
            got = {x.id for x in r.queries if x.facility_id in mine}
            assert got == {sq.id for sq in world.queries if sq.facility in p.facilities}

        req = q.ListQueriesRequest(page_size=1000)
        fn = lambda: self.stubs["queries"].ListQueries(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_role(p, "editor"), fn, check=check)

    def _CreateQuery(self, p: Principal, variant: int) -> Case:
        facility = (self.world.a, self.world.b)[variant % 2]
        qs = self.stubs["queries"]

        def fn() -> Any:
            query = q.Query(facility_id=facility, name=f"iso new {next(self._titles)}", sql="SELECT 1 AS one")
            return qs.CreateQuery(q.CreateQueryRequest(query=query), metadata=self.md(p))

        def check(r: Any) -> None:
            assert r.facility_id == facility and r.owner_id == p.subject
            qs.DeleteQuery(q.DeleteQueryRequest(id=r.id), metadata=self.md(p))  # keeps lists as known

        return Case(expect_create_in(p, facility), fn, check=check)

    def _ValidateQuery(self, p: Principal, variant: int) -> Case:
        def check(r: Any) -> None:
            assert r.valid

        req = q.ValidateQueryRequest(sql="SELECT 1 AS one")
        fn = lambda: self.stubs["queries"].ValidateQuery(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_role(p, "editor"), fn, check=check)

    def _ListAuditEvents(self, p: Principal, variant: int) -> Case:
        def check(r: Any) -> None:
            leaked = {e.facility_id for e in r.events} - set(p.facilities)
            assert not leaked, f"audit events of other facilities: {leaked}"

        req = s.ListAuditEventsRequest(page_size=1000)
        fn = lambda: self.stubs["shares"].ListAuditEvents(req, metadata=self.md(p))  # noqa: E731
        return Case(expect_role(p, "admin"), fn, check=check)

    # --- judging --------------------------------------------------------------------------------

    def judge(self, op: str, p: Principal, target: str, case: Case, *, level: str = "") -> None:
        got, result = call(case.fn)
        self.world.stats["calls"] += 1
        self.world.pairs.add((p, op, target))
        self.world.outcomes[(op, got if isinstance(got, str) else got.name)] += 1
        who = f"link to {p.link_board}" if p.is_link else f"{p.subject}/{p.role}/{sorted(p.facilities)}"
        where = f"{op} on {target} by {who} (oracle access {level or 'n/a'})"
        allowed = {case.expected} | case.tolerated
        if got == OK and case.expected != OK:
            raise AssertionError(f"UNAUTHORIZED SUCCESS: {where}: expected {case.expected}")
        if got == Code.PERMISSION_DENIED and case.expected == Code.NOT_FOUND:
            raise AssertionError(f"EXISTENCE LEAK (PERMISSION_DENIED for an invisible resource): {where}")
        assert got in allowed, f"{where}: got {got}, expected {sorted(map(str, allowed))}: {result}"
        if case.reason and got == case.expected:
            assert failure_of(result).reason == case.reason, f"{where}: {failure_of(result)}, not {case.reason}"
        if got == OK and case.check is not None:
            case.check(result)
        if got != OK and case.after_refusal is not None:
            case.after_refusal()
            self.world.stats["refusals verified"] += 1


def _assert_widget(widget_id: str, b: Board) -> None:
    assert widget_id == b.widget_id


# --- the property -------------------------------------------------------------------------------

# Hypothesis draws a seed per example and the example draws uniformly from it: sampled_from's
# lean towards its first elements would otherwise starve the rpcs and roles listed last (a
# failure still reproduces: the seed is in the report, and derandomize fixes the seeds).
LINK_SHARE = 5  # one principal in five is a public link


def draw_principal(rng: random.Random, world: World) -> Principal:
    if rng.randrange(LINK_SHARE) == 0:
        board = rng.choice(world.linked())
        return Principal(f"link:{board.link_id}", "viewer", frozenset({board.facility}), link_board=board.key)
    facilities = rng.choice(((world.a,), (world.b,), (world.a, world.b)))
    return Principal(rng.choice(SUBJECTS), rng.choice(tuple(ROLES)), frozenset(facilities))


@pytest.fixture(scope="module")
def runner(
    world: World, dashboards: Any, widgets: Any, queries: Any, shares: Any, exports: Any, channel: Any, auth: Any
) -> Runner:
    # (query_of: twins are made without a widget, so they bind no query)
    stubs = {
        "search": search_pb2_grpc.SearchServiceStub(channel),
        "dashboards": dashboards,
        "widgets": widgets,
        "queries": queries,
        "shares": shares,
        "exports": exports,
        "query_of": {},
    }
    return Runner(world, stubs, auth)


def test_the_operations_are_every_rpc_of_the_implemented_services() -> None:
    rpcs = {
        m.name
        for module in IMPLEMENTED_SERVICES
        for svc in module.DESCRIPTOR.services_by_name.values()
        for m in svc.methods
    }
    assert len(ALL_OPS) == len(set(ALL_OPS))
    assert set(ALL_OPS) == rpcs, f"not exercised: {rpcs - set(ALL_OPS)}; unknown: {set(ALL_OPS) - rpcs}"


@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.slow
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_no_access_outside_the_policy(runner: Runner, seed: int) -> None:
    world = runner.world
    rng = random.Random(seed)
    p = draw_principal(rng, world)
    world.stats["examples"] += 1
    for _ in range(rng.randint(1, OPS_PER_EXAMPLE)):
        op, variant = rng.choice(ALL_OPS), rng.randrange(6)
        if op in BOARD_OPS:
            runner.board(op, p, rng.choice(world.boards), variant)
        elif op in QUERY_OPS:
            runner.query(op, p, rng.choice(world.queries), variant)
        else:
            runner.listing(op, p, variant)


def test_summary(runner: Runner) -> None:
    """Runs after the property (file order): prints the size of the matrix and of the corpus."""
    world = runner.world
    assert world.stats["examples"] > 0, "run the property test first (same module)"
    principals_seen = {p for p, _, _ in world.pairs}
    ops_seen = {op for _, op, _ in world.pairs}
    user_space = len(SUBJECTS) * len(ROLES) * 3
    print(
        f"\n[tenant isolation] world: 2 facilities, {len(world.boards)} dashboards "
        f"({sum(len(b.grants) for b in world.boards)} shares, {len(world.boards)} widgets, "
        f"{len(world.linked())} public links), {len(world.queries)} saved queries (1 a view); principal space "
        f"{len(SUBJECTS)} subjects x {len(ROLES)} roles x 3 facility sets = {user_space}, "
        f"+ {len(world.linked())} links = {user_space + len(world.linked())}; {len(ALL_OPS)} rpcs"
        f"\n[tenant isolation] examples {world.stats['examples']}, calls {world.stats['calls']}, "
        f"distinct principals {len(principals_seen)} ({sum(1 for p in principals_seen if p.is_link)} links), "
        f"rpcs exercised {len(ops_seen)}, "
        f"distinct (principal, rpc) pairs {len({(p, op) for p, op, _ in world.pairs})}, "
        f"distinct (principal, rpc, resource) triples {len(world.pairs)}, "
        f"refusals of destructive rpcs verified harmless {world.stats['refusals verified']}"
    )
    by_code = Counter[str]()
    for (_, code), n in world.outcomes.items():
        by_code[code] += n
    print(f"[tenant isolation] outcomes by code: {dict(sorted(by_code.items()))}")
    per_op = {op: sum(n for (o, _), n in world.outcomes.items() if o == op) for op in ALL_OPS}
    # No export is rendered here: its requester's download is let through to EXPORT_NOT_READY.
    granted = {op: world.outcomes[(op, OK if op != "DownloadExport" else "FAILED_PRECONDITION")] for op in ALL_OPS}
    print(
        f"[tenant isolation] calls per rpc: min {min(per_op.values())}, max {max(per_op.values())}; "
        f"allowed per rpc: min {min(granted.values())} ({min(granted, key=granted.__getitem__)})"
    )
    queued = sum(1 for _, x in world.exports() if not x.cancelled)
    print(
        f"[tenant isolation] exports: {queued + sum(1 for _, x in world.exports() if x.cancelled)} at the end "
        f"({queued} queued), {len({x.requester for _, x in world.exports()})} requesters; per rpc: "
        + "; ".join(
            f"{op} {dict(sorted((code, n) for (o, code), n in world.outcomes.items() if o == op))}"
            for op in ALL_OPS
            if "Export" in op
        )
    )
    assert ops_seen == set(ALL_OPS), f"rpcs never exercised: {set(ALL_OPS) - ops_seen}"
    for op in ALL_OPS:  # each rpc was both allowed and refused (but lists, which refuse nobody)
        codes = {c for (o, c), n in world.outcomes.items() if o == op and n}
        assert granted[op], f"{op} was never allowed: {codes}"
        assert codes - {OK} or op == "ListDashboards", f"{op} was never refused: {codes}"
    assert world.outcomes[("DownloadExport", "NOT_FOUND")], "nobody was refused a download"
    assert world.stats["exports of another version by a published-only reader"], "never tried"
    # Every export row is one the oracle knows (so its task is taken off the broker at the end).
    assert set(world.stored_exports()) == {x.id for _, x in world.exports()}


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
