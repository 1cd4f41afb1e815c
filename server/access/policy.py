"""Every access decision about dashboards (and what hangs off them: widgets, data, versions,
exports and materialization jobs, shares) is made here, from identity, role, ownership, shares, visibility and facility.
Servicers and domains ask; they never decide with ad-hoc ifs.

Denials follow one rule: a caller who may not even see a resource gets NOT_FOUND, so its
existence is never revealed; a caller who may see it but not do this gets PERMISSION_DENIED.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Text, Uuid, and_, any_, bindparam, or_, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY

from server.auth.principal import Principal, Role
from server.db.schema import dashboard_shares, dashboards, export_jobs, widget_queries
from server.errors import InvalidArgument, NotFound, PermissionDenied


class Access(IntEnum):
    """What a principal may do with one dashboard; each level includes the ones below."""

    NONE = 0
    # Read the published version only (public visibility, public links).
    READ_PUBLISHED = 1
    # Read the current state, versions, data; export.
    VIEW = 2
    # Change the dashboard and its widgets; restore versions.
    EDIT = 3
    # Publish, delete, share, create public links.
    MANAGE = 4


class ShareLevel(IntEnum):
    """Values match dashboard.v1.ShareLevel."""

    VIEW = 1
    EDIT = 2
    MANAGE = 3


SHARE_TO_ACCESS = {ShareLevel.VIEW: Access.VIEW, ShareLevel.EDIT: Access.EDIT, ShareLevel.MANAGE: Access.MANAGE}
VISIBILITY_PUBLIC = 2


@dataclass(frozen=True)
class Grant:
    """A share row as the policy sees it."""

    grantee_type: str  # "user" | "role"
    grantee: str
    level: ShareLevel


@dataclass(frozen=True)
class DashboardFacts:
    id: str
    facility_id: str
    owner_id: str
    visibility: int
    published_version: int | None
    grants: tuple[Grant, ...] = ()


def _grant_applies(principal: Principal, grant: Grant) -> bool:
    if grant.grantee_type == "user":
        return grant.grantee == principal.subject
    role = Role.parse(grant.grantee)
    # A share with a role reaches every holder of that role or a higher one.
    return role is not None and principal.role >= role


def dashboard_access(principal: Principal, facts: DashboardFacts) -> Access:
    published = facts.published_version is not None
    if principal.is_link:
        return Access.READ_PUBLISHED if principal.link_dashboard_id == facts.id and published else Access.NONE
    if facts.facility_id not in principal.facilities:
        return Access.NONE
    if principal.role is Role.ADMIN:
        return Access.MANAGE
    access = Access.NONE
    if facts.owner_id == principal.subject:
        access = Access.MANAGE
    for grant in facts.grants:
        if _grant_applies(principal, grant):
            access = max(access, SHARE_TO_ACCESS[grant.level])
    if facts.visibility == VISIBILITY_PUBLIC and published:
        access = max(access, Access.READ_PUBLISHED)
    # The role caps what shares and ownership give: a viewer never writes.
    if principal.role is Role.VIEWER:
        access = min(access, Access.VIEW)
    return access


def require_dashboard(principal: Principal, facts: DashboardFacts, needed: Access) -> Access:
    """Returns the principal's access, or raises NOT_FOUND / PERMISSION_DENIED."""
    access = dashboard_access(principal, facts)
    if access is Access.NONE:
        raise NotFound("dashboard", facts.id)
    if access < needed:
        raise PermissionDenied(
            f"this needs {needed.name} access to the dashboard; the caller has {access.name}",
            reason="INSUFFICIENT_ACCESS",
            permission=f"dashboard.{needed.name.lower()}",
        )
    return access


def require_role(principal: Principal, role: Role, action: str) -> None:
    if principal.is_link or principal.role < role:
        raise PermissionDenied(
            f"{action} needs the {role.name.lower()} role", reason="ROLE_REQUIRED", permission=role.name.lower()
        )


def require_facility(principal: Principal, facility_id: str) -> None:
    if facility_id not in principal.facilities:
        raise PermissionDenied(f"the caller does not belong to facility {facility_id!r}", reason="FACILITY_NOT_ALLOWED")


