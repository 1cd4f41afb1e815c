"""Pure pieces of the client: the rpc table against the protos, request ids, Python values to
ParameterValue, the retry policy's decisions and delays, token caching and call metadata."""

from __future__ import annotations

import datetime as dt

import grpc
import jwt
import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2, export_pb2, query_pb2, share_pb2, widget_pb2
from tessera_client import rpcs
from tessera_client.credentials import CachedToken, CallAuth
from tessera_client.errors import AbortedError, ApiError, NotFoundError, UnavailableError, error_from_status
from tessera_client.retry import Idempotency, RetryPolicy, is_refusal
from tessera_client.values import date_range, parameter_value, table
from tests.client.scripted import error_info, retry_info

MODULES = (dashboard_pb2, widget_pb2, query_pb2, export_pb2, share_pb2)


def test_the_rpc_table_is_every_rpc_of_the_protos_with_its_types() -> None:
    declared = {(r.service, r.method): r for r in rpcs.ALL}
    seen = set()
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                key = (service.full_name, method.name)
                seen.add(key)
                assert key in declared, f"{key} is missing from tessera_client.rpcs"
                rpc = declared[key]
                assert rpc.request_type.DESCRIPTOR.full_name == method.input_type.full_name, key
                assert rpc.response_type.DESCRIPTOR.full_name == method.output_type.full_name, key
                assert isinstance(rpc, rpcs.ServerStream) == method.server_streaming, key
                assert rpc.service in rpcs.STUBS
    assert seen == set(declared), f"rpcs the protos do not have: {set(declared) - seen}"
    assert len(rpcs.ALL) == 47


def test_keyed_rpcs_are_exactly_those_whose_requests_carry_request_ids() -> None:
    for rpc in rpcs.ALL:
        fields = rpc.request_type.DESCRIPTOR.fields_by_name
        batch = "requests" in fields and "request_id" in fields["requests"].message_type.fields_by_name
        carries_ids = "request_id" in fields or (batch and rpc.method.startswith("BatchCreate"))
        assert (rpc.idempotency is Idempotency.KEYED) == carries_ids, rpc.method
    reads = [r for r in rpcs.ALL if r.method.startswith(("Get", "List", "Watch", "Download", "BatchGet"))]
    assert all(r.idempotency is Idempotency.SAFE for r in reads)
    writes = [r for r in rpcs.ALL if r.method.startswith(("Update", "Delete", "Restore"))]
    assert writes and all(r.idempotency is Idempotency.UNSAFE for r in writes)


def test_request_ids_are_filled_once_and_kept_when_given() -> None:
    ids = iter(["id-1", "id-2", "id-3"])
    request = dashboard_pb2.CreateDashboardRequest(dashboard=dashboard_pb2.Dashboard(title="t"))
    keyed = rpcs.with_request_ids(rpcs.CREATE_DASHBOARD, request, lambda: next(ids))
    assert keyed.request_id == "id-1" and request.request_id == "", "the caller's request is not changed"
    assert rpcs.with_request_ids(rpcs.CREATE_DASHBOARD, keyed, lambda: next(ids)) is keyed
    batch = export_pb2.BatchCreateExportsRequest(
        requests=[export_pb2.CreateExportRequest(request_id="mine"), export_pb2.CreateExportRequest()]
    )
    filled = rpcs.with_request_ids(rpcs.BATCH_CREATE_EXPORTS, batch, lambda: next(ids))
    assert [r.request_id for r in filled.requests] == ["mine", "id-2"]
    get = dashboard_pb2.GetDashboardRequest(id="x")
    assert rpcs.with_request_ids(rpcs.GET_DASHBOARD, get, lambda: "never") is get


