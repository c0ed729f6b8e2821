"""SQLModel tables: the durable half of the state (live room state is in Redis).

These classes never leave :mod:`audio_rooms.db`: :class:`~audio_rooms.db.database.Database`
returns the frozen records of :mod:`audio_rooms.db.records` instead, so no caller can trigger a
lazy load or a flush from the event loop.

Every timestamp column is :class:`~audio_rooms.db.engine.UTCDateTime` (aware UTC in Python).
A change here needs a migration in ``migrations/versions/`` (docs/database.md says how).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from audio_rooms.db.engine import UTCDateTime, utcnow

HANDLE_MAX = 32
DISPLAY_NAME_MAX = 64
TITLE_MAX = 120
DESCRIPTION_MAX = 1000


class User(SQLModel, table=True):
    __tablename__ = "users"

    # "handle@server_name": ids are namespaced from the start because deployments will link up,
    # and a handle is unique per server simply because this key is unique.
    id: str = Field(primary_key=True, max_length=HANDLE_MAX + 1 + 253)
    handle: str = Field(max_length=HANDLE_MAX, index=True)
    display_name: str = Field(max_length=DISPLAY_NAME_MAX)
    password_hash: str = Field(max_length=255)
    locale: str = Field(max_length=8)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # A server administrator: may use the admin page (admin_api.py). Granted by the CLI only.
    is_admin: bool = Field(default=False)


class Room(SQLModel, table=True):
    __tablename__ = "rooms"
    __table_args__ = (
        Index("ix_rooms_live", "started_at", "ended_at"),
        Index("ix_rooms_scheduled", "scheduled_start"),
    )

    id: str = Field(primary_key=True, max_length=32)
    title: str = Field(max_length=TITLE_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    visibility: str = Field(max_length=16)
    host_id: str = Field(foreign_key="users.id", index=True)
    scheduled_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Ban(SQLModel, table=True):
    """A room ban, or with ``room_id`` NULL a ban from the whole server.

    ``user_id`` and ``by_user_id`` have no foreign key: a banned listener may be a guest or a user
    of another server, neither of which has a row here.
    """

    __tablename__ = "bans"
    __table_args__ = (
        UniqueConstraint("room_id", "user_id", name="uq_bans_room_user"),
        # NULLs are distinct in a unique constraint on both backends, so the constraint above
        # cannot keep server-wide bans unique; this partial index does.
        Index(
            "uq_bans_server_user",
            "user_id",
            unique=True,
            sqlite_where=text("room_id IS NULL"),
            postgresql_where=text("room_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    room_id: str | None = Field(default=None, foreign_key="rooms.id", ondelete="CASCADE")
    user_id: str = Field(index=True)
    by_user_id: str
    reason: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ModerationLog(SQLModel, table=True):
    __tablename__ = "moderation_log"
    __table_args__ = (Index("ix_moderation_log_room_at", "room_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    room_id: str = Field(foreign_key="rooms.id", ondelete="CASCADE")
    # No foreign keys on people, as for bans: guests and remote users act and are acted upon.
    actor_id: str
    action: str = Field(max_length=64)
    target_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Follow(SQLModel, table=True):
    __tablename__ = "follows"
    # The primary key (follower, followee) serves "whom do I follow"; this serves the counts.
    __table_args__ = (Index("ix_follows_followee", "followee_id"),)

    follower_id: str = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    followee_id: str = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FederationConsent(SQLModel, table=True):
    """A user let their home server join rooms of another server for them (federation)."""

    __tablename__ = "federation_consents"

    user_id: str = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    server: str = Field(primary_key=True, max_length=253)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FederationPeer(SQLModel, table=True):
    """An operator's decision about another deployment, made with the CLI (federation/peers.py)."""

    __tablename__ = "federation_peers"

    server: str = Field(primary_key=True, max_length=253)
    policy: str = Field(max_length=8)  # "allow" | "deny"
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuthSession(SQLModel, table=True):
    """A signed-in session; tokens name one, so revoking the row signs the token out."""

    __tablename__ = "auth_sessions"

    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

