"""Authentication: every rpc needs a valid bearer token; every failure is UNAUTHENTICATED."""

from __future__ import annotations

import base64
import json
import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from server.auth.tokens import mint_token
from tests.conftest import TEST_SECRET
from tests.harness.rpc import expect_failure

LIST = d.ListDashboardsRequest()


def claims(**over):
    now = int(time.time())
    base = {
        "sub": "u",
        "iss": "tessera",
        "aud": "tessera",
        "iat": now,
        "exp": now + 600,
        "roles": ["admin"],
        "facilities": ["f"],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def bearer(token: str):
    return (("authorization", f"Bearer {token}"),)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

BAD_TOKENS = {
    "expired": jwt.encode(claims(exp=int(time.time()) - 3600), TEST_SECRET, algorithm="HS256"),
    "not yet valid": jwt.encode(claims(nbf=int(time.time()) + 3600), TEST_SECRET, algorithm="HS256"),
    "wrong signature": jwt.encode(claims(), "some-other-secret-of-enough-length", algorithm="HS256"),
    "wrong issuer": jwt.encode(claims(iss="evil"), TEST_SECRET, algorithm="HS256"),
    "wrong audience": jwt.encode(claims(aud="other-service"), TEST_SECRET, algorithm="HS256"),
    "no expiry": jwt.encode(claims(exp=None), TEST_SECRET, algorithm="HS256"),
    "no subject": jwt.encode(claims(sub=None), TEST_SECRET, algorithm="HS256"),
    "no role": jwt.encode(claims(roles=["superuser"]), TEST_SECRET, algorithm="HS256"),
    "no facility": jwt.encode(claims(facilities=[]), TEST_SECRET, algorithm="HS256"),
    "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}.",
    "forged signature": f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims())}.forged",
    "rs256 unknown key": jwt.encode(claims(), RSA_KEY, algorithm="RS256"),
    "malformed": "not.a.jwt",
    "garbage": "x",
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_bad_token_is_unauthenticated(dashboards, name):
    expect_failure(
        lambda: dashboards.ListDashboards(LIST, metadata=bearer(BAD_TOKENS[name])), grpc.StatusCode.UNAUTHENTICATED
    )


def test_missing_token_is_unauthenticated(dashboards, widgets, queries):
    for call in (lambda: dashboards.ListDashboards(LIST), lambda: queries.ListQueries(q.ListQueriesRequest())):
        expect_failure(call, grpc.StatusCode.UNAUTHENTICATED, reason="MISSING_CREDENTIALS")


def test_wrong_scheme_is_unauthenticated(dashboards, settings):
    token = mint_token(settings, subject="u", roles=["admin"], facilities=["f"])
    expect_failure(
        lambda: dashboards.ListDashboards(LIST, metadata=(("authorization", f"Basic {token}"),)),
        grpc.StatusCode.UNAUTHENTICATED,
    )


def test_valid_token_passes(dashboards, settings):
    token = mint_token(settings, subject="u", roles=["viewer"], facilities=["f"])
    assert dashboards.ListDashboards(LIST, metadata=bearer(token)) is not None


def test_auth_runs_before_validation(dashboards):
    # An unauthenticated caller learns nothing about the request's shape.
    expect_failure(
        lambda: dashboards.GetDashboard(d.GetDashboardRequest(id="not-a-uuid")), grpc.StatusCode.UNAUTHENTICATED
    )