def test_python_values_become_parameter_values() -> None:
    assert parameter_value(True) == c.ParameterValue(bool_value=True)
    assert parameter_value(65) == c.ParameterValue(int_value=65)
    assert parameter_value(2.5) == c.ParameterValue(double_value=2.5)
    assert parameter_value("ICU") == c.ParameterValue(string_value="ICU")
    day = parameter_value(dt.date(2026, 2, 28))
    assert (day.date_value.year, day.date_value.month, day.date_value.day) == (2026, 2, 28)
    stamp = parameter_value(dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert stamp.timestamp_value.ToDatetime(tzinfo=dt.UTC) == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    listed = parameter_value(["ICU", "ER"])
    assert [v.string_value for v in listed.list_value.values] == ["ICU", "ER"]
    span = date_range(dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert span.date_range_value.end.day == 31
    with pytest.raises(ValueError, match="when: a naive datetime"):
        parameter_value(dt.datetime(2026, 1, 1), name="when")
    with pytest.raises(ValueError, match="units: nested lists"):
        parameter_value([["a"]], name="units")
    with pytest.raises(TypeError, match="cost: Decimal is not a parameter value"):
        from decimal import Decimal

        parameter_value(Decimal("1.5"), name="cost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ends"):
        date_range(dt.date(2026, 2, 1), dt.date(2026, 1, 1))


def test_table_shows_nulls_as_empty_text() -> None:
    frame = c.DataFrame(
        row_count=2,
        columns=[
            c.Column(
                name="n", type=c.COLUMN_TYPE_INT64, int64_values=c.Int64Values(values=[1, 0]), nulls=[False, True]
            ),
            c.Column(name="s", type=c.COLUMN_TYPE_STRING, string_values=c.StringValues(values=["a", "b"])),
        ],
    )
    assert table(frame) == (["n", "s"], [["1", "a"], ["", "b"]])


def _error(code: grpc.StatusCode, reason: str = "", *details: Message) -> ApiError:
    infos = [error_info(reason)] if reason else []
    return error_from_status(status_pb2.Status(code=code.value[0], message="m", details=_packed(*infos, *details)))


def _packed(*details: Message) -> list[any_pb2.Any]:
    out = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        out.append(item)
    return out


def test_retry_decisions_depend_on_the_rpc_and_the_error() -> None:
    policy = RetryPolicy()
    unavailable = _error(grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
    for safe in (Idempotency.SAFE, Idempotency.KEYED, Idempotency.IDEMPOTENT):
        assert policy.retryable(unavailable, safe)
        assert policy.retryable(_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "DATA_SOURCE_BUSY"), safe)
        assert policy.retryable(_error(grpc.StatusCode.ABORTED, "CONFLICT"), safe)
        assert not policy.retryable(_error(grpc.StatusCode.ABORTED, "ETAG_MISMATCH"), safe), "a stale etag stays stale"
        assert not policy.retryable(_error(grpc.StatusCode.NOT_FOUND, "DASHBOARD_NOT_FOUND"), safe)
        assert not policy.retryable(_error(grpc.StatusCode.DEADLINE_EXCEEDED), safe)
    assert not policy.retryable(unavailable, Idempotency.UNSAFE)
    assert RetryPolicy(retry_unsafe=True).retryable(unavailable, Idempotency.UNSAFE)
    assert policy.delay_before_retry(policy.max_attempts, unavailable, Idempotency.SAFE) is None
    assert isinstance(unavailable, UnavailableError) and isinstance(_error(grpc.StatusCode.ABORTED), AbortedError)
    assert isinstance(_error(grpc.StatusCode.NOT_FOUND), NotFoundError)


def test_backoff_is_exponential_with_full_jitter_and_honours_retry_info() -> None:
    top = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0, random=lambda: 1.0)
    assert [top.backoff(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    bottom = RetryPolicy(random=lambda: 0.0)
    assert bottom.backoff(3) == 0.0
    jittered = RetryPolicy(initial_backoff=0.1, max_backoff=1.0)
    delays = [jittered.backoff(4) for _ in range(200)]
    assert all(0 <= d <= 0.8 for d in delays) and len(set(delays)) > 100, "uniform in [0, cap]"
    advised = _error(grpc.StatusCode.UNAVAILABLE, "BUSY", retry_info(2.5))
    assert advised.retry_delay == pytest.approx(2.5)
    assert bottom.delay_before_retry(1, advised, Idempotency.SAFE) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_a_refusal_is_retried_for_every_rpc_never_before_its_advice() -> None:
    """Refused before any work (load shedding, rate limits): safe to repeat even for an update;
    the wait is RetryInfo's delay plus the backoff's jitter, never less than the advice."""
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0)
    for reason in ("SERVER_OVERLOADED", "RATE_LIMITED"):
        refused = _error(grpc.StatusCode.RESOURCE_EXHAUSTED, reason, retry_info(0.3))
        assert is_refusal(refused)
        for idempotency in Idempotency:
            assert policy.retryable(refused, idempotency), (reason, idempotency)
        delays = [policy.delay_before_retry(2, refused, Idempotency.UNSAFE) for _ in range(200)]
        assert all(d is not None and 0.3 <= d <= 0.3 + 0.2 for d in delays), "advice + jitter up to the cap"
        assert len(set(delays)) > 100, "jittered"
        assert policy.delay_before_retry(policy.max_attempts, refused, Idempotency.UNSAFE) is None
    busy = _error(grpc.StatusCode.RESOURCE_EXHAUSTED, "DATA_SOURCE_BUSY", retry_info(0.3))
    assert not is_refusal(busy) and not policy.retryable(busy, Idempotency.UNSAFE), "other rules as they were"
    assert not is_refusal(_error(grpc.StatusCode.UNAVAILABLE, "SERVER_OVERLOADED"))
    unadvised = _error(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert RetryPolicy(random=lambda: 0.5, initial_backoff=0.2).delay(1, unadvised) == pytest.approx(0.1)
    no_exhausted = RetryPolicy(retryable_codes=frozenset({grpc.StatusCode.UNAVAILABLE}))
    assert not no_exhausted.retryable(unadvised, Idempotency.SAFE), "a policy without the code retries no refusal"


def _jwt(exp: float | None) -> str:
    claims = {"sub": "u"} | ({"exp": int(exp)} if exp is not None else {})
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


def test_cached_token_refreshes_before_exp_and_after_invalidate() -> None:
    now = [1000.0]
    issued: list[str] = []

    def fetch() -> str:
        issued.append(_jwt(now[0] + 100))
        return issued[-1]

    token = CachedToken(fetch, leeway=30, clock=lambda: now[0])
    first = token()
    now[0] += 60
    assert token() == first and token.fetches == 1, "still 40 s from exp"
    now[0] += 11
    assert token() != first and token.fetches == 2, "within the leeway: a new one"
    token.invalidate()
    token()
    assert token.fetches == 3
    opaque = CachedToken(lambda: "not-a-jwt")
    assert opaque() == opaque() == "not-a-jwt" and opaque.fetches == 1
    with pytest.raises(ValueError, match="empty token"):
        CachedToken(lambda: "")()


def test_call_metadata_for_each_kind_of_credential() -> None:
    assert CallAuth("abc").metadata() == (("authorization", "Bearer abc"),)
    assert CallAuth("Bearer abc").metadata() == (("authorization", "Bearer abc"),)
    assert CallAuth(link_token="lnk").metadata() == (("x-tessera-link", "lnk"),)
    assert CallAuth(lambda: "fresh", correlation_id="c-1").metadata() == (
        ("authorization", "Bearer fresh"),
        ("x-correlation-id", "c-1"),
    )
    assert CallAuth().metadata() == ()
    assert CallAuth(lambda: "x").refreshable and not CallAuth("x").refreshable
    with pytest.raises(ValueError, match="either token or link_token"):
        CallAuth("a", "b")
    with pytest.raises(ValueError, match="token is empty"):
        CallAuth(" ")


def test_error_objects_expose_every_known_detail() -> None:
    details = [
        error_info("QUOTA", correlation_id="cid-9", resource_id="r1"),
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field="dashboard.title", description="required"),
                error_details_pb2.BadRequest.FieldViolation(field="dashboard.tags[0]", description="bad tag"),
            ]
        ),
        retry_info(0.25),
        error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(type="GRID", subject="w1", description="overlap")
            ]
        ),
        error_details_pb2.QuotaFailure(
            violations=[error_details_pb2.QuotaFailure.Violation(subject="fac", description="too many")]
        ),
        error_details_pb2.ResourceInfo(resource_type="dashboard", resource_name="d1"),
        error_details_pb2.Help(links=[error_details_pb2.Help.Link(description="docs", url="https://x")]),
        error_details_pb2.LocalizedMessage(locale="en", message="Try later"),
        error_details_pb2.DebugInfo(detail="trace"),
    ]
    error = _error(grpc.StatusCode.RESOURCE_EXHAUSTED, "", *details, widget_pb2.Widget(id="unknown detail type"))
    assert (error.reason, error.domain, error.correlation_id) == ("QUOTA", "tessera.dashboard.v1", "cid-9")
    assert error.metadata == {"correlation_id": "cid-9", "resource_id": "r1"}
    assert error.field_violations == [("dashboard.title", "required"), ("dashboard.tags[0]", "bad tag")]
    assert error.fields == ["dashboard.title", "dashboard.tags[0]"]
    assert error.retry_delay == pytest.approx(0.25)
    assert [(v.type, v.subject, v.description) for v in error.precondition_violations] == [("GRID", "w1", "overlap")]
    assert [(v.subject, v.description) for v in error.quota_violations] == [("fac", "too many")]
    assert error.resource_info is not None and error.resource_info.resource_name == "d1"
    assert error.help_links == [("docs", "https://x")]
    assert error.localized_message == "Try later"
    assert error.debug_info is not None and error.debug_info.detail == "trace"
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and error.details() == "m"
    assert len(error.rpc_details) == len(details), "a detail of an unknown type is skipped"
    assert "dashboard.title: required" in str(error) and "[QUOTA]" in str(error)
    bare = ApiError("plain")
    assert (bare.reason, bare.field_violations, bare.retry_delay, bare.metadata) == ("", [], None, {})
