"""Webhook secrets sealed at rest with the export key ring (server/exports/sealed.py): a round
trip, the key id in the stored form, rotation (an old row still opens), a removed key, an altered
value, and legacy plaintext rows."""

from __future__ import annotations

import pytest

from server.config import Settings
from server.exports.crypto import UnknownKey, new_key_spec, parse_keys
from server.exports.sealed import PREFIX, SealedSecretBroken, is_sealed, opened_secret, seal, unseal

SECRET = "dGhpcyBpcyBhIHdlYmhvb2sgc2VjcmV0IG9mIDMyIGJ5dGVz"


def test_a_secret_round_trips_and_is_not_stored_in_clear() -> None:
    keys = parse_keys(new_key_spec("k1"))
    stored = seal(keys, SECRET)
    assert stored.startswith(f"{PREFIX}k1:") and SECRET not in stored and is_sealed(stored)
    assert unseal(keys, stored) == SECRET
    assert seal(keys, SECRET) != stored, "a fresh nonce every time"


def test_rotation_keeps_old_rows_working() -> None:
    old, new = new_key_spec("2025"), new_key_spec("2026")
    before = parse_keys(old)
    sealed_before = seal(before, SECRET)
    rotated = parse_keys(f"{new},{old}")  # the new key first: it seals; the old one still opens
    sealed_after = seal(rotated, SECRET)
    assert sealed_after.startswith(f"{PREFIX}2026:")
    assert unseal(rotated, sealed_before) == SECRET and unseal(rotated, sealed_after) == SECRET
    retired = parse_keys(new)  # the old key removed too early
    with pytest.raises(UnknownKey) as missing:
        unseal(retired, sealed_before)
    assert missing.value.key_id == "2025"


def test_an_altered_value_is_refused() -> None:
    keys = parse_keys(new_key_spec("k1"))
    stored = seal(keys, SECRET)
    middle = len(stored) // 2  # inside the ciphertext (the last character may hold padding bits only)
    flipped = stored[:middle] + ("A" if stored[middle] != "A" else "B") + stored[middle + 1 :]
    for broken in (flipped, stored[:-8], f"{PREFIX}k1", f"{PREFIX}k1:!!!"):
        with pytest.raises(SealedSecretBroken):
            unseal(keys, broken)
    # Moved under another key's id, it does not authenticate either.
    other = parse_keys(f"{new_key_spec('k2')},{new_key_spec('k1')}")
    with pytest.raises(SealedSecretBroken):
        unseal(other, stored)


def test_legacy_plaintext_rows_are_used_as_they_are() -> None:
    keys = parse_keys(new_key_spec("k1"))
    assert not is_sealed(SECRET) and unseal(keys, SECRET) == SECRET


def test_a_delivery_gets_a_reason_instead_of_a_crash(settings: Settings) -> None:
    spec = new_key_spec("gone")
    stored = seal(parse_keys(spec), SECRET)
    secret, why = opened_secret(settings, stored)  # the settings hold the development key only
    assert secret == "" and "'gone'" in why and "TESSERA_EXPORT_KEYS" in why
    with_key = Settings(**(settings.model_dump() | {"export_keys": spec}))
    assert opened_secret(with_key, stored) == (SECRET, "")
