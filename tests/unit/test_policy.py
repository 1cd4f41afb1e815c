"""The access policy, table-driven: explicit rows for the cases people reason about, then the
whole matrix (role x ownership x facility set x shares x visibility x publication, and public
links) against an oracle restated from the rules, with the NOT_FOUND / PERMISSION_DENIED answer
for every level an rpc may need, plus invariants. tests/security/test_policy_sql_twin.py checks
the SQL twin and the loader against the same matrix in PostgreSQL."""

from __future__ import annotations

import itertools

import pytest

from server.access.policy import (
    Access,
    DashboardFacts,
    Grant,
    JobFacts,
    JobResource,
    ShareLevel,
    dashboard_access,
    job_visible,
    require_dashboard,
    require_export_file,
    require_job,
)
from server.auth.principal import Principal, Role
from server.errors import NotFound, PermissionDenied

FAC, OTHER = "fac-a", "fac-b"
DASH = "00000000-0000-0000-0000-000000000001"


def principal(role: Role, subject: str = "me", facility: str = FAC) -> Principal:
    return Principal(subject=subject, role=role, facilities=frozenset({facility}))


def facts(
    owner: str = "someone",
    visibility: int = 1,
    published: int | None = None,
    grants: tuple[Grant, ...] = (),
    facility: str = FAC,
) -> DashboardFacts:
    return DashboardFacts(
        id=DASH, facility_id=facility, owner_id=owner, visibility=visibility, published_version=published, grants=grants
    )


V, E, A = Role.VIEWER, Role.EDITOR, Role.ADMIN
U = lambda level: (Grant("user", "me", level),)  # noqa: E731
R = lambda role, level: (Grant("role", role, level),)  # noqa: E731

ROWS = [
    # who, dashboard, expected
    ("owner editor", principal(E), facts(owner="me"), Access.MANAGE),
    ("owner viewer is capped", principal(V), facts(owner="me"), Access.VIEW),
    ("stranger editor, private", principal(E), facts(), Access.NONE),
    ("admin of the facility", principal(A), facts(), Access.MANAGE),
    ("admin of another facility", principal(A, facility=OTHER), facts(), Access.NONE),
    ("owner moved to another facility", principal(E, facility=OTHER), facts(owner="me"), Access.NONE),
    ("user share VIEW", principal(E), facts(grants=U(ShareLevel.VIEW)), Access.VIEW),
    ("user share EDIT", principal(E), facts(grants=U(ShareLevel.EDIT)), Access.EDIT),
    ("user share MANAGE", principal(E), facts(grants=U(ShareLevel.MANAGE)), Access.MANAGE),
    ("user share EDIT to a viewer", principal(V), facts(grants=U(ShareLevel.EDIT)), Access.VIEW),
    ("share to someone else", principal(E), facts(grants=(Grant("user", "bob", ShareLevel.MANAGE),)), Access.NONE),
    ("role share to viewers reaches editors", principal(E), facts(grants=R("viewer", ShareLevel.VIEW)), Access.VIEW),
    ("role share to editors skips viewers", principal(V), facts(grants=R("editor", ShareLevel.VIEW)), Access.NONE),
    ("public, unpublished", principal(V), facts(visibility=2), Access.NONE),
    ("public, published", principal(V), facts(visibility=2, published=1), Access.READ_PUBLISHED),
    ("public, published, other facility", principal(V, facility=OTHER), facts(visibility=2, published=1), Access.NONE),
    ("private, published", principal(V), facts(published=1), Access.NONE),
    ("public + share VIEW", principal(V), facts(visibility=2, published=1, grants=U(ShareLevel.VIEW)), Access.VIEW),
]