def facility_for_create(principal: Principal, requested: str) -> str:
    """The facility a new resource goes to: the one asked for, or the caller's only one."""
    if requested:
        require_facility(principal, requested)
        return requested
    if len(principal.facilities) == 1:
        return next(iter(principal.facilities))
    raise InvalidArgument.field(
        "facility_id", "the caller belongs to several facilities: name one", reason="FACILITY_REQUIRED"
    )


def visible_dashboards(principal: Principal, *, template: bool = False) -> ColumnElement[bool]:
    """The SQL twin of `dashboard_access(...) >= READ_PUBLISHED`, for lists. Kept beside it so
    the two cannot drift; the policy test checks them against each other.

    With `template`, the caller's identity is left as named bind parameters (`visibility_params`
    gives their values) and only its shape (`visibility_shape`: link or not, and the role) is
    built in, so a list statement can be compiled once per shape and run for any caller."""
    if principal.is_link:
        link = uuid_or_none(principal.link_dashboard_id)
        return and_(
            dashboards.c.id == _value("visible_link_dashboard", link, Uuid(), template=template),
            dashboards.c.published_version.is_not(None),
        )
    public = and_(dashboards.c.visibility == VISIBILITY_PUBLIC, dashboards.c.published_version.is_not(None))
    return _reachable(principal, public, template=template)


def _value(name: str, given: Any, type_: Any, *, template: bool) -> BindParameter[Any]:
    """A value of the caller's: a named parameter in a template, else written in."""
    return bindparam(name, type_=type_) if template else bindparam(name, given, type_=type_, unique=True)


def _reachable(principal: Principal, public: ColumnElement[bool], *, template: bool = False) -> ColumnElement[bool]:
    """In the caller's facilities and (admin, owned, shared with the caller or its role, or `public`)."""
    # One facility (the usual caller) is an equality, which lets an index on (facility_id, the
    # list's order) return rows in order and stop after a page; PostgreSQL 15 cannot do that
    # with = ANY(array), so several facilities are another shape.
    if len(principal.facilities) == 1:
        (only,) = principal.facilities
        facility: Any = _value("visible_facility", only, Text(), template=template)
    else:
        facility = any_(_value("visible_facilities", sorted(principal.facilities), ARRAY(Text), template=template))
    in_facility: ColumnElement[bool] = dashboards.c.facility_id == facility
    if principal.role is Role.ADMIN:
        return in_facility
    subject = _value("visible_subject", principal.subject, Text(), template=template)
    # Role shares store the role in lower case (as ShareService writes it and Role.parse reads it);
    # the roles reached belong to the shape and are written in.
    roles = [r.name.lower() for r in Role if r <= principal.role]
    roles_reached = any_(bindparam("visible_roles", roles, ARRAY(Text), unique=True))
    # The caller's shares in their facilities (a share carries its dashboard's facility): a
    # small set read by two index-only scans of ix_dashboard_shares_grantee_facility (migration
    # 0007) and hashed once per list, rather than every role share of every facility.
    shares_of = select(dashboard_shares.c.dashboard_id).where(dashboard_shares.c.facility_id == facility)
    shared = dashboards.c.id.in_(
        union_all(
            shares_of.where(dashboard_shares.c.grantee_type == "user", dashboard_shares.c.grantee == subject),
            shares_of.where(dashboard_shares.c.grantee_type == "role", dashboard_shares.c.grantee == roles_reached),
        )
    )
    return and_(in_facility, or_(dashboards.c.owner_id == subject, shared, public))


def visibility_shape(principal: Principal) -> tuple[bool, Role, bool]:
    """What `visible_dashboards(principal, template=True)` builds in: equal shapes, equal SQL."""
    return principal.is_link, principal.role, len(principal.facilities) == 1


def visibility_params(principal: Principal) -> dict[str, Any]:
    """The values of `visible_dashboards(principal, template=True)`'s bind parameters."""
    if principal.is_link:
        return {"visible_link_dashboard": uuid_or_none(principal.link_dashboard_id)}
    if len(principal.facilities) == 1:
        (only,) = principal.facilities
        return {"visible_facility": only, "visible_subject": principal.subject}
    return {"visible_facilities": sorted(principal.facilities), "visible_subject": principal.subject}


def uuid_or_none(value: str | None) -> uuid.UUID | None:
    """An id as the column's type; None for none or for anything that is not a UUID (a link's
    dashboard id then matches no row, a kept answer's key is not looked up)."""
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


# --- search and favorites ---------------------------------------------------------------------


