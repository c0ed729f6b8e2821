"""Junk datagrams at the SFU's media ports: listeners keep hearing, no transport closes."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct

from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests import hearing
from tests.conftest import AccountFactory, Client, RunningServer, create_room, join
from tests.hearing import heard, hears_tone

CANDIDATE = re.compile(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host")


async def connect_media(client: Client, peer: AudioClient) -> tuple[str, int]:
    """Connect ``peer`` through ``client``'s socket; the server's media address."""
    match = CANDIDATE.search(await hearing.connect_media(client, peer))
    assert match is not None
    return match.group(1), int(match.group(2))


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
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, ana = await make_account("Host"), await make_account("Ana", guest=True)
    room_id = await create_room(server, host)
    host_c, ana_c = await join(server, room_id, host), await join(server, room_id, ana)
    speaker, listener = AudioClient(mic=ToneTrack(440)), AudioClient()
    try:
        targets = [await connect_media(host_c, speaker), await connect_media(ana_c, listener)]
        await hears_tone(listener)
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
        assert not [m for m in host_c.seen + ana_c.seen if m["type"] == "media_failed"]
        async with server.http() as http:
            metrics = (await http.get("/metrics")).text
        # The operator sees the attack: the drops counted by reason.
        assert drops(metrics, "empty") > 0
        assert drops(metrics, "unknown_source") > 0
    finally:
        await speaker.close()
        await listener.close()
