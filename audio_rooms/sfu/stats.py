"""Counters of the media plane: what was forwarded, what was dropped and why, how fast."""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field

# Latency histogram: 1 us buckets up to 50 ms, the last bucket collects everything slower.
LATENCY_BUCKET_NS = 1_000
LATENCY_BUCKETS = 50_000


@dataclass(frozen=True)
class MediaStats:
    routers: int
    transports: int
    producers: int
    consumers: int
    forwarded_packets: int
    forwarded_bytes: int
    drops: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    pipes: int = 0  # pipes this node sends to edges (as an origin)
    inlets: int = 0  # pipes this node takes from origins (as an edge)
    origins: int = 0  # rooms whose origin lease this node holds (set by the cascade)
    relayed: int = 0  # transports whose peer reaches them through TURN (of ``transports``)


class ForwardingStats:
    """Live counters shared by every router of a media server (one event loop, no locking)."""

    def __init__(self, measure_latency: bool = False) -> None:
        self.forwarded_packets = 0
        self.forwarded_bytes = 0
        self.drops: Counter[str] = Counter()
        # Transports that ended without signalling asking for it, by reason (see Transport).
        self.lost: Counter[str] = Counter()
        # An array of unsigned 64-bit counts (the compiled fast path writes it directly).
        self.latency: array[int] | None = _histogram() if measure_latency else None

    def drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] += n

    def latency_percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of forwarding latency in seconds, if measured."""
        if self.latency is None:
            return None
        total = sum(self.latency)
        if not total:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.latency):
            seen += n
            if seen >= rank:
                return (i + 1) * LATENCY_BUCKET_NS / 1e9
        return LATENCY_BUCKETS * LATENCY_BUCKET_NS / 1e9

    def latency_histogram(
        self, bounds: tuple[float, ...]
    ) -> tuple[list[tuple[float, int]], int, float] | None:
        """Cumulative counts at each upper bound (seconds), the total and the sum of seconds
        (each packet at its bucket's middle): a Prometheus histogram. None if not measured."""
        if self.latency is None:
            return None
        cumulative: list[tuple[float, int]] = []
        seen = 0
        in_buckets = 0.0
        edge = 0
        for bound in bounds:
            stop = min(LATENCY_BUCKETS, round(bound * 1e9 / LATENCY_BUCKET_NS))
            part = self.latency[edge:stop]
            seen += sum(part)
            in_buckets += sum(n * (edge + i + 0.5) for i, n in enumerate(part) if n)
            edge = max(edge, stop)
            cumulative.append((bound, seen))
        rest = self.latency[edge:]
        seen += sum(rest)
        in_buckets += sum(n * (edge + i + 0.5) for i, n in enumerate(rest) if n)
        return cumulative, seen, in_buckets * LATENCY_BUCKET_NS / 1e9

    def reset_latency(self) -> None:
        if self.latency is not None:
            self.latency = _histogram()


def _histogram() -> array[int]:
    return array("Q", bytes(8 * LATENCY_BUCKETS))
