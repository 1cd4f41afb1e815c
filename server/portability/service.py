"""Dashboard portability: export a dashboard as a document, import a document into a facility,
clone a dashboard (an export imported at once, within or across facilities).

An import checks everything first — the document on its own, then what it refers to in the
target facility (mapped and reusable queries, drill-through targets and their mappings,
parameter values against the queries' declarations, the title against the titles the caller
sees there, the views of new MATERIALIZED_VIEW queries built or tried) — and reports every
problem in one InvalidArgument. Only then does it write, in one transaction: the new queries,
the dashboard, its widgets and version 1. A view is DDL on the data source, outside that
transaction: one built for a failed import is dropped again, so nothing is left behind."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import dashboard_pb2, query_pb2, widget_pb2
from server import idempotency
from server.access.policy import (
    CLONE_SOURCE,
    EXPORT_DOCUMENT,
    QueryFacts,
    clone_facility,
    import_facility,
    require_document_export,
    require_query,
    visible_dashboards,
)
from server.audit import facts as audit_facts
from server.auth.principal import Principal
from server.dashboards.access import load_dashboard
from server.dashboards.convert import dashboard_from_row
from server.dashboards.service import WRITABLE, contains_pattern, row_values
from server.dashboards.versions import current_widgets, record_version
from server.dashboards.widget_convert import DEFAULT_REFRESH_SECONDS, columns_of
from server.db.engine import Database
from server.db.schema import dashboards, query_versions, widget_queries, widgets
from server.errors import InvalidArgument, NotFound, PermissionDenied, ViolationCollector
from server.portability.document import DOC, UsedQuery, build_document, check_document, moved, used_queries
from server.protojson import from_json
from server.queries.convert import query_from_rows, version_values
from server.queries.parameters import bind
from server.queries.service import QueryDomain, insert_query
from server.widgets.service import drill_target_filters

D = dashboard_pb2
Q = query_pb2
Action = D.QueryImportAction
TITLE_MAX = 200  # Dashboard.title's limit
_NUMBERED = re.compile(r"\s*\(\d+\)$")  # the " (n)" a rename appends
_TITLE_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@dataclass(frozen=True)
class Mapped:
    """An existing query a document key is mapped to; `version` pins widgets that pin (0: latest)."""

    query_id: str
    version: int = 0
    path: str = ""  # where a problem with it is reported


@dataclass
class Resolution:
    query_id: str  # "" until created
    version: int
    action: Action
    parameters: Sequence[Q.ParameterSpec] = field(default_factory=list)
    # The id a created query will have (its view is named after it before the row exists).
    new_id: uuid.UUID = field(default_factory=uuid.uuid4)
    view_name: str = ""  # a created MATERIALIZED_VIEW query's view, once built


@dataclass(frozen=True)
class BatchLink:
    """Another dashboard of a batch copied into the same facility: a drill-through to its source
    opens its copy (`copy_id`), whose filters are the source's."""

    copy_id: uuid.UUID
    filters: frozenset[str]
    path: str  # the batch item that copies it ("requests[2]")


@dataclass(frozen=True)
class Plan:
    facility: str
    document: D.DashboardDocument
    title: str
    mode: int
    mapped: Mapping[str, Mapped]
    validate_only: bool
    title_conflict: int = D.TITLE_CONFLICT_POLICY_REFUSE
    title_path: str = f"{DOC}.dashboard.title"  # where a taken title of the document is reported
    dashboard_mappings: Mapping[str, str] = field(default_factory=dict)
    # Set by a batch clone: the id the copy gets, the batch's other copies into this facility by
    # source id, and the titles the batch's earlier copies took there (normalized -> item path),
    # which count as taken.
    new_id: uuid.UUID | None = None
    source: tuple[str, str] = ("", "")  # a clone's source: (dashboard id, facility)
    batch_links: Mapping[str, BatchLink] = field(default_factory=dict)
    claimed_titles: dict[str, str] | None = None
    batch_item: str = ""  # "requests[i]"


