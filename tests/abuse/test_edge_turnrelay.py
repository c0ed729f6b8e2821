"""A TURN credential is no proxy: coturn, configured exactly as docker/compose.yml ships it,
relays a participant's packets to the SFU's address and refuses any other peer, even one on
the same machine.

The compose file's coturn command is rendered by docker-compose and run with a real
``turnserver``; only the ports and log file are changed, and loopback peers are let through
coturn's first check because here the "SFU" is on 127.0.0.1, the address compose announces
by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aioice import stun, turn

from audio_rooms.turn import turn_credentials
from tests.conftest import eventually, free_port
from tests.ops.test_compose import compose_config

SECRET = "relay-test-shared-secret-0123456789"
SFU = "127.0.0.1"  # compose's default PUBLIC_IP: the SFU's announced address
ELSEWHERE = "127.0.0.2"  # any other host

pytestmark = pytest.mark.skipif(
    shutil.which("turnserver") is None, reason="coturn's turnserver is not installed"
)

OVERRIDDEN = ("--listening-port", "--min-port", "--max-port", "--log-file")


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[int]:
    rendered = yaml.safe_load(compose_config())
    command = [
        arg for arg in rendered["services"]["coturn"]["command"]
        if not arg.startswith(OVERRIDDEN)
    ]
    assert "--allowed-peer-ip=127.0.0.1" in command and "--no-tcp-relay" in command
    port, relay = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        "turnserver", *command, f"--static-auth-secret={SECRET}",
        f"--listening-port={port}", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
        f"--min-port={relay}", f"--max-port={relay + 20}", "--allow-loopback-peers",
        f"--log-file={tmp_path / 'turn.log'}", f"--pidfile={tmp_path / 'turn.pid'}",
        f"--userdb={tmp_path / 'turndb'}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:

        async def listening() -> bool:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return True
            return False

        await eventually(listening, within=15, every=0.1)
        yield port
    finally:
        process.terminate()
        await process.wait()


class Peer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append(data)


async def udp_peer(host: str) -> tuple[asyncio.DatagramTransport, Peer, tuple[str, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    transport, peer = await asyncio.get_running_loop().create_datagram_endpoint(Peer, sock=sock)
    return transport, peer, sock.getsockname()


async def test_relay_reaches_the_sfu_and_nothing_else(coturn: int) -> None:
    username, password = turn_credentials(SECRET, "listener@localhost", 600)
    relay, _ = await turn.create_turn_endpoint(
        asyncio.DatagramProtocol, ("127.0.0.1", coturn), username, password
    )
    # The TURN client protocol itself, whose send_data reports a refused permission (the
    # transport's sendto would only log it).
    client = relay._TurnTransport__inner_protocol
    sfu_transport, sfu, sfu_addr = await udp_peer(SFU)
    other_transport, other, other_addr = await udp_peer(ELSEWHERE)
    try:
        await client.send_data(b"to the sfu", sfu_addr)
        with pytest.raises(stun.TransactionFailed) as refused:
            await client.send_data(b"to elsewhere", other_addr)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 403
        await eventually(lambda: bool(sfu.received))
        await asyncio.sleep(0.3)  # time for the refused packet to arrive, were it relayed
        assert sfu.received == [b"to the sfu"] and other.received == []
    finally:
        relay.close()
        sfu_transport.close()
        other_transport.close()
