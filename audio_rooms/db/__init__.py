"""Durable state in SQL through SQLModel: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from audio_rooms.db.database import Database
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

__all__ = [
    "BanRecord",
    "Database",
    "Locale",
    "ModerationEntry",
    "RoomRecord",
    "RoomStatus",
    "SessionRecord",
    "UserRecord",
    "Visibility",
]
