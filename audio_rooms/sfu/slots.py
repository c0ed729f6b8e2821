"""Which speakers a room forwards, and onto which of each listener's slots.

A listener negotiates a fixed number of audio slots once. The room picks its loudest speakers
(one more than a listener's slots, so that a selected speaker still hears ``slots`` others) and
each listener's slots are mapped onto them. Changing the mapping is a local decision of the SFU;
the listener's SDP never changes.

Hysteresis: a speaker outside the selection replaces the quietest selected one only after being
louder by ``margin`` for ``hold`` seconds without interruption, so a cough, a laugh or a door
does not take a slot from someone who is talking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DEFAULT_MARGIN = 0.1
DEFAULT_HOLD = 0.6


class SpeakerSelector:
    """The set of speakers a room forwards, updated from smoothed levels (pure, no I/O)."""

    def __init__(
        self, size: int, margin: float = DEFAULT_MARGIN, hold: float = DEFAULT_HOLD
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.margin = margin
        self.hold = hold
        self._selected: list[str] = []
        self._challenging_since: dict[str, float] = {}

    @property
    def selected(self) -> list[str]:
        """Selected speakers in the order they were selected."""
        return list(self._selected)

    def update(self, levels: Mapping[str, float], now: float) -> bool:
        """Re-select from ``levels`` (every speaker allowed to produce); True if it changed.

        A speaker missing from ``levels`` (demoted, muted, gone) leaves at once; free places are
        filled at once by the loudest remaining speakers; only a full selection applies the
        hysteresis.
        """
        before = list(self._selected)
        self._selected = [p for p in self._selected if p in levels]
        for pid in list(self._challenging_since):
            if pid not in levels or pid in self._selected:
                del self._challenging_since[pid]

        waiting = sorted(
            (p for p in levels if p not in self._selected), key=lambda p: (-levels[p], p)
        )
        while waiting and len(self._selected) < self.size:
            self._selected.append(waiting.pop(0))

        if waiting:
            challenger = waiting[0]
            weakest = min(self._selected, key=lambda p: (levels[p], p))
            if levels[challenger] > levels[weakest] + self.margin:
                since = self._challenging_since.setdefault(challenger, now)
                if now - since >= self.hold:
                    self._selected[self._selected.index(weakest)] = challenger
                    del self._challenging_since[challenger]
            else:
                self._challenging_since.pop(challenger, None)
            for pid in waiting[1:]:
                self._challenging_since.pop(pid, None)
        return self._selected != before


def wanted_for(selected: Sequence[str], subscriber: str, slots: int) -> list[str]:
    """The speakers a subscriber should hear: the selection minus themselves."""
    return [p for p in selected if p != subscriber][:slots]


def assign(current: Sequence[str | None], wanted: Sequence[str]) -> list[str | None]:
    """Map ``wanted`` speakers onto slots, leaving every speaker who stays in their slot.

    Moving a speaker between slots would reset their stream at the listener (a new timestamp
    base, a jitter-buffer flush), so only newly wanted speakers move, into freed slots.
    """
    result: list[str | None] = [p if p in wanted else None for p in current]
    missing = [p for p in wanted if p not in result]
    for i, p in enumerate(result):
        if p is None and missing:
            result[i] = missing.pop(0)
    return result