@dataclass
class Outcome:
    """What the checks decided: each query key's query, and the dashboard's title."""

    queries: dict[str, Resolution]
    title: str


def _definition(values: Mapping[str, Any], kind: int) -> tuple[Any, ...]:
    """What makes two query versions the same query: kind, SQL, parameters, options, PHI columns."""
    return (kind, values["sql"], values["parameters"], values["options"], values["sensitive_columns"])


class PortabilityDomain:
    def __init__(
        self, db: Database, queries: QueryDomain, default_refresh_seconds: int = DEFAULT_REFRESH_SECONDS
    ) -> None:
        self._db = db
        self._queries = queries
        self._default_refresh = default_refresh_seconds

    # --- export -----------------------------------------------------------------------------

    async def export(self, principal: Principal, dashboard_id: str) -> D.DashboardDocument:
        async with self._db.read() as conn:
            # The dashboard first: one the caller cannot see is NOT_FOUND, whatever their role.
            row, _ = await load_dashboard(conn, principal, dashboard_id, EXPORT_DOCUMENT)
            require_document_export(principal)
            document, _ = await self._document(conn, row)
            return document

    async def _document(self, conn: AsyncConnection, row: Any) -> tuple[D.DashboardDocument, list[UsedQuery]]:
        """The document of a loaded dashboard row, and the query versions behind q1, q2, ..."""
        found = await current_widgets(conn, row.id)
        ids = sorted({uuid.UUID(w.query.query_id) for w in found if w.query.query_id})
        heads = {str(h.id): h for h in await conn.execute(select(widget_queries).where(widget_queries.c.id.in_(ids)))}
        latest = {query_id: head.version for query_id, head in heads.items()}
        used = used_queries(found, latest)
        versions: dict[UsedQuery, Q.Query] = {}
        if used:
            rows = await conn.execute(
                select(query_versions).where(
                    tuple_(query_versions.c.query_id, query_versions.c.version).in_(
                        [(uuid.UUID(u.query_id), u.version) for u in used]
                    )
                )
            )
            for version in rows:
                key = UsedQuery(str(version.query_id), version.version)
                versions[key] = query_from_rows(heads[key.query_id], version)
        return build_document(dashboard_from_row(row, found), versions, latest), used

    # --- import and clone ---------------------------------------------------------------------

    async def import_document(
        self, principal: Principal, request: D.ImportDashboardRequest, digest: bytes
    ) -> D.ImportDashboardResponse:
        facility = import_facility(principal, request.facility_id)
        audit_facts.note_facility(facility)
        mapped = {
            key: Mapped(query_id, path=f'query_mappings["{key}"]')
            for key, query_id in sorted(request.query_mappings.items())
        }
        plan = Plan(
            facility,
            request.document,
            request.title,
            request.query_mode,
            mapped,
            request.validate_only,
            title_conflict=request.title_conflict,
            dashboard_mappings=dict(request.dashboard_mappings),
        )
        return await self._import(principal, plan, "ImportDashboard", request.request_id, digest)

    async def clone(
        self, principal: Principal, request: D.CloneDashboardRequest, digest: bytes
    ) -> D.ImportDashboardResponse:
        async with self._db.read() as conn:
            plan = await self.clone_plan(conn, principal, request)
        return await self._import(principal, plan, "CloneDashboard", request.request_id, digest)

    @property
    def db(self) -> Database:
        return self._db

    async def clone_plan(self, conn: AsyncConnection, principal: Principal, request: D.CloneDashboardRequest) -> Plan:
        """What a clone imports, once the caller may read the source and copy into the target
        (NOT_FOUND / PERMISSION_DENIED otherwise)."""
        row, _ = await load_dashboard(conn, principal, request.id, CLONE_SOURCE)
        target = clone_facility(principal, row.facility_id, request.facility_id)
        document, used = await self._document(conn, row)
        mapped: dict[str, Mapped] = {}
        if target == row.facility_id:
            # Within a facility the copy reads the very queries (and pinned versions) of the source.
            mapped = {
                entry.key: Mapped(u.query_id, u.version, path=f"{DOC}.queries[{i}]")
                for i, (entry, u) in enumerate(zip(document.queries, used, strict=True))
            }
        return Plan(
            target,
            document,
            request.title,
            request.query_mode,
            mapped,
            validate_only=False,
            title_conflict=request.title_conflict,
            title_path="title",  # the clone request's field that would avoid it
            dashboard_mappings=dict(request.dashboard_mappings),
            source=(str(row.id), row.facility_id),
        )

    def _document_problems(self, plan: Plan) -> ViolationCollector:
        """What is wrong with the plan's document and title on their own, before the target."""
        problems = ViolationCollector(check_document(plan.document, plan.mapped))
        if plan.title:
            # A title of the request's own replaces the document's (which may then be empty).
            problems.violations = [v for v in problems.violations if v.field != f"{DOC}.dashboard.title"]
            if not plan.title.strip():
                problems.add("title", "a title is required", "REQUIRED")
        for i, entry in enumerate(plan.document.queries):
            if entry.key not in plan.mapped:
                try:
                    self._queries.check_definition(entry.query)
                except InvalidArgument as refused:
                    problems.violations += moved(refused.violations, "query.", f"{DOC}.queries[{i}].query.")
        return problems

    async def _import(
        self, principal: Principal, plan: Plan, method: str, request_id: str, digest: bytes
    ) -> D.ImportDashboardResponse:
        problems = self._document_problems(plan)
        if plan.validate_only:
            async with self._db.read() as conn:
                outcome = await self._resolve(conn, principal, plan, problems, [])
            _raise(problems)
            return D.ImportDashboardResponse(validate_only=True, queries=_reported(outcome), title=outcome.title)

        built: list[str] = []  # views made on the data source, dropped again if the import fails

        async def create(conn: AsyncConnection, _: None, __: int) -> tuple[uuid.UUID, D.ImportDashboardResponse]:
            outcome = await self._resolve(conn, principal, plan, problems, built)
            _raise(problems)
            dashboard = await self._write(conn, principal, plan, outcome)
            answer = D.ImportDashboardResponse(dashboard=dashboard, queries=_reported(outcome), title=dashboard.title)
            return uuid.UUID(dashboard.id), answer

        async def existing(dashboard_id: uuid.UUID) -> D.ImportDashboardResponse:
            return await self._replay(principal, plan, dashboard_id)

        async def drop_views() -> None:
            await self.drop_views(built)

        key = idempotency.RequestKey(principal.subject, method, request_id, digest)
        [done] = await idempotency.create_once(
            self._db, [key], create, existing, prepare=idempotency.nothing_to_prepare, abandon=drop_views
        )
        return done

    # --- checks against the target facility -------------------------------------------------

    async def check_and_resolve(
        self, conn: AsyncConnection, principal: Principal, plan: Plan, built: list[str]
    ) -> tuple[Outcome, ViolationCollector]:
        """Every check `_import` makes of a plan (the document's, then against the target
        facility), with the problems returned rather than raised: a batch reports all its items'."""
        problems = self._document_problems(plan)
        return await self._resolve(conn, principal, plan, problems, built), problems

    async def write(
        self, conn: AsyncConnection, principal: Principal, plan: Plan, outcome: Outcome
    ) -> D.ImportDashboardResponse:
        dashboard = await self._write(conn, principal, plan, outcome)
        return D.ImportDashboardResponse(dashboard=dashboard, queries=_reported(outcome), title=dashboard.title)

    async def replay(self, principal: Principal, plan: Plan, dashboard_id: uuid.UUID) -> D.ImportDashboardResponse:
        return await self._replay(principal, plan, dashboard_id)

    async def drop_views(self, built: Sequence[str]) -> None:
        for view_name in built:
            await self._queries.drop_view(view_name)

    async def _resolve(
        self, conn: AsyncConnection, principal: Principal, plan: Plan, problems: ViolationCollector, built: list[str]
    ) -> Outcome:
        """Each query key's query in the target facility (found, or to be created), the title,
        and every problem of the widgets' references there. The views of new MATERIALIZED_VIEW
        queries are built (their names appended to `built`) when the import will write and
        nothing is wrong so far; otherwise only tried."""
        resolved: dict[str, Resolution] = {}
        for entry in plan.document.queries:
            if not entry.key or entry.key in resolved:
                continue  # reported by check_document
            if entry.key in plan.mapped:
                found = await self._mapped(conn, principal, plan.facility, plan.mapped[entry.key], problems)
                if found is not None:
                    resolved[entry.key] = found
                continue
            if plan.mode == D.QUERY_IMPORT_MODE_REUSE_IDENTICAL:
                same = await self._identical(conn, principal, plan.facility, entry.query)
                if same is not None:
                    resolved[entry.key] = same
                    continue
            resolved[entry.key] = Resolution("", 1, D.QUERY_IMPORT_ACTION_CREATED, list(entry.query.parameters))
        _check_parameters(plan.document, resolved, problems)
        await self._check_drill_targets(conn, principal, plan, problems)
        title = await self._title(conn, principal, plan, problems)
        await self._build_views(plan, resolved, problems, built)
        return Outcome(resolved, title)

    async def _build_views(
        self, plan: Plan, resolved: Mapping[str, Resolution], problems: ViolationCollector, built: list[str]
    ) -> None:
        """A new MATERIALIZED_VIEW query gets its own view, built in the target facility's scope
        (its rows, not the source's). A view that cannot be built there (no facility_id column,
        key columns not unique on that facility's rows, ...) is reported at its query's field."""
        keep = not plan.validate_only and not problems.violations
        for i, entry in enumerate(plan.document.queries):
            found = resolved.get(entry.key)
            at = f"{DOC}.queries[{i}]."
            if (
                found is None
                or found.action != D.QUERY_IMPORT_ACTION_CREATED
                or entry.query.kind != Q.QUERY_KIND_MATERIALIZED_VIEW
                or any(v.field.startswith(at) for v in problems.violations)  # its definition is refused
            ):
                continue
            try:
                view_name = await self._queries.build_view(found.new_id, entry.query, plan.facility, keep=keep)
            except InvalidArgument as refused:
                problems.violations += moved(refused.violations, "query.", f"{at}query.")
                keep = False  # the import will fail: the rest are only tried
                continue
            if keep:
                built.append(view_name)
                found.view_name = view_name

    async def _title(
        self, conn: AsyncConnection, principal: Principal, plan: Plan, problems: ViolationCollector
    ) -> str:
        """The new dashboard's title under the plan's conflict policy. Taken means: the title of a
        dashboard the caller sees in the target facility, ignoring case and surrounding spaces
        (what they would find twice in their list); ones they cannot see are neither counted nor
        revealed."""
        wanted = plan.title or plan.document.dashboard.title
        if not wanted.strip() or plan.title_conflict == D.TITLE_CONFLICT_POLICY_KEEP:
            return self._claim(plan, wanted)  # an empty one is reported by the document's checks
        if not plan.validate_only:
            # Two imports renaming at once must not pick the same free title.
            await lock_titles(conn, plan.facility)
        rename = plan.title_conflict == D.TITLE_CONFLICT_POLICY_RENAME
        base = _NUMBERED.sub("", wanted.strip()) if rename else wanted.strip()
        # Candidates by ILIKE '%...%', which the title's trigram index serves; compared exactly below.
        rows = await conn.execute(
            select(dashboards.c.id, dashboards.c.title)
            .where(
                visible_dashboards(principal),
                dashboards.c.facility_id == plan.facility,
                dashboards.c.title.ilike(contains_pattern(base[: TITLE_MAX - 12]), escape="\\"),
            )
            .order_by(dashboards.c.created_at, dashboards.c.id)
        )
        taken: dict[str, str] = {}  # normalized title -> the oldest dashboard with it
        for dashboard_id, title in rows:
            taken.setdefault(str(title).strip().lower(), str(dashboard_id))
        for title, path in (plan.claimed_titles or {}).items():
            taken.setdefault(title, f"the copy of {path}")
        if wanted.strip().lower() not in taken:
            return self._claim(plan, wanted)
        if rename:
            n = 2
            while True:
                suffix = f" ({n})"
                candidate = base[: TITLE_MAX - len(suffix)].rstrip() + suffix
                if candidate.lower() not in taken:
                    return self._claim(plan, candidate)
                n += 1
        problems.add(
            "title" if plan.title else plan.title_path,
            f"facility {plan.facility!r} already has a dashboard titled {wanted.strip()!r} "
            f"({taken[wanted.strip().lower()]}): give another title, or set title_conflict to RENAME or KEEP",
            "TITLE_CONFLICT",
        )
        return wanted

    @staticmethod
    def _claim(plan: Plan, title: str) -> str:
        """A batch's later copies into the same facility see this title as taken."""
        if plan.claimed_titles is not None and title.strip():
            plan.claimed_titles.setdefault(title.strip().lower(), plan.batch_item)
        return title

    async def _mapped(
        self, conn: AsyncConnection, principal: Principal, facility: str, mapped: Mapped, problems: ViolationCollector
    ) -> Resolution | None:
        head = (
            await conn.execute(select(widget_queries).where(widget_queries.c.id == uuid.UUID(mapped.query_id)))
        ).first()
        visible = head is not None and head.facility_id == facility
        if head is not None and visible:
            try:
                require_query(principal, QueryFacts(mapped.query_id, head.facility_id, head.owner_id), write=False)
            except (NotFound, PermissionDenied):
                visible = False
        version = mapped.version or (head.version if head is not None else 0)
        if head is None or not visible or version > head.version:
            # One answer for "missing", "another facility's" and "not yours to see".
            problems.add(mapped.path, f"no query {mapped.query_id} in facility {facility!r}", "QUERY_NOT_FOUND")
            return None
        row = (
            await conn.execute(
                select(query_versions).where(query_versions.c.query_id == head.id, query_versions.c.version == version)
            )
        ).one()
        return Resolution(
            str(head.id),
            version,
            D.QUERY_IMPORT_ACTION_MAPPED,
            [from_json(p, Q.ParameterSpec()) for p in row.parameters or []],
        )

    async def _identical(
        self, conn: AsyncConnection, principal: Principal, facility: str, query: Q.Query
    ) -> Resolution | None:
        """The oldest query of the facility whose latest version defines the same query."""
        kind = query.kind or Q.QUERY_KIND_SQL
        wanted = _definition(version_values(query), kind)
        candidates = await conn.execute(
            select(
                widget_queries,
                query_versions.c.parameters,
                query_versions.c.options,
                query_versions.c.sensitive_columns,
            )
            .join(
                query_versions,
                (query_versions.c.query_id == widget_queries.c.id)
                & (query_versions.c.version == widget_queries.c.version),
            )
            .where(
                widget_queries.c.facility_id == facility,
                widget_queries.c.kind == kind,
                query_versions.c.sql == query.sql,
            )
            .order_by(widget_queries.c.created_at, widget_queries.c.id)
        )
        for row in candidates:
            values = {
                "sql": query.sql,
                "parameters": row.parameters or [],
                "options": row.options or {},
                "sensitive_columns": row.sensitive_columns or [],
            }
            if _definition(values, row.kind) == wanted:
                require_query(principal, QueryFacts(str(row.id), row.facility_id, row.owner_id), write=False)
                return Resolution(
                    str(row.id),
                    row.version,
                    D.QUERY_IMPORT_ACTION_REUSED,
                    [from_json(p, Q.ParameterSpec()) for p in row.parameters or []],
                )
        return None

    async def _check_drill_targets(
        self, conn: AsyncConnection, principal: Principal, plan: Plan, problems: ViolationCollector
    ) -> None:
        """A drill-through to another dashboard must name (itself, or through dashboard_mappings)
        one the caller sees in the target facility: a link never points into another facility."""
        stand_in = SimpleNamespace(id=None, filters=[], facility_id=plan.facility)
        targets = {e.drill_through.target_dashboard_id for e in plan.document.widgets}
        targets |= {_canonical(t) for t in targets}
        for source in sorted(set(plan.dashboard_mappings) - targets):
            problems.add(
                f'dashboard_mappings["{source}"]',
                f"no drill-through of the document opens dashboard {source}",
                "UNKNOWN_DRILL_TARGET",
            )
        for i, entry in enumerate(plan.document.widgets):
            drill = entry.drill_through
            if drill.to_this_dashboard or not drill.target_dashboard_id:
                continue
            at = f"{DOC}.widgets[{i}].drill_through"
            mapped = plan.dashboard_mappings.get(drill.target_dashboard_id)
            try:
                target_id = uuid.UUID(mapped or drill.target_dashboard_id)
            except ValueError:
                continue  # reported by check_document (a mapping's value by validation)
            sibling = None if mapped else plan.batch_links.get(str(target_id))
            if sibling is not None:
                names: set[str] | None = set(sibling.filters)  # the copy's filters are its source's
            else:
                names = await drill_target_filters(conn, principal, stand_in, target_id)
            if names is None:
                if mapped:
                    problems.add(
                        f'dashboard_mappings["{drill.target_dashboard_id}"]',
                        f"no dashboard {mapped} in facility {plan.facility!r}",
                        "DASHBOARD_NOT_FOUND",
                    )
                else:
                    problems.add(
                        f"{at}.target_dashboard_id",
                        f"no dashboard {drill.target_dashboard_id} in facility {plan.facility!r}: map it to one "
                        "there (dashboard_mappings) or remove the drill-through",
                        "DASHBOARD_NOT_FOUND",
                    )
                continue
            for column, name in sorted(drill.column_to_filter.items()):
                if name not in names:
                    problems.add(
                        f'{at}.column_to_filter["{column}"]',
                        f"the target dashboard declares no filter {name!r}",
                        "UNKNOWN_FILTER",
                    )

    # --- writing ------------------------------------------------------------------------------

    async def _write(self, conn: AsyncConnection, principal: Principal, plan: Plan, outcome: Outcome) -> D.Dashboard:
        document = plan.document
        resolved = outcome.queries
        for query_entry in document.queries:
            found = resolved[query_entry.key]
            if found.action == D.QUERY_IMPORT_ACTION_CREATED:
                await insert_query(
                    conn, found.new_id, plan.facility, principal.subject, query_entry.query, found.view_name or None
                )
                found.query_id = str(found.new_id)
        board = D.Dashboard()
        board.CopyFrom(document.dashboard)
        board.title = outcome.title
        given = {"id": plan.new_id} if plan.new_id is not None else {}
        dashboard_id = (
            await conn.execute(
                insert(dashboards)
                .values(facility_id=plan.facility, owner_id=principal.subject, **given, **row_values(board, WRITABLE))
                .returning(dashboards.c.id)
            )
        ).scalar_one()
        for entry in document.widgets:
            widget = widget_pb2.Widget()
            widget.CopyFrom(entry.widget)
            if entry.query_key:
                found = resolved[entry.query_key]
                widget.query.query_id = found.query_id
                if entry.pin_query_version:
                    widget.query.query_version = found.version
            if entry.HasField("drill_through"):
                drill = entry.drill_through
                widget.drill_through.column_to_filter.update(drill.column_to_filter)
                widget.drill_through.target_dashboard_id = (
                    str(dashboard_id) if drill.to_this_dashboard else _drill_target(plan, drill.target_dashboard_id)
                )
            await conn.execute(
                insert(widgets).values(
                    dashboard_id=dashboard_id,
                    facility_id=plan.facility,
                    **columns_of(widget, self._default_refresh),
                )
            )
        row = await record_version(
            conn, dashboard_id, reason=D.VERSION_REASON_CREATE, author=principal.subject, bump=False
        )
        return dashboard_from_row(row, await current_widgets(conn, dashboard_id))

    async def _replay(self, principal: Principal, plan: Plan, dashboard_id: uuid.UUID) -> D.ImportDashboardResponse:
        """A retried request's first result: the dashboard and, per query key, the query its
        widgets read (found again by their grid positions, which are unique)."""
        async with self._db.read() as conn:
            row, _ = await load_dashboard(conn, principal, str(dashboard_id), EXPORT_DOCUMENT)
            found = await current_widgets(conn, row.id)
        at = {(w.position.x, w.position.y): w.query.query_id for w in found}
        keys: dict[str, str] = {}
        for entry in plan.document.widgets:
            if entry.query_key:
                keys.setdefault(entry.query_key, at.get((entry.widget.position.x, entry.widget.position.y), ""))
        return D.ImportDashboardResponse(
            dashboard=dashboard_from_row(row, found),
            title=row.title,
            queries=[D.ImportedQuery(key=key, query_id=query_id) for key, query_id in keys.items()],
        )


