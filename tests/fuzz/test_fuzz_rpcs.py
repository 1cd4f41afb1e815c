"""Every rpc of the five services, fuzzed from its descriptor (tests/fuzz/strategies.py), as an
admin, a viewer, a public link's holder and a caller without a token: empty requests, hostile requests, plausible
requests as they are and with one field made hostile, and bytes that are not the message. No answer may be
INTERNAL or UNKNOWN; after each rpc's run the server still answers health SERVING and the audit
log has written every event (nothing pending, nothing dead-lettered).

CI runs a fixed-seed slice (48 examples per rpc, over 2,000 calls); `python -m bench --only fuzz`
runs a long one (TESSERA_FUZZ_EXAMPLES)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import strategies
from tests.fuzz.conftest import examples_per_rpc
from tests.fuzz.runner import METHODS, Fuzzer, acceptable, path, server_is_well
from tests.harness.server import ServerHandle

KINDS = ("hostile", "mutated", "plausible", "bytes")


def _payload(data: st.DataObject, method: MethodDescriptor, ids: dict[str, list[str]]) -> bytes:
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    descriptor = method.input_type
    if kind == "bytes":
        return data.draw(strategies.wire_bytes(descriptor, ids), label="bytes")
    strategy = {
        "hostile": strategies.hostile(descriptor),
        "mutated": strategies.mutated(descriptor, ids),
        "plausible": strategies.plausible(descriptor, ids),
    }[kind]
    message = data.draw(strategy, label="request")
    return message.SerializeToString()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_no_input_gets_internal_or_unknown(
    method: MethodDescriptor, fuzzer: Fuzzer, fuzz_ids: dict[str, list[str]], server: ServerHandle
) -> None:
    for principal in fuzzer.principals:
        answer = fuzzer.send(method, b"", principal)
        assert acceptable(method, answer), f"{path(method)} empty request as {principal}: {answer}"

    @settings(
        max_examples=examples_per_rpc(),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: Any) -> None:
        principal = data.draw(st.sampled_from(fuzzer.principals), label="principal")
        payload = _payload(data, method, fuzz_ids)
        answer = fuzzer.send(method, payload, principal)
        assert acceptable(method, answer), f"{path(method)} as {principal}: {answer.code.name} {answer.details!r}"

    run()
    server_is_well(server, fuzzer.channel)
