"""Producer: one participant's microphone stream as it enters the SFU.

Every decrypted RTP packet of a participant's transport comes here first. It is checked
(size, parse, payload type, SSRC, permission), counted in the receiver reports the publisher
gets back, its audio level is metered, and it is handed to the consumers currently mapped to
this speaker. Nothing is decoded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiortc import RTCRtpReceiver

from audio_rooms.sfu import egress, hooks, rtp
from audio_rooms.sfu.audiolevel import LevelMeter
from audio_rooms.sfu.consumer import CLOCK_RATE, Consumer
from audio_rooms.sfu.stats import ForwardingStats

logger = logging.getLogger(__name__)

# (speaker id, RTP sequence number, RTP timestamp, Opus payload, RFC 6464 level byte or -1):
# told every packet that is forwarded, exactly as it is forwarded (see Router.add_tap).
Tap = Callable[[str, int, int, bytes, int], None]


class Producer:
    """The microphone of one participant (the first m-line the participant sends on)."""

    def __init__(
        self,
        participant_id: str,
        payload_type: int | None,
        ssrc: int | None,
        audio_level_id: int | None,
        receiver: RTCRtpReceiver | None,
        stats: ForwardingStats,
        max_rtp_size: int,
        allowed: bool,
    ) -> None:
        self.participant_id = participant_id
        # None when the participant offered no sending m-line: every packet is then unexpected.
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.allowed = allowed
        self._consumers: list[Consumer] = []
        self._slots: list[egress.Slot] = []
        # Lanes of pipes to edge nodes carrying this speaker (pipe.py), before the consumers'
        # slots: an edge's listeners wait for the origin's copy to its pipe, so it leaves first
        # (after the origin's listeners it added their whole fan-out to every edge listener's
        # latency: bench/sfu_cascade.py, docs/benchmarks.md "Cascade").
        self._pipe_slots: list[egress.Slot] = []
        # One call per ingress packet does the whole fan-out (compiled when built).
        self._fanout: egress.Fanout = egress.fanout_function()
        # Set by the router while this speaker is selected and something taps the room; None
        # otherwise, so forwarding costs one attribute read more when nobody taps.
        self.tap: Tap | None = None
        self.meter = LevelMeter()
        self.closed = False
        self.packets_received = 0
        self._audio_level_id = audio_level_id
        self._receiver = receiver
        self._stats = stats
        self._max_rtp_size = max_rtp_size

    def __repr__(self) -> str:
        return f"Producer({self.participant_id})"

    def handle_rtp(self, data: bytes, arrival_ns: int) -> None:
        """Forward one decrypted packet of this participant's transport, or count why not."""
        stats = self._stats
        if self.closed:
            stats.drop("closed")
            return
        if len(data) > self._max_rtp_size:
            stats.drop("oversized")
            return
        try:
            packet = rtp.parse(data, self._audio_level_id)
        except ValueError:
            stats.drop("malformed_rtp")
            return
        if self.payload_type is None or packet.payload_type != self.payload_type:
            stats.drop("unknown_payload_type")
            return
        if self.ssrc is None:
            # The offer did not signal the microphone's SSRC: take the first Opus stream, as
            # aiortc and browsers do for unsignalled streams.
            self.ssrc = packet.ssrc
            logger.debug("%r latched SSRC %d", self, packet.ssrc)
        elif packet.ssrc != self.ssrc:
            stats.drop("unknown_ssrc")
            return
        if self._receiver is not None:
            hooks.feed_receiver_report(self._receiver, packet, CLOCK_RATE)
        if not self.allowed:
            # Checked on every packet: a demotion or moderator mute stops the very next one,
            # whatever the client keeps sending.
            stats.drop("not_permitted")
            return

        level = packet.audio_level  # the RFC 6464 byte (voice flag | -dBov), or -1
        if level >= 0:
            self.meter.add(level & 0x7F, time.monotonic())
        self.packets_received += 1

        n, sent, failed = self._fanout(
            self._slots,
            packet.payload,
            packet.sequence_number,
            packet.timestamp,
            packet.marker,
            level,
            arrival_ns,
            stats.latency,
        )
        stats.forwarded_packets += n
        stats.forwarded_bytes += sent
        if failed:
            stats.drop("egress_failed", failed)
        tap = self.tap
        if tap is not None:
            tap(self.participant_id, packet.sequence_number, packet.timestamp, packet.payload,
                level)

    @property
    def consumers(self) -> list[Consumer]:
        """The slots currently mapped to this speaker (set by the router)."""
        return self._consumers

    @consumers.setter
    def consumers(self, consumers: list[Consumer]) -> None:
        self._consumers = consumers
        self._slots = self._pipe_slots + [c.slot for c in consumers]

    @property
    def pipe_slots(self) -> list[egress.Slot]:
        """The pipe lanes carrying this speaker to edge nodes (set by the router)."""
        return self._pipe_slots

    @pipe_slots.setter
    def pipe_slots(self, slots: list[egress.Slot]) -> None:
        self._pipe_slots = slots
        self._slots = slots + [c.slot for c in self._consumers]

    def add_consumer(self, consumer: Consumer) -> None:
        """Map one more slot onto this speaker (a listener joined)."""
        # Consumers' slots follow the pipe lanes, in the consumers' order (remove_consumer
        # relies on it).
        self._slots.append(consumer.slot)
        self._consumers.append(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        """Stop feeding one slot (its listener left, or it now carries someone else)."""
        for i, c in enumerate(self._consumers):
            if c is consumer:
                del self._consumers[i]
                del self._slots[len(self._pipe_slots) + i]
                return

    def close(self) -> None:
        self.closed = True
        self._pipe_slots = []
        self.consumers = []
        self.tap = None
