from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from audio_rooms.db import Database, Locale, UserRecord
from audio_rooms.errors import HandleTaken, UserNotFound

MakeUser = Callable[..., Awaitable[UserRecord]]
SERVER = "test.example"  # the server name conftest's make_user uses


async def test_user_round_trip_keeps_persian_display_name(db: Database) -> None:
    name = "سارا\u200cجان"
    created = await db.create_user("sara", name, "hash", "fa", SERVER)

    assert created.id == f"sara@{SERVER}"
    assert await db.get_user(created.id) == created
    assert await db.get_user_by_handle("sara", SERVER) == created
    assert created.display_name == name
    assert created.locale is Locale.FA
    assert created.created_at.tzinfo is UTC


async def test_duplicate_handle_is_rejected(db: Database, make_user: MakeUser) -> None:
    await make_user("sara")

    with pytest.raises(HandleTaken):
        await db.create_user("sara", "Another Sara", "hash", "en", SERVER)


async def test_same_handle_on_another_server_is_another_user(
    db: Database, make_user: MakeUser
) -> None:
    local = await make_user("sara")
    remote = await db.create_user("sara", "Sara", "hash", "en", "other.example")

    assert local.id != remote.id
    assert await db.get_user_by_handle("sara", "other.example") == remote


async def test_unknown_user_is_none(db: Database) -> None:
    assert await db.get_user(f"nobody@{SERVER}") is None
    assert await db.get_user_by_handle("nobody", SERVER) is None


async def test_password_hash_update(db: Database, make_user: MakeUser) -> None:
    user = await make_user()

    await db.update_password_hash(user.id, "new-hash")

    stored = await db.get_user(user.id)
    assert stored is not None and stored.password_hash == "new-hash"
    with pytest.raises(UserNotFound):
        await db.update_password_hash(f"nobody@{SERVER}", "x")


async def test_password_hash_is_not_in_repr(make_user: MakeUser) -> None:
    user = await make_user()

    assert "not-a-real-hash" not in repr(user)


async def test_session_lifecycle(db: Database, make_user: MakeUser) -> None:
    user = await make_user()

    session = await db.create_session(user.id, ttl_seconds=3600)
    now = datetime.now(UTC)

    assert session.user_id == user.id
    assert (await db.get_session(session.id)) == session
    assert session.is_active(now)
    assert 3590 < (session.expires_at - now).total_seconds() <= 3600

    assert await db.revoke_session(session.id) is True
    revoked = await db.get_session(session.id)
    assert revoked is not None and revoked.revoked_at is not None
    assert not revoked.is_active(now)
    assert await db.revoke_session(session.id) is False


async def test_revoke_user_sessions_signs_out_everywhere(db: Database, make_user: MakeUser) -> None:
    user = await make_user()
    other = await make_user()
    phone = await db.create_session(user.id, 3600)
    laptop = await db.create_session(user.id, 3600)
    kept = await db.create_session(other.id, 3600)

    assert await db.revoke_user_sessions(user.id) == 2

    now = datetime.now(UTC)
    for gone in (phone, laptop):
        record = await db.get_session(gone.id)
        assert record is not None and not record.is_active(now)
    record = await db.get_session(kept.id)
    assert record is not None and record.is_active(now)


async def test_expired_sessions_are_cleaned_up(db: Database, make_user: MakeUser) -> None:
    user = await make_user()
    short = await db.create_session(user.id, 60)
    long = await db.create_session(user.id, 3600)

    assert await db.delete_expired_sessions() == 0
    assert await db.delete_expired_sessions(before=short.expires_at + timedelta(seconds=1)) == 1

    assert await db.get_session(short.id) is None
    assert await db.get_session(long.id) == long


async def test_session_for_unknown_user_is_refused(db: Database) -> None:
    with pytest.raises(UserNotFound):
        await db.create_session(f"nobody@{SERVER}", 60)


async def test_ping(db: Database) -> None:
    await db.ping()
