"""The Database: every durable read and write, as async methods over a sync SQLAlchemy engine.

Each public coroutine runs one short unit of session work in a worker thread, so a slow disk or a
far PostgreSQL never stalls the event loop that carries signalling and media. Nothing returned is
a live ORM object: callers get the frozen records of :mod:`audio_rooms.db.records`.

``get_*`` methods return ``None`` for a missing row, because what "missing" means depends on the
caller (an unknown user at sign-in is bad credentials, not a 404). Methods that change a row that
must exist raise :class:`~audio_rooms.errors.UserNotFound` or
:class:`~audio_rooms.errors.RoomNotFound`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, ParamSpec, TypeVar

import anyio.to_thread
from sqlalchemy import CursorResult, Engine, Result, delete, func, or_, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from audio_rooms.db import migrations
from audio_rooms.db.engine import make_engine, normalise_url, utcnow
from audio_rooms.db.records import (
    BanRecord,
    Locale,
    ModerationEntry,
    RoomRecord,
    RoomStatus,
    SessionRecord,
    UserRecord,
    Visibility,
)
from audio_rooms.db.tables import (
    DESCRIPTION_MAX,
    TITLE_MAX,
    AuthSession,
    Ban,
    Follow,
    ModerationLog,
    Room,
    User,
)
from audio_rooms.errors import HandleTaken, InvalidField, RoomNotFound, UserNotFound

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

ROOM_ID_BYTES = 9
"""12 URL-safe characters: 72 random bits, unguessable, short enough to read out loud."""
SESSION_ID_BYTES = 32


class Database:
    """Durable state behind one URL (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self._engine: Engine = make_engine(self.url)

    @classmethod
    async def open(cls, url: str) -> Database:
        """Connect and bring the schema up to date: what the server does on start."""
        database = cls(url)
        try:
            await database.start()
        except BaseException:
            database.close()
            raise
        return database

    async def start(self) -> None:
        await self._run(self.create_schema)

    def create_schema(self) -> int:
        """Create tables and apply pending migrations (sync, for the CLI); return the version."""
        with self._engine.begin() as connection:
            return migrations.upgrade(connection)

    def close(self) -> None:
        self._engine.dispose()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query (for health checks)."""
        await self._run(self._ping)

    def _ping(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def _run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))

    def _session(self) -> Session:
        # Records are built before the session closes; not expiring on commit saves a re-select.
        return Session(self._engine, expire_on_commit=False)

    # --- users ---------------------------------------------------------------------------------

    async def create_user(
        self, handle: str, display_name: str, password_hash: str, locale: str, server_name: str
    ) -> UserRecord:
        """Insert an account whose fields are already validated; raise HandleTaken if it exists."""
        return await self._run(
            self._create_user, handle, display_name, password_hash, locale, server_name
        )

    def _create_user(
        self, handle: str, display_name: str, password_hash: str, locale: str, server_name: str
    ) -> UserRecord:
        row = User(
            id=f"{handle}@{server_name}",
            handle=handle,
            display_name=display_name,
            password_hash=password_hash,
            locale=Locale(locale),
        )
        with self._session() as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise HandleTaken(f"the handle {handle!r} is taken", field="handle") from None
            return _user(row)

    async def get_user(self, user_id: str) -> UserRecord | None:
        return await self._run(self._get_user, user_id)

    def _get_user(self, user_id: str) -> UserRecord | None:
        with self._session() as session:
            row = session.get(User, user_id)
            return None if row is None else _user(row)

    async def get_user_by_handle(self, handle: str, server_name: str) -> UserRecord | None:
        return await self.get_user(f"{handle}@{server_name}")

    async def list_users(self) -> list[UserRecord]:
        """Every account, oldest first (the operator's ``users list``)."""
        return await self._run(self._list_users)

    def _list_users(self) -> list[UserRecord]:
        query = select(User).order_by(col(User.created_at), col(User.id))
        with self._session() as session:
            return [_user(row) for row in session.exec(query)]

    async def update_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._run(self._update_password_hash, user_id, password_hash)

    def _update_password_hash(self, user_id: str, password_hash: str) -> None:
        with self._session() as session:
            result = session.execute(
                update(User).where(col(User.id) == user_id).values(password_hash=password_hash)
            )
            if _rowcount(result) == 0:
                raise UserNotFound(user_id=user_id)
            session.commit()

    # --- rooms ---------------------------------------------------------------------------------

    async def create_room(
        self,
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
        if scheduled_start is not None:
            scheduled_start = _aware_utc(scheduled_start)
        return await self._run(
            self._create_room, title, description, kind, host_id, scheduled_start, start_now
        )

    def _create_room(
        self,
        title: str,
        description: str,
        visibility: Visibility,
        host_id: str,
        scheduled_start: datetime | None,
        start_now: bool,
    ) -> RoomRecord:
        now = utcnow()
        row = Room(
            id=secrets.token_urlsafe(ROOM_ID_BYTES),
            title=title,
            description=description,
            visibility=visibility,
            host_id=host_id,
            scheduled_start=scheduled_start,
            started_at=now if start_now else None,
            created_at=now,
        )
        with self._session() as session:
            if session.get(User, host_id) is None:
                raise UserNotFound(user_id=host_id)
            session.add(row)
            session.commit()
            return _room(row)

    async def get_room(self, room_id: str) -> RoomRecord | None:
        return await self._run(self._get_room, room_id)

    def _get_room(self, room_id: str) -> RoomRecord | None:
        with self._session() as session:
            row = session.get(Room, room_id)
            return None if row is None else _room(row)

    async def list_rooms(
        self, status: RoomStatus | Literal["live", "scheduled", "ended"], limit: int = 100
    ) -> list[RoomRecord]:
        """Live rooms newest first; scheduled ones soonest first (unscheduled last); ended ones
        most recently ended first."""
        return await self._run(self._list_rooms, RoomStatus(status), max(0, limit))

    def _list_rooms(self, status: RoomStatus, limit: int) -> list[RoomRecord]:
        query = select(Room)
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
        with self._session() as session:
            return [_room(row) for row in session.exec(query.limit(limit))]

    # The lobby reads a page of rooms in a constant number of queries, whatever the page size.

    async def rooms_with_hosts(self, room_ids: list[str]) -> dict[str, tuple[RoomRecord, str]]:
        """Rooms by id with their host's display name, in one query; missing ids are absent."""
        if not room_ids:
            return {}
        return await self._run(self._rooms_with_hosts, list(room_ids))

    def _rooms_with_hosts(self, room_ids: list[str]) -> dict[str, tuple[RoomRecord, str]]:
        query = (
            select(Room, User.display_name)
            .join(User, col(User.id) == col(Room.host_id))
            .where(col(Room.id).in_(room_ids))
        )
        with self._session() as session:
            return {room.id: (_room(room), name) for room, name in session.exec(query)}

    async def scheduled_page(
        self, viewer_id: str | None, offset: int, limit: int
    ) -> list[tuple[RoomRecord, str]]:
        """Scheduled rooms ``viewer_id`` may see (soonest first) with their host's name: open
        ones, their own, and social ones whose host follows them. Closed ones only to the host."""
        return await self._run(self._scheduled_page, viewer_id, max(0, offset), max(0, limit))

    def _scheduled_page(
        self, viewer_id: str | None, offset: int, limit: int
    ) -> list[tuple[RoomRecord, str]]:
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
            .offset(offset)
            .limit(limit)
        )
        with self._session() as session:
            return [(_room(room), name) for room, name in session.exec(query)]

    async def open_rooms_count(self, host_id: str) -> int:
        """Rooms of ``host_id`` that are live or scheduled (not ended)."""
        return await self._run(self._open_rooms_count, host_id)

    def _open_rooms_count(self, host_id: str) -> int:
        query = (
            select(func.count())
            .select_from(Room)
            .where(col(Room.host_id) == host_id, col(Room.ended_at).is_(None))
        )
        with self._session() as session:
            return session.exec(query).one()

    async def mark_room_started(self, room_id: str, at: datetime) -> RoomRecord:
        """Record the start; a second call keeps the first time (a host who reconnects)."""
        return await self._run(self._mark_room, room_id, "started_at", _aware_utc(at))

    async def mark_room_ended(self, room_id: str, at: datetime) -> RoomRecord:
        """Record the end; a second call keeps the first time."""
        return await self._run(self._mark_room, room_id, "ended_at", _aware_utc(at))

    def _mark_room(
        self, room_id: str, column: Literal["started_at", "ended_at"], at: datetime
    ) -> RoomRecord:
        with self._session() as session:
            row = session.get(Room, room_id, with_for_update=True)
            if row is None:
                raise RoomNotFound(room_id=room_id)
            if getattr(row, column) is None:
                setattr(row, column, at)
                session.add(row)
                session.commit()
            return _room(row)

    # --- bans ----------------------------------------------------------------------------------

    async def add_ban(
        self, room_id: str | None, user_id: str, by_user_id: str, reason: str = ""
    ) -> BanRecord:
        """Ban ``user_id`` from a room, or from the server when ``room_id`` is None.

        Idempotent: banning again returns the ban already in force, with its original reason.
        """
        return await self._run(self._add_ban, room_id, user_id, by_user_id, reason)

    def _add_ban(
        self, room_id: str | None, user_id: str, by_user_id: str, reason: str
    ) -> BanRecord:
        with self._session() as session:
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

    async def is_banned(self, room_id: str | None, user_id: str) -> bool:
        """True if ``user_id`` is banned from this room or from the whole server."""
        return await self._run(self._is_banned, room_id, user_id)

    def _is_banned(self, room_id: str | None, user_id: str) -> bool:
        scope: ColumnElement[bool] = col(Ban.room_id).is_(None)
        if room_id is not None:
            scope = or_(scope, col(Ban.room_id) == room_id)
        query = select(Ban.id).where(col(Ban.user_id) == user_id, scope).limit(1)
        with self._session() as session:
            return session.exec(query).first() is not None

    async def server_banned_ids(self) -> set[str]:
        """The ids banned from the whole server."""
        return await self._run(self._server_banned_ids)

    def _server_banned_ids(self) -> set[str]:
        query = select(Ban.user_id).where(col(Ban.room_id).is_(None))
        with self._session() as session:
            return set(session.exec(query))

    async def remove_ban(self, room_id: str | None, user_id: str) -> bool:
        """Lift a room ban (or the server-wide one for None); False if there was none."""
        return await self._run(self._remove_ban, room_id, user_id)

    def _remove_ban(self, room_id: str | None, user_id: str) -> bool:
        room_match = col(Ban.room_id).is_(None) if room_id is None else col(Ban.room_id) == room_id
        with self._session() as session:
            result = session.execute(delete(Ban).where(room_match, col(Ban.user_id) == user_id))
            session.commit()
            return bool(_rowcount(result))

    # --- moderation log ------------------------------------------------------------------------

    async def log_moderation(
        self,
        room_id: str,
        actor_id: str,
        action: str,
        target_id: str | None,
        detail: dict[str, Any] | None = None,
    ) -> ModerationEntry:
        return await self._run(self._log_moderation, room_id, actor_id, action, target_id, detail)

    def _log_moderation(
        self,
        room_id: str,
        actor_id: str,
        action: str,
        target_id: str | None,
        detail: dict[str, Any] | None,
    ) -> ModerationEntry:
        row = ModerationLog(
            room_id=room_id,
            actor_id=actor_id,
            action=action,
            target_id=target_id,
            detail=dict(detail or {}),
        )
        with self._session() as session:
            if session.get(Room, room_id) is None:
                raise RoomNotFound(room_id=room_id)
            session.add(row)
            session.commit()
            return _entry(row)

    async def moderation_log(self, room_id: str, limit: int = 100) -> list[ModerationEntry]:
        """The room's moderation history, newest first."""
        return await self._run(self._moderation_log, room_id, max(0, limit))

    def _moderation_log(self, room_id: str, limit: int) -> list[ModerationEntry]:
        query = (
            select(ModerationLog)
            .where(col(ModerationLog.room_id) == room_id)
            .order_by(col(ModerationLog.at).desc(), col(ModerationLog.id).desc())
            .limit(limit)
        )
        with self._session() as session:
            return [_entry(row) for row in session.exec(query)]

    # --- follows -------------------------------------------------------------------------------

    async def follow(self, follower_id: str, followee_id: str) -> None:
        """Idempotent. Following yourself is an InvalidField; an unknown followee UserNotFound."""
        if follower_id == followee_id:
            raise InvalidField("you cannot follow yourself", field="followee_id")
        await self._run(self._follow, follower_id, followee_id)

    def _follow(self, follower_id: str, followee_id: str) -> None:
        with self._session() as session:
            if session.get(Follow, (follower_id, followee_id)) is not None:
                return
            for user_id in (follower_id, followee_id):
                if session.get(User, user_id) is None:
                    raise UserNotFound(user_id=user_id)
            session.add(Follow(follower_id=follower_id, followee_id=followee_id))
            try:
                session.commit()
            except IntegrityError:
                # The same follow raced in from another request: the outcome is what was asked.
                session.rollback()

    async def unfollow(self, follower_id: str, followee_id: str) -> bool:
        """False if there was nothing to undo."""
        return await self._run(self._unfollow, follower_id, followee_id)

    def _unfollow(self, follower_id: str, followee_id: str) -> bool:
        with self._session() as session:
            result = session.execute(
                delete(Follow).where(
                    col(Follow.follower_id) == follower_id, col(Follow.followee_id) == followee_id
                )
            )
            session.commit()
            return bool(_rowcount(result))

    async def followers_among(self, user_id: str, candidate_ids: list[str]) -> set[str]:
        """Which of ``candidate_ids`` follow ``user_id``? (Social rooms admit and show
        themselves to people the host or a moderator follows.)"""
        if not candidate_ids:
            return set()
        return await self._run(self._followers_among, user_id, list(candidate_ids))

    def _followers_among(self, user_id: str, candidate_ids: list[str]) -> set[str]:
        query = select(Follow.follower_id).where(
            col(Follow.followee_id) == user_id, col(Follow.follower_id).in_(candidate_ids)
        )
        with self._session() as session:
            return set(session.exec(query))

    async def following(self, user_id: str) -> list[str]:
        """Ids of the users ``user_id`` follows, in the order they were followed."""
        return await self._run(self._following, user_id)

    def _following(self, user_id: str) -> list[str]:
        query = (
            select(Follow.followee_id)
            .where(col(Follow.follower_id) == user_id)
            .order_by(col(Follow.created_at), col(Follow.followee_id))
        )
        with self._session() as session:
            return list(session.exec(query))

    async def followers_count(self, user_id: str) -> int:
        return await self._run(self._followers_count, user_id)

    def _followers_count(self, user_id: str) -> int:
        query = select(func.count()).select_from(Follow).where(col(Follow.followee_id) == user_id)
        with self._session() as session:
            return session.exec(query).one()

    # --- sessions ------------------------------------------------------------------------------

    async def create_session(self, user_id: str, ttl_seconds: int) -> SessionRecord:
        return await self._run(self._create_session, user_id, ttl_seconds)

    def _create_session(self, user_id: str, ttl_seconds: int) -> SessionRecord:
        now = utcnow()
        row = AuthSession(
            id=secrets.token_urlsafe(SESSION_ID_BYTES),
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
        with self._session() as session:
            if session.get(User, user_id) is None:
                raise UserNotFound(user_id=user_id)
            session.add(row)
            session.commit()
            return _session_record(row)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return await self._run(self._get_session, session_id)

    def _get_session(self, session_id: str) -> SessionRecord | None:
        with self._session() as session:
            row = session.get(AuthSession, session_id)
            return None if row is None else _session_record(row)

    async def revoke_session(self, session_id: str) -> bool:
        """Sign one session out; False if it was unknown or already revoked."""
        revoked = await self._run(self._revoke_sessions, col(AuthSession.id) == session_id)
        return revoked > 0

    async def revoke_user_sessions(self, user_id: str) -> int:
        """Sign a user out everywhere (after a password change); return how many were live."""
        return await self._run(self._revoke_sessions, col(AuthSession.user_id) == user_id)

    def _revoke_sessions(self, condition: Any) -> int:
        with self._session() as session:
            result = session.execute(
                update(AuthSession)
                .where(condition, col(AuthSession.revoked_at).is_(None))
                .values(revoked_at=utcnow())
            )
            session.commit()
            return _rowcount(result)

    async def delete_expired_sessions(self, before: datetime | None = None) -> int:
        """Drop sessions that expired before ``before`` (default now); for periodic cleanup."""
        return await self._run(self._delete_expired_sessions, before or utcnow())

    def _delete_expired_sessions(self, before: datetime) -> int:
        with self._session() as session:
            result = session.execute(
                delete(AuthSession).where(col(AuthSession.expires_at) < before)
            )
            session.commit()
            return _rowcount(result)


def _rowcount(result: Result[Any]) -> int:
    # Session.execute returns a CursorResult for DML; its annotations promise only Result.
    assert isinstance(result, CursorResult)
    return result.rowcount


def _aware_utc(at: datetime) -> datetime:
    # Records are built from the rows we wrote, so normalise here, not only in the column type.
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("naive datetime given to the database: use an aware UTC datetime")
    return at.astimezone(UTC)


def _ban_query(room_id: str | None, user_id: str) -> Any:
    room_match = col(Ban.room_id).is_(None) if room_id is None else col(Ban.room_id) == room_id
    return select(Ban).where(room_match, col(Ban.user_id) == user_id)


def _user(row: User) -> UserRecord:
    return UserRecord(
        id=row.id,
        handle=row.handle,
        display_name=row.display_name,
        password_hash=row.password_hash,
        locale=Locale(row.locale),
        created_at=row.created_at,
    )


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


def _session_record(row: AuthSession) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
