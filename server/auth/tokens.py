"""JWT bearer tokens: verification (every rpc) and minting (development only).

HS256 with a shared secret is for development; production verifies RS256/ES256 with a public
key or a JWKS file. The algorithm allow-list is enforced and the key is chosen by the algorithm
family, so an RS256 public key can never be used as an HMAC secret (HS/RS confusion) and
`alg: none` is always refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK, PyJWKSet

from server.auth.principal import Principal, Role
from server.config import Mode, Settings
from server.errors import Unauthenticated

DEV_SECRET = "tessera-development-secret-not-for-production"
# Verified tokens remembered per process (each entry a few hundred bytes).
MAX_VERIFIED_TOKENS = 10_000
_HMAC = {"HS256", "HS384", "HS512"}
_ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"}


@dataclass(frozen=True)
class _Keys:
    secret: str | None
    public_keys: tuple[Any, ...]
    jwks: dict[str, PyJWK]


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        algorithms = [a for a in settings.jwt_algorithms if a in _HMAC | _ASYMMETRIC]
        if settings.mode is Mode.PRODUCTION:
            algorithms = [a for a in algorithms if a not in _HMAC]
        self.algorithms = frozenset(algorithms)
        self._keys = self._load_keys(settings)
        # Verified tokens and the time (epoch seconds) they stop being valid: exp + leeway. The
        # keys are loaded once, and nbf/iat only get more valid as time passes, so a token that
        # verified once verifies until then: this saves the signature check on every call.
        self._verified: dict[str, tuple[Principal, float]] = {}

    @staticmethod
    def _load_keys(settings: Settings) -> _Keys:
        secret = settings.jwt_secret.get_secret_value() or (DEV_SECRET if settings.mode is Mode.DEVELOPMENT else None)
        public: list[Any] = []
        if settings.jwt_public_key_file:
            public.append(load_pem_public_key(settings.jwt_public_key_file.read_bytes()))
        jwks: dict[str, PyJWK] = {}
        if settings.jwt_jwks_file:
            for key in PyJWKSet.from_dict(json.loads(settings.jwt_jwks_file.read_text())).keys:
                jwks[key.key_id or ""] = key
        return _Keys(secret, tuple(public), jwks)

    def _key_for(self, header: dict[str, Any]) -> Any:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise Unauthenticated(f"token algorithm {alg!r} is not allowed", reason="TOKEN_ALGORITHM")
        if alg in _HMAC:
            if not self._keys.secret:
                raise Unauthenticated("HMAC tokens are not accepted", reason="TOKEN_ALGORITHM")
            return self._keys.secret
        kid = header.get("kid")
        if self._keys.jwks:
            jwk = self._keys.jwks.get(kid or "") or (
                next(iter(self._keys.jwks.values())) if len(self._keys.jwks) == 1 and not kid else None
            )
            if jwk is None:
                raise Unauthenticated("token signed by an unknown key", reason="TOKEN_KEY")
            return jwk.key
        if self._keys.public_keys:
            return self._keys.public_keys[0]
        raise Unauthenticated("asymmetric tokens are not configured", reason="TOKEN_ALGORITHM")

    def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            if time.time() < cached[1]:
                return cached[0]
            del self._verified[token]  # expired: verified again below, which refuses it
        principal, valid_until = self._verify(token)
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()  # bounded memory; the next calls verify again
        self._verified[token] = (principal, valid_until)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
            key = self._key_for(header)
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[header["alg"]],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway_seconds,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except Unauthenticated:
            raise
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired", reason="TOKEN_EXPIRED") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("token not yet valid", reason="TOKEN_NOT_YET_VALID") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("token audience is wrong", reason="TOKEN_AUDIENCE") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("token issuer is wrong", reason="TOKEN_ISSUER") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("token signature is invalid", reason="TOKEN_SIGNATURE") from exc
        except (jwt.InvalidTokenError, ValueError, TypeError, KeyError) as exc:
            raise Unauthenticated("token is malformed or invalid", reason="TOKEN_INVALID") from exc
        # PyJWT refuses exp <= now - leeway: valid while now < exp + leeway.
        return principal_from_claims(claims), float(claims["exp"]) + self._settings.jwt_leeway_seconds


# Public-link principals are "link:<id>" in the audit log; no token may pose as one.
RESERVED_SUBJECT_PREFIX = "link:"
# Never a facility: "" is where events of no facility (refused calls) are filed, and data-source
# policies may read "*" as "every facility".
NOT_FACILITIES = frozenset({"", "*"})
# The longest facility id, as the contracts' `facility_id` fields allow: a longer one could never
# be named in a request, and a database change announces its facility in a NOTIFY payload
# (migration 0018), which PostgreSQL caps at 8,000 bytes.
MAX_FACILITY_CHARS = 128


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise Unauthenticated("token has no subject", reason="TOKEN_INVALID")
    if subject.startswith(RESERVED_SUBJECT_PREFIX):
        raise Unauthenticated("token subject uses a reserved prefix", reason="TOKEN_INVALID")
    roles = [Role.parse(r) for r in _strings(claims.get("roles"))]
    valid_roles = [r for r in roles if r is not None]
    if not valid_roles:
        raise Unauthenticated("token grants no known role", reason="TOKEN_NO_ROLE")
    facilities = frozenset(
        f
        for f in _strings(claims.get("facilities"))
        if f.strip() not in NOT_FACILITIES and len(f) <= MAX_FACILITY_CHARS
    )
    if not facilities:
        raise Unauthenticated("token names no facility", reason="TOKEN_NO_FACILITY")
    return Principal(
        subject=subject,
        role=max(valid_roles),
        facilities=facilities,
        permissions=frozenset(_strings(claims.get("permissions"))),
    )


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def mint_token(
    settings: Settings,
    *,
    subject: str,
    roles: Iterable[str],
    facilities: Iterable[str],
    permissions: Iterable[str] = (),
    ttl_seconds: int = 3600,
    not_before: int | None = None,
) -> str:
    """A development HS256 token. Refused in production, where tokens come from the identity
    provider."""
    if settings.mode is Mode.PRODUCTION:
        raise RuntimeError("tokens are not minted in production mode")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "roles": list(roles),
        "facilities": list(facilities),
        "permissions": list(permissions),
    }
    if not_before is not None:
        claims["nbf"] = not_before
    secret = settings.jwt_secret.get_secret_value() or DEV_SECRET
    return jwt.encode(claims, secret, algorithm="HS256")
