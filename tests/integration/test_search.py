"""SearchService over a real channel and PostgreSQL: words and misspelt words found, title
matches ranked first, pages, highlights, what the caller may not see never returned, favorites
(and favorites first in ListDashboards and in search)."""

from __future__ import annotations

import uuid

import grpc
import psycopg
import pytest
from google.protobuf import field_mask_pb2

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import search_pb2 as s
from dashboard.v1 import search_pb2_grpc
from dashboard.v1 import share_pb2 as sh
from dashboard.v1 import widget_pb2 as w
from tests.harness.rpc import expect_failure
from tests.integration.test_widgets import CONFIGS

Code = grpc.StatusCode
DASHBOARD, WIDGET, QUERY = s.SEARCH_RESULT_KIND_DASHBOARD, s.SEARCH_RESULT_KIND_WIDGET, s.SEARCH_RESULT_KIND_QUERY


@pytest.fixture(scope="module")
def search(channel) -> search_pb2_grpc.SearchServiceStub:
    return search_pb2_grpc.SearchServiceStub(channel)


@pytest.fixture
def admin(auth, facility):
    return auth("search-admin", "admin", facility)


def board(dashboards, md, facility: str, title: str, description: str = "", tags: tuple[str, ...] = ()) -> d.Dashboard:
    return dashboards.CreateDashboard(
        d.CreateDashboardRequest(
            dashboard=d.Dashboard(facility_id=facility, title=title, description=description, tags=list(tags))
        ),
        metadata=md,
    )


def widget(widgets, md, dashboard_id: str, title: str, description: str = "", x: int = 0) -> w.Widget:
    spec = w.Widget(
        dashboard_id=dashboard_id,
        title=title,
        description=description,
        position=w.GridPosition(x=x, y=0, width=2, height=2),
        heatmap=CONFIGS["heatmap"],
    )
    return widgets.CreateWidget(w.CreateWidgetRequest(widget=spec), metadata=md)


def find(search, md, text: str, **kw) -> list[s.SearchResult]:
    return list(search.Search(s.SearchRequest(query=text, **kw), metadata=md).results)


def ids(results) -> list[str]:
    return [r.id for r in results]


def test_finds_dashboards_widgets_and_queries_by_word(search, dashboards, widgets, queries, admin, facility):
    sepsis = board(dashboards, admin, facility, "Sepsis bundle compliance", "Time to antibiotics")
    beds = board(dashboards, admin, facility, "Bed management", "Beds by unit")
    alerts = widget(widgets, admin, beds.id, "Sepsis alerts", "Patients screened positive")
    cohort = queries.CreateQuery(
        q.CreateQueryRequest(query=q.Query(facility_id=facility, name="sepsis cohort", sql="SELECT 1 AS n")),
        metadata=admin,
    )
    results = find(search, admin, "sepsis")
    by_id = {r.id: r for r in results}
    assert set(by_id) == {sepsis.id, alerts.id, cohort.id}
    assert by_id[sepsis.id].kind == DASHBOARD and by_id[sepsis.id].dashboard_id == sepsis.id
    assert by_id[alerts.id].kind == WIDGET and by_id[alerts.id].dashboard_id == beds.id
    assert by_id[cohort.id].kind == QUERY and by_id[cohort.id].dashboard_id == ""
    assert all(r.facility_id == facility and r.score >= 2 for r in results)  # all title matches
    # Stemming: "antibiotic" finds "antibiotics" in a description.
    assert ids(find(search, admin, "antibiotic")) == [sepsis.id]
    # Kinds filter.
    assert ids(find(search, admin, "sepsis", kinds=[WIDGET])) == [alerts.id]
    assert set(ids(find(search, admin, "sepsis", kinds=[DASHBOARD, QUERY]))) == {sepsis.id, cohort.id}


@pytest.fixture
def trigrams(migrated) -> None:
    """Misspelt words need pg_trgm, which the embedded PostgreSQL lacks (migration 0013)."""
    with psycopg.connect(migrated.replace("postgresql+psycopg://", "postgresql://")) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").fetchone() is None:
            pytest.skip("this PostgreSQL has no pg_trgm")


