"""Frozen records returned by :class:`~audio_rooms.db.database.Database`.

Plain values, detached from any session, safe to pass across threads and into the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from audio_rooms.domain.roles import Visibility as Visibility  # re-exported: rooms carry it


class Locale(StrEnum):
    FA = "fa"
    EN = "en"


class RoomStatus(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    handle: str
    display_name: str
    password_hash: str = field(repr=False)
    locale: Locale
    created_at: datetime
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class RoomRecord:
    id: str
    title: str
    description: str
    visibility: Visibility
    host_id: str
    scheduled_start: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime

    @property
    def status(self) -> RoomStatus:
        # Ended wins even without a start: a scheduled room that is cancelled is over.
        if self.ended_at is not None:
            return RoomStatus.ENDED
        if self.started_at is not None:
            return RoomStatus.LIVE
        return RoomStatus.SCHEDULED


@dataclass(frozen=True, slots=True)
class BanRecord:
    room_id: str | None
    """None: banned from the whole server."""
    user_id: str
    by_user_id: str
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ModerationEntry:
    id: int
    room_id: str
    actor_id: str
    action: str
    target_id: str | None
    detail: dict[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str = field(repr=False)
    user_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at
