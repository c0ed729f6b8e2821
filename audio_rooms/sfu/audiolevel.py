"""Audio levels from the RFC 6464 header extension, without decoding a single packet.

A client's encoder measures each frame's level and writes it as -dBov (0 = loudest, 127 =
silence) into the ``ssrc-audio-level`` extension. Ranking speakers and drawing speaking rings
only needs that byte.
"""

from __future__ import annotations

from dataclasses import dataclass

# Levels below this are treated as silence: -90 dBov is well under any microphone's noise floor.
FLOOR_DBOV = 90
# Smoothing per packet (20 ms): a time constant of about 150 ms, long enough that one loud
# packet is not a speaker, short enough that a speaker's ring lights up without visible lag.
ALPHA = 0.12
# A stream that has sent nothing for this long (muted, DTX during silence) counts as silent.
STALE_AFTER = 0.5


@dataclass(frozen=True)
class SpeakerLevel:
    participant_id: str
    level: float  # 0.0 (silence) .. 1.0 (loud), derived from RFC 6464 dBov


def level_from_dbov(dbov: int) -> float:
    """Map RFC 6464 ``-dBov`` (0..127) onto 0.0 (silence) .. 1.0 (full scale)."""
    if dbov >= FLOOR_DBOV:
        return 0.0
    return 1.0 - max(0, dbov) / FLOOR_DBOV


class LevelMeter:
    """The smoothed level of one speaker's stream."""

    __slots__ = ("_last_time", "_smoothed")

    def __init__(self) -> None:
        self._smoothed = 0.0
        self._last_time = float("-inf")

    def add(self, dbov: int, now: float) -> None:
        self._smoothed += ALPHA * (level_from_dbov(dbov) - self._smoothed)
        self._last_time = now

    def value(self, now: float) -> float:
        if now - self._last_time > STALE_AFTER:
            return 0.0
        return self._smoothed