def test_a_misspelt_word_still_finds_the_title(search, dashboards, admin, facility, trigrams):
    target = board(dashboards, admin, facility, "Infection control weekly")
    board(dashboards, admin, facility, "Pharmacy stock")
    assert find(search, admin, "infecton") != []
    results = find(search, admin, "infecton")
    assert ids(results) == [target.id]
    assert 0 < results[0].score < 1  # below every word match
    assert ids(find(search, admin, "contrl weekly")) == [target.id]


def test_title_matches_rank_before_tags_before_descriptions(search, dashboards, admin, facility):
    in_description = board(dashboards, admin, facility, "Quality board", "Includes the boarding census")
    in_tags = board(dashboards, admin, facility, "Emergency flow", tags=("census",))
    in_title = board(dashboards, admin, facility, "Census overview")
    results = find(search, admin, "census")
    assert ids(results) == [in_title.id, in_tags.id, in_description.id]
    assert results[0].score > results[1].score > results[2].score


def test_snippet_highlights_the_matched_words(search, dashboards, admin, facility):
    made = board(
        dashboards, admin, facility, "Readmissions", "Thirty day readmission rates by <b>ward</b> and discharge team"
    )
    (result,) = find(search, admin, "discharge")
    assert result.id == made.id
    # Plain text: markup in a description is dropped by PostgreSQL's parser, never passed on.
    assert "ward" in result.snippet and "<" not in result.snippet
    spans = [result.snippet[h.start : h.end] for h in result.highlights]
    assert spans == ["discharge"]


def test_pages_cover_every_match_once(search, dashboards, admin, facility):
    made = {board(dashboards, admin, facility, f"Triage dashboard {i}").id for i in range(7)}
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = search.Search(s.SearchRequest(query="triage", page_size=3, page_token=token), metadata=admin)
        seen += ids(reply.results)
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert pages == 3 and len(seen) == 7 and set(seen) == made
    first = search.Search(s.SearchRequest(query="triage", page_size=3), metadata=admin)
    expect_failure(
        lambda: search.Search(
            s.SearchRequest(query="census", page_size=3, page_token=first.next_page_token), metadata=admin
        ),
        Code.INVALID_ARGUMENT,
        field="page_token",
    )


def test_never_returns_what_the_caller_may_not_see(search, dashboards, widgets, queries, shares, auth, facility):
    owner = auth("search-owner", "editor", facility)
    viewer = auth("search-viewer", "viewer", facility)
    stranger_facility = f"fac-{uuid.uuid4().hex[:10]}"
    stranger = auth("search-stranger", "admin", stranger_facility)
    word = f"zebra{uuid.uuid4().hex[:6]}"

    private = board(dashboards, owner, facility, f"{word} private")
    widget(widgets, owner, private.id, f"{word} private widget")
    shared = board(dashboards, owner, facility, f"{word} shared")
    shares.ShareDashboard(
        sh.ShareDashboardRequest(dashboard_id=shared.id, level=sh.SHARE_LEVEL_VIEW, user_id="search-viewer"),
        metadata=owner,
    )
    # Public and published, then changed: the draft's words must not be found by a reader of the
    # published version; the published state itself is found.
    public = board(dashboards, owner, facility, f"{word} public")
    update = d.Dashboard(id=public.id, visibility=d.VISIBILITY_PUBLIC)
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(dashboard=update, update_mask=field_mask_pb2.FieldMask(paths=["visibility"])),
        metadata=owner,
    )
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=public.id), metadata=owner)
    public_draft = board(dashboards, owner, facility, "quiet title")
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=public_draft.id, visibility=d.VISIBILITY_PUBLIC),
            update_mask=field_mask_pb2.FieldMask(paths=["visibility"]),
        ),
        metadata=owner,
    )
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=public_draft.id), metadata=owner)
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=public_draft.id, title=f"{word} unpublished draft"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=owner,
    )
    queries.CreateQuery(
        q.CreateQueryRequest(query=q.Query(facility_id=facility, name=f"{word} query", sql="SELECT 1 AS n")),
        metadata=owner,
    )
    elsewhere = board(dashboards, stranger, stranger_facility, f"{word} elsewhere")

    seen_by_viewer = {r.title for r in find(search, viewer, word, page_size=100)}
    assert seen_by_viewer == {f"{word} shared", f"{word} public"}
    seen_by_owner = {r.title for r in find(search, owner, word, page_size=100)}
    assert seen_by_owner == {
        f"{word} private",
        f"{word} private widget",
        f"{word} shared",
        f"{word} public",
        f"{word} unpublished draft",
        f"{word} query",
    }
    assert ids(find(search, stranger, word, page_size=100)) == [elsewhere.id]
    # Misspelt: the trigram path is restricted the same way.
    typo = word[:-1]
    assert {r.title for r in find(search, viewer, typo, page_size=100)} <= seen_by_viewer
    # A public link does not search.
    link = shares.CreatePublicLink(sh.CreatePublicLinkRequest(dashboard_id=public.id), metadata=owner)
    expect_failure(
        lambda: search.Search(s.SearchRequest(query=word), metadata=(("x-tessera-link", link.token),)),
        Code.PERMISSION_DENIED,
    )


