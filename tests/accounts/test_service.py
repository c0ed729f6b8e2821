from __future__ import annotations

from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher

from audio_rooms.accounts import (
    TokenSigner,
    authenticate,
    enter_as_guest,
    passwords,
    sign_in,
    sign_out,
    sign_up,
    signer_for,
)
from audio_rooms.accounts.hashpool import HashPool
from audio_rooms.db import Database, Locale
from audio_rooms.errors import HandleTaken, InvalidCredentials, InvalidField, NotAuthenticated
from audio_rooms.settings import Settings

PASSWORD = "correct horse battery"
ADDRESS = "192.0.2.1"


async def test_sign_up_then_authenticate(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    identity, token = await sign_up(db, settings, hashes, ADDRESS, "Sara", " سارا ", PASSWORD, "fa")

    assert identity.user_id == "sara@test.example"
    assert identity.display_name == "سارا"
    assert identity.locale is Locale.FA
    assert not identity.is_guest
    assert PASSWORD not in token
    assert await authenticate(token, db, signer_for(settings)) == identity


async def test_duplicate_handle_is_rejected_whatever_the_case(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    await sign_up(db, settings, hashes, ADDRESS, "sara", "Sara", PASSWORD, "en")

    with pytest.raises(HandleTaken):
        await sign_up(db, settings, hashes, ADDRESS, "SARA", "Other Sara", PASSWORD, "en")


@pytest.mark.parametrize(
    ("handle", "display_name", "password", "locale", "field"),
    [
        ("s", "Sara", PASSWORD, "en", "handle"),
        ("sara", "", PASSWORD, "en", "display_name"),
        ("sara", "Sara", "short", "en", "password"),
        ("sara", "Sara", PASSWORD, "xx", "locale"),
    ],
)
async def test_sign_up_names_the_bad_field(
    db: Database,
    settings: Settings,
    hashes: HashPool,
    handle: str,
    display_name: str,
    password: str,
    locale: str,
    field: str,
) -> None:
    with pytest.raises(InvalidField) as raised:
        await sign_up(db, settings, hashes, ADDRESS, handle, display_name, password, locale)

    assert raised.value.details["field"] == field
    assert await db.get_user_by_handle("sara", settings.server_name) is None


async def test_sign_in_with_right_password(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    created, _ = await sign_up(db, settings, hashes, ADDRESS, "sara", "Sara", PASSWORD, "en")

    identity, token = await sign_in(db, settings, hashes, ADDRESS, " Sara ", PASSWORD)

    assert identity == created
    assert await authenticate(token, db, signer_for(settings)) == identity


async def test_wrong_password_and_unknown_handle_look_the_same(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    await sign_up(db, settings, hashes, ADDRESS, "sara", "Sara", PASSWORD, "en")

    with pytest.raises(InvalidCredentials) as wrong_password:
        await sign_in(db, settings, hashes, ADDRESS, "sara", PASSWORD + "!")
    with pytest.raises(InvalidCredentials) as unknown_handle:
        await sign_in(db, settings, hashes, ADDRESS, "nobody", PASSWORD)
    with pytest.raises(InvalidCredentials) as huge_password:
        await sign_in(db, settings, hashes, ADDRESS, "sara", "x" * 10_000)

    assert wrong_password.value.to_wire() == unknown_handle.value.to_wire()
    assert huge_password.value.to_wire() == unknown_handle.value.to_wire()


async def test_signed_out_token_no_longer_authenticates(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    _, phone = await sign_up(db, settings, hashes, ADDRESS, "sara", "Sara", PASSWORD, "en")
    _, laptop = await sign_in(db, settings, hashes, ADDRESS, "sara", PASSWORD)
    signer = signer_for(settings)

    await sign_out(db, settings, phone)

    with pytest.raises(NotAuthenticated):
        await authenticate(phone, db, signer)
    # Only that session ended: the laptop stays signed in.
    assert (await authenticate(laptop, db, signer)).user_id == "sara@test.example"


async def test_signing_out_everywhere(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    identity, first = await sign_up(db, settings, hashes, ADDRESS, "sara", "Sara", PASSWORD, "en")
    _, second = await sign_in(db, settings, hashes, ADDRESS, "sara", PASSWORD)

    await db.revoke_user_sessions(identity.user_id)

    for token in (first, second):
        with pytest.raises(NotAuthenticated):
            await authenticate(token, db, signer_for(settings))


async def test_expired_token_does_not_authenticate(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    _, token = await sign_up(db, settings, hashes, ADDRESS, "sara", "Sara", PASSWORD, "en")
    after_expiry = datetime.now(UTC).timestamp() + settings.session_ttl + 1
    later = TokenSigner(settings.resolved_secret_key(), settings.server_name, lambda: after_expiry)

    with pytest.raises(NotAuthenticated):
        await authenticate(token, db, later)


async def test_token_from_another_server_secret_is_rejected(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    _, token = await sign_up(db, settings, hashes, ADDRESS, "sara", "Sara", PASSWORD, "en")
    other = TokenSigner("o" * 48, settings.server_name)

    with pytest.raises(NotAuthenticated):
        await authenticate(token, db, other)


async def test_tampered_token_cannot_sign_out(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    _, token = await sign_up(db, settings, hashes, ADDRESS, "sara", "Sara", PASSWORD, "en")

    with pytest.raises(NotAuthenticated):
        await sign_out(db, settings, token[:-3] + "abc")
    assert (await authenticate(token, db, signer_for(settings))).user_id == "sara@test.example"


async def test_old_hash_is_upgraded_at_sign_in(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    user = await db.create_user("sara", "Sara", weak, "en", settings.server_name)

    await sign_in(db, settings, hashes, ADDRESS, "sara", PASSWORD)

    stored = await db.get_user(user.id)
    assert stored is not None and stored.password_hash != weak
    assert not passwords.needs_rehash(stored.password_hash)
    assert passwords.verify_password(stored.password_hash, PASSWORD)


async def test_guest_can_authenticate_without_a_row(
    db: Database, settings: Settings, hashes: HashPool
) -> None:
    identity, token = enter_as_guest(settings, "Listener", "fa")

    assert identity.is_guest and identity.user_id.startswith("guest-")
    assert await authenticate(token, db, signer_for(settings)) == identity
    assert await db.get_user(identity.user_id) is None
    # Signing a guest out is harmless: there is no session, the client forgets the token.
    await sign_out(db, settings, token)
