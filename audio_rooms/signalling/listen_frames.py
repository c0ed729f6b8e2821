"""The frames of the listen WebSocket (docs/protocol.md, "Listening over the WebSocket").

One binary message per Opus packet, as the SFU forwards it: a 9-byte header, then the packet's
payload unchanged. Close to a MoQ object (a track, a group/object number, a payload), so that
WebTransport can carry the same later. Pure: build and parse side by side, no I/O.

    offset  size  field
    0       1     version (1)
    1       1     speaker: a number for one speaker's stream, stable while it is relayed
    2       2     RTP sequence number (big-endian): a gap is a lost packet
    4       4     RTP timestamp, 48 kHz (big-endian)
    8       1     audio level: the RFC 6464 byte (bit 7 voice, bits 0-6 -dBov), 0xFF unknown
    9       ...   Opus payload (RFC 7587), unmodified
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VERSION = 1
HEADER = struct.Struct("!BBHIB")
HEADER_SIZE = HEADER.size  # 9
NO_LEVEL = 0xFF


@dataclass(frozen=True)
class AudioFrame:
    speaker: int
    sequence_number: int
    timestamp: int
    level: int  # the RFC 6464 byte, or -1 when the packet carried none
    payload: bytes

    def __bytes__(self) -> bytes:
        return encode(self.speaker, self.sequence_number, self.timestamp, self.level,
                      self.payload)

    @classmethod
    def parse(cls, data: bytes) -> AudioFrame:
        if len(data) < HEADER_SIZE:
            raise ValueError("listen frame shorter than its header")
        version, speaker, seq, timestamp, level = HEADER.unpack_from(data)
        if version != VERSION:
            raise ValueError(f"listen frame version {version} is not {VERSION}")
        return cls(speaker, seq, timestamp, -1 if level == NO_LEVEL else level,
                   bytes(data[HEADER_SIZE:]))


def encode(speaker: int, seq: int, timestamp: int, level: int, payload: bytes) -> bytes:
    """One frame's bytes; ``level`` is the RFC 6464 byte or -1."""
    return HEADER.pack(VERSION, speaker & 0xFF, seq & 0xFFFF, timestamp & 0xFFFFFFFF,
                       NO_LEVEL if level < 0 else level & 0xFF) + payload
