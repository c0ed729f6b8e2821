"""One timer for the RTCP sender reports of every forwarded slot of a media server.

aiortc gives every RTCRtpSender its own RTCP task that wakes every 0.5-1.5 s, builds report
objects and sends them through coroutines. With several slots per listener those timers were
most of what an idle listener cost the SFU. Instead, each slot's sender is registered here when
its transport connects (:func:`hooks.take_over_sender_reports` stops its own timer), and one
timer walks a wheel of ``BUCKETS`` buckets, one bucket per ``TICK``: every slot sits in a random
bucket, so it reports once per ``BUCKETS * TICK`` (1 s, aiortc's mean interval) at a random
phase, and the work is spread evenly over the second instead of arriving as one burst (which
would delay forwarding).

A report is what aiortc's would be (SR + SDES CNAME), with the forwarded stream's packet and
octet counts and a true NTP/RTP timestamp pair (:func:`hooks.sender_report`); a slot that has
carried nothing sends none.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from audio_rooms.sfu import hooks

logger = logging.getLogger(__name__)

TICK = 0.05
BUCKETS = 20


class _Entry:
    __slots__ = ("clock_rate", "consumer", "sender")

    def __init__(self, sender: Any, consumer: Any, clock_rate: int) -> None:
        self.sender = sender
        self.consumer = consumer
        self.clock_rate = clock_rate


class SenderReports:
    """Sends the sender reports of registered slots, each about once a second."""

    def __init__(self, tick: float = TICK, buckets: int = BUCKETS) -> None:
        self._tick = tick
        self._wheel: list[dict[int, _Entry]] = [{} for _ in range(buckets)]
        self._where: dict[int, int] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._position = 0
        self._next_at = 0.0
        self.sent = 0

    def __len__(self) -> int:
        return len(self._where)

    def add(self, sender: Any, consumer: Any, clock_rate: int) -> None:
        """Report for ``consumer``'s slot on ``sender`` from now on (until :meth:`remove`)."""
        key = id(consumer)
        self.remove(consumer)
        bucket = random.randrange(len(self._wheel))
        self._wheel[bucket][key] = _Entry(sender, consumer, clock_rate)
        self._where[key] = bucket
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._next_at = loop.time() + self._tick
            self._handle = loop.call_at(self._next_at, self._run)

    def remove(self, consumer: Any) -> None:
        bucket = self._where.pop(id(consumer), None)
        if bucket is not None:
            self._wheel[bucket].pop(id(consumer), None)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for bucket in self._wheel:
            bucket.clear()
        self._where.clear()

    def _run(self) -> None:
        self._handle = None
        bucket = self._wheel[self._position]
        self._position = (self._position + 1) % len(self._wheel)
        try:
            for entry in list(bucket.values()):
                self._report(entry)
        except Exception:  # never let one slot stop everyone's reports
            logger.exception("sender reports failed")
        if not self._where:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next_at += self._tick
        if self._next_at < now:  # a stalled loop: do not try to catch up with a burst
            self._next_at = now + self._tick
        self._handle = loop.call_at(self._next_at, self._run)

    def _report(self, entry: _Entry) -> None:
        consumer = entry.consumer
        if consumer.closed:
            return
        path = consumer.path
        if path is None:
            return
        data = hooks.sender_report(entry.sender, consumer.counters, entry.clock_rate)
        if data is not None and hooks.send_rtcp(path, data):
            self.sent += 1
