"""Roles, their ranks, and the room visibilities."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    HOST = "host"
    MODERATOR = "moderator"
    SPEAKER = "speaker"
    LISTENER = "listener"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def on_stage(self) -> bool:
        return self is not Role.LISTENER

    @property
    def moderates(self) -> bool:
        return self in (Role.HOST, Role.MODERATOR)

    def outranks(self, other: Role) -> bool:
        return self.rank > other.rank


_RANK = {Role.LISTENER: 0, Role.SPEAKER: 1, Role.MODERATOR: 2, Role.HOST: 3}


class Visibility(StrEnum):
    OPEN = "open"  # anyone, guests included
    SOCIAL = "social"  # followers of a moderator, or holders of an invite link
    CLOSED = "closed"  # holders of an invite link only


class LiveStatus(StrEnum):
    """A live room's lifecycle in Redis (the durable record adds "scheduled": db.RoomStatus)."""

    LIVE = "live"
    ENDED = "ended"
