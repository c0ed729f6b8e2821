"""Room records: creation, schedules, start and end, and the lobby's reads.

The lobby reads a page of rooms in a constant number of queries, whatever the page size.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from audio_rooms.db.engine import utcnow
from audio_rooms.db.records import RoomRecord, RoomStatus, Visibility
from audio_rooms.db.runner import Aggregate, in_session
from audio_rooms.db.tables import DESCRIPTION_MAX, TITLE_MAX, Follow, Room, User
from audio_rooms.errors import InvalidField, RoomNotFound, UserNotFound

ROOM_ID_BYTES = 9
"""12 URL-safe characters: 72 random bits, unguessable, short enough to read out loud."""


class Rooms(Aggregate):
    @in_session
    def create_room(
        self,
        session: Session,
        title: str,
        description: str,
        visibility: str,
        host_id: str,
        scheduled_start: datetime | None,
        start_now: bool,
    ) -> RoomRecord:
        """Create a room, live at once (``start_now``) or scheduled; titles are stripped."""
        title = title.strip()
        description = description.strip()
        if not 1 <= len(title) <= TITLE_MAX:
            raise InvalidField(f"title must be 1-{TITLE_MAX} characters", field="title")
        if len(description) > DESCRIPTION_MAX:
            raise InvalidField(
                f"description must be at most {DESCRIPTION_MAX} characters", field="description"
            )
        try:
            kind = Visibility(visibility)
        except ValueError:
            raise InvalidField(
                "visibility must be one of: " + ", ".join(v.value for v in Visibility),
                field="visibility",
            ) from None
        if scheduled_start is not None and scheduled_start.tzinfo is None:
            raise InvalidField("scheduled_start must include a time zone", field="scheduled_start")
        now = utcnow()
        row = Room(
            id=secrets.token_urlsafe(ROOM_ID_BYTES),
            title=title,
            description=description,
            visibility=kind,
            host_id=host_id,
            scheduled_start=None if scheduled_start is None else _aware_utc(scheduled_start),
            started_at=now if start_now else None,
            created_at=now,
        )
        if session.get(User, host_id) is None:
            raise UserNotFound(user_id=host_id)
        session.add(row)
        session.commit()
        return _room(row)

    @in_session
    def get_room(self, session: Session, room_id: str) -> RoomRecord | None:
        row = session.get(Room, room_id)
        return None if row is None else _room(row)

    @in_session
    def list_rooms(
        self,
        session: Session,
        status: RoomStatus | Literal["live", "scheduled", "ended"],
        limit: int = 100,
    ) -> list[RoomRecord]:
        """Live rooms newest first; scheduled ones soonest first (unscheduled last); ended ones
        most recently ended first."""
        query = select(Room)
        status = RoomStatus(status)
        if status is RoomStatus.LIVE:
            query = query.where(
                col(Room.started_at).is_not(None), col(Room.ended_at).is_(None)
            ).order_by(col(Room.started_at).desc(), col(Room.id))
        elif status is RoomStatus.SCHEDULED:
            query = query.where(
                col(Room.started_at).is_(None), col(Room.ended_at).is_(None)
            ).order_by(
                col(Room.scheduled_start).asc().nulls_last(), col(Room.created_at), col(Room.id)
            )
        else:
            query = query.where(col(Room.ended_at).is_not(None)).order_by(
                col(Room.ended_at).desc(), col(Room.id)
            )
        return [_room(row) for row in session.exec(query.limit(max(0, limit)))]

    async def rooms_with_hosts(self, room_ids: list[str]) -> dict[str, tuple[RoomRecord, str]]:
        """Rooms by id with their host's display name, in one query; missing ids are absent."""
        if not room_ids:
            return {}  # an empty lobby page costs no thread
        return await self._rooms_with_hosts(list(room_ids))

    @in_session
    def _rooms_with_hosts(
        self, session: Session, room_ids: list[str]
    ) -> dict[str, tuple[RoomRecord, str]]:
        query = (
            select(Room, User.display_name)
            .join(User, col(User.id) == col(Room.host_id))
            .where(col(Room.id).in_(room_ids))
        )
        return {room.id: (_room(room), name) for room, name in session.exec(query)}

    @in_session
    def scheduled_page(
        self, session: Session, viewer_id: str | None, offset: int, limit: int
    ) -> list[tuple[RoomRecord, str]]:
        """Scheduled rooms ``viewer_id`` may see (soonest first) with their host's name: open
        ones, their own, and social ones whose host follows them. Closed ones only to the host."""
        visible: ColumnElement[bool] = col(Room.visibility) == Visibility.OPEN.value
        if viewer_id is not None:
            followed_by = select(Follow.follower_id).where(col(Follow.followee_id) == viewer_id)
            visible = or_(
                visible,
                col(Room.host_id) == viewer_id,
                (col(Room.visibility) == Visibility.SOCIAL.value)
                & col(Room.host_id).in_(followed_by),
            )
        query = (
            select(Room, User.display_name)
            .join(User, col(User.id) == col(Room.host_id))
            .where(col(Room.started_at).is_(None), col(Room.ended_at).is_(None), visible)
            .order_by(
                col(Room.scheduled_start).asc().nulls_last(), col(Room.created_at), col(Room.id)
            )
            .offset(max(0, offset))
            .limit(max(0, limit))
        )
        return [(_room(room), name) for room, name in session.exec(query)]

    @in_session
    def open_rooms_count(self, session: Session, host_id: str) -> int:
        """Rooms of ``host_id`` that are live or scheduled (not ended)."""
        query = (
            select(func.count())
            .select_from(Room)
            .where(col(Room.host_id) == host_id, col(Room.ended_at).is_(None))
        )
        return session.exec(query).one()

    @in_session
    def mark_room_started(self, session: Session, room_id: str, at: datetime) -> RoomRecord:
        """Record the start; a second call keeps the first time (a host who reconnects)."""
        return _mark(session, room_id, "started_at", _aware_utc(at))

    @in_session
    def mark_room_ended(self, session: Session, room_id: str, at: datetime) -> RoomRecord:
        """Record the end; a second call keeps the first time."""
        return _mark(session, room_id, "ended_at", _aware_utc(at))


def _mark(
    session: Session, room_id: str, column: Literal["started_at", "ended_at"], at: datetime
) -> RoomRecord:
    row = session.get(Room, room_id, with_for_update=True)
    if row is None:
        raise RoomNotFound(room_id=room_id)
    if getattr(row, column) is None:
        setattr(row, column, at)
        session.add(row)
        session.commit()
    return _room(row)


def _aware_utc(at: datetime) -> datetime:
    # Records are built from the rows we wrote, so normalise here, not only in the column type.
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("naive datetime given to the database: use an aware UTC datetime")
    return at.astimezone(UTC)


def _room(row: Room) -> RoomRecord:
    return RoomRecord(
        id=row.id,
        title=row.title,
        description=row.description,
        visibility=Visibility(row.visibility),
        host_id=row.host_id,
        scheduled_start=row.scheduled_start,
        started_at=row.started_at,
        ended_at=row.ended_at,
        created_at=row.created_at,
    )
