"""The RTCP sender reports of every forwarded slot of a media server, sent on its beat.

aiortc gives every RTCRtpSender its own RTCP task that wakes every 0.5-1.5 s, builds report
objects and sends them through coroutines. With several slots per listener those timers were
most of what an idle listener cost the SFU. Instead, each slot's sender is registered here when
its transport connects (:func:`hooks.take_over_sender_reports` stops its own timer), and the
media server's :class:`~audio_rooms.sfu.beat.Beat` walks a wheel of one bucket per beat: every
slot sits in a random bucket, so it reports once per ``period`` (``MediaConfig.
sender_report_interval``, 5 s: libwebrtc's interval for audio; aiortc's is 1 s) at a random
phase, and the work is spread evenly instead of arriving as one burst (which would delay
forwarding).

A report is what aiortc's would be (SR + SDES CNAME), with the forwarded stream's packet and
octet counts and a true NTP/RTP timestamp pair (:func:`hooks.sender_report`); a slot that has
carried nothing sends none.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from aiortc import RTCRtpSender

from audio_rooms.sfu import hooks
from audio_rooms.sfu.beat import Beat

if TYPE_CHECKING:
    from audio_rooms.sfu.consumer import Consumer

logger = logging.getLogger(__name__)

PERIOD = 5.0


class _Entry:
    __slots__ = ("clock_rate", "consumer", "sender")

    def __init__(self, sender: RTCRtpSender, consumer: Consumer, clock_rate: int) -> None:
        self.sender = sender
        self.consumer = consumer
        self.clock_rate = clock_rate


class SenderReports:
    """Sends the sender reports of registered slots, each about once a ``period``."""

    def __init__(self, beat: Beat | None = None, period: float = PERIOD) -> None:
        self.beat = beat if beat is not None else Beat()
        buckets = max(1, round(period / self.beat.interval))
        self._wheel: list[dict[int, _Entry]] = [{} for _ in range(buckets)]
        self._where: dict[int, int] = {}
        self._on_beat = False
        self._position = 0
        self.sent = 0

    def __len__(self) -> int:
        return len(self._where)

    def add(self, sender: RTCRtpSender, consumer: Consumer, clock_rate: int) -> None:
        """Report for ``consumer``'s slot on ``sender`` from now on (until :meth:`remove`)."""
        key = id(consumer)
        self.remove(consumer)
        bucket = random.randrange(len(self._wheel))
        self._wheel[bucket][key] = _Entry(sender, consumer, clock_rate)
        self._where[key] = bucket
        if not self._on_beat:
            self._on_beat = True
            self.beat.every_beat(self._step)

    def remove(self, consumer: Consumer) -> None:
        bucket = self._where.pop(id(consumer), None)
        if bucket is not None:
            self._wheel[bucket].pop(id(consumer), None)

    def close(self) -> None:
        for bucket in self._wheel:
            bucket.clear()
        self._where.clear()

    def _step(self) -> bool:
        """One beat: report the slots of the next bucket. False once no slot is left."""
        bucket = self._wheel[self._position]
        self._position = (self._position + 1) % len(self._wheel)
        for entry in list(bucket.values()):
            try:
                self._report(entry)
            except Exception:  # never let one slot stop everyone's reports
                logger.exception("sender report for %r failed", entry.consumer)
        if not self._where:
            self._on_beat = False
        return self._on_beat

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