def dashboard_searchable(principal: Principal, facts: DashboardFacts, version: int) -> bool:
    """Search matches a dashboard's (and its widgets') current text. A caller who may read only
    the published version finds it only while the current state is that version (every change
    writes a version), so search never reveals words of an unpublished draft."""
    access = dashboard_access(principal, facts)
    return access >= Access.VIEW or (access is Access.READ_PUBLISHED and facts.published_version == version)


def searchable_dashboards(principal: Principal) -> ColumnElement[bool]:
    """The SQL twin of `dashboard_searchable`. Public links do not search."""
    require_role(principal, Role.VIEWER, "searching")
    return _reachable(
        principal,
        and_(dashboards.c.visibility == VISIBILITY_PUBLIC, dashboards.c.published_version == dashboards.c.version),
    )


def queries_searchable(principal: Principal) -> bool:
    """Saved queries are for editors (`require_query`): a viewer's search has none."""
    return not principal.is_link and principal.role >= Role.EDITOR


def require_favorite(principal: Principal, facts: DashboardFacts) -> None:
    """A favorite is a dashboard the caller may read (NOT_FOUND otherwise); links keep none (a link
    sees its dashboard, so it is told PERMISSION_DENIED there)."""
    require_dashboard(principal, facts, Access.READ_PUBLISHED)
    require_role(principal, Role.VIEWER, "keeping favorites")


# --- jobs: exports and materialization jobs ---------------------------------------------------


class JobResource(StrEnum):
    """The jobs that hang off a dashboard; the value names the resource in NOT_FOUND."""

    EXPORT = "export"
    MATERIALIZATION = "materialization_job"


@dataclass(frozen=True)
class JobFacts:
    resource: JobResource
    id: str
    dashboard_id: str
    facility_id: str
    requested_by: str


def job_may_be_visible(principal: Principal, job: JobFacts) -> bool:
    """What can be decided before the dashboard is loaded: an export is its requester's alone (in
    their facilities); a materialization job is decided by its dashboard."""
    if job.resource is JobResource.EXPORT:
        return job.requested_by == principal.subject and principal.in_facility(job.facility_id)
    return True


def job_visible(principal: Principal, job: JobFacts, dashboard: Access) -> bool:
    """Whether the caller may see (get, watch, list, cancel, download) a job, given its access to
    the job's dashboard: nobody sees a job of a dashboard they cannot read; an export only its
    requester; a materialization job anyone who reads the dashboard's current state, and a reader
    limited to the published version only the jobs they requested."""
    if dashboard < Access.READ_PUBLISHED or not job_may_be_visible(principal, job):
        return False
    if job.resource is JobResource.EXPORT:
        return True
    return dashboard > Access.READ_PUBLISHED or job.requested_by == principal.subject


def require_job(principal: Principal, job: JobFacts, dashboard: Access) -> None:
    if not job_visible(principal, job, dashboard):
        raise NotFound(job.resource.value, job.id)


def visible_exports(principal: Principal) -> ColumnElement[bool]:
    """The SQL twin of `job_visible` (and of `query_export_visible`) for exports, for lists."""
    readable = select(dashboards.c.id).where(visible_dashboards(principal))
    source: ColumnElement[bool] = export_jobs.c.dashboard_id.in_(readable)
    if not principal.is_link and principal.role >= Role.EDITOR:
        runnable = select(widget_queries.c.id).where(widget_queries.c.facility_id.in_(sorted(principal.facilities)))
        source = or_(source, export_jobs.c.query_id.in_(runnable))
    return and_(
        export_jobs.c.requested_by == principal.subject,
        export_jobs.c.facility_id.in_(sorted(principal.facilities)),
        source,
    )


def query_export_visible(principal: Principal, job: JobFacts, query: QueryFacts | None) -> bool:
    """Whether the caller may see an export of a saved query's run: its requester alone, and only
    while they may still run the query (RunQuery's rule; `query` None when it is gone)."""
    if query is None or not job_may_be_visible(principal, job):
        return False
    try:
        require_query(principal, query, write=False)
    except (NotFound, PermissionDenied):
        return False
    return True


def require_export_file(principal: Principal, phi_unmasked: bool) -> None:
    """A file rendered with PHI unmasked is refused to a requester who lost `phi:read` since."""
    if phi_unmasked and not principal.can_read_phi:
        raise PermissionDenied(
            "the file holds unmasked PHI and the caller may no longer read PHI",
            reason="PHI_PERMISSION_REQUIRED",
            permission="phi:read",
        )


