"""Bans (from a room or the whole server) and the moderation log: what moderators did."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from audio_rooms.db.records import BanRecord, ModerationEntry
from audio_rooms.db.runner import Aggregate, in_session, rowcount
from audio_rooms.db.tables import Ban, ModerationLog, Room
from audio_rooms.errors import RoomNotFound


class Bans(Aggregate):
    @in_session
    def add_ban(
        self,
        session: Session,
        room_id: str | None,
        user_id: str,
        by_user_id: str,
        reason: str = "",
    ) -> BanRecord:
        """Ban ``user_id`` from a room, or from the server when ``room_id`` is None.

        Idempotent: banning again returns the ban already in force, with its original reason.
        """
        existing = session.exec(_ban_query(room_id, user_id)).first()
        if existing is not None:
            return _ban(existing)
        if room_id is not None and session.get(Room, room_id) is None:
            raise RoomNotFound(room_id=room_id)
        row = Ban(room_id=room_id, user_id=user_id, by_user_id=by_user_id, reason=reason[:500])
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            # Two moderators banned the same person at once; theirs is as good as ours.
            session.rollback()
            return _ban(session.exec(_ban_query(room_id, user_id)).one())
        return _ban(row)

    @in_session
    def is_banned(self, session: Session, room_id: str | None, user_id: str) -> bool:
        """True if ``user_id`` is banned from this room or from the whole server."""
        scope: ColumnElement[bool] = col(Ban.room_id).is_(None)
        if room_id is not None:
            scope = or_(scope, col(Ban.room_id) == room_id)
        query = select(Ban.id).where(col(Ban.user_id) == user_id, scope).limit(1)
        return session.exec(query).first() is not None

    @in_session
    def server_banned_ids(self, session: Session) -> set[str]:
        """The ids banned from the whole server."""
        return set(session.exec(select(Ban.user_id).where(col(Ban.room_id).is_(None))))

    @in_session
    def remove_ban(self, session: Session, room_id: str | None, user_id: str) -> bool:
        """Lift a room ban (or the server-wide one for None); False if there was none."""
        room_match = col(Ban.room_id).is_(None) if room_id is None else col(Ban.room_id) == room_id
        result = session.execute(delete(Ban).where(room_match, col(Ban.user_id) == user_id))
        session.commit()
        return bool(rowcount(result))


class ModerationHistory(Aggregate):
    @in_session
    def log_moderation(
        self,
        session: Session,
        room_id: str,
        actor_id: str,
        action: str,
        target_id: str | None,
        detail: dict[str, Any] | None = None,
    ) -> ModerationEntry:
        row = ModerationLog(
            room_id=room_id,
            actor_id=actor_id,
            action=action,
            target_id=target_id,
            detail=dict(detail or {}),
        )
        if session.get(Room, room_id) is None:
            raise RoomNotFound(room_id=room_id)
        session.add(row)
        session.commit()
        return _entry(row)

    @in_session
    def moderation_log(
        self, session: Session, room_id: str, limit: int = 100
    ) -> list[ModerationEntry]:
        """The room's moderation history, newest first."""
        query = (
            select(ModerationLog)
            .where(col(ModerationLog.room_id) == room_id)
            .order_by(col(ModerationLog.at).desc(), col(ModerationLog.id).desc())
            .limit(max(0, limit))
        )
        return [_entry(row) for row in session.exec(query)]


def _ban_query(room_id: str | None, user_id: str) -> Any:
    room_match = col(Ban.room_id).is_(None) if room_id is None else col(Ban.room_id) == room_id
    return select(Ban).where(room_match, col(Ban.user_id) == user_id)


def _ban(row: Ban) -> BanRecord:
    return BanRecord(
        room_id=row.room_id,
        user_id=row.user_id,
        by_user_id=row.by_user_id,
        reason=row.reason,
        created_at=row.created_at,
    )


def _entry(row: ModerationLog) -> ModerationEntry:
    assert row.id is not None  # assigned by the INSERT before the record is built
    return ModerationEntry(
        id=row.id,
        room_id=row.room_id,
        actor_id=row.actor_id,
        action=row.action,
        target_id=row.target_id,
        detail=dict(row.detail),
        at=row.at,
    )
