"""Reactions, tallied per room and sent as counts: N people clapping cost each listener one
frame per tick, not N frames.

A reaction changes no room state, so it is not a transition: it never touches the room's
optimistic lock, and a hundred guests clapping do not queue behind each other in Redis.
"""

from __future__ import annotations

from collections import Counter

from audio_rooms import errors
from audio_rooms.domain.actions import REACTIONS


def check(emoji: str) -> str:
    """The emoji, if it is one the room offers; free text would bypass moderation."""
    if emoji not in REACTIONS:
        raise errors.InvalidField("That reaction is not offered.", field="emoji")
    return emoji


class Tally:
    """Reactions per room since the last tick."""

    def __init__(self) -> None:
        self._rooms: dict[str, Counter[str]] = {}

    def add(self, room_id: str, emoji: str) -> None:
        self._rooms.setdefault(room_id, Counter())[check(emoji)] += 1

    def drain(self) -> dict[str, dict[str, int]]:
        """Every room's counts since the last drain (rooms with none are absent)."""
        rooms, self._rooms = self._rooms, {}
        return {room_id: dict(counts) for room_id, counts in rooms.items()}
