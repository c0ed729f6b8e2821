"""ActiveSpeakerObserver: who is speaking in a room, told to signalling when it changes.

mediasoup's ActiveSpeakerObserver in this SFU's terms: the router owns one, shows it the
permitted speakers' levels on every tick, and closes it with itself; after ``close()`` nothing
more is reported. The callback (``on_active_speakers(room_id, levels)``) sees the speakers with
a level above zero, loudest first, and only when that list changed since the last report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from audio_rooms.sfu.audiolevel import SpeakerLevel

logger = logging.getLogger(__name__)

ActiveSpeakersCallback = Callable[[str, list[SpeakerLevel]], None]


class ActiveSpeakerObserver:
    def __init__(self, room_id: str, on_active_speakers: ActiveSpeakersCallback | None = None):
        self.room_id = room_id
        self.on_active_speakers = on_active_speakers
        self._last: list[SpeakerLevel] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"ActiveSpeakerObserver({self.room_id})"

    @property
    def closed(self) -> bool:
        return self._closed

    def observe(self, levels: dict[str, float]) -> None:
        """Report ``levels`` (participant -> level in 0..1) if who speaks, or how loud, changed."""
        if self._closed:
            return
        speaking = sorted(
            (SpeakerLevel(pid, round(level, 3)) for pid, level in levels.items() if level > 0),
            key=lambda s: (-s.level, s.participant_id),
        )
        if speaking == self._last or self.on_active_speakers is None:
            self._last = speaking
            return
        self._last = speaking
        try:
            self.on_active_speakers(self.room_id, speaking)
        except Exception:
            logger.exception("%r on_active_speakers failed", self)

    def close(self) -> None:
        """Report nothing more (the router closed)."""
        self._closed = True
        self.on_active_speakers = None
        self._last = []
