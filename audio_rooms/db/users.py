"""Accounts and their sign-in sessions: one aggregate, since a session belongs to one user."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from audio_rooms.db.engine import utcnow
from audio_rooms.db.records import Locale, SessionRecord, UserRecord
from audio_rooms.db.runner import Aggregate, in_session, rowcount
from audio_rooms.db.tables import AuthSession, User
from audio_rooms.errors import HandleTaken, UserNotFound

SESSION_ID_BYTES = 32


class Users(Aggregate):
    @in_session
    def create_user(
        self,
        session: Session,
        handle: str,
        display_name: str,
        password_hash: str,
        locale: str,
        server_name: str,
    ) -> UserRecord:
        """Insert an account whose fields are already validated; raise HandleTaken if it exists."""
        row = User(
            id=f"{handle}@{server_name}",
            handle=handle,
            display_name=display_name,
            password_hash=password_hash,
            locale=Locale(locale),
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            raise HandleTaken(f"the handle {handle!r} is taken", field="handle") from None
        return _user(row)

    @in_session
    def get_user(self, session: Session, user_id: str) -> UserRecord | None:
        row = session.get(User, user_id)
        return None if row is None else _user(row)

    @in_session
    def get_user_by_handle(
        self, session: Session, handle: str, server_name: str
    ) -> UserRecord | None:
        row = session.get(User, f"{handle}@{server_name}")
        return None if row is None else _user(row)

    @in_session
    def list_users(self, session: Session) -> list[UserRecord]:
        """Every account, oldest first (the operator's ``users list``)."""
        query = select(User).order_by(col(User.created_at), col(User.id))
        return [_user(row) for row in session.exec(query)]

    @in_session
    def set_admin(self, session: Session, user_id: str, admin: bool) -> None:
        """Grant or take away the server administrator role; UserNotFound if no such user."""
        result = session.execute(
            update(User).where(col(User.id) == user_id).values(is_admin=admin)
        )
        session.commit()
        if not rowcount(result):
            raise UserNotFound(f"no user {user_id!r}")

    @in_session
    def update_password_hash(self, session: Session, user_id: str, password_hash: str) -> None:
        result = session.execute(
            update(User).where(col(User.id) == user_id).values(password_hash=password_hash)
        )
        if rowcount(result) == 0:
            raise UserNotFound(user_id=user_id)
        session.commit()


class SignInSessions(Aggregate):
    @in_session
    def create_session(self, session: Session, user_id: str, ttl_seconds: int) -> SessionRecord:
        now = utcnow()
        row = AuthSession(
            id=secrets.token_urlsafe(SESSION_ID_BYTES),
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
        if session.get(User, user_id) is None:
            raise UserNotFound(user_id=user_id)
        session.add(row)
        session.commit()
        return _session_record(row)

    @in_session
    def get_session(self, session: Session, session_id: str) -> SessionRecord | None:
        row = session.get(AuthSession, session_id)
        return None if row is None else _session_record(row)

    @in_session
    def revoke_session(self, session: Session, session_id: str) -> bool:
        """Sign one session out; False if it was unknown or already revoked."""
        return _revoke(session, col(AuthSession.id) == session_id) > 0

    @in_session
    def revoke_user_sessions(self, session: Session, user_id: str) -> int:
        """Sign a user out everywhere (after a password change); return how many were live."""
        return _revoke(session, col(AuthSession.user_id) == user_id)

    @in_session
    def delete_expired_sessions(self, session: Session, before: datetime | None = None) -> int:
        """Drop sessions that expired before ``before`` (default now); for periodic cleanup."""
        result = session.execute(
            delete(AuthSession).where(col(AuthSession.expires_at) < (before or utcnow()))
        )
        session.commit()
        return rowcount(result)


def _revoke(session: Session, condition: Any) -> int:
    result = session.execute(
        update(AuthSession)
        .where(condition, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()
    return rowcount(result)


def _user(row: User) -> UserRecord:
    return UserRecord(
        id=row.id,
        handle=row.handle,
        display_name=row.display_name,
        password_hash=row.password_hash,
        locale=Locale(row.locale),
        created_at=row.created_at,
        is_admin=row.is_admin,
    )


def _session_record(row: AuthSession) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
