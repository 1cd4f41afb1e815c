"""The HTTP router remembers matches without changing an answer: the same binding and variables
on a second lookup, a caller's changes to the variables never reach the cache, unmatched paths are
not remembered, and the cache stays bounded."""

from __future__ import annotations

from server.http import bindings as b


def test_remembered_matches_give_the_same_answer() -> None:
    router = b.Router(b.bindings())
    fresh = b.Router(b.bindings())
    for verb, path in (
        ("GET", "/api/v1/dashboard/dashboards/abc"),
        ("POST", "/api/v1/dashboard/widgets/data"),
        ("POST", "/api/v1/dashboard/exports/e1:cancel"),
    ):
        first = router.route(verb, path)
        assert first is not None
        first[1]["spoiled"] = "x"  # a caller changing its copy
        second = router.route(verb, path)
        assert second == fresh.route(verb, path)
        assert second is not None and "spoiled" not in second[1]


def test_unmatched_paths_are_not_remembered_and_the_cache_is_bounded() -> None:
    router = b.Router(b.bindings())
    assert router.route("GET", "/nothing/here") is None
    assert router._matched == {}
    for i in range(b.ROUTE_CACHE_SIZE + 10):
        assert router.route("GET", f"/api/v1/dashboard/dashboards/d{i}") is not None
    assert 0 < len(router._matched) <= b.ROUTE_CACHE_SIZE
