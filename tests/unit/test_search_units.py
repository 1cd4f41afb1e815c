"""Search's pure parts: the client's rpc table against the descriptor, snippets' highlight ranges."""

from __future__ import annotations

import pytest

from dashboard.v1 import search_pb2
from server.search.highlight import START, STOP, parse
from tessera_client import rpcs, search_rpcs
from tessera_client.search import KINDS, Search


def test_the_client_table_is_every_search_rpc_with_its_types() -> None:
    service = search_pb2.DESCRIPTOR.services_by_name["SearchService"]
    declared = {r.method: r for r in search_rpcs.SEARCH_RPCS}
    assert set(declared) == {m.name for m in service.methods}
    for method in service.methods:
        rpc = declared[method.name]
        assert rpc.service == service.full_name and rpc.service in rpcs.STUBS
        assert rpc.request_type.DESCRIPTOR.full_name == method.input_type.full_name
        assert rpc.response_type.DESCRIPTOR.full_name == method.output_type.full_name
        assert isinstance(rpc, rpcs.ServerStream) == method.server_streaming
        assert (rpc.idempotency is rpcs.KEYED) == ("request_id" in rpc.request_type.DESCRIPTOR.fields_by_name)
    assert set(KINDS.values()) == {v.number for v in search_pb2.SearchResultKind.DESCRIPTOR.values if v.number}, (
        "every kind is nameable"
    )


def test_marks_become_ranges_over_the_plain_snippet() -> None:
    snippet = parse(f"Time to {START}antibiotics{STOP} in {START}sepsis{STOP} - ward 5")
    assert snippet.text == "Time to antibiotics in sepsis - ward 5"
    assert [snippet.text[a:b] for a, b in snippet.highlights] == ["antibiotics", "sepsis"]


def test_ranges_count_code_points_and_ignore_stray_or_empty_marks() -> None:
    snippet = parse(f"Ünïcödé {START}naïve{STOP} {STOP}x{START}{STOP} {START}open")
    assert snippet.text == "Ünïcödé naïve x open"
    assert snippet.highlights == ((8, 13),)
    assert parse("").highlights == ()


def test_unknown_kinds_are_refused_before_any_call() -> None:
    class Never:
        def call(self, *args: object) -> None:
            raise AssertionError("called")

        def pages(self, *args: object) -> None:
            raise AssertionError("called")

    with pytest.raises(ValueError, match="unknown kind"):
        Search(Never()).find("x", kinds=["chart"])  # type: ignore[arg-type]
