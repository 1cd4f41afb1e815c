"""The query domain: saved, versioned, parameterised read-only queries and their execution."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from typing import Any

from google.protobuf import duration_pb2, field_mask_pb2
from sqlalchemy import Select, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dashboard.v1 import common_pb2, dashboard_pb2, query_pb2
from server import idempotency, pagination
from server.access.policy import (
    QueryFacts,
    facility_for_create,
    require_facility,
    require_query,
    require_role,
    visible_queries,
)
from server.audit import facts as audit_facts
from server.auth.principal import Principal, Role
from server.config import Settings
from server.dashboards.versions import record_version
from server.db.engine import Database
from server.db.schema import dashboards, query_versions, widget_queries, widgets
from server.errors import (
    Aborted,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ViolationCollector,
)
from server.metrics import Metrics
from server.queries import disclosure, views
from server.queries.convert import (
    METADATA,
    VERSIONED,
    query_from_rows,
    query_version_from_rows,
    seconds,
    version_values,
)
from server.queries.execute import ExecutionLimits, QueryExecutor
from server.queries.masking import mask_frame, unmasked_phi_columns
from server.queries.parameters import bind, check_specs
from server.queries.sql_check import SqlAnalysis, SqlIssue, analyze, check_parameters, to_pyformat

Q = query_pb2
UPDATABLE = METADATA + VERSIONED
_ALL_FACILITIES = "*"


# Relations user SQL must not name, though the reader role could read them. The managed views
# are owned by the reader (a refresh runs the view's SQL as its owner, which must be the
# least-privilege role) and carry no Row-Level Security (PostgreSQL has none for materialized
# views): each holds one facility's rows, read back only through RunQuery. pg_stats shows the
# most common values of every relation its reader may read, the managed views included.
_PRIVATE_RELATIONS = re.compile(r"(?i)tessera_mv|pg_stats")


def _private_references(sql: str) -> list[SqlIssue]:
    """SqlIssues for names of private relations in the SQL's code and literals (comments aside).
    Naming them in a literal is refused too (refusing too much is the safe mistake)."""
    try:
        code = to_pyformat(sql)  # comments removed; raises for SQL the lexer refused already
    except ValueError:
        code = sql
    found = _PRIVATE_RELATIONS.search(sql) if _PRIVATE_RELATIONS.search(code) else None
    if found is None:  # (what is in the code is in the text)
        return []
    offset = found.start()
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    what = found.group(0).lower()
    why = (
        "the managed views are read through their MATERIALIZED_VIEW queries"
        if what == "tessera_mv"
        else "it shows values of relations other facilities' data lives in"
    )
    return [SqlIssue(f"{what} may not be read by a query: {why}", line, column)]


def _sql_issues(sql: str, specs: Sequence[query_pb2.ParameterSpec]) -> tuple[SqlAnalysis, list[SqlIssue]]:
    analysis = analyze(sql)
    # Placeholders come from the lexer, so they are checked even when the SQL has other problems.
    issues = [
        *analysis.issues,
        *_private_references(sql),
        *check_parameters(analysis, {p.name: p.type for p in specs}),
    ]
    return analysis, issues


def _sql_violations(sql: str, specs: Sequence[query_pb2.ParameterSpec], kind: int) -> list[FieldViolation]:
    analysis, issues = _sql_issues(sql, specs)
    found = [
        FieldViolation(
            "query.sql",
            f"{issue.message} (line {issue.line}, column {issue.column})" if issue.line else issue.message,
            "SQL_REJECTED",
        )
        for issue in issues
    ]
    if kind == Q.QUERY_KIND_MATERIALIZED_VIEW and (specs or analysis.placeholders):
        found.append(
            FieldViolation(
                "query.parameters",
                "a materialized view is computed ahead of its readers: it cannot take parameters (its rows "
                "are filtered by their facility_id column when read)",
                "VIEW_PARAMETERS",
            )
        )
    return found


async def insert_query(
    conn: AsyncConnection, query_id: uuid.UUID, facility: str, owner: str, query: Q.Query, view_name: str | None
) -> None:
    """Writes a new query (checked, its view built when it has one) and its version 1."""
    await conn.execute(
        insert(widget_queries).values(
            id=query_id,
            facility_id=facility,
            owner_id=owner,
            name=query.name,
            description=query.description,
            kind=query.kind or Q.QUERY_KIND_SQL,
            is_template=query.template,
            tags=list(query.tags),
            view_name=view_name,
            refresh_time=func.now() if view_name else None,
        )
    )
    await conn.execute(
        insert(query_versions).values(query_id=query_id, version=1, author_id=owner, **version_values(query))
    )


class QueryDomain:
    def __init__(self, db: Database, datasource: AsyncEngine, settings: Settings, metrics: Metrics) -> None:
        self._db = db
        self._source_seconds = metrics.query_source
        self._datasource = datasource
        self._settings = settings
        self._executor = QueryExecutor(datasource, role=settings.query_role or None)
        # Views are owned and read by their own role, which user SQL (query_role) cannot reach.
        self._view_executor = QueryExecutor(datasource, role=settings.view_role or None)
        self._views = views.ViewBuilder(datasource, settings.view_role, settings.query_timeout_cap_seconds)

    # --- checks -------------------------------------------------------------------------------

    def _check(self, query: query_pb2.Query, paths: Sequence[str], kind: int) -> None:
        problems = ViolationCollector()
        if "name" in paths and not query.name.strip():
            problems.add("query.name", "a name is required", "REQUIRED")
        if "sql" in paths and not query.sql.strip():
            problems.add("query.sql", "SQL is required", "REQUIRED")
        elif {"sql", "parameters"} & set(paths):
            problems.violations += _sql_violations(query.sql, query.parameters, kind)
        if "parameters" in paths:
            problems.violations += check_specs(query.parameters, "query.parameters")
        if "options" in paths:
            if seconds(query.options.timeout) > self._settings.query_timeout_cap_seconds:
                problems.add(
                    "query.options.timeout",
                    f"at most {self._settings.query_timeout_cap_seconds:g} s",
                    "OUT_OF_RANGE",
                )
            if query.options.row_limit > self._settings.query_row_limit_cap:
                problems.add("query.options.row_limit", f"at most {self._settings.query_row_limit_cap}", "OUT_OF_RANGE")
        if "sensitive_columns" in paths:
            seen: set[str] = set()
            for i, column in enumerate(query.sensitive_columns):
                if column.column in seen:
                    problems.add(f"query.sensitive_columns[{i}].column", "listed twice", "DUPLICATE_COLUMN")
                seen.add(column.column)
            output = analyze(query.sql).output_columns if query.sql else None
            if output is not None:
                for i, column in enumerate(query.sensitive_columns):
                    if column.column not in output:
                        problems.add(
                            f"query.sensitive_columns[{i}].column",
                            f"{column.column!r} is not a result column ({', '.join(output)})",
                            "UNKNOWN_COLUMN",
                        )
        if "view_key_columns" in paths:
            if kind == Q.QUERY_KIND_MATERIALIZED_VIEW and not query.view_key_columns:
                problems.add(
                    "query.view_key_columns",
                    "a materialized view needs the columns of a unique key (REFRESH ... CONCURRENTLY requires one)",
                    "REQUIRED",
                )
            elif kind != Q.QUERY_KIND_MATERIALIZED_VIEW and query.view_key_columns:
                problems.add(
                    "query.view_key_columns", "only a MATERIALIZED_VIEW query has view key columns", "INAPPLICABLE"
                )
            if len(set(query.view_key_columns)) != len(query.view_key_columns):
                problems.add("query.view_key_columns", "a column is listed twice", "DUPLICATE_COLUMN")
        problems.raise_if_any()

    def check_definition(self, query: query_pb2.Query) -> None:
        """The checks CreateQuery runs on a new query's fields (InvalidArgument naming `query.*`)."""
        self._check(query, UPDATABLE, query.kind or Q.QUERY_KIND_SQL)

    async def build_view(self, query_id: uuid.UUID, query: query_pb2.Query, facility: str, *, keep: bool) -> str:
        """Builds the managed view of a new MATERIALIZED_VIEW query `query_id` of `facility` (as
        CreateQuery does; InvalidArgument naming `query.*` when it cannot be built) and returns
        its name. With `keep` false the build is only tried and rolled back."""
        view_name = views.view_name_for(query_id)
        await self._views.create(view_name, query.sql, list(query.view_key_columns), facility, keep=keep)
        return view_name

    async def drop_view(self, view_name: str) -> None:
        await self._views.drop(view_name)

    # --- create / read ------------------------------------------------------------------------

    async def create(self, principal: Principal, query: query_pb2.Query, request_id: str, digest: bytes) -> Q.Query:
        require_role(principal, Role.EDITOR, "creating a query")
        facility = facility_for_create(principal, query.facility_id)
        kind = query.kind or Q.QUERY_KIND_SQL
        self._check(query, UPDATABLE, kind)
        query_id = uuid.uuid4()
        view_name = views.view_name_for(query_id) if kind == Q.QUERY_KIND_MATERIALIZED_VIEW else None

        async def create(conn: AsyncConnection, _: None, __: int) -> tuple[uuid.UUID, uuid.UUID]:
            if view_name:  # DDL on the data source, outside this transaction: `abandon` drops it
                await self._views.create(view_name, query.sql, list(query.view_key_columns), facility)
            await insert_query(conn, query_id, facility, principal.subject, query, view_name)
            return query_id, query_id

        async def existing(earlier: uuid.UUID) -> uuid.UUID:
            return earlier

        async def drop_view() -> None:
            if view_name:
                await self._views.drop(view_name)

        key = idempotency.RequestKey(principal.subject, "CreateQuery", request_id, digest)
        [created] = await idempotency.create_once(
            self._db, [key], create, existing, prepare=idempotency.nothing_to_prepare, abandon=drop_view
        )
        return await self.get(principal, str(created))

    async def _load(
        self, conn: AsyncConnection, principal: Principal, query_id: str, *, write: bool, lock: bool = False
    ) -> Any:
        stmt = select(widget_queries).where(widget_queries.c.id == uuid.UUID(query_id))
        if lock:
            stmt = stmt.with_for_update()
        head = (await conn.execute(stmt)).first()
        if head is None:
            raise NotFound("query", query_id)
        audit_facts.note_facility(head.facility_id)
        require_query(principal, QueryFacts(query_id, head.facility_id, head.owner_id), write=write)
        return head

    async def _version(self, conn: AsyncConnection, head: Any, version: int) -> Any:
        row = (
            await conn.execute(
                select(query_versions).where(
                    query_versions.c.query_id == head.id, query_versions.c.version == (version or head.version)
                )
            )
        ).first()
        if row is None:
            raise NotFound("query_version", f"{head.id}@{version}")
        return row

    async def get(self, principal: Principal, query_id: str) -> Q.Query:
        async def read(conn: AsyncConnection) -> Q.Query:
            head = await self._load(conn, principal, query_id, write=False)
            return query_from_rows(head, await self._version(conn, head, 0))

        return await self._db.stale_read(read)

    async def list_queries(self, principal: Principal, request: Q.ListQueriesRequest) -> tuple[list[Q.Query], str]:
        template = request.template if request.HasField("template") else None
        filters_key = pagination.fingerprint(request.name_contains, request.kind, sorted(request.tags), template)
        cursor = pagination.decode(request.page_token, filters_key)
        size = pagination.page_size(request.page_size)
        stmt: Select[Any] = select(widget_queries).where(visible_queries(principal))
        if request.name_contains:
            escaped = request.name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(widget_queries.c.name.ilike(f"%{escaped}%", escape="\\"))
        if request.kind:
            stmt = stmt.where(widget_queries.c.kind == request.kind)
        if request.tags:
            stmt = stmt.where(widget_queries.c.tags.contains(sorted(set(request.tags))))
        if template is not None:
            stmt = stmt.where(widget_queries.c.is_template.is_(template))
        if cursor is not None:
            stmt = stmt.where(
                tuple_(widget_queries.c.updated_at, widget_queries.c.id)
                < tuple_(datetime.fromisoformat(cursor.key), uuid.UUID(cursor.id))
            )
        stmt = stmt.order_by(widget_queries.c.updated_at.desc(), widget_queries.c.id.desc()).limit(size + 1)

        async def read_page(conn: AsyncConnection) -> tuple[list[Any], dict[Any, Any]]:
            rows = (await conn.execute(stmt)).all()
            if not rows[:size]:
                return rows, {}
            keys = [(r.id, r.version) for r in rows[:size]]
            found = await conn.execute(
                select(query_versions).where(tuple_(query_versions.c.query_id, query_versions.c.version).in_(keys))
            )
            return rows, {v.query_id: v for v in found}

        rows, current = await self._db.stale_read(read_page)
        page = rows[:size]
        out = [query_from_rows(r, current[r.id]) for r in page]
        token = ""
        if len(rows) > size:
            token = pagination.encode(pagination.Cursor(page[-1].updated_at.isoformat(), str(page[-1].id)), filters_key)
        return out, token

    async def list_versions(
        self, principal: Principal, request: Q.ListQueryVersionsRequest
    ) -> tuple[list[Q.QueryVersion], str]:
        filters_key = pagination.fingerprint(request.query_id)
        cursor = pagination.decode(request.page_token, filters_key)
        size = pagination.page_size(request.page_size)
        async with self._db.read() as conn:
            head = await self._load(conn, principal, request.query_id, write=False)
            stmt = select(query_versions).where(query_versions.c.query_id == head.id)
            if cursor is not None:
                stmt = stmt.where(query_versions.c.version < int(cursor.key))
            rows = (await conn.execute(stmt.order_by(query_versions.c.version.desc()).limit(size + 1))).all()
        page = rows[:size]
        token = (
            pagination.encode(pagination.Cursor(page[-1].version, str(head.id)), filters_key)
            if len(rows) > size
            else ""
        )
        return [query_version_from_rows(head, r) for r in page], token

    async def get_version(self, principal: Principal, query_id: str, version: int) -> Q.QueryVersion:
        async with self._db.read() as conn:
            head = await self._load(conn, principal, query_id, write=False)
            return query_version_from_rows(head, await self._version(conn, head, version))

    # --- update / delete ------------------------------------------------------------------------

    async def update(self, principal: Principal, query: Q.Query, mask: field_mask_pb2.FieldMask) -> Q.Query:
        paths = tuple(dict.fromkeys(mask.paths)) or UPDATABLE
        bad = [p for p in paths if p not in UPDATABLE]
        if bad:
            raise InvalidArgument(
                f"cannot update {', '.join(bad)}; updatable fields: {', '.join(UPDATABLE)}",
                violations=[
                    FieldViolation("update_mask", f"{p!r} cannot be updated", "FIELD_NOT_UPDATABLE") for p in bad
                ],
            )
        async with self._db.transaction() as conn:
            head = await self._load(conn, principal, query.id, write=True, lock=True)
            current = query_from_rows(head, await self._version(conn, head, 0))
            if query.etag and query.etag != current.etag:
                raise Aborted("the query changed since it was read (stale etag)", metadata={"resource_id": query.id})
            merged = Q.Query()
            merged.CopyFrom(current)
            for path in paths:
                merged.ClearField(path)
                field = Q.Query.DESCRIPTOR.fields_by_name[path]
                if field.is_repeated:
                    getattr(merged, path).extend(getattr(query, path))
                elif field.message_type is not None:
                    getattr(merged, path).CopyFrom(getattr(query, path))
                else:
                    setattr(merged, path, getattr(query, path))
            check_paths = paths
            if "sensitive_columns" not in paths and "sql" in paths:
                check_paths = (*paths, "sensitive_columns")  # new SQL must still return the PHI columns
            self._check(merged, check_paths, head.kind)
            new_version = version_values(merged) != version_values(current)
            values: dict[str, Any] = {
                "name": merged.name,
                "description": merged.description,
                "tags": list(merged.tags),
                "is_template": merged.template,
            }
            if new_version:
                values["version"] = head.version + 1
                await conn.execute(
                    insert(query_versions).values(
                        query_id=head.id,
                        version=head.version + 1,
                        author_id=principal.subject,
                        **version_values(merged),
                    )
                )
                if head.view_name and (
                    merged.sql != current.sql or merged.view_key_columns != current.view_key_columns
                ):
                    await self._views.create(
                        head.view_name, merged.sql, list(merged.view_key_columns), head.facility_id
                    )
                    values["refresh_time"] = func.now()
            await conn.execute(update(widget_queries).where(widget_queries.c.id == head.id).values(**values))
        return await self.get(principal, query.id)

    async def delete(self, principal: Principal, query_id: str, force: bool, etag: str) -> None:
        async with self._db.transaction() as conn:
            head = await self._load(conn, principal, query_id, write=True)
            locked: set[uuid.UUID] = set()
            if force:
                # The lock order of every widget change: the dashboard first, then the query its
                # widget binds (FOR KEY SHARE). Unbinding changes those dashboards, so lock them
                # (in id order) before the query.
                locked = await self._lock_dashboards(
                    conn, select(widgets.c.dashboard_id).where(widgets.c.query_id == head.id)
                )
            head = await self._load(conn, principal, query_id, write=True, lock=True)
            if etag and etag != query_from_rows(head, await self._version(conn, head, 0)).etag:
                raise Aborted("the query changed since it was read (stale etag)", metadata={"resource_id": query_id})
            # Under the query's lock no widget can bind it any more: this list is final.
            users = (
                await conn.execute(
                    select(widgets.c.id, widgets.c.dashboard_id)
                    .where(widgets.c.query_id == head.id)
                    .order_by(widgets.c.dashboard_id, widgets.c.id)
                )
            ).all()
            if users and not force:
                raise FailedPrecondition(
                    f"{len(users)} widget(s) use this query; unbind them or delete with force",
                    reason="QUERY_IN_USE",
                    violations=[
                        FieldViolation(f"widgets/{u.id}", "uses this query", "QUERY_IN_USE") for u in users[:20]
                    ],
                    metadata={"widget_count": str(len(users))},
                )
            dashboard_ids = sorted({u.dashboard_id for u in users})
            if set(dashboard_ids) - locked:  # bound between the two reads: rare, lock them now
                locked |= await self._lock_dashboards(conn, sorted(set(dashboard_ids) - locked))
            for dashboard_id in dashboard_ids:
                # Unbinding changes the dashboard: it gets a version like any other widget change.
                await conn.execute(
                    update(widgets)
                    .where(widgets.c.query_id == head.id, widgets.c.dashboard_id == dashboard_id)
                    .values(
                        query_id=None,
                        query_version=None,
                        spec=widgets.c.spec.op("-")("query"),
                        revision=widgets.c.revision + 1,
                    )
                )
                await record_version(
                    conn, dashboard_id, reason=dashboard_pb2.VERSION_REASON_WIDGET_CHANGE, author=principal.subject
                )
            await conn.execute(widget_queries.delete().where(widget_queries.c.id == head.id))
        if head.view_name:
            await self._views.drop(head.view_name)

    @staticmethod
    async def _lock_dashboards(conn: AsyncConnection, ids: Any) -> set[uuid.UUID]:
        """Locks the dashboards with these ids (a list or a subquery) FOR UPDATE, in id order."""
        stmt = select(dashboards.c.id).where(dashboards.c.id.in_(ids)).order_by(dashboards.c.id).with_for_update()
        return set((await conn.execute(stmt)).scalars())

    # --- run / validate / refresh ---------------------------------------------------------------

    async def run(
        self,
        principal: Principal,
        query_id: str,
        version: int,
        values: Mapping[str, common_pb2.ParameterValue],
        row_limit: int,
        facility_id: str = "",
    ) -> Q.RunQueryResponse:
        async with self._db.read() as conn:
            head = await self._load(conn, principal, query_id, write=False)
            row = await self._version(conn, head, version)
        query = query_from_rows(head, row)
        response = await self.execute(principal, query, values, row_limit=row_limit, facility_id=facility_id)
        audit_facts.note_data(
            widget_id="",
            query_id=query.id,
            query_version=query.version,
            facility_id=facility_id or query.facility_id,
            row_count=response.frame.row_count,
            phi_columns=unmasked_phi_columns(response.frame, (c.column for c in query.sensitive_columns)),
        )
        return response

    async def runnable(self, principal: Principal, query_id: str, version: int) -> Q.Query:
        """A version of a query the caller may run (RunQuery's rule: an editor of its facility;
        NOT_FOUND otherwise), for a data export of its run; `version` 0 is the latest."""
        async with self._db.read() as conn:
            head = await self._load(conn, principal, query_id, write=False)
            row = await self._version(conn, head, version)
        return query_from_rows(head, row)

    async def execute(
        self,
        principal: Principal,
        query: Q.Query,
        values: Mapping[str, common_pb2.ParameterValue],
        *,
        row_limit: int = 0,
        facility_id: str = "",
    ) -> Q.RunQueryResponse:
        """Runs a (visible) query version: values checked and bound by the driver, READ ONLY,
        timeout, row cap, reader role, facility scope; PHI masked for the caller.

        The scope is `facility_id` when given (a caller of several facilities running a query in
        another of them: it must be one of the caller's) and the query's own facility otherwise.
        `row_limit` can only lower the query's cap (which the server's cap bounds)."""
        facility = facility_id or query.facility_id
        if facility != query.facility_id:
            # The caller was allowed to see the query in its own facility (by require_query, or
            # through a dashboard); running it elsewhere takes membership of that facility too.
            require_facility(principal, facility)
        if facility == _ALL_FACILITIES:
            # Data-source policies may treat '*' as "every facility" (demo_data does): it is never
            # a caller's scope, whatever a token claims.
            raise PermissionDenied(f"{facility!r} is not a facility", reason="FACILITY_NOT_ALLOWED")
        params = bind(query.parameters, values, "parameter_values")
        limit = query.options.row_limit or self._settings.query_row_limit
        if row_limit:
            limit = min(limit, row_limit)
        limit = min(limit, self._settings.query_row_limit_cap)
        timeout = min(
            seconds(query.options.timeout) or self._settings.query_timeout_seconds,
            self._settings.query_timeout_cap_seconds,
        )
        is_view = query.kind == Q.QUERY_KIND_MATERIALIZED_VIEW
        sql = views.read_sql(query.view_name) if is_view else query.sql
        executor = self._view_executor if is_view else self._executor
        try:
            result = await executor.run(
                sql,
                params,
                facility_id=facility,
                limits=ExecutionLimits(timeout_seconds=timeout, row_limit=limit),
            )
        except InvalidArgument as exc:
            shown = disclosure.for_caller(exc, principal.can_read_phi)
            if shown is not exc:
                raise shown from None
            raise
        self._source_seconds.observe(result.source_seconds)
        frame, masked = result.frame, False
        if query.sensitive_columns and not principal.can_read_phi:
            frame = mask_frame(
                frame,
                {c.column: c.strategy or Q.MASKING_STRATEGY_REDACT for c in query.sensitive_columns},
                self._settings.masking_key_bytes,
            )
            masked = True
        elapsed = duration_pb2.Duration()
        elapsed.FromNanoseconds(int(result.elapsed_seconds * 1e9))
        return Q.RunQueryResponse(frame=frame, query_version=query.version, elapsed=elapsed, masked=masked)

    async def stream(
        self,
        principal: Principal,
        query: Q.Query,
        values: Mapping[str, common_pb2.ParameterValue],
        *,
        row_limit: int,
        timeout_seconds: float,
        batch_rows: int,
    ) -> AsyncGenerator[common_pb2.DataFrame]:
        """`execute` for data exports: the query's rows in frames of `batch_rows`, each masked for
        the caller as `execute` masks, up to `row_limit` rows (not the query's interactive cap),
        each FETCH bounded by `timeout_seconds`. The scope is the query's own facility."""
        if query.facility_id == _ALL_FACILITIES:
            raise PermissionDenied(f"{query.facility_id!r} is not a facility", reason="FACILITY_NOT_ALLOWED")
        params = bind(query.parameters, values, "parameter_values")
        is_view = query.kind == Q.QUERY_KIND_MATERIALIZED_VIEW
        sql = views.read_sql(query.view_name) if is_view else query.sql
        executor = self._view_executor if is_view else self._executor
        sensitive = {c.column: c.strategy or Q.MASKING_STRATEGY_REDACT for c in query.sensitive_columns}
        mask = bool(sensitive) and not principal.can_read_phi
        frames = executor.stream(
            sql,
            params,
            facility_id=query.facility_id,
            limits=ExecutionLimits(timeout_seconds=timeout_seconds, row_limit=row_limit),
            batch_rows=batch_rows,
        )
        try:
            async for frame in frames:
                yield mask_frame(frame, sensitive, self._settings.masking_key_bytes) if mask else frame
        except InvalidArgument as exc:
            shown = disclosure.for_caller(exc, principal.can_read_phi)
            if shown is not exc:
                raise shown from None
            raise
        finally:
            await frames.aclose()

    def validate(self, principal: Principal, request: Q.ValidateQueryRequest) -> Q.ValidateQueryResponse:
        require_role(principal, Role.EDITOR, "validating a query")
        analysis, issues = _sql_issues(request.sql, request.parameters)
        problems = [Q.SqlProblem(message=i.message, line=i.line, column=i.column) for i in issues]
        problems += [
            Q.SqlProblem(message=f"{v.field}: {v.description}") for v in check_specs(request.parameters, "parameters")
        ]
        return Q.ValidateQueryResponse(valid=not problems, problems=problems, placeholders=list(analysis.placeholders))

    async def refresh(self, principal: Principal, query_id: str) -> Q.Query:
        async with self._db.read() as conn:
            head = await self._load(conn, principal, query_id, write=False)
        if head.kind != Q.QUERY_KIND_MATERIALIZED_VIEW or not head.view_name:
            raise FailedPrecondition("only MATERIALIZED_VIEW queries have a view to refresh", reason="NOT_A_VIEW")
        await self._views.refresh(head.view_name, head.facility_id)
        async with self._db.transaction() as conn:
            await conn.execute(
                update(widget_queries).where(widget_queries.c.id == head.id).values(refresh_time=func.now())
            )
        return await self.get(principal, query_id)
