"""ListDashboards' statements and rows, made for the most frequent read there is.

Each list shape (the caller's visibility shape, the ordering and which filters are present) is
one statement, compiled once per process (server/db/compiled.py) with the caller's values as
parameters. Rows come back as tuples with their jsonb as text, and a row becomes its message
through a memo keyed by the row's own content: a dashboard listed again unchanged costs a lookup
and a parse of its serialized message, not a conversion. Content keys are never stale (a changed
row is another key); the policy still decides about every row on every call.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Text,
    Uuid,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select

from dashboard.v1 import dashboard_pb2
from server.access.policy import DashboardFacts, Grant, grants_from_rows, visible_dashboards
from server.auth.principal import Principal, Role
from server.dashboards.access import facts_with_grants, grants_column
from server.dashboards.convert import dashboard_from_row
from server.db.compiled import Compiled
from server.db.schema import dashboard_favorites, dashboard_versions, dashboards
from server.memo import Memo
from server.protojson import load_json

# (column, descending) of each ListDashboardsRequest.order_by.
ORDERINGS = {
    "": ("updated_at", True),
    "update_time": ("updated_at", False),
    "update_time asc": ("updated_at", False),
    "update_time desc": ("updated_at", True),
    "create_time": ("created_at", False),
    "create_time asc": ("created_at", False),
    "create_time desc": ("created_at", True),
    "title": ("title", False),
    "title asc": ("title", False),
    "title desc": ("title", True),
}

# A dashboard's columns as a list reads them: every one the message needs (not the search
# document), jsonb as its text (parsed only when the row is new to this process).
_COLUMNS = (
    dashboards.c.id,
    dashboards.c.facility_id,
    dashboards.c.owner_id,
    dashboards.c.title,
    dashboards.c.description,
    dashboards.c.tags,
    cast(dashboards.c.metadata, Text).label("metadata"),
    dashboards.c.visibility,
    cast(dashboards.c.layout, Text).label("layout"),
    cast(dashboards.c.filters, Text).label("filters"),
    dashboards.c.version,
    dashboards.c.published_version,
    dashboards.c.publish_time,
    dashboards.c.created_at,
    dashboards.c.updated_at,
)
_CONTENT = len(_COLUMNS)  # a row's first _CONTENT values are all its message depends on


class ListRow(NamedTuple):
    """A listed dashboard, in _COLUMNS' order, with its shares ([grantee_type, grantee, level]
    as jsonb text) and, for favorites_first, the favorite flag."""

    id: uuid.UUID
    facility_id: str
    owner_id: str
    title: str
    description: str
    tags: list[str]
    metadata: Any
    visibility: int
    layout: Any
    filters: Any
    version: int
    published_version: int | None
    publish_time: datetime | None
    created_at: datetime
    updated_at: datetime
    grants: str
    favorite: bool = False


@dataclass(frozen=True)
class ListShape:
    """What a list statement's SQL depends on; equal shapes run one compiled statement."""

    visibility: tuple[bool, Role, bool]
    order_by: str
    tags: bool = False
    owner: bool = False
    published: bool | None = None
    facility: bool = False
    title: bool = False
    after: bool = False
    favorites_first: bool = False
    after_favorite: bool = False


def _favorite() -> ColumnElement[bool]:
    """Whether the caller (`favorite_of`) keeps the row's dashboard among its favorites."""
    return exists().where(
        dashboard_favorites.c.principal_id == bindparam("favorite_of", type_=Text),
        dashboard_favorites.c.dashboard_id == dashboards.c.id,
    )


