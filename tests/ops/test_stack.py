"""The deployment stack, for real: ``scripts/stack`` brings up redis-server, coturn and the app
(on the machine's PostgreSQL when one answers, else SQLite), and a listener whose ICE may use
nothing but TURN relay candidates hears a speaker's 440 Hz tone through coturn and the SFU.

The speaker is a plain host-candidate aiortc peer; the listener is an aiortc peer configured
with the ``ice_servers`` its ``welcome`` message hands out (time-limited coturn REST-API
credentials) and ``iceTransportPolicy: relay``. Proof that media took the relay: the listener
offered only relay candidates, and coturn's log shows the allocation for the listener's TURN
user and the packets it relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from audio_rooms.sfu.testing import SAMPLE_RATE, AudioClient, ToneTrack, dominant_frequency
from tests.conftest import Client, free_port

REPO = Path(__file__).resolve().parents[2]
STACK_SCRIPT = REPO / "scripts" / "stack"
DEFAULT_PG_SERVER = "postgresql://postgres@127.0.0.1:5432"

pytestmark = [
    pytest.mark.skipif(
        shutil.which("turnserver") is None, reason="coturn's turnserver is not installed"
    ),
    pytest.mark.timeout(90),
]


def _udp_and_tcp_free_port() -> int:
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")


def _pg_server() -> str:
    """The PostgreSQL server to try: the test suite's (scripts/test sets it), else the local."""
    configured = os.environ.get("AUDIO_ROOMS_TEST_DATABASE_URL", "")
    if configured.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(configured)
        return f"{parts.scheme}://{parts.netloc}"
    return DEFAULT_PG_SERVER


@dataclass
class Stack:
    directory: Path
    values: dict[str, str]
    process: asyncio.subprocess.Process
    output: list[str]

    @property
    def base_url(self) -> str:
        return self.values["HTTP_URL"]

    def ws_url(self, room_id: str) -> str:
        return self.base_url.replace("http://", "ws://", 1) + f"/ws/rooms/{room_id}"

    def pids(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.values.items() if k.endswith("_PID")}

    @property
    def on_postgres(self) -> bool:
        return self.values["DATABASE_URL"].startswith("postgres")

    def turn_log(self) -> str:
        return Path(self.values["TURN_LOG"]).read_text(errors="replace")


async def _read_until_ready(process: asyncio.subprocess.Process, output: list[str]) -> Path:
    assert process.stdout is not None
    async with asyncio.timeout(75):
        while True:
            line = (await process.stdout.readline()).decode(errors="replace")
            if not line:
                raise AssertionError("scripts/stack exited before ready:\n" + "".join(output))
            output.append(line)
            if line.startswith("stack ready: "):
                return Path(line.removeprefix("stack ready: ").strip())


def _drop_database(server: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server + "/postgres", connect_timeout=3, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    pg_server, pg_name = _pg_server(), f"audio_rooms_stack_test_{os.getpid()}"
    relay_min = random.randrange(50_000, 59_000)
    media_min = random.randrange(41_000, 48_000)
    command = [
        str(STACK_SCRIPT),
        "--dir", str(tmp_path / "stack"),
        "--port", str(free_port()),
        "--turn-port", str(_udp_and_tcp_free_port()),
        "--relay-ports", f"{relay_min}-{relay_min + 40}",
        "--media-ports", f"{media_min}-{media_min + 50}",
        "--pg-server", pg_server,
        "--pg-name", pg_name,
    ]
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "AUDIO_ROOMS_DRAIN_TIMEOUT": "2",
        "AUDIO_ROOMS_LOGIN_ATTEMPTS_PER_MINUTE": "1000",
    }
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    output: list[str] = []
    values: dict[str, str] = {}
    try:
        env_file = await _read_until_ready(process, output)
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key] = value
        yield Stack(tmp_path / "stack", values, process, output)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        rest = await asyncio.wait_for(process.stdout.read(), 60)
        output.append(rest.decode(errors="replace"))
        code = await asyncio.wait_for(process.wait(), 10)
        if values.get("DATABASE_URL", "").startswith("postgres"):
            await asyncio.to_thread(_drop_database, pg_server, pg_name)
    assert code == 0, "scripts/stack did not stop cleanly:\n" + "".join(output)
    for name, pid in Stack(tmp_path, values, process, output).pids().items():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # every process the stack started is gone
        assert not (tmp_path / "stack" / f"{name.removesuffix('_PID').lower()}.pid").exists()


