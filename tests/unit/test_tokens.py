"""Token verification with asymmetric keys, HS/RS confusion and production rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from server.auth.principal import Role
from server.auth.tokens import TokenVerifier, mint_token
from server.config import Mode, Settings
from server.errors import Unauthenticated


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "u",
        "iss": "tessera",
        "aud": "tessera",
        "exp": now + 60,
        "roles": ["editor", "viewer"],
        "facilities": ["f1", "f2"],
        "permissions": ["phi:read"],
    }
    base.update(over)
    return base


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _settings(tmp_path: Path, pem: bytes, **kw: object) -> Settings:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(pem)
    return Settings(
        jwt_public_key_file=key_file,
        database_url="postgresql://x",
        redis_url="redis://x",
        masking_key="k" * 32,
        export_keys="k1:" + "A" * 43,
        **kw,
    )


def test_rs256_token_is_accepted_and_claims_mapped(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(_settings(tmp_path, _pem(rsa_key), mode=Mode.PRODUCTION))
    principal = verifier.verify(jwt.encode(_claims(), rsa_key, algorithm="RS256"))
    assert principal.subject == "u"
    assert principal.role is Role.EDITOR  # the highest role granted
    assert principal.facilities == {"f1", "f2"}
    assert principal.can_read_phi


def test_hs256_signed_with_the_public_key_is_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pem = _pem(rsa_key)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + body, hashlib.sha256).digest()).rstrip(b"=")
    forged = b".".join((header, body, signature)).decode()
    for mode in (Mode.DEVELOPMENT, Mode.PRODUCTION):
        with pytest.raises(Unauthenticated):
            TokenVerifier(
                _settings(tmp_path, pem, mode=mode, jwt_secret="a-real-development-secret-of-32-bytes")
            ).verify(forged)


def test_production_refuses_hmac_even_with_the_right_secret(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    settings = _settings(tmp_path, _pem(rsa_key), mode=Mode.PRODUCTION, jwt_secret="s3cret-s3cret-s3cret-s3cret-s3cret")
    token = jwt.encode(_claims(), "s3cret-s3cret-s3cret-s3cret-s3cret", algorithm="HS256")
    with pytest.raises(Unauthenticated) as caught:
        TokenVerifier(settings).verify(token)
    assert caught.value.reason == "TOKEN_ALGORITHM"


def test_es256_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    trusted, attacker = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    verifier = TokenVerifier(_settings(tmp_path, _pem(trusted)))
    assert verifier.verify(jwt.encode(_claims(), trusted, algorithm="ES256")).subject == "u"
    with pytest.raises(Unauthenticated):
        verifier.verify(jwt.encode(_claims(), attacker, algorithm="ES256"))


def test_algorithm_outside_the_allow_list_is_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(_settings(tmp_path, _pem(rsa_key), jwt_algorithms=["ES256"]))
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(jwt.encode(_claims(), rsa_key, algorithm="RS256"))
    assert caught.value.reason == "TOKEN_ALGORITHM"


def test_jwks_file_selects_the_key_by_kid(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk["kid"] = "k1"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    verifier = TokenVerifier(Settings(jwt_jwks_file=jwks))
    assert verifier.verify(jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})).subject == "u"
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "unknown"}))
    assert caught.value.reason == "TOKEN_KEY"


def test_production_needs_keys_and_never_mints() -> None:
    with pytest.raises(ValueError, match="JWT_PUBLIC_KEY_FILE"):
        Settings(mode=Mode.PRODUCTION, database_url="postgresql://x", redis_url="redis://x")
    with pytest.raises(RuntimeError):
        mint_token(Settings.model_construct(mode=Mode.PRODUCTION), subject="u", roles=["admin"], facilities=["f"])


def test_claims_never_make_a_facility_of_nothing_or_everything() -> None:
    from server.auth.tokens import principal_from_claims

    base = {"sub": "u", "roles": ["admin"]}
    assert principal_from_claims({**base, "facilities": ["", "*", " ", "f"]}).facilities == {"f"}
    longest = "f" * 128
    assert principal_from_claims({**base, "facilities": [longest, longest + "x"]}).facilities == {longest}
    for facilities in ([""], ["*"], [" ", "*"], ["f" * 9000]):
        with pytest.raises(Unauthenticated) as caught:
            principal_from_claims({**base, "facilities": facilities})
        assert caught.value.reason == "TOKEN_NO_FACILITY"
    with pytest.raises(Unauthenticated, match="reserved"):
        principal_from_claims({**base, "sub": "link:00000000-0000-0000-0000-000000000001", "facilities": ["f"]})


def test_a_verified_token_is_remembered_until_it_expires(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier(_settings(tmp_path, _pem(rsa_key), jwt_leeway_seconds=0))
    token = jwt.encode(_claims(exp=int(time.time()) + 60), rsa_key, algorithm="RS256")
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # no second signature check
    # Past exp (+ leeway) the remembered entry is dropped and the token verified again; PyJWT
    # itself still finds it valid at the real time, so it comes back as a fresh principal.
    real = time.time
    monkeypatch.setattr("server.auth.tokens.time.time", lambda: real() + 120)
    assert verifier.verify(token) == first
    monkeypatch.setattr("server.auth.tokens.time.time", real)
    # Refusals are never remembered: the same bad token is refused every time.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            verifier.verify(forged)
    expired = jwt.encode(_claims(exp=int(time.time()) - 5), rsa_key, algorithm="RS256")
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(expired)
