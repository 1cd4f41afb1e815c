"""The access policy, table-driven: explicit rows for the cases people reason about, plus
invariants checked over the whole matrix of role x ownership x facility x share x visibility x
publication x public link."""

from __future__ import annotations

import itertools

import pytest

from server.access.policy import Access, DashboardFacts, Grant, ShareLevel, dashboard_access, require_dashboard
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


MATRIX = list(
    itertools.product(
        list(Role),
        ["me", "someone"],  # owner
        [FAC, OTHER],  # the principal's facility
        [
            (),
            U(ShareLevel.VIEW),
            U(ShareLevel.EDIT),
            U(ShareLevel.MANAGE),
            R("viewer", ShareLevel.EDIT),
            R("admin", ShareLevel.MANAGE),
        ],
        [1, 2],  # visibility
        [None, 1],  # published
    )
)


@pytest.mark.parametrize("case", MATRIX)
def test_invariants_over_the_matrix(case: tuple[Role, str, str, tuple[Grant, ...], int, int | None]) -> None:
    role, owner, facility, grants, visibility, published = case
    p = principal(role, facility=facility)
    access = dashboard_access(p, facts(owner=owner, visibility=visibility, published=published, grants=grants))
    if facility != FAC:
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


def test_require_hides_what_cannot_be_seen_and_denies_what_can() -> None:
    with pytest.raises(NotFound):
        require_dashboard(principal(E), facts(), Access.VIEW)
    with pytest.raises(PermissionDenied):
        require_dashboard(principal(E), facts(grants=U(ShareLevel.VIEW)), Access.EDIT)
    assert require_dashboard(principal(E), facts(owner="me"), Access.MANAGE) is Access.MANAGE


def test_matrix_size() -> None:
    assert len(MATRIX) == 3 * 2 * 2 * 6 * 2 * 2