def test_favorites_are_listed_first_on_request(search, dashboards, auth, facility):
    owner = auth("fav-owner", "editor", facility)
    made = [board(dashboards, owner, facility, f"Ward {i} beds") for i in range(5)]
    # Favorites: the oldest and the middle one (plain order is newest first).
    for favorite in (made[0], made[2]):
        added = search.AddFavorite(s.AddFavoriteRequest(dashboard_id=favorite.id), metadata=owner)
        assert added.dashboard_id == favorite.id and added.create_time.seconds > 0
    again = search.AddFavorite(s.AddFavoriteRequest(dashboard_id=made[0].id), metadata=owner)
    assert again.dashboard_id == made[0].id  # adding twice changes nothing

    listed = search.ListFavorites(s.ListFavoritesRequest(), metadata=owner)
    assert [f.dashboard_id for f in listed.favorites] == [made[2].id, made[0].id]
    assert listed.favorites[0].dashboard.title == "Ward 2 beds"

    def all_pages(**kw) -> list[str]:
        out: list[str] = []
        token = ""
        while True:
            reply = dashboards.ListDashboards(
                d.ListDashboardsRequest(facility_id=facility, page_size=2, page_token=token, **kw), metadata=owner
            )
            out += [b.id for b in reply.dashboards]
            token = reply.next_page_token
            if not token:
                return out

    newest_first = [b.id for b in reversed(made)]
    assert all_pages() == newest_first
    assert all_pages(favorites_first=True) == [made[2].id, made[0].id, made[4].id, made[3].id, made[1].id]
    assert all_pages(favorites_first=True, order_by="title") == [
        made[0].id,
        made[2].id,
        made[1].id,
        made[3].id,
        made[4].id,
    ]
    results = find(search, owner, "ward", favorites_first=True)
    assert ids(results)[:2] in ([made[0].id, made[2].id], [made[2].id, made[0].id])
    assert [r.favorite for r in results] == [True, True, False, False, False]

    search.RemoveFavorite(s.RemoveFavoriteRequest(dashboard_id=made[0].id), metadata=owner)
    assert [f.dashboard_id for f in search.ListFavorites(s.ListFavoritesRequest(), metadata=owner).favorites] == [
        made[2].id
    ]
    expect_failure(
        lambda: search.RemoveFavorite(s.RemoveFavoriteRequest(dashboard_id=made[0].id), metadata=owner),
        Code.NOT_FOUND,
    )


