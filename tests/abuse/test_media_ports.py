"""Media ports are scarce: an offer nobody follows up frees its port; an address holds a few."""

from __future__ import annotations

import random
import re
import socket

from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.abuse.test_media_junk import connect_media
from tests.conftest import (
    AccountFactory,
    Client,
    RunningServer,
    ServerFactory,
    create_room,
    join,
)
from tests.hearing import hears_tone


def free_port_range(size: int) -> int:
    """The first of ``size`` consecutive UDP ports free on 127.0.0.1 just now."""
    for _ in range(200):
        first = random.randrange(20_000, 60_000)
        held: list[socket.socket] = []
        try:
            for port in range(first, first + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free UDP port range")


def without_candidates(sdp: str) -> str:
    """An offer a hoarder sends: valid, but with no address to reach it at."""
    return re.sub(r"a=(candidate:[^\r\n]*|end-of-candidates)\r\n", "", sdp)


async def hoard(client: Client) -> None:
    peer = AudioClient(decode=False)
    try:
        await client.send("media_offer", sdp=without_candidates(await peer.offer()), ref="h")
        await client.expect("media_answer", ref="h", timeout=10)
    finally:
        await peer.close()


async def test_offers_nobody_follows_up_free_their_ports(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    # make_account signs up on the default server; this one shares its Redis and database.
    first = free_port_range(3)
    server: RunningServer = await make_server(
        media_connect_timeout=1.0, media_port_min=first, media_port_max=first + 2
    )
    host, ana = await make_account("Host"), await make_account("Ana", guest=True)
    hoarders = [await make_account(f"Hoarder {i}", guest=True) for i in range(2)]
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    speaker, listener = AudioClient(mic=ToneTrack(440)), AudioClient()
    try:
        await connect_media(host_c, speaker)
        hoarder_cs = [await join(server, room_id, h) for h in hoarders]
        for c in hoarder_cs:
            await hoard(c)  # every port of the range is now taken
        # Each hoarder is told its transport was closed, and why.
        for c in hoarder_cs:
            failed = await c.expect("media_failed", timeout=5)
            assert failed["reason"] == "connect_timeout"
        async with server.http() as http:
            metrics = (await http.get("/metrics")).text
        assert 'audio_rooms_media_transports_lost_total{reason="connect_timeout"} 2.0' in metrics

        ana_c = await join(server, room_id, ana)
        await connect_media(ana_c, listener)
        await hears_tone(listener)
    finally:
        await speaker.close()
        await listener.close()


async def test_one_address_holds_a_few_media_transports(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    server = await make_server(media_transports_per_address=2)
    host = await make_account("Host")
    guests = [await make_account(f"Guest {i}", guest=True) for i in range(3)]
    room_id = await create_room(server, host)
    clients = [await join(server, room_id, g, source="127.0.0.1") for g in guests[:2]]
    third = await join(server, room_id, guests[2], source="127.0.0.1")
    other = await join(server, room_id, host, source="127.0.0.2")
    peers = [AudioClient(decode=False) for _ in range(5)]
    try:
        for i, c in enumerate(clients):
            await c.send("media_offer", sdp=await peers[i].offer(), ref="o")
            await c.expect("media_answer", ref="o", timeout=10)
        await third.send("media_offer", sdp=await peers[2].offer(), ref="o")
        error = await third.expect("error", ref="o", timeout=10)
        assert error["code"] == "too_many_media_transports"
        # The refused client is still in the room, and its socket still answers.
        await third.send("ping", ref="p")
        await third.expect("pong", ref="p")
        # A new offer from a participant who holds one replaces it: no extra place needed.
        await clients[0].send("media_offer", sdp=await peers[3].offer(), ref="again")
        await clients[0].expect("media_answer", ref="again", timeout=10)
        # Another address is not affected.
        await other.send("media_offer", sdp=await peers[4].offer(), ref="o")
        await other.expect("media_answer", ref="o", timeout=10)
    finally:
        for peer in peers:
            await peer.close()
