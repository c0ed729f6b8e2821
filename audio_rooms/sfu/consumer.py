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

from audio_rooms.sfu import egress
from audio_rooms.sfu.hooks import EgressPath, SenderCounters
from audio_rooms.sfu.rtp import header_template

logger = logging.getLogger(__name__)

CLOCK_RATE = egress.CLOCK_RATE


class Consumer:
    """One slot of a subscriber's transport (an m-line the subscriber receives on).

    Its per-packet state lives in ``slot`` (:mod:`audio_rooms.sfu.egress`: compiled or pure
    Python), which is also the ``counters`` its RTCP sender reports are built from.
    """

    __slots__ = ("closed", "index", "mid", "name", "payload_type", "producer_id", "slot", "ssrc")

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
        self.closed = False
        header, level_pos = header_template(ssrc, level_ext_id, mid_ext_id, mid)
        plain, _ = header_template(ssrc, None, mid_ext_id, mid)
        # Start low in the sequence space, like aiortc: libsrtp's rollover estimate breaks on an
        # early wrap-around.
        self.slot: egress.Slot = egress.new_slot(
            bytes(header),
            bytes(plain),
            level_pos,
            payload_type,
            random.randrange(0, 32768),
            random.randrange(0, 1 << 32),
        )

    def __repr__(self) -> str:
        return f"Consumer({self.name}#{self.index} <- {self.producer_id})"

    @property
    def counters(self) -> SenderCounters:
        """What this slot really sent (packets, octets, last RTP timestamp and send time)."""
        return self.slot

    @property
    def path(self) -> EgressPath | None:
        return self.slot.path

    @path.setter
    def path(self, path: EgressPath | None) -> None:
        self.slot.set_path(path)

    def attach(self, producer_id: str | None) -> None:
        """Map this slot onto another speaker (or none); offsets follow on the next packet."""
        if producer_id != self.producer_id:
            logger.debug("%r switching to %s", self, producer_id)
            self.producer_id = producer_id
            self.slot.resync = True

    def close(self) -> None:
        self.closed = True
        self.slot.set_path(None)
        self.producer_id = None
