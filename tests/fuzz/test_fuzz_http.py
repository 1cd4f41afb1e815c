"""Every `google.api.http` binding (additional bindings included), fuzzed over the HTTP face from
its request's descriptor (tests/fuzz/http_strategies.py) as an admin, a viewer, a public link's
holder and a caller without a token: hostile JSON bodies, hostile path segments and query
parameters, malformed bodies and wrong content types. No answer may be a 5xx, and every 4xx
carries a `google.rpc.Status` JSON body with its ErrorInfo; after each binding's run the server
still answers health SERVING and the audit log has written every event.

CI runs a fixed-seed slice (TESSERA_FUZZ_HTTP_EXAMPLES, 24 per binding: over 1,000 calls); `python -m bench --only
fuzz` runs a long one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from server.http.bindings import Binding, bindings
from tests.fuzz.http_runner import HttpFuzzer
from tests.fuzz.http_strategies import HttpRequest, http_requests
from tests.fuzz.runner import Fuzzer, Report, server_is_well
from tests.harness.server import ServerHandle

BINDINGS = bindings()


def examples_per_binding() -> int:
    return int(os.environ.get("TESSERA_FUZZ_HTTP_EXAMPLES", "24"))


@pytest.fixture(scope="session")
def http_fuzzer(server: ServerHandle, fuzz_report: Report) -> Iterator[HttpFuzzer]:
    fuzzer = HttpFuzzer(f"http://127.0.0.1:{server.running.http_port}", fuzz_report)
    yield fuzzer
    fuzzer.close()


@pytest.fixture(scope="session")
def http_principals(fuzz_principals: dict[str, Any], fuzz_ids: dict[str, list[str]]) -> dict[str, Any]:
    return {**fuzz_principals, "link": (("x-tessera-link", fuzz_ids["link_token"][0]),)}


@pytest.mark.parametrize("binding", BINDINGS, ids=lambda b: f"{b.verb} {b.template}")
def test_no_http_input_gets_a_5xx_or_a_bare_4xx(
    binding: Binding,
    http_fuzzer: HttpFuzzer,
    http_principals: dict[str, Any],
    fuzz_ids: dict[str, list[str]],
    fuzzer: Fuzzer,
    server: ServerHandle,
) -> None:
    strategy = http_requests(binding, fuzz_ids, http_principals)

    @settings(
        max_examples=examples_per_binding(),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: tuple[str, HttpRequest]) -> None:
        principal, request = case
        answer = http_fuzzer.send(binding, request)
        problem = answer.problem()
        assert problem is None, f"{problem} as {principal} for {request.short()}: {answer.body[:500]!r}"

    run()
    server_is_well(server, fuzzer.channel)
