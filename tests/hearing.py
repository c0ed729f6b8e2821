"""The scenario many media tests share: a speaker's tone reaches a listener through the SFU.

Tests assert on what a listener would notice: frames keep arriving, and what they hear is the
tone the speaker sends (its dominant frequency within a few hertz).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from audio_rooms.sfu.testing import SAMPLE_RATE, AudioClient, ToneTrack, dominant_frequency
from tests.conftest import Account, Client, LiveRoom, eventually

TONE = 440.0
TOLERANCE = 5.0


async def connect_media(client: Client, peer: AudioClient) -> str:
    """Connect ``peer`` through ``client``'s socket; return the server's SDP answer."""
    await client.send("media_offer", sdp=await peer.offer(), ref="offer")
    answer = await client.expect("media_answer", timeout=15)
    await peer.accept(answer["sdp"])
    async with asyncio.timeout(15):
        await peer.connected()
    return str(answer["sdp"])


def frames(peer: AudioClient) -> int:
    """Frames of the busiest slot: how much of the speaker this listener has heard."""
    return max((len(s.frames) for s in peer.slots), default=0)


def heard(peer: AudioClient, seconds: float = 1.0) -> float:
    """Dominant frequency over the last ``seconds`` of the loudest slot."""
    best = max(peer.slots, key=lambda s: len(s.frames))
    return dominant_frequency(best.samples(seconds), SAMPLE_RATE)


async def hears_tone(
    listener: AudioClient, tone: float = TONE, after_frames: int = 50, within: float = 10.0
) -> None:
    """Wait until ``listener`` has heard ``after_frames`` frames, then check it hears ``tone``."""
    await eventually(lambda: frames(listener) >= after_frames, within)
    got = heard(listener)
    assert abs(got - tone) <= TOLERANCE, f"listener heard {got:.1f} Hz, not {tone:.0f} Hz"


@dataclass
class Hearing:
    """The host speaking a tone into a live room, and a listener hearing it."""

    speaker: AudioClient
    listener: AudioClient
    listener_c: Client
    speaker_sdp: str
    listener_sdp: str


@contextlib.asynccontextmanager
async def tone_heard(
    room: LiveRoom, listener: Account, tone: float = TONE, after_frames: int = 50
) -> AsyncIterator[Hearing]:
    """The host sends ``tone``; ``listener`` joins, connects media and hears it. The peers are
    closed on the way out."""
    speaker_peer, listener_peer = AudioClient(mic=ToneTrack(tone)), AudioClient()
    try:
        listener_c = await room.join(listener)
        speaker_sdp = await connect_media(room.host_c, speaker_peer)
        listener_sdp = await connect_media(listener_c, listener_peer)
        await hears_tone(listener_peer, tone, after_frames)
        yield Hearing(speaker_peer, listener_peer, listener_c, speaker_sdp, listener_sdp)
    finally:
        await speaker_peer.close()
        await listener_peer.close()
