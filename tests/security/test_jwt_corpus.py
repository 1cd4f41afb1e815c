"""The JWT corpus (issue 6, adversarial suite), over real gRPC.

A server of its own trusts two keys, as a deployment moving from development to an identity
provider would: an HS256 secret and an RSA public key (RS256). Every token of the corpus is sent
to a unary rpc, a data rpc and a server-streaming rpc; each must answer UNAUTHENTICATED with the
expected ErrorInfo reason, and the answer must never echo the token. Control tokens (valid HS256
and RS256, inside the clock leeway) must get past authentication on the same rpcs, so the
refusals are about the token and nothing else. Last, the refused calls must all be in the audit
log (aggregated: the counts add up to every refused call), without the tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import psycopg
import psycopg.rows
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from server.db.migrate import sync_url
from tests.harness.rpc import failure_of
from tests.harness.server import start_in_thread

Code = grpc.StatusCode
SECRET = "tessera-corpus-secret-0123456789abcdef"
LEEWAY = 120  # wide, so the in-leeway controls stay inside it on a slow machine

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
DER = RSA_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "corpus-user",
        "iss": "tessera",
        "aud": "tessera",
        "iat": now,
        "exp": now + 600,
        "roles": ["admin"],
        "facilities": ["corpus-facility"],
        "permissions": ["phi:read"],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(value: Any) -> str:
    return b64(json.dumps(value).encode())


def hs(payload: dict[str, Any], key: str | bytes = SECRET, **header: Any) -> str:
    return jwt.encode(payload, key, algorithm="HS256", headers=header or None)


def raw_hmac(header: dict[str, Any], payload: Any, key: bytes) -> str:
    """Signs by hand, as an attacker would: PyJWT refuses to use a PEM public key as an HMAC secret."""
    digest = {"HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(header.get("alg", ""), hashlib.sha256)
    signing_input = f"{seg(header)}.{seg(payload)}"
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), digest).digest())}"


def unsigned(alg: str, signature: str = "") -> str:
    return f"{seg({'alg': alg, 'typ': 'JWT'})}.{seg(claims())}.{signature}"


def tampered() -> str:
    """A valid viewer token whose payload was edited to admin, the signature kept."""
    header, _, signature = hs(claims(roles=["viewer"])).split(".")
    return f"{header}.{seg(claims(roles=['admin']))}.{signature}"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


ATTACKER_JWK = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(OTHER_RSA.public_key()))

Corpus = dict[str, tuple[tuple[tuple[str, str], ...], str]]


def make_corpus() -> Corpus:
    """name -> (call metadata, expected ErrorInfo reason). Made when the corpus runs (the times
    are relative to then), not when the module is imported."""
    now = int(time.time())
    return {
        # missing / not a bearer token
        "missing": ((), "MISSING_CREDENTIALS"),
        "empty bearer": ((("authorization", "Bearer "),), "TOKEN_INVALID"),
        "basic scheme": ((("authorization", f"Basic {hs(claims())}"),), "TOKEN_INVALID"),
        "token without scheme": ((("authorization", hs(claims())),), "TOKEN_INVALID"),
        # malformed
        "one segment": (bearer("x"), "TOKEN_INVALID"),
        "not base64": (bearer("not.a.jwt"), "TOKEN_INVALID"),
        "two segments": (bearer(hs(claims()).rsplit(".", 1)[0]), "TOKEN_INVALID"),
        "four segments": (bearer(hs(claims()) + ".x"), "TOKEN_INVALID"),
        "five segments (JWE shape)": (bearer("a.b.c.d.e"), "TOKEN_INVALID"),
        "empty segments": (bearer(".."), "TOKEN_INVALID"),
        "header not JSON": (bearer(f"{b64(b'{not json')}.{seg(claims())}.sig"), "TOKEN_INVALID"),
        "header a list": (bearer(f"{seg([1])}.{seg(claims())}.sig"), "TOKEN_INVALID"),
        "payload a list": (bearer(raw_hmac({"alg": "HS256"}, [1], SECRET.encode())), "TOKEN_INVALID"),
        "no alg": (bearer(f"{seg({'typ': 'JWT'})}.{seg(claims())}.sig"), "TOKEN_ALGORITHM"),
        "alg a number": (bearer(f"{seg({'alg': 256})}.{seg(claims())}.sig"), "TOKEN_ALGORITHM"),
        # time
        "expired": (bearer(hs(claims(exp=now - LEEWAY - 60))), "TOKEN_EXPIRED"),
        "expired RS256": (bearer(jwt.encode(claims(exp=now - 3600), RSA_KEY, algorithm="RS256")), "TOKEN_EXPIRED"),
        "not yet valid (nbf)": (bearer(hs(claims(nbf=now + LEEWAY + 600))), "TOKEN_NOT_YET_VALID"),
        "issued in the future (iat)": (bearer(hs(claims(iat=now + LEEWAY + 600))), "TOKEN_NOT_YET_VALID"),
        "no exp": (bearer(hs(claims(exp=None))), "TOKEN_INVALID"),
        "exp not a number": (bearer(hs(claims(exp="tomorrow"))), "TOKEN_INVALID"),
        "nbf not a number": (bearer(hs(claims(nbf="now"))), "TOKEN_INVALID"),
        # issuer / audience
        "wrong issuer": (bearer(hs(claims(iss="https://evil.example"))), "TOKEN_ISSUER"),
        "no issuer": (bearer(hs(claims(iss=None))), "TOKEN_INVALID"),
        "wrong audience": (bearer(hs(claims(aud="another-service"))), "TOKEN_AUDIENCE"),
        "audience list without ours": (bearer(hs(claims(aud=["a", "b"]))), "TOKEN_AUDIENCE"),
        "no audience": (bearer(hs(claims(aud=None))), "TOKEN_INVALID"),
        # claims Tessera needs
        "no subject": (bearer(hs(claims(sub=None))), "TOKEN_INVALID"),
        "blank subject": (bearer(hs(claims(sub="  "))), "TOKEN_INVALID"),
        "subject not a string": (bearer(hs(claims(sub=42))), "TOKEN_INVALID"),
        "subject posing as a public link": (bearer(hs(claims(sub="link:1"))), "TOKEN_INVALID"),
        "unknown role": (bearer(hs(claims(roles=["superuser"]))), "TOKEN_NO_ROLE"),
        "roles not a list": (bearer(hs(claims(roles={"admin": True}))), "TOKEN_NO_ROLE"),
        "no facility": (bearer(hs(claims(facilities=[]))), "TOKEN_NO_FACILITY"),
        "facility not a list": (bearer(hs(claims(facilities=7))), "TOKEN_NO_FACILITY"),
        "only the empty facility": (bearer(hs(claims(facilities=["", " "]))), "TOKEN_NO_FACILITY"),
        "only the wildcard facility": (bearer(hs(claims(facilities=["*"]))), "TOKEN_NO_FACILITY"),
        "only an overlong facility": (bearer(hs(claims(facilities=["f" * 129]))), "TOKEN_NO_FACILITY"),
        # wrong key / forged signature
        "HS256 with another secret": (bearer(hs(claims(), "another-secret-of-enough-length-00")), "TOKEN_SIGNATURE"),
        "HS256 with an empty secret": (bearer(raw_hmac({"alg": "HS256"}, claims(), b"")), "TOKEN_SIGNATURE"),
        "RS256 by another key": (bearer(jwt.encode(claims(), OTHER_RSA, algorithm="RS256")), "TOKEN_SIGNATURE"),
        "ES256 while only an RSA key is trusted": (
            bearer(jwt.encode(claims(), EC_KEY, algorithm="ES256")),
            "TOKEN_INVALID",
        ),
        "payload edited, signature kept": (bearer(tampered()), "TOKEN_SIGNATURE"),
        "signature stripped": (bearer(hs(claims()).rsplit(".", 1)[0] + "."), "TOKEN_SIGNATURE"),
        "attacker key embedded (jwk header)": (
            bearer(jwt.encode(claims(), OTHER_RSA, algorithm="RS256", headers={"jwk": ATTACKER_JWK})),
            "TOKEN_SIGNATURE",
        ),
        "attacker key by URL (jku header)": (
            bearer(jwt.encode(claims(), OTHER_RSA, algorithm="RS256", headers={"jku": "https://evil.example/jwks"})),
            "TOKEN_SIGNATURE",
        ),
        "kid path traversal": (
            bearer(raw_hmac({"alg": "HS256", "kid": "../../../../dev/null"}, claims(), b"")),
            "TOKEN_SIGNATURE",
        ),
        "crit header": (bearer(hs(claims(), crit=["exp"])), "TOKEN_INVALID"),
        # alg none
        "alg none": (bearer(unsigned("none")), "TOKEN_ALGORITHM"),
        "alg None": (bearer(unsigned("None")), "TOKEN_ALGORITHM"),
        "alg NONE": (bearer(unsigned("NONE")), "TOKEN_ALGORITHM"),
        "alg nOnE": (bearer(unsigned("nOnE")), "TOKEN_ALGORITHM"),
        "alg none with a signature": (bearer(unsigned("none", b64(b"sig"))), "TOKEN_ALGORITHM"),
        # HS/RS confusion: the RSA public key used as an HMAC secret
        "HS256 signed with the public key (PEM)": (
            bearer(raw_hmac({"alg": "HS256"}, claims(), PEM)),
            "TOKEN_SIGNATURE",
        ),
        "HS256 signed with the public key (DER)": (
            bearer(raw_hmac({"alg": "HS256"}, claims(), DER)),
            "TOKEN_SIGNATURE",
        ),
        # algorithms outside the allow-list, even correctly signed
        "HS384 with the right secret": (
            bearer(raw_hmac({"alg": "HS384"}, claims(), SECRET.encode())),
            "TOKEN_ALGORITHM",
        ),
        "RS512 by the trusted key": (bearer(jwt.encode(claims(), RSA_KEY, algorithm="RS512")), "TOKEN_ALGORITHM"),
        "PS256 by the trusted key": (bearer(jwt.encode(claims(), RSA_KEY, algorithm="PS256")), "TOKEN_ALGORITHM"),
        # public links
        "unknown link": ((("x-tessera-link", "not-a-link-token"),), "LINK_INVALID"),
        "oversized link": ((("x-tessera-link", "x" * 1000),), "LINK_INVALID"),
        "bad bearer with a link beside it": (
            (("authorization", "Bearer x"), ("x-tessera-link", "not-a-link-token")),
            "TOKEN_INVALID",
        ),
    }


def make_controls() -> dict[str, tuple[tuple[str, str], ...]]:
    now = int(time.time())
    return {
        "HS256": bearer(hs(claims())),
        "RS256": bearer(jwt.encode(claims(), RSA_KEY, algorithm="RS256")),
        "lowercase scheme": (("authorization", f"bearer {hs(claims())}"),),
        "expired inside the leeway": bearer(hs(claims(exp=now - LEEWAY // 4))),
        "nbf inside the leeway": bearer(hs(claims(nbf=now + LEEWAY // 4))),
        "audience list with ours": bearer(hs(claims(aud=["a", "tessera"]))),
    }


CORPUS_NAMES = list(make_corpus())
CONTROL_NAMES = list(make_controls())


@pytest.fixture(scope="module")
def corpus_server(settings: Settings, migrated: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    key_file: Path = tmp_path_factory.mktemp("jwt") / "public.pem"
    key_file.write_bytes(PEM)
    local = settings.model_copy(
        update={
            "port": 0,
            "metrics_port": -1,
            "jwt_secret": SecretStr(SECRET),  # model_copy does not validate: give the real type
            "jwt_public_key_file": key_file,
            "jwt_algorithms": ["HS256", "RS256", "ES256"],
            "jwt_leeway_seconds": LEEWAY,
        }
    )
    handle = start_in_thread(local)
    state: dict[str, Any] = {
        "handle": handle,
        "refused": 0,
        "correlation_ids": set(),
        "stopped": False,
        "corpus": make_corpus(),
        "controls": make_controls(),
    }
    with grpc.insecure_channel(handle.address) as channel:
        state["stubs"] = (dashboard_pb2_grpc.DashboardServiceStub(channel), widget_pb2_grpc.WidgetServiceStub(channel))
        yield state
    if not state["stopped"]:
        handle.stop()


def _calls(stubs: Any) -> dict[str, Callable[[Any], Any]]:
    dashboards, widgets = stubs
    return {
        "ListDashboards": lambda md: dashboards.ListDashboards(d.ListDashboardsRequest(), metadata=md),
        "GetWidgetData": lambda md: widgets.GetWidgetData(
            w.GetWidgetDataRequest(widget_id=str(uuid.uuid4())), metadata=md
        ),
        "WatchMaterializationJob": lambda md: list(
            widgets.WatchMaterializationJob(w.WatchMaterializationJobRequest(id=str(uuid.uuid4())), metadata=md)
        ),
    }


METHODS = ("ListDashboards", "GetWidgetData", "WatchMaterializationJob")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_bad_credentials_are_unauthenticated(corpus_server: Any, name: str, method: str) -> None:
    metadata, reason = corpus_server["corpus"][name]
    cid = f"jwt-corpus-{uuid.uuid4().hex}"
    with pytest.raises(grpc.RpcError) as caught:
        _calls(corpus_server["stubs"])[method]((*metadata, ("x-correlation-id", cid)))
    corpus_server["refused"] += 1
    corpus_server["correlation_ids"].add(cid)
    failure = failure_of(caught.value)
    assert failure.code == Code.UNAUTHENTICATED, f"{name}: {failure.code} {failure.message}"
    assert failure.reason == reason, f"{name}: reason {failure.reason}, expected {reason}"
    for _, value in metadata:
        token = value.removeprefix("Bearer ").removeprefix("Basic ")
        if len(token) > 8:
            assert token not in failure.message and token not in str(failure.metadata)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", CONTROL_NAMES)
def test_valid_tokens_get_past_authentication(corpus_server: Any, name: str, method: str) -> None:
    call = _calls(corpus_server["stubs"])[method]
    if method == "ListDashboards":
        assert call(corpus_server["controls"][name]) is not None
        return
    with pytest.raises(grpc.RpcError) as caught:  # past authentication: the random id is not found
        call(corpus_server["controls"][name])
    assert failure_of(caught.value).code == Code.NOT_FOUND


def test_every_refusal_is_in_the_audit_log(corpus_server: Any, migrated: str) -> None:
    """Runs after the corpus (file order). Stopping the server writes the open window."""
    refused, ids, corpus = corpus_server["refused"], corpus_server["correlation_ids"], corpus_server["corpus"]
    assert refused == len(corpus) * len(METHODS), "run the corpus first (same module)"
    corpus_server["handle"].stop()
    corpus_server["stopped"] = True
    dsn = sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        rows = conn.execute(
            "SELECT * FROM audit_log WHERE correlation_id = ANY(%s) OR details->>'last_correlation_id' = ANY(%s)",
            (list(ids), list(ids)),
        ).fetchall()
    assert sum(r["details"]["count"] for r in rows) == refused  # every refused call is counted
    expected_reasons = {reason for _, reason in corpus.values()}
    assert {r["details"]["reason"] for r in rows} == expected_reasons
    assert {r["method"].rsplit("/", 1)[-1] for r in rows} == set(METHODS)
    tokens = [v.removeprefix("Bearer ") for md, _ in corpus.values() for _, v in md if len(v) > 16]
    for row in rows:
        assert row["actor"] == "" and row["details"]["unauthenticated"] is True
        text = json.dumps(row, default=str)
        assert not [t for t in tokens if t in text], "a credential reached the audit log"
    print(
        f"\n[jwt corpus] {len(corpus)} refused credentials x {len(METHODS)} rpcs = {refused} calls, all "
        f"UNAUTHENTICATED with the expected reason ({len(expected_reasons)} reasons); {len(CONTROL_NAMES)} controls "
        f"x {len(METHODS)} rpcs accepted; {len(rows)} audit events carry all {refused} refusals"
    )
