"""Short secrets sealed at rest with the export key ring (`TESSERA_EXPORT_KEYS`, server/exports/
crypto.py): webhook signing secrets are stored as

    sealed:v1:<key id>:<base64url(nonce (12) | AES-256-GCM ciphertext and tag)>

under a key derived from the named export key with HKDF (so the file key itself never seals
anything else), with the purpose as associated data. The current (first) key seals; every listed
key opens, so rotation is the export keys' rotation: put a new key first and keep the old one as
long as rows sealed with it exist. A stored value without the prefix is a legacy plaintext secret
(rows written before secrets were sealed): it is used as it is, never refused.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from server.config import Settings
from server.exports.crypto import ExportKeys, UnknownKey, export_keys

__all__ = ["PREFIX", "SealedSecretBroken", "is_sealed", "opened_secret", "seal", "unseal"]

PREFIX = "sealed:v1:"
_NONCE_BYTES = 12
_PURPOSE = b"tessera webhook secret v1"


class SealedSecretBroken(Exception):
    """The stored value is not what this deployment sealed (altered, cut, or not base64)."""


def _key(material: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(material)
    return AESGCM(derived)


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def seal(keys: ExportKeys, secret: str) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _key(keys.keys[keys.current]).encrypt(nonce, secret.encode(), _PURPOSE)
    return f"{PREFIX}{keys.current}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(keys: ExportKeys, stored: str) -> str:
    """The secret; a legacy plaintext value as it is. UnknownKey when its key was removed,
    SealedSecretBroken when it does not authenticate."""
    if not is_sealed(stored):
        return stored
    key_id, sep, encoded = stored.removeprefix(PREFIX).partition(":")
    if not sep:
        raise SealedSecretBroken("a sealed secret without its key id")
    material = keys.keys.get(key_id)
    if material is None:
        raise UnknownKey(key_id)
    try:
        raw = base64.urlsafe_b64decode(encoded.encode())
        return _key(material).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _PURPOSE).decode()
    except (binascii.Error, ValueError, InvalidTag):
        raise SealedSecretBroken(f"the secret sealed under key {key_id!r} does not authenticate") from None


def opened_secret(settings: Settings, stored: str) -> tuple[str, str]:
    """(the secret, "") for a delivery, or ("", why it cannot be opened): a delivery records that
    for its webhook recipients instead of failing as a whole."""
    try:
        return unseal(export_keys(settings), stored), ""
    except UnknownKey as exc:
        return "", f"the webhook secret was sealed with key {exc.key_id!r}, which TESSERA_EXPORT_KEYS no longer holds"
    except SealedSecretBroken as exc:
        return "", f"the webhook secret cannot be opened: {exc}"
