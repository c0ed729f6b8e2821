"""The ingress RTP parser accepts and reads what aiortc's parser does."""

from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from audio_rooms.sfu import rtp

LEVEL_ID = 1
MID_ID = 3


def _aiortc_map() -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(
                    id=LEVEL_ID, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
                ),
                RTCRtpHeaderExtensionParameters(
                    id=MID_ID, uri="urn:ietf:params:rtp-hdrext:sdes:mid"
                ),
            ]
        )
    )
    return extensions


def _packet(rng: random.Random) -> bytes:
    """A random RTP packet: CSRCs, one- or two-byte extensions, padding, sometimes broken."""
    cc = rng.choice([0, 0, 0, 1, 2])
    elements = b""
    profile = rng.choice([rtp.ONE_BYTE_PROFILE, rtp.TWO_BYTE_PROFILE, 0x1234])
    for _ in range(rng.randrange(0, 4)):
        x_id = rng.choice([LEVEL_ID, MID_ID, 5])
        value = b"\x85" if x_id == LEVEL_ID else b"0" * rng.randrange(1, 4)
        if profile == rtp.TWO_BYTE_PROFILE:
            elements += bytes([x_id, len(value)]) + value
        else:
            elements += bytes([(x_id << 4) | (len(value) - 1)]) + value
        if rng.random() < 0.2:
            elements += b"\x00"
    elements += bytes(-len(elements) % 4)
    has_ext = bool(elements) or rng.random() < 0.1
    padding = rng.choice([0, 0, 0, 1, 4])
    first = 0x80 | (0x20 if padding else 0) | (0x10 if has_ext else 0) | cc
    data = struct.pack("!BBHII", first, rng.randrange(256), rng.randrange(1 << 16), 7, 9)
    data += b"\x11\x22\x33\x44" * cc
    if has_ext:
        data += struct.pack("!HH", profile, len(elements) // 4) + elements
    data += rng.randbytes(rng.randrange(0, 60))
    if padding:
        data += bytes(padding - 1) + bytes([padding])
    if rng.random() < 0.3:  # break it somewhere
        data = data[: rng.randrange(0, len(data) + 1)]
    if rng.random() < 0.05:
        data = bytes([rng.randrange(256)]) + data[1:]
    return data


def test_same_verdicts_and_fields_as_aiortc() -> None:
    rng = random.Random(1234)
    extensions = _aiortc_map()
    accepted = rejected = 0
    for _ in range(20_000):
        data = _packet(rng)
        try:
            theirs = RtpPacket.parse(data, extensions)
        except ValueError:
            with pytest.raises(ValueError):
                rtp.parse(data, LEVEL_ID)
            rejected += 1
            continue
        ours = rtp.parse(data, LEVEL_ID)
        accepted += 1
        assert (ours.payload_type, ours.marker, ours.sequence_number) == (
            theirs.payload_type,
            theirs.marker,
            theirs.sequence_number,
        )
        assert (ours.timestamp, ours.ssrc, ours.payload) == (
            theirs.timestamp,
            theirs.ssrc,
            theirs.payload,
        )
        level = theirs.extensions.audio_level
        expected = -1 if level is None else (0x80 if level[0] else 0) | level[1]
        assert ours.audio_level == expected
    assert accepted > 5_000 and rejected > 2_000


def test_an_audio_level_of_the_wrong_size_is_malformed() -> None:
    header = struct.pack("!BBHII", 0x90, 111, 1, 960, 1234)
    two_bytes = struct.pack("!HH", rtp.ONE_BYTE_PROFILE, 1) + bytes([LEVEL_ID << 4 | 1])
    with pytest.raises(ValueError):
        rtp.parse(header + two_bytes + b"\x85\x01\x00" + b"opus", LEVEL_ID)