def list_statement(shape: ListShape, principal: Principal) -> Select[Any]:
    """The statement of `shape`. Its parameters: the policy's visibility parameters, `limit`, and
    as the shape says `tags`, `owner`, `facility_id`, `title_pattern`, `after_key`, `after_id`,
    `favorite_of`. (`principal` only for its visibility shape, which `shape` names.)"""
    column_name, descending = ORDERINGS[shape.order_by]
    column = dashboards.c[column_name]
    favorite = _favorite()
    columns: list[Any] = [*_COLUMNS, cast(grants_column(), Text).label("grants")]
    if shape.favorites_first:
        columns.append(favorite.label("favorite"))
    query = select(*columns).where(visible_dashboards(principal, template=True))
    if shape.tags:
        query = query.where(dashboards.c.tags.contains(bindparam("tags", type_=ARRAY(Text))))
    if shape.owner:
        query = query.where(dashboards.c.owner_id == bindparam("owner", type_=Text))
    if shape.published is not None:
        published = dashboards.c.published_version
        query = query.where(published.is_not(None) if shape.published else published.is_(None))
    if shape.facility:
        query = query.where(dashboards.c.facility_id == bindparam("facility_id", type_=Text))
    if shape.title:
        query = query.where(dashboards.c.title.ilike(bindparam("title_pattern", type_=Text), escape="\\"))
    if shape.after:
        after = tuple_(column, dashboards.c.id)
        boundary = tuple_(bindparam("after_key", type_=column.type), bindparam("after_id", type_=Uuid()))
        keyset = after < boundary if descending else after > boundary
        if shape.favorites_first:
            # Favorites first: past the boundary within its group, or any row of a later group.
            keyset = or_(and_(favorite, keyset), ~favorite) if shape.after_favorite else and_(~favorite, keyset)
        query = query.where(keyset)
    order: tuple[Any, ...] = (
        (column.desc(), dashboards.c.id.desc()) if descending else (column.asc(), dashboards.c.id.asc())
    )
    if shape.favorites_first:
        order = (favorite.desc(), *order)
    return query.order_by(*order).limit(bindparam("limit", type_=BigInteger))


# A published snapshot as a list shows it: the widgets removed by PostgreSQL (jsonb - text), as
# jsonb text (parsed through header_from_text's cache); for (dashboard, version) pairs given as
# two arrays.
_pairs = (
    func.unnest(bindparam("dashboard_ids", type_=ARRAY(Uuid())), bindparam("versions", type_=ARRAY(BigInteger)))
    .table_valued("dashboard_id", "version")
    .render_derived()
)
PUBLISHED_HEADERS = select(
    dashboard_versions.c.dashboard_id,
    cast(dashboard_versions.c.snapshot.op("-", return_type=JSONB)(literal_column("'widgets'::text")), Text),
).where(
    tuple_(dashboard_versions.c.dashboard_id, dashboard_versions.c.version).in_(
        select(_pairs.c.dashboard_id, _pairs.c.version)
    )
)


class ListStatements:
    """Each shape's statement, compiled once for this process's dialect (shapes are finitely
    many: flags and the orderings' names)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._lists: dict[ListShape, Compiled] = {}
        self.published_headers = Compiled(PUBLISHED_HEADERS, dialect)

    def of(self, shape: ListShape, principal: Principal) -> Compiled:
        compiled = self._lists.get(shape)
        if compiled is None:
            compiled = self._lists[shape] = Compiled(list_statement(shape, principal), self._dialect)
        return compiled


@functools.lru_cache(maxsize=4096)
def grants_of(text: str) -> tuple[Grant, ...]:
    """A row's shares from their jsonb text, parsed once per distinct text."""
    return grants_from_rows(load_json(text))


# The policy's facts of rows seen, by what they are made of: a page decides all its rows on
# every call, and making them anew (the id's text, the shares parsed) cost more than deciding.
ROW_FACTS = 8192
_row_facts: Memo[tuple[Any, ...], DashboardFacts] = Memo(ROW_FACTS)


def list_row_facts(row: ListRow) -> DashboardFacts:
    key = (row.id.int, row.facility_id, row.owner_id, row.visibility, row.published_version, row.grants)
    known = _row_facts.get(key)
    if known is None:
        known = facts_with_grants(row, grants_of(row.grants))
        _row_facts.put(key, known)
    return known


# Serialized messages of rows seen, by the row's content (about 0.5 KB a row). The key holds the
# same texts as the message, so the memo holds about twice the bytes it counts.
ROW_MESSAGES = 8192
ROW_MESSAGE_BYTES = 8 << 20
_messages: Memo[tuple[Any, ...], bytes] = Memo(ROW_MESSAGES, weigh=len, max_weight=ROW_MESSAGE_BYTES)


def list_row_message(row: ListRow) -> dashboard_pb2.Dashboard:
    """The row as a Dashboard message (a new one each call: callers may change it)."""
    # The id as its integer: UUID's hash is computed in Python, an int's is not.
    key = (row.id.int, *row[1:5], tuple(row.tags), *row[6:_CONTENT])
    known = _messages.get(key)
    if known is None:
        parsed = row._replace(
            metadata=load_json(row.metadata), layout=load_json(row.layout), filters=load_json(row.filters)
        )
        known = dashboard_from_row(parsed).SerializeToString()
        _messages.put(key, known)
    return dashboard_pb2.Dashboard.FromString(known)