class RelayOnlyClient(AudioClient):
    """An :class:`AudioClient` whose ICE uses TURN relay candidates only.

    It gathers no host candidate at all (no host addresses) and its peer connection has the
    TURN server and ``iceTransportPolicy`` relay, as a browser configured with
    ``{iceServers, iceTransportPolicy: 'relay'}`` would.
    """

    def __init__(self, ice_servers: list[dict[str, object]]) -> None:
        super().__init__(host_addresses=())
        servers = [
            RTCIceServer(
                urls=server["urls"],  # type: ignore[arg-type]
                username=server.get("username"),  # type: ignore[arg-type]
                credential=server.get("credential"),  # type: ignore[arg-type]
            )
            for server in ice_servers
        ]
        self._unused_pc = self.pc
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY)
        )

    async def close(self) -> None:
        await self._unused_pc.close()
        await super().close()


async def _join(stack: Stack, room_id: str, token: str) -> Client:
    ws = await websockets.connect(stack.ws_url(room_id), max_size=2**22)
    client = Client(ws)
    await client.send("join", token=token)
    client.welcome = await client.expect("welcome", timeout=10)
    return client


async def _connect_media(client: Client, peer: AudioClient) -> str:
    offer = await peer.offer()
    await client.send("media_offer", sdp=offer, ref="offer")
    answer = await client.expect("media_answer", timeout=20)
    await peer.accept(answer["sdp"])
    async with asyncio.timeout(20):
        await peer.connected()
    return offer


async def test_listener_hears_the_speaker_through_turn_relay(stack: Stack) -> None:
    suffix = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        ready = await http.get("/readyz")
        assert ready.json()["checks"] == {"redis": "ok", "database": "ok"}, ready.text
        signup = await http.post(
            "/api/auth/signup",
            json={"handle": f"host_{suffix}", "display_name": "Host",
                  "password": "correct horse battery", "locale": "en"},
        )
        assert signup.status_code in (200, 201), signup.text
        host_token = signup.json()["token"]
        guest = await http.post("/api/auth/guest", json={"display_name": "Listener"})
        assert guest.status_code in (200, 201), guest.text
        listener_token = guest.json()["token"]
        created = await http.post(
            "/api/rooms", json={"title": "Through TURN", "visibility": "open"},
            headers={"Authorization": f"Bearer {host_token}"},
        )
        assert created.status_code == 201, created.text
        room_id = created.json()["room"]["id"]

    host = await _join(stack, room_id, host_token)
    listener_ws = await _join(stack, room_id, listener_token)
    turn = [s for s in listener_ws.welcome["ice_servers"] if "username" in s]
    assert turn, f"welcome carries no TURN server: {listener_ws.welcome['ice_servers']}"
    assert any(url.startswith(stack.values["TURN_URL"]) for url in turn[0]["urls"])
    turn_user = turn[0]["username"]
    expiry, _, who = turn_user.partition(":")  # coturn REST API: "<expiry>:<user>"
    assert expiry.isdigit() and who

    speaker = AudioClient(mic=ToneTrack(440))
    listener = RelayOnlyClient(turn)
    try:
        await _connect_media(host, speaker)
        offer = await _connect_media(listener_ws, listener)
        candidates = re.findall(r"^a=candidate:.*$", offer, flags=re.MULTILINE)
        assert candidates and all(" typ relay" in c for c in candidates), candidates

        async with asyncio.timeout(15):
            while max((len(s.frames) for s in listener.slots), default=0) < 75:
                await asyncio.sleep(0.05)
        loudest = max(listener.slots, key=lambda s: len(s.frames))
        heard = dominant_frequency(loudest.samples(1.0), SAMPLE_RATE)
        assert abs(heard - 440) <= 5, f"listener heard {heard:.1f} Hz"
    finally:
        await listener.close()  # releases the allocation: coturn logs its usage
        await speaker.close()
        for client in (host, listener_ws):
            with contextlib.suppress(Exception):
                await client.close()

    # coturn saw the listener's credentials, allocated a relay and relayed the audio: its usage
    # lines (logged when the allocation is released) count packets between coturn and the
    # listener ("usage") and between coturn's relay port and the SFU ("peer usage").
    user = re.escape(turn_user)
    pattern = (
        r"session \S+: (peer )?usage: realm=<[^>]*>, username=<" + user + r">, "
        r"rp=(\d+), rb=\d+, sp=(\d+)"
    )
    log = ""
    usage: dict[str, tuple[int, int]] = {}
    async with asyncio.timeout(10):
        while len(usage) < 2:
            log = stack.turn_log()
            for m in re.finditer(pattern, log):
                usage["peer" if m.group(1) else "client"] = (int(m.group(2)), int(m.group(3)))
            await asyncio.sleep(0.2)
    assert re.search(r"user <" + user + r">: incoming packet ALLOCATE processed, success", log)
    from_sfu, _ = usage["peer"]
    _, to_listener = usage["client"]
    assert from_sfu > 50 and to_listener > 50, (usage, log[-2000:])
    print(json.dumps({"database": stack.values["DATABASE_URL"], "coturn_usage": usage}))
