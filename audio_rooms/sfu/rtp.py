"""RTP and RTCP as the SFU reads and writes them: pure packet code, bytes in and values out.

Build and parse side by side (as aiortc's ``rtp.py``): the header template a slot rewrites
(:func:`header_template`), the ingress header parse (:func:`parse`), the RTCP sender report and
SDES the SFU sends for its slots (:func:`sender_report`, :func:`sdes`) and the scan that decides
which incoming RTCP aiortc must see (:func:`scan_rtcp`). No I/O, and nothing of aiortc's
internals (those are in :mod:`audio_rooms.sfu.hooks`).

Ingress parsing: Every speaker packet goes through here, and with audio arriving
every 20 ms the event loop is cold each time: aiortc's ``RtpPacket.parse`` (an object, a list
of CSRCs, every header extension decoded into a dataclass) measured ~70 us of CPU per packet
in that state, this a fraction of it. It accepts and rejects what aiortc's parser does
(``tests/sfu/test_rtpheader.py`` compares them), with two differences: the mid and stream-id
extensions are not decoded (the SFU does not route on them), and an audio-level element that is
not one byte long is a ``ValueError`` (aiortc raised ``struct.error`` out of its parser).
"""

from __future__ import annotations

import struct

from aiortc.rtp import RtcpSdesPacket, RtcpSourceInfo

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


def header_template(
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


RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202

_SR_HEADER = 0x80C8_0006  # V=2, RC=0, PT=200 (SR), length 6 (28 bytes)
_SR = struct.Struct("!IIQIII")
# The NTP epoch (1900) is this many seconds before the Unix epoch (1970).
_NTP_EPOCH_OFFSET = 2_208_988_800


def ntp_from_unix(t: float) -> int:
    seconds = int(t) + _NTP_EPOCH_OFFSET
    fraction = int((t % 1) * (1 << 32))
    return (seconds << 32) | fraction


def sender_report(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int) -> bytes:
    """An RTCP sender report without report blocks (RFC 3550 6.4.1)."""
    return _SR.pack(_SR_HEADER, ssrc, ntp, rtp_ts, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)


_SDES_CACHE: dict[tuple[int, str], bytes] = {}


def sdes(ssrc: int, cname: str) -> bytes:
    """An RTCP SDES packet with ``ssrc``'s CNAME (the same bytes for the same pair, cached)."""
    key = (ssrc, cname)
    data = _SDES_CACHE.get(key)
    if data is None:
        if len(_SDES_CACHE) > 100_000:
            _SDES_CACHE.clear()
        data = _SDES_CACHE[key] = bytes(
            RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=ssrc, items=[(1, cname.encode())])])
        )
    return data


def scan_rtcp(data: bytes) -> tuple[bool, bool, bool]:
    """Look at a plain compound RTCP packet without parsing it into objects.

    Returns ``(only_reports, has_sr, has_lsr)``: whether it holds nothing but sender reports,
    receiver reports and SDES (well formed), whether one is a sender report, and whether a
    report block refers to a sender report (a non-zero LSR: round-trip time can be measured).
    """
    pos, end = 0, len(data)
    has_sr = has_lsr = False
    if end < 4:
        return False, False, False
    while pos < end:
        if end - pos < 4 or data[pos] >> 6 != 2:
            return False, has_sr, has_lsr
        pt = data[pos + 1]
        nxt = pos + 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
        if nxt > end:
            return False, has_sr, has_lsr
        if pt in (RTCP_SR, RTCP_RR):
            blocks = pos + (28 if pt == RTCP_SR else 8)
            count = data[pos] & 0x1F
            if blocks + 24 * count > nxt:
                return False, has_sr, has_lsr
            has_sr = has_sr or pt == RTCP_SR
            for i in range(count):
                lsr = blocks + 24 * i + 16
                if data[lsr : lsr + 4] != b"\0\0\0\0":
                    has_lsr = True
        elif pt != RTCP_SDES:
            return False, has_sr, has_lsr
        pos = nxt
    return True, has_sr, has_lsr
