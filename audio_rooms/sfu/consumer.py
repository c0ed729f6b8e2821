"""Consumer: one audio slot of one subscriber, fed packets of whichever speaker it is mapped to.

The hot path of the SFU. For every forwarded packet the header is rewritten into a per-slot
template (the subscriber's SSRC, Opus payload type, header extension ids and mid), the sequence
number and timestamp are shifted by per-slot offsets, and the packet is protected with the
subscriber's SRTP context and handed to its socket. Offsets are only recomputed when the slot
changes speaker, so a packet lost upstream stays a gap in the sequence numbers downstream.
"""

from __future__ import annotations

import logging
import random
from struct import pack_into

from audio_rooms.sfu.hooks import EgressPath, SenderCounters

logger = logging.getLogger(__name__)

ONE_BYTE_PROFILE = 0xBEDE
CLOCK_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz


def _header_template(
    ssrc: int, level_ext_id: int | None, mid_ext_id: int | None, mid: str | None
) -> tuple[bytearray, int]:
    """A header with room for the audio level; returns it and the level byte's offset (-1: none)."""
    elements = bytearray()
    level_pos = -1
    if level_ext_id is not None:
        elements += bytes([level_ext_id << 4, 0x7F])
        level_pos = 1
    if mid_ext_id is not None and mid:
        raw = mid.encode()
        elements += bytes([(mid_ext_id << 4) | (len(raw) - 1)]) + raw
    header = bytearray(12)
    header[0] = 0x80
    header[8:12] = ssrc.to_bytes(4, "big")
    if not elements:
        return header, -1
    elements += bytes(-len(elements) % 4)
    header[0] |= 0x10
    header += ONE_BYTE_PROFILE.to_bytes(2, "big") + (len(elements) // 4).to_bytes(2, "big")
    header += elements
    return header, (16 + level_pos if level_pos >= 0 else -1)


class Consumer:
    """One slot of a subscriber's transport (an m-line the subscriber receives on)."""

    __slots__ = (
        "_header",
        "_header_plain",
        "_last_ns",
        "_last_seq",
        "_last_ts",
        "_level_pos",
        "_resync",
        "_seq_offset",
        "_ts_offset",
        "closed",
        "counters",
        "index",
        "mid",
        "name",
        "path",
        "payload_type",
        "producer_id",
        "ssrc",
    )

    def __init__(
        self,
        name: str,
        index: int,
        mid: str,
        ssrc: int,
        payload_type: int,
        level_ext_id: int | None,
        mid_ext_id: int | None,
    ) -> None:
        self.name = name
        self.index = index
        self.mid = mid
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.producer_id: str | None = None
        self.path: EgressPath | None = None
        self.counters = SenderCounters()
        self.closed = False
        self._header, self._level_pos = _header_template(ssrc, level_ext_id, mid_ext_id, mid)
        self._header_plain, _ = _header_template(ssrc, None, mid_ext_id, mid)
        # Start low in the sequence space, like aiortc: libsrtp's rollover estimate breaks on an
        # early wrap-around.
        self._last_seq = random.randrange(0, 32768)
        self._last_ts = random.randrange(0, 1 << 32)
        self._last_ns = 0
        self._seq_offset = 0
        self._ts_offset = 0
        self._resync = True

    def __repr__(self) -> str:
        return f"Consumer({self.name}#{self.index} <- {self.producer_id})"

    def attach(self, producer_id: str | None) -> None:
        """Map this slot onto another speaker (or none); offsets follow on the next packet."""
        if producer_id != self.producer_id:
            logger.debug("%r switching to %s", self, producer_id)
            self.producer_id = producer_id
            self._resync = True

    def forward(
        self, payload: bytes, seq: int, ts: int, marker: int, level: int, now_ns: int
    ) -> int:
        """Rewrite, protect and send one packet; returns the bytes sent (0 if not connected)."""
        path = self.path
        if path is None:
            return 0
        if self._resync:
            # Continue this slot's own sequence and timeline across a change of speaker, so
            # the subscriber sees one stream with a pause, not a jump that looks like loss.
            elapsed = 0
            if self._last_ns:
                elapsed = (now_ns - self._last_ns) * CLOCK_RATE // 1_000_000_000
            self._seq_offset = (self._last_seq + 1 - seq) & 0xFFFF
            self._ts_offset = (self._last_ts + max(elapsed, FRAME_SAMPLES) - ts) & 0xFFFFFFFF
            self._resync = False
            marker = 1
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (ts + self._ts_offset) & 0xFFFFFFFF
        if level >= 0 and self._level_pos >= 0:
            header = self._header
            header[self._level_pos] = level
        else:
            header = self._header_plain
        pack_into("!BHI", header, 1, (marker << 7) | self.payload_type, out_seq, out_ts)
        data = path.protect(bytes(header) + payload)
        path.sendto(data, path.addr)
        self._last_seq = out_seq
        self._last_ts = out_ts
        self._last_ns = now_ns
        counters = self.counters
        counters.packets += 1
        counters.octets += len(payload)
        counters.last_rtp_timestamp = out_ts
        counters.last_send_ns = now_ns
        return len(data)

    def close(self) -> None:
        self.closed = True
        self.path = None
        self.producer_id = None