def test_favorites_only_of_dashboards_the_caller_can_read(search, dashboards, shares, auth, facility):
    owner = auth("fav-owner-2", "editor", facility)
    other = auth("fav-other", "viewer", facility)
    stranger = auth("fav-stranger", "admin", f"fac-{uuid.uuid4().hex[:10]}")
    private = board(dashboards, owner, facility, "Private board")
    for md in (other, stranger):
        expect_failure(
            lambda md=md: search.AddFavorite(s.AddFavoriteRequest(dashboard_id=private.id), metadata=md),
            Code.NOT_FOUND,
        )
    grant = shares.ShareDashboard(
        sh.ShareDashboardRequest(dashboard_id=private.id, level=sh.SHARE_LEVEL_VIEW, user_id="fav-other"),
        metadata=owner,
    )
    search.AddFavorite(s.AddFavoriteRequest(dashboard_id=private.id), metadata=other)
    assert len(search.ListFavorites(s.ListFavoritesRequest(), metadata=other).favorites) == 1
    # Access lost: the favorite is no longer listed (and may still be removed).
    shares.UnshareDashboard(sh.UnshareDashboardRequest(dashboard_id=private.id, user_id=grant.user_id), metadata=owner)
    assert list(search.ListFavorites(s.ListFavoritesRequest(), metadata=other).favorites) == []
    search.RemoveFavorite(s.RemoveFavoriteRequest(dashboard_id=private.id), metadata=other)
    # Gone with the dashboard.
    search.AddFavorite(s.AddFavoriteRequest(dashboard_id=private.id), metadata=owner)
    dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=private.id), metadata=owner)
    assert list(search.ListFavorites(s.ListFavoritesRequest(), metadata=owner).favorites) == []


def test_bad_requests_are_refused_by_field(search, admin):
    expect_failure(
        lambda: search.Search(s.SearchRequest(query=""), metadata=admin), Code.INVALID_ARGUMENT, field="query"
    )
    expect_failure(lambda: search.Search(s.SearchRequest(query="x", kinds=[0]), metadata=admin), Code.INVALID_ARGUMENT)
    expect_failure(
        lambda: search.Search(s.SearchRequest(query="x", page_token="garbage"), metadata=admin),
        Code.INVALID_ARGUMENT,
        field="page_token",
    )
    expect_failure(
        lambda: search.AddFavorite(s.AddFavoriteRequest(dashboard_id="nope"), metadata=admin),
        Code.INVALID_ARGUMENT,
        field="dashboard_id",
    )


def test_search_and_favorites_are_audited(server, search, dashboards, shares, auth, facility):
    actor = f"audited-{uuid.uuid4().hex[:6]}"
    md = auth(actor, "admin", facility)
    made = board(dashboards, md, facility, "Audited board")
    find(search, md, "audited")
    search.AddFavorite(s.AddFavoriteRequest(dashboard_id=made.id), metadata=md)
    search.ListFavorites(s.ListFavoritesRequest(), metadata=md)
    search.RemoveFavorite(s.RemoveFavoriteRequest(dashboard_id=made.id), metadata=md)
    expect_failure(
        lambda: search.RemoveFavorite(s.RemoveFavoriteRequest(dashboard_id=made.id), metadata=md), Code.NOT_FOUND
    )

    async def flush() -> None:
        await server.running.app.audit.flush()

    server.run(flush())
    found = [
        (e.method.rsplit("/", 1)[-1], e.resource_type, e.resource_id, e.facility_id, e.outcome)
        for e in shares.ListAuditEvents(
            sh.ListAuditEventsRequest(actor=actor, facility_id=facility, page_size=100), metadata=md
        ).events
        if "SearchService" in e.method
    ]
    by_method = {method: (kind, rid, fac) for method, kind, rid, fac, _ in found}
    assert by_method["Search"][0] == "search"
    assert by_method["AddFavorite"] == ("dashboard", made.id, facility)
    assert by_method["RemoveFavorite"] == ("dashboard", made.id, facility)
    assert "ListFavorites" in by_method
    outcomes = [outcome for method, *_, outcome in found if method == "RemoveFavorite"]
    assert len(outcomes) == 2 and len(set(outcomes)) == 2  # one allowed, one refused
