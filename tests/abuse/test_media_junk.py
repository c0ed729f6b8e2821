"""Junk datagrams at the SFU's media ports: listeners keep hearing, no transport closes."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct

from audio_rooms.sfu.testing import AudioClient
from tests import hearing
from tests.conftest import AccountFactory, Client, LiveRoom, RunningServer
from tests.hearing import heard, tone_heard

CANDIDATE = re.compile(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host")


def media_address(answer_sdp: str) -> tuple[str, int]:
    """The server's media address in its SDP answer."""
    match = CANDIDATE.search(answer_sdp)
    assert match is not None
    return match.group(1), int(match.group(2))


async def connect_media(client: Client, peer: AudioClient) -> tuple[str, int]:
    """Connect ``peer`` through ``client``'s socket; the server's media address."""
    return media_address(await hearing.connect_media(client, peer))


def junk(n: int) -> list[bytes]:
    """Empty datagrams, random bytes, and RTP that no key protects."""
    made: list[bytes] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            made.append(b"")
        elif kind == 1:
            made.append(os.urandom(1 + i % 200))
        elif kind == 2:
            header = struct.pack("!BBHII", 0x80, 111, i, i * 960, 0x1234)
            made.append(header + os.urandom(60))
        else:
            made.append(bytes([i % 256]))
    return made


def drops(metrics: str, reason: str) -> float:
    match = re.search(rf'audio_rooms_dropped_packets_total{{reason="{reason}"}} (\S+)', metrics)
    return float(match.group(1)) if match else 0.0


async def test_junk_at_media_ports_silences_nobody(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    ana = await make_account("Ana", guest=True)
    async with tone_heard(live_room, ana) as scene:
        speaker, listener = scene.speaker, scene.listener
        targets = [media_address(scene.speaker_sdp), media_address(scene.listener_sdp)]
        frames_before = sum(len(s.frames) for s in listener.slots)

        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attacker.bind(("127.0.0.1", 0))
        try:
            for i, datagram in enumerate(junk(1000)):
                attacker.sendto(datagram, targets[i % 2])
                if i % 50 == 49:
                    await asyncio.sleep(0.01)  # a burst at a time, as a flood arrives
        finally:
            attacker.close()

        await asyncio.sleep(1.5)  # the junk has had its chance: listeners must keep hearing after
        assert sum(len(s.frames) for s in listener.slots) > frames_before + 40
        assert abs(heard(listener, 1.0) - 440) <= 5
        assert speaker.pc.connectionState == listener.pc.connectionState == "connected"
        media = server.services.media
        assert media is not None and media.stats().transports == 2
        seen = live_room.host_c.seen + scene.listener_c.seen
        assert not [m for m in seen if m["type"] == "media_failed"]
        async with server.http() as http:
            metrics = (await http.get("/metrics")).text
        # The operator sees the attack: the drops counted by reason.
        assert drops(metrics, "empty") > 0
        assert drops(metrics, "unknown_source") > 0
