from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from audio_rooms.db import Database, RoomStatus, UserRecord, Visibility
from audio_rooms.errors import InvalidField, RoomNotFound, UserNotFound

MakeUser = Callable[..., Awaitable[UserRecord]]


async def test_room_started_now_is_live(db: Database, make_user: MakeUser) -> None:
    host = await make_user()

    room = await db.create_room("  Poetry night  ", "Hafez", "open", host.id, None, start_now=True)

    assert room.title == "Poetry night"
    assert room.visibility is Visibility.OPEN
    assert room.status is RoomStatus.LIVE
    assert len(room.id) == 12
    assert await db.get_room(room.id) == room


async def test_room_lifecycle_scheduled_live_ended(db: Database, make_user: MakeUser) -> None:
    host = await make_user()
    start = datetime(2030, 3, 20, 18, 30, tzinfo=timezone(timedelta(hours=3, minutes=30)))

    room = await db.create_room("Nowruz", "", "social", host.id, start, start_now=False)
    assert room.status is RoomStatus.SCHEDULED
    # Stored and returned in UTC whatever zone the caller used.
    assert room.scheduled_start == start
    assert room.scheduled_start is not None and room.scheduled_start.tzinfo is UTC

    began = datetime.now(UTC)
    live = await db.mark_room_started(room.id, began)
    assert live.status is RoomStatus.LIVE and live.started_at == began
    again = await db.mark_room_started(room.id, began + timedelta(minutes=5))
    assert again.started_at == began

    ended = await db.mark_room_ended(room.id, began + timedelta(hours=1))
    assert ended.status is RoomStatus.ENDED
    assert (await db.get_room(room.id)) == ended


async def test_room_lists_by_status(db: Database, make_user: MakeUser) -> None:
    host = await make_user()
    soon = datetime.now(UTC) + timedelta(hours=1)
    later = soon + timedelta(days=1)
    later_room = await db.create_room("Later", "", "open", host.id, later, start_now=False)
    soon_room = await db.create_room("Soon", "", "open", host.id, soon, start_now=False)
    unscheduled = await db.create_room("Someday", "", "open", host.id, None, start_now=False)
    first_live = await db.create_room("Live 1", "", "open", host.id, None, start_now=False)
    second_live = await db.create_room("Live 2", "", "open", host.id, None, start_now=False)
    now = datetime.now(UTC)
    await db.mark_room_started(first_live.id, now)
    await db.mark_room_started(second_live.id, now + timedelta(seconds=1))
    over = await db.create_room("Over", "", "open", host.id, None, start_now=True)
    await db.mark_room_ended(over.id, now)

    scheduled = await db.list_rooms("scheduled")
    live = await db.list_rooms(RoomStatus.LIVE)
    ended = await db.list_rooms("ended")

    assert [r.id for r in scheduled] == [soon_room.id, later_room.id, unscheduled.id]
    assert [r.id for r in live] == [second_live.id, first_live.id]
    assert [r.id for r in ended] == [over.id]
    assert [r.id for r in await db.list_rooms("scheduled", limit=1)] == [soon_room.id]


@pytest.mark.parametrize(
    ("title", "description", "visibility", "field"),
    [
        ("   ", "", "open", "title"),
        ("x" * 121, "", "open", "title"),
        ("ok", "x" * 1001, "open", "description"),
        ("ok", "", "public", "visibility"),
    ],
)
async def test_invalid_room_fields_are_named(
    db: Database, make_user: MakeUser, title: str, description: str, visibility: str, field: str
) -> None:
    host = await make_user()

    with pytest.raises(InvalidField) as raised:
        await db.create_room(title, description, visibility, host.id, None, start_now=True)

    assert raised.value.details["field"] == field
    assert field in raised.value.message


async def test_naive_schedule_time_is_refused(db: Database, make_user: MakeUser) -> None:
    host = await make_user()

    with pytest.raises(InvalidField):
        await db.create_room("t", "", "open", host.id, datetime(2030, 1, 1), start_now=False)


async def test_room_needs_existing_host_and_room(db: Database) -> None:
    with pytest.raises(UserNotFound):
        await db.create_room("t", "", "open", "ghost@test.example", None, start_now=True)
    with pytest.raises(RoomNotFound):
        await db.mark_room_started("missing", datetime.now(UTC))
    assert await db.get_room("missing") is None
