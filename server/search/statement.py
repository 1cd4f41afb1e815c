"""The ranked search statement: one UNION ALL over dashboards, widgets and saved queries, each
branch restricted by the policy's SQL twin and found through the GIN indexes of migration 0013
(the stored `search_document` columns; titles by pg_trgm), ranked and cut to the page in
PostgreSQL; snippets are made for the page's rows only.

Score tiers (higher first), so title matches always lead:
  2 + rank  the words match the title;
  1 + rank  the words match tags or description (rank: ts_rank with weights A title, B tags,
            C description, normalized into [0, 1));
  < 1       no word match, but the title is similar to the query (pg_trgm word similarity): a
            misspelt word.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    FromClause,
    Select,
    SmallInteger,
    Text,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from server.db.schema import dashboard_favorites, dashboard_shares, dashboards, widget_queries, widgets
from server.search.highlight import HEADLINE_OPTIONS, START, STOP


class Kind(IntEnum):
    """Values match dashboard.v1.SearchResultKind."""

    DASHBOARD = 1
    WIDGET = 2
    QUERY = 3


# A literal regconfig (not a bound parameter), so plans are the same whatever the parameters.
ENGLISH: ColumnElement[Any] = literal_column("'english'::regconfig")
# ts_rank normalization 32: rank / (rank + 1), into [0, 1).
RANK_NORMALIZATION = 32


def _text() -> ColumnElement[str]:
    """The caller's query text, bound once as `q`."""
    return bindparam("q", type_=Text)


def _words() -> ColumnElement[Any]:
    return func.websearch_to_tsquery(ENGLISH, _text())


def _ranked(matched: Select[Any], trigrams: bool) -> Select[Any]:
    """`matched` (a branch's rows with their stored `document`) scored."""
    rows = matched.subquery()
    words = _words()
    rank = func.ts_rank(rows.c.document, words, RANK_NORMALIZATION)
    title_only = func.ts_filter(rows.c.document, literal_column("'{a}'::\"char\"[]"))
    similar: ColumnElement[Any] = func.word_similarity(_text(), rows.c.title) if trigrams else literal(0.0)
    score = case(
        (title_only.op("@@")(words), 2 + rank),
        (rows.c.document.op("@@")(words), 1 + rank),
        else_=similar,
    )
    return select(*(column for column in rows.c if column.key != "document"), cast(score, Float).label("score"))


def _matches(document: ColumnElement[Any], title: ColumnElement[Any], trigrams: bool) -> ColumnElement[bool]:
    found = document.op("@@")(_words())
    # `q <% title`: the query is similar to some part of the title (pg_trgm's word similarity,
    # at least pg_trgm.word_similarity_threshold, 0.6 by default); the GIN trigram index answers it.
    return or_(found, _text().op("<%")(title)) if trigrams else found


def _favorite(subject: str, dashboard_id: ColumnElement[Any]) -> ColumnElement[bool]:
    return (
        select(literal(True))
        .where(dashboard_favorites.c.principal_id == subject, dashboard_favorites.c.dashboard_id == dashboard_id)
        .exists()
    )


def dashboards_branch(visible: ColumnElement[bool], subject: str, trigrams: bool) -> Select[Any]:
    document = dashboards.c.search_document
    matched = select(
        literal(int(Kind.DASHBOARD)).label("kind"),
        dashboards.c.id.label("id"),
        dashboards.c.id.label("dashboard_id"),
        dashboards.c.facility_id,
        dashboards.c.title,
        dashboards.c.description.label("body"),
        dashboards.c.updated_at,
        dashboards.c.owner_id,
        dashboards.c.visibility,
        dashboards.c.published_version,
        dashboards.c.version,
        _favorite(subject, dashboards.c.id).label("favorite"),
        document.label("document"),
    ).where(visible, _matches(document, dashboards.c.title, trigrams))
    return _ranked(matched, trigrams)


def widgets_branch(visible: ColumnElement[bool], subject: str, trigrams: bool) -> Select[Any]:
    document = widgets.c.search_document
    matched = (
        select(
            literal(int(Kind.WIDGET)).label("kind"),
            widgets.c.id.label("id"),
            widgets.c.dashboard_id,
            dashboards.c.facility_id,
            widgets.c.title,
            widgets.c.spec["description"].astext.label("body"),
            widgets.c.updated_at,
            dashboards.c.owner_id,
            dashboards.c.visibility,
            dashboards.c.published_version,
            dashboards.c.version,
            _favorite(subject, widgets.c.dashboard_id).label("favorite"),
            document.label("document"),
        )
        .select_from(widgets.join(dashboards, dashboards.c.id == widgets.c.dashboard_id))
        .where(visible, _matches(document, widgets.c.title, trigrams))
    )
    return _ranked(matched, trigrams)


def queries_branch(facilities: list[str], trigrams: bool) -> Select[Any]:
    document = widget_queries.c.search_document
    matched = select(
        literal(int(Kind.QUERY)).label("kind"),
        widget_queries.c.id.label("id"),
        cast(null(), UUID(as_uuid=True)).label("dashboard_id"),
        widget_queries.c.facility_id,
        widget_queries.c.name.label("title"),
        widget_queries.c.description.label("body"),
        widget_queries.c.updated_at,
        widget_queries.c.owner_id,
        cast(null(), SmallInteger).label("visibility"),
        cast(null(), BigInteger).label("published_version"),
        cast(null(), BigInteger).label("version"),
        false().label("favorite"),
        document.label("document"),
    ).where(widget_queries.c.facility_id.in_(facilities), _matches(document, widget_queries.c.name, trigrams))
    return _ranked(matched, trigrams)


def page(branches: list[Select[Any]], *, favorites_first: bool, offset: int, limit: int) -> Select[Any]:
    """The branches ranked and cut to one page, then each page row's snippet and its dashboard's
    shares (for the policy's re-check), computed for those rows only."""
    ranked: FromClause = union_all(*branches).subquery("matches")
    order: list[Any] = [ranked.c.score.desc(), ranked.c.kind, ranked.c.id]
    if favorites_first:
        order.insert(0, ranked.c.favorite.desc())
    cut = select(ranked).order_by(*order).offset(offset).limit(limit).subquery("page")
    source = func.translate(func.coalesce(func.nullif(cut.c.body, ""), cut.c.title), literal(START + STOP), literal(""))
    headline = func.ts_headline(ENGLISH, source, _words(), literal(HEADLINE_OPTIONS))
    grants = (
        select(
            func.coalesce(
                func.jsonb_agg(
                    func.jsonb_build_array(
                        dashboard_shares.c.grantee_type, dashboard_shares.c.grantee, dashboard_shares.c.level
                    )
                ),
                cast(text("'[]'"), JSONB),
            )
        )
        .where(dashboard_shares.c.dashboard_id == cut.c.dashboard_id)
        .scalar_subquery()
    )
    # The page's own order again (a subquery's order is not kept by the outer select).
    outer_order: list[Any] = [cut.c.score.desc(), cut.c.kind, cut.c.id]
    if favorites_first:
        outer_order.insert(0, cut.c.favorite.desc())
    return select(cut, headline.label("headline"), grants.label("grants")).order_by(*outer_order)
