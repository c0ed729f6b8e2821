"""RTP header parsing for ingress: what the SFU reads of a speaker's packet, and nothing more.

Pure (bytes in, values out). Every speaker packet goes through here, and with audio arriving
every 20 ms the event loop is cold each time: aiortc's ``RtpPacket.parse`` (an object, a list
of CSRCs, every header extension decoded into a dataclass) measured ~70 us of CPU per packet
in that state, this a fraction of it. It accepts and rejects what aiortc's parser does
(``tests/sfu/test_rtpheader.py`` compares them), with two differences: the mid and stream-id
extensions are not decoded (the SFU does not route on them), and an audio-level element that is
not one byte long is a ``ValueError`` (aiortc raised ``struct.error`` out of its parser).
"""

from __future__ import annotations

import struct

_FIXED = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000  # RFC 8285: 0x100 followed by 4 "appbits"


class RtpHeader:
    """The fields of an RTP packet the SFU uses; ``audio_level`` is the RFC 6464 byte or -1."""

    __slots__ = (
        "audio_level",
        "marker",
        "payload",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        audio_level: int,
    ) -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.audio_level = audio_level


def parse(data: bytes, audio_level_id: int | None) -> RtpHeader:
    """Parse ``data``; raise ``ValueError`` for what is not a well-formed RTP packet."""
    n = len(data)
    if n < 12:
        raise ValueError("RTP packet shorter than its header")
    first, second, seq, ts, ssrc = _FIXED.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError("RTP version is not 2")
    pos = 12 + 4 * (first & 0x0F)
    if n < pos:
        raise ValueError("RTP packet has truncated CSRC")
    level = -1
    if first & 0x10:
        if n < pos + 4:
            raise ValueError("RTP packet has truncated extension profile / length")
        profile, words = _EXTENSION.unpack_from(data, pos)
        pos += 4
        end = pos + 4 * words
        if n < end:
            raise ValueError("RTP packet has truncated extension value")
        level = _audio_level(data, pos, end, profile, audio_level_id)
        pos = end
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > n - pos:
            raise ValueError("RTP packet padding length is invalid")
        payload = data[pos : n - padding]
    else:
        payload = data[pos:]
    return RtpHeader(second & 0x7F, second >> 7, seq, ts, ssrc, payload, level)


def _audio_level(data: bytes, pos: int, end: int, profile: int, wanted: int | None) -> int:
    """The audio-level element's byte among the extension elements in ``data[pos:end]``."""
    level = -1
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            byte = data[pos]
            if byte == 0:  # padding
                pos += 1
                continue
            x_id, length = byte >> 4, (byte & 0x0F) + 1
            pos += 1
            if pos + length > end:
                raise ValueError("RTP one-byte header extension value is truncated")
            if x_id == wanted:
                level = _level_byte(data, pos, length)
            pos += length
    elif profile == TWO_BYTE_PROFILE:
        while pos < end:
            if data[pos] == 0:  # padding
                pos += 1
                continue
            if pos + 2 > end:
                raise ValueError("RTP two-byte header extension is truncated")
            x_id, length = data[pos], data[pos + 1]
            pos += 2
            if pos + length > end:
                raise ValueError("RTP two-byte header extension value is truncated")
            if x_id == wanted:
                level = _level_byte(data, pos, length)
            pos += length
    return level


def _level_byte(data: bytes, pos: int, length: int) -> int:
    if length != 1:
        raise ValueError("RTP audio level extension is not one byte")
    return data[pos]