# --- shares, public links, audit -----------------------------------------------------------

# Who may see a dashboard's shares: anyone with VIEW. Hiding the list from editors (MANAGE only)
# would keep people who work on a dashboard from knowing who else can read it; the list holds
# subjects and role names only, nothing the dashboard itself does not already reveal to them.
LIST_SHARES = Access.VIEW
# Granting, changing and removing shares, and creating, listing and revoking public links:
# owners, MANAGE holders and admins (the role cap keeps viewers out, whatever their shares).
MANAGE_SHARES = Access.MANAGE
MANAGE_PUBLIC_LINKS = Access.MANAGE


def require_audit_reader(principal: Principal) -> frozenset[str]:
    """The facilities whose audit events the caller may read: admins only, their own facilities."""
    require_role(principal, Role.ADMIN, "reading the audit log")
    return principal.facilities


@dataclass(frozen=True)
class QueryFacts:
    id: str
    facility_id: str
    owner_id: str


def require_query(principal: Principal, facts: QueryFacts, *, write: bool) -> None:
    """Saved queries are for editors: viewers see data only through dashboards they may read,
    never by running SQL (a hole other products leave open). Changing a query takes its owner
    or an admin of its facility."""
    if principal.is_link or facts.facility_id not in principal.facilities:
        raise NotFound("query", facts.id)
    require_role(principal, Role.EDITOR, "working with saved queries")
    if write and principal.role is not Role.ADMIN and facts.owner_id != principal.subject:
        raise PermissionDenied(
            "only the query's owner or an admin may change it", reason="NOT_QUERY_OWNER", permission="query.write"
        )


def visible_queries(principal: Principal) -> ColumnElement[bool]:
    """The SQL twin of require_query(write=False) for lists."""
    require_role(principal, Role.EDITOR, "working with saved queries")
    return widget_queries.c.facility_id.in_(sorted(principal.facilities))


# --- portable documents: export, import, clone ------------------------------------------------

# A document holds the queries' SQL, and saved queries are for editors: exporting needs VIEW
# access to the dashboard and the editor role.
EXPORT_DOCUMENT = Access.VIEW
CLONE_SOURCE = Access.VIEW


def require_document_export(principal: Principal) -> None:
    require_role(principal, Role.EDITOR, "exporting a dashboard document (it holds the queries' SQL)")


def import_facility(principal: Principal, requested: str) -> str:
    """The facility a document may be imported into: editors and admins, their own facilities only
    (as creating a dashboard and its queries there)."""
    require_role(principal, Role.EDITOR, "importing a dashboard")
    return facility_for_create(principal, requested)


def clone_facility(principal: Principal, source_facility: str, requested: str) -> str:
    """Where a clone may go: the source's facility for editors; another facility only for an admin
    who belongs to it (administers it). Read access to the source is checked with CLONE_SOURCE."""
    require_role(principal, Role.EDITOR, "cloning a dashboard")
    target = requested or source_facility
    if target != source_facility:
        require_role(principal, Role.ADMIN, "cloning a dashboard into another facility")
        require_facility(principal, target)
    return target


def grants_from_rows(rows: Iterable[tuple[str, str, int]]) -> tuple[Grant, ...]:
    return tuple(Grant(t, g, ShareLevel(level)) for t, g, level in rows)


__all__ = [
    "CLONE_SOURCE",
    "EXPORT_DOCUMENT",
    "LIST_SHARES",
    "MANAGE_PUBLIC_LINKS",
    "MANAGE_SHARES",
    "Access",
    "DashboardFacts",
    "Grant",
    "JobFacts",
    "JobResource",
    "QueryFacts",
    "ShareLevel",
    "clone_facility",
    "dashboard_access",
    "dashboard_searchable",
    "facility_for_create",
    "grants_from_rows",
    "import_facility",
    "job_may_be_visible",
    "job_visible",
    "queries_searchable",
    "query_export_visible",
    "require_audit_reader",
    "require_dashboard",
    "require_document_export",
    "require_export_file",
    "require_facility",
    "require_favorite",
    "require_job",
    "require_query",
    "require_role",
    "searchable_dashboards",
    "uuid_or_none",
    "visible_dashboards",
    "visible_exports",
    "visible_queries",
]
