"""Neither an offer's candidates nor a forged STUN request make the SFU send to a third party."""

from __future__ import annotations

import asyncio
import re
import socket

from aioice import stun

from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.abuse.test_media_junk import CANDIDATE, connect_media
from tests.conftest import AccountFactory, RunningServer, create_room, join


def naming(sdp: str, host: str, port: int, only: bool) -> str:
    """``sdp`` with a host candidate at ``host``:``port`` (the victim), alone if ``only``."""
    victim = f"a=candidate:victim 1 udp 2130706431 {host} {port} typ host\r\n"
    if only:
        sdp = re.sub(r"a=candidate:[^\r\n]*\r\n", "", sdp)
    return sdp.replace("a=end-of-candidates\r\n", victim + "a=end-of-candidates\r\n")


def binding_requests() -> list[bytes]:
    """STUN binding requests a stranger can make: no credentials, and wrong ones."""
    bare = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    forged = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    forged.attributes["USERNAME"] = "abcd:efgh"
    forged.add_message_integrity(b"not the password")
    return [bytes(bare), bytes(forged)]


def victim_socket() -> socket.socket:
    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    victim.bind(("127.0.0.3", 0))
    victim.setblocking(False)
    return victim


def received(victim: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(victim.recv(2048))
        except BlockingIOError:
            return got


async def test_a_victim_named_in_an_offer_is_never_probed(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, ana = await make_account("Host"), await make_account("Ana", guest=True)
    eve = await make_account("Eve", guest=True)
    room_id = await create_room(server, host)
    host_c, ana_c = await join(server, room_id, host), await join(server, room_id, ana)
    eve_c = await join(server, room_id, eve)
    victim = victim_socket()
    address, port = victim.getsockname()
    lone = AudioClient(decode=False)
    speaker, listener = AudioClient(mic=ToneTrack(440), decode=False), AudioClient(decode=False)
    try:
        # An offer naming only the victim: the SFU answers, and sends the victim nothing.
        await eve_c.send("media_offer", sdp=naming(await lone.offer(), address, port, True),
                         ref="lone")
        await eve_c.expect("media_answer", ref="lone", timeout=10)
        # A real client naming the victim too: it connects and hears, the victim hears nothing.
        await connect_media(host_c, speaker)
        await ana_c.send("media_offer", sdp=naming(await listener.offer(), address, port, False),
                         ref="real")
        answer = await ana_c.expect("media_answer", ref="real", timeout=10)
        await listener.accept(answer["sdp"])
        async with asyncio.timeout(10):
            await listener.connected()
        # Requests "from" the victim (a forged source, as far as the SFU can tell) go unanswered.
        match = CANDIDATE.search(answer["sdp"])
        assert match is not None
        for request in binding_requests():
            victim.sendto(request, (match.group(1), int(match.group(2))))
        await asyncio.sleep(1.5)  # time for answers to the forged requests to reach the victim
        assert listener.received() > 20
        assert received(victim) == []
    finally:
        victim.close()
        for peer in (lone, speaker, listener):
            await peer.close()