@pytest.mark.parametrize(("who", "p", "f", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_rows(who: str, p: Principal, f: DashboardFacts, expected: Access) -> None:
    assert dashboard_access(p, f) is expected


def _link(dashboard_id: str) -> Principal:
    return Principal(subject="link:1", role=V, facilities=frozenset(), link_id="1", link_dashboard_id=dashboard_id)


def test_public_link_reads_only_its_dashboards_published_version() -> None:
    assert dashboard_access(_link(DASH), facts(published=3)) is Access.READ_PUBLISHED
    assert dashboard_access(_link(DASH), facts()) is Access.NONE
    assert dashboard_access(_link("another"), facts(published=3)) is Access.NONE


# --- the whole matrix, against an oracle written from the rules (not from policy.py) ----------

OWNERS = ["me", "someone"]
FACILITY_SETS = [frozenset({FAC}), frozenset({OTHER}), frozenset({FAC, OTHER})]
_LEVELS = [ShareLevel.VIEW, ShareLevel.EDIT, ShareLevel.MANAGE]
GRANT_SETS: list[tuple[Grant, ...]] = [
    (),
    *(U(level) for level in _LEVELS),
    (Grant("user", "bob", ShareLevel.MANAGE),),  # someone else's share
    *(R(role, level) for role in ("viewer", "editor", "admin") for level in _LEVELS),
    U(ShareLevel.VIEW) + R("editor", ShareLevel.EDIT),
    U(ShareLevel.MANAGE) + R("viewer", ShareLevel.VIEW),
    R("admin", ShareLevel.VIEW) + R("viewer", ShareLevel.EDIT),
    (Grant("user", "bob", ShareLevel.EDIT), *R("editor", ShareLevel.VIEW)),
]
VISIBILITIES = [1, 2]
PUBLISHED = [None, 1]
MATRIX = list(itertools.product(list(Role), OWNERS, FACILITY_SETS, GRANT_SETS, VISIBILITIES, PUBLISHED))
LINK_MATRIX = list(itertools.product([DASH, "another"], VISIBILITIES, PUBLISHED, [(), U(ShareLevel.MANAGE)]))

RANK = {"viewer": 1, "editor": 2, "admin": 3}
SHARE_GIVES = {ShareLevel.VIEW: Access.VIEW, ShareLevel.EDIT: Access.EDIT, ShareLevel.MANAGE: Access.MANAGE}


def oracle(role: Role, subject: str, facilities: frozenset[str], f: DashboardFacts) -> Access:
    """ARCHITECTURE.md and DESIGN.md section 8, restated: tenancy first, admins manage their
    facilities, owners manage, shares grant their level (a role share reaches that role and
    above), a published public dashboard is readable by its facility, viewers never write."""
    if f.facility_id not in facilities:
        return Access.NONE
    if role is Role.ADMIN:
        return Access.MANAGE
    levels = [Access.NONE]
    if f.owner_id == subject:
        levels.append(Access.MANAGE)
    for g in f.grants:
        if (g.grantee_type == "user" and g.grantee == subject) or (
            g.grantee_type == "role" and RANK[role.name.lower()] >= RANK[g.grantee]
        ):
            levels.append(SHARE_GIVES[g.level])
    if f.visibility == 2 and f.published_version is not None:
        levels.append(Access.READ_PUBLISHED)
    best = max(levels)
    return min(best, Access.VIEW) if role is Role.VIEWER else best


@pytest.mark.parametrize("case", MATRIX)
def test_the_matrix(case: tuple[Role, str, frozenset[str], tuple[Grant, ...], int, int | None]) -> None:
    role, owner, facilities, grants, visibility, published = case
    p = Principal(subject="me", role=role, facilities=facilities)
    f = facts(owner=owner, visibility=visibility, published=published, grants=grants)
    expected = oracle(role, "me", facilities, f)
    assert dashboard_access(p, f) is expected
    for needed in (Access.READ_PUBLISHED, Access.VIEW, Access.EDIT, Access.MANAGE):
        # NOT_FOUND when nothing is visible (existence stays hidden), PERMISSION_DENIED when too little.
        if expected is Access.NONE:
            with pytest.raises(NotFound):
                require_dashboard(p, f, needed)
        elif expected < needed:
            with pytest.raises(PermissionDenied):
                require_dashboard(p, f, needed)
        else:
            assert require_dashboard(p, f, needed) is expected


@pytest.mark.parametrize("case", LINK_MATRIX)
def test_the_link_matrix(case: tuple[str, int, int | None, tuple[Grant, ...]]) -> None:
    """A public link reads its own dashboard's published version, whatever its visibility or
    shares (even a MANAGE share to a subject spelled like the link's)."""
    linked, visibility, published, grants = case
    p = Principal(subject="me", role=Role.VIEWER, facilities=frozenset({FAC}), link_id="1", link_dashboard_id=linked)
    f = facts(owner="me", visibility=visibility, published=published, grants=grants)
    expected = Access.READ_PUBLISHED if linked == DASH and published is not None else Access.NONE
    assert dashboard_access(p, f) is expected
    assert not p.can_read_phi


@pytest.mark.parametrize("case", MATRIX)
def test_invariants_over_the_matrix(case: tuple[Role, str, frozenset[str], tuple[Grant, ...], int, int | None]) -> None:
    role, owner, facilities, grants, visibility, published = case
    p = Principal(subject="me", role=role, facilities=facilities)
    access = dashboard_access(p, facts(owner=owner, visibility=visibility, published=published, grants=grants))
    if FAC not in facilities:
        assert access is Access.NONE  # tenancy is absolute
        return
    if role is Role.ADMIN:
        assert access is Access.MANAGE
    if role is Role.VIEWER:
        assert access <= Access.VIEW  # viewers never write
    if owner == "me" and role is not Role.VIEWER:
        assert access is Access.MANAGE
    if owner != "me" and not grants and role is not Role.ADMIN:
        expected = Access.READ_PUBLISHED if visibility == 2 and published else Access.NONE
        assert access is expected


def job_oracle(resource: JobResource, subject: str, requester: str, job_facility: str, p: Principal, a: Access) -> bool:
    """ARCHITECTURE.md's invariants, restated: an export is its requester's alone, and theirs only
    while they can still read the dashboard; a materialization job is seen by whoever reads the
    dashboard, except that a reader of the published version only sees the jobs they requested."""
    if a is Access.NONE:
        return False
    if resource is JobResource.EXPORT:
        return requester == subject and job_facility in p.facilities
    return a is not Access.READ_PUBLISHED or requester == subject


@pytest.mark.parametrize("case", MATRIX)
def test_job_visibility_over_the_matrix(
    case: tuple[Role, str, frozenset[str], tuple[Grant, ...], int, int | None],
) -> None:
    role, owner, facilities, grants, visibility, published = case
    p = Principal(subject="me", role=role, facilities=facilities)
    board = facts(owner=owner, visibility=visibility, published=published, grants=grants)
    access = dashboard_access(p, board)
    for resource, requester in itertools.product(list(JobResource), ("me", "someone")):
        job = JobFacts(resource, "job-1", DASH, board.facility_id, requester)
        expected = job_oracle(resource, "me", requester, board.facility_id, p, access)
        assert job_visible(p, job, access) is expected, (resource, requester, access)
        if expected:
            require_job(p, job, access)
        else:
            with pytest.raises(NotFound):  # never PERMISSION_DENIED: a job out of sight does not exist
                require_job(p, job, access)


def test_an_unmasked_export_file_needs_phi_read_at_download() -> None:
    reader = Principal(subject="me", role=Role.EDITOR, facilities=frozenset({FAC}), permissions=frozenset({"phi:read"}))
    require_export_file(reader, phi_unmasked=True)
    require_export_file(principal(E), phi_unmasked=False)
    with pytest.raises(PermissionDenied) as denied:
        require_export_file(principal(E), phi_unmasked=True)
    assert denied.value.reason == "PHI_PERMISSION_REQUIRED"


def test_require_hides_what_cannot_be_seen_and_denies_what_can() -> None:
    with pytest.raises(NotFound):
        require_dashboard(principal(E), facts(), Access.VIEW)
    with pytest.raises(PermissionDenied):
        require_dashboard(principal(E), facts(grants=U(ShareLevel.VIEW)), Access.EDIT)
    assert require_dashboard(principal(E), facts(owner="me"), Access.MANAGE) is Access.MANAGE


def test_matrix_size() -> None:
    assert len(GRANT_SETS) == 18
    assert len(MATRIX) == 3 * 2 * 3 * 18 * 2 * 2 == 1296
    assert len(LINK_MATRIX) == 16
    print(
        f"\n[policy] {len(ROWS)} explicit rows, {len(MATRIX)} principal x dashboard cases (x 4 needed levels), "
        f"{len(LINK_MATRIX)} public-link cases"
    )