def _check_parameters(
    document: D.DashboardDocument, resolved: Mapping[str, Resolution], problems: ViolationCollector
) -> None:
    """Each widget's fixed parameter values have the types its query declares, and its filter
    bindings name declared parameters."""
    for i, entry in enumerate(document.widgets):
        found = resolved.get(entry.query_key)
        if found is None:
            continue
        at = f"{DOC}.widgets[{i}].widget.query"
        # Values missing here come from filters or defaults when the widget runs.
        specs = []
        for spec in found.parameters:
            optional = Q.ParameterSpec()
            optional.CopyFrom(spec)
            optional.required = False
            specs.append(optional)
        try:
            bind(specs, entry.widget.query.parameter_values, f"{at}.parameter_values")
        except InvalidArgument as refused:
            problems.violations += refused.violations
        declared = {spec.name for spec in specs}
        for param in sorted(entry.widget.query.filter_bindings):
            if param not in declared:
                problems.add(
                    f'{at}.filter_bindings["{param}"]',
                    f"the query declares no parameter {param!r}",
                    "UNKNOWN_PARAMETER",
                )


async def lock_titles(conn: AsyncConnection, facility: str) -> None:
    """Until the transaction ends: no other import or clone into the facility picks a title."""
    await conn.execute(_TITLE_LOCK, {"key": f"tessera.import-title:{facility}"})


def _canonical(dashboard_id: str) -> str:
    try:
        return str(uuid.UUID(dashboard_id))
    except ValueError:
        return dashboard_id


def _drill_target(plan: Plan, target: str) -> str:
    """Where a copied drill-through to another dashboard goes: the caller's mapping, else the
    batch's copy of that dashboard, else the dashboard itself (checked to be in the facility)."""
    if target in plan.dashboard_mappings:
        return plan.dashboard_mappings[target]
    sibling = plan.batch_links.get(_canonical(target))
    return str(sibling.copy_id) if sibling is not None else target


def _reported(outcome: Outcome) -> list[D.ImportedQuery]:
    return [D.ImportedQuery(key=key, query_id=r.query_id, action=r.action) for key, r in outcome.queries.items()]


def _raise(problems: ViolationCollector) -> None:
    problems.raise_if_any("the document cannot be imported")


__all__ = ["BatchLink", "Mapped", "Outcome", "Plan", "PortabilityDomain", "Resolution", "lock_titles"]
