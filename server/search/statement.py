"""The ranked search statement: one UNION ALL over dashboards, widgets and saved queries, each
branch restricted by the policy's SQL twin and found through the GIN indexes of migration 0013
(`tessera_search_document` / `tessera_search_widget` by expression, titles by pg_trgm), ranked and
cut to the page in PostgreSQL; snippets are made for the page's rows only.

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
    ColumnElement,
    Float,
    FromClause,
    Select,
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
from sqlalchemy.dialects.postgresql import JSONB

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


def _words() -> ColumnElement[Any]:
    return func.websearch_to_tsquery(ENGLISH, bindparam("q"))


def _score(document: ColumnElement[Any], title: ColumnElement[Any], trigrams: bool) -> ColumnElement[float]:
    words = _words()
    rank = func.ts_rank(document, words, RANK_NORMALIZATION)
    similar: ColumnElement[Any] = func.word_similarity(bindparam("q"), title) if trigrams else literal(0.0)
    return cast(
        case(
            (func.to_tsvector(ENGLISH, title).op("@@")(words), 2 + rank),
            (document.op("@@")(words), 1 + rank),
            else_=similar,
        ),
        Float,
    )


def _matches(document: ColumnElement[Any], title: ColumnElement[Any], trigrams: bool) -> ColumnElement[bool]:
    found = document.op("@@")(_words())
    # `q <% title`: the query is similar to some part of the title (pg_trgm's word similarity,
    # at least pg_trgm.word_similarity_threshold, 0.6 by default); the GIN trigram index answers it.
    return or_(found, bindparam("q").op("<%")(title)) if trigrams else found


def _favorite(subject: str, dashboard_id: ColumnElement[Any]) -> ColumnElement[bool]:
    return (
        select(literal(True))
        .where(dashboard_favorites.c.principal_id == subject, dashboard_favorites.c.dashboard_id == dashboard_id)
        .exists()
    )


def dashboards_branch(visible: ColumnElement[bool], subject: str, trigrams: bool) -> Select[Any]:
    document = func.tessera_search_document(dashboards.c.title, dashboards.c.tags, dashboards.c.description)
    return select(
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
        _score(document, dashboards.c.title, trigrams).label("score"),
        _favorite(subject, dashboards.c.id).label("favorite"),
    ).where(visible, _matches(document, dashboards.c.title, trigrams))


def widgets_branch(visible: ColumnElement[bool], subject: str, trigrams: bool) -> Select[Any]:
    document = func.tessera_search_widget(widgets.c.title, widgets.c.spec)
    return (
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
            _score(document, widgets.c.title, trigrams).label("score"),
            _favorite(subject, widgets.c.dashboard_id).label("favorite"),
        )
        .select_from(widgets.join(dashboards, dashboards.c.id == widgets.c.dashboard_id))
        .where(visible, _matches(document, widgets.c.title, trigrams))
    )


def queries_branch(facilities: list[str], trigrams: bool) -> Select[Any]:
    document = func.tessera_search_document(widget_queries.c.name, widget_queries.c.tags, widget_queries.c.description)
    return select(
        literal(int(Kind.QUERY)).label("kind"),
        widget_queries.c.id.label("id"),
        null().label("dashboard_id"),
        widget_queries.c.facility_id,
        widget_queries.c.name.label("title"),
        widget_queries.c.description.label("body"),
        widget_queries.c.updated_at,
        widget_queries.c.owner_id,
        null().label("visibility"),
        null().label("published_version"),
        null().label("version"),
        _score(document, widget_queries.c.name, trigrams).label("score"),
        false().label("favorite"),
    ).where(widget_queries.c.facility_id.in_(facilities), _matches(document, widget_queries.c.name, trigrams))


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
