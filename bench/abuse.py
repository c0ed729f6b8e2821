"""Abuse: what each attack of issue 9 does to a real user, next to a quiet baseline.

    python bench/abuse.py [--attack NAME|all] [--seconds 5] [--baseline 4]

For each attack a fresh server process is started (`python -m audio_rooms serve`, a temp data
directory, embedded Redis, a free port, media on 127.0.0.1 with a port range of
--media-ports ports, no STUN, default settings otherwise, and the common default soft limit of
1,024 open files with the hard limit unchanged), so no attack inherits another's damage. On it:
a host speaking 440 Hz from an aiortc peer in an open room, a guest listener's aiortc peer
receiving it, --rooms live rooms in the lobby, and --probe-accounts accounts for the sign-in
probe, all made from their own loopback addresses (127.0.2.x) so they spend no per-address
budget of the measured ones.

Then, from 127.0.0.1, a quiet window of --baseline seconds and, with the attack running at full
strength, a window of --seconds seconds measure:

* `/healthz` and the lobby (`GET /api/rooms`): requests on a fixed schedule (20/s and 10/s,
  each on a new connection, 5 s timeout), not waiting for earlier answers, so a stalled server
  cannot hide its stalls by slowing the probe down; an error, a timeout or a non-200 answer
  counts as a failed sample, shown as "fail" when it reaches the percentile;
* joining: a real user signs in (`POST /api/auth/signin`) and joins the room over the
  WebSocket until `welcome`, every 1.5 s (10 s timeout), then leaves;
* a new listener's media: once per window a guest joins, offers, and waits for the first
  audio packet from the host (8 s timeout);
* the server's RSS (`VmRSS` of its process, every 0.2 s);
* the listening pair: audio packets per second at the listener over the window's last second,
  and transports lost (the larger of: the drop in the server's `audio_rooms_media_transports`
  gauge, the pair's peers no longer "connected", 1 if the listener stopped hearing).

Every attack runs in its own process (so its CPU does not queue the probes), from attacker
addresses 127.0.0.2 and up (sockets bound with a local address; the server sees them as
those clients), and is brought to full strength before its window starts:

* signin-flood: --signin-rate sign-in attempts a second from one address, each with a new
  handle and a random password, not waiting for answers;
* junk-datagrams: --datagram-rate datagrams a second (empty, random bytes, fake RTP) at each
  of the server's media ports for the host and the listener (taken from the answers'
  candidates);
* stalled-connections: --stalled connections from one address that send half a request
  header and stall; any the server closes is reopened;
* reaction-flood: --guests guests (one address each: this measures the fan-out, not the
  per-address caps) in the room, each sending reactions at --reaction-rate a second (the
  default per-socket budget);
* port-hoarding: --hoarders guests from one address (default: as many as the media port
  range) offering SDP with no ICE candidates, re-offering every 2 s;
* ws-junk: --junk-sockets guest sockets from one address sending --junk-rate frames a second
  each: oversized text, binary, invalid JSON, a lone surrogate, a 5,000-digit number and,
  every 50th frame, invalid UTF-8; a socket the server closes reconnects.

Prints one table (attack, metric, baseline, under attack, target, PASS/MISS) with the
issue's targets, and what each attack achieved; writes bench/results/abuse.json. Refusals
(429, closed sockets, failed offers) are outcomes and are counted, never crashes. Every wait
is bounded; everything started is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import math
import multiprocessing
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import websockets  # noqa: E402
from websockets.asyncio.client import ClientConnection  # noqa: E402

from audio_rooms.sfu.testing import AudioClient, ToneTrack  # noqa: E402

ATTACKS = (
    "signin-flood",
    "junk-datagrams",
    "stalled-connections",
    "reaction-flood",
    "port-hoarding",
    "ws-junk",
)
PROBE_ADDRESS = "127.0.0.1"
ATTACKER_ADDRESS = "127.0.0.2"
SETUP_NET = "127.0.2"  # the host, the listener, the probe accounts: one address each
GUEST_NET = "127.0.1"  # the reaction flood's guests: one address each
SERVER_NOFILE = 1024  # the usual default soft limit; the hard limit is left as it is
HTTP_TIMEOUT = 5.0
JOIN_TIMEOUT = 10.0
MEDIA_TIMEOUT = 8.0
HEALTHZ_INTERVAL = 0.05
LOBBY_INTERVAL = 0.1
JOIN_INTERVAL = 1.5
RSS_INTERVAL = 0.2
AUDIO_INTERVAL = 0.1
WS_MAX_MESSAGE_BYTES = 64 * 1024  # the server's default, for oversized frames
PASSWORD_BYTES = 18
MIB = 1024 * 1024
CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", re.MULTILINE)


# --- small helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_range(size: int) -> int:
    """The first port of ``size`` consecutive UDP ports free on 127.0.0.1 right now."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {size} free consecutive UDP ports")


def raise_open_files() -> None:
    """This process holds thousands of sockets: soft limit up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _server_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(SERVER_NOFILE, hard), hard))


def percentile(values: list[float], q: float) -> float:
    """Nearest rank; failures are inf and sort last."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def password() -> str:
    return "bench " + secrets.token_urlsafe(PASSWORD_BYTES)


def mask_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client WebSocket frame (RFC 6455 section 5.2)."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        header = bytes([first, 0x80 | n])
    elif n < 65536:
        header = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return header + key + masked


def media_ports(answer_sdp: str) -> list[int]:
    return sorted({int(port) for _, port in CANDIDATE.findall(answer_sdp)})


# --- the server --------------------------------------------------------------------------------


class Server:
    """`python -m audio_rooms serve` with its own data directory, stopped by its PID."""

    def __init__(self, data_dir: Path, port_min: int, port_count: int) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.port_min = port_min
        self.port_max = port_min + port_count - 1
        self.process: subprocess.Popen[bytes] | None = None
        self.helpers: list[int] = []
        self.log_path = data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, room_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{room_id}"

    def launch(self) -> None:
        env = {
            key: value for key, value in os.environ.items()
            if not key.startswith("AUDIO_ROOMS_")
        }
        env.update({
            "AUDIO_ROOMS_DATA_DIR": str(self.data_dir),
            "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
            "AUDIO_ROOMS_MEDIA_PORT_MIN": str(self.port_min),
            "AUDIO_ROOMS_MEDIA_PORT_MAX": str(self.port_max),
            "AUDIO_ROOMS_STUN_URLS": "",
            # Stopping is not measured; today's drain waits its full timeout (issue 9).
            "AUDIO_ROOMS_DRAIN_TIMEOUT": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        })
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "audio_rooms", "serve", "--port", str(self.port)],
                cwd=self.data_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_server_open_files,
            )

    async def wait_ready(self) -> None:
        assert self.process is not None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            for _ in range(300):
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        self.helpers = self._children()
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"server not ready after 30 s; see {self.log_path}")

    def _children(self) -> list[int]:
        assert self.process is not None
        found: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
        return found

    def rss_kib(self) -> int | None:
        assert self.process is not None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    async def transports(self) -> int | None:
        """The server's media transports gauge, or None when /metrics does not answer."""
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=HTTP_TIMEOUT) as http:
                response = await http.get("/metrics")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        for line in response.text.splitlines():
            if line.startswith("audio_rooms_media_transports "):
                return int(float(line.split()[1]))
        return None

    def log_bytes(self) -> int:
        with contextlib.suppress(OSError):
            return self.log_path.stat().st_size
        return 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for pid in self.helpers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


# --- the world the probes look at ----------------------------------------------------------------


def _bound_http(base_url: str, address: str, timeout: float = 30.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, timeout=timeout,
        transport=httpx.AsyncHTTPTransport(local_address=address),
    )


class Participant:
    """A room WebSocket that keeps reading (so the server never sees a slow reader)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def join(cls, server: Server, room_id: str, token: str, address: str) -> Participant:
        ws = await websockets.connect(server.ws_url(room_id), max_size=2**24, max_queue=None,
                                      ping_interval=None, local_addr=(address, 0),
                                      open_timeout=JOIN_TIMEOUT)
        await ws.send(json.dumps({"type": "join", "token": token}))
        async with asyncio.timeout(JOIN_TIMEOUT):
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "welcome":
                    return cls(ws)
                if message["type"] == "error":
                    raise RuntimeError(f"join refused: {message['code']}")

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") in ("media_answer", "error") and message.get("ref"):
                    await self.answers.put(message)

    async def media(self, peer: AudioClient) -> str:
        """Offer ``peer``'s SDP and apply the answer; the answer SDP."""
        await self.ws.send(json.dumps({"type": "media_offer", "sdp": await peer.offer(),
                                       "ref": "offer"}))
        async with asyncio.timeout(MEDIA_TIMEOUT):
            answer = await self.answers.get()
        if answer["type"] == "error":
            raise RuntimeError(f"offer refused: {answer['code']}")
        await peer.accept(answer["sdp"])
        return str(answer["sdp"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send(json.dumps({"type": "leave"}))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)
        self.task.cancel()


@dataclass
class World:
    server: Server
    room_id: str
    host: Participant
    listener: Participant
    speaker_peer: AudioClient
    listener_peer: AudioClient
    ports: list[int]  # the server's media ports of the host's and the listener's transports
    probe_accounts: list[tuple[str, str]]  # (handle, password)

    async def close(self) -> None:
        for peer in (self.speaker_peer, self.listener_peer):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.close(), 5)
        await self.listener.close()
        await self.host.close()


async def _signup(server: Server, address: str, handle: str, secret: str) -> str:
    async with _bound_http(server.base_url, address) as http:
        response = await http.post("/api/auth/signup", json={
            "handle": handle, "display_name": handle, "password": secret, "locale": "en"})
    response.raise_for_status()
    return str(response.json()["token"])


async def build_world(server: Server, rooms: int, probe_accounts: int) -> World:
    host_token = await _signup(server, f"{SETUP_NET}.1", "benchhost", password())
    async with _bound_http(server.base_url, f"{SETUP_NET}.1") as http:
        http.headers["Authorization"] = f"Bearer {host_token}"
        room_ids = []
        for n in range(max(1, rooms)):
            response = await http.post("/api/rooms", json={
                "title": f"Abuse bench {n}", "visibility": "open"})
            response.raise_for_status()
            room_ids.append(str(response.json()["room"]["id"]))
    async with _bound_http(server.base_url, f"{SETUP_NET}.2") as http:
        response = await http.post("/api/auth/guest", json={"display_name": "Listener"})
        response.raise_for_status()
        listener_token = str(response.json()["token"])
    accounts = []
    for n in range(probe_accounts):
        handle, secret = f"benchprobe{n}", password()
        await _signup(server, f"{SETUP_NET}.{10 + n}", handle, secret)
        accounts.append((handle, secret))
    room_id = room_ids[0]
    host = await Participant.join(server, room_id, host_token, f"{SETUP_NET}.1")
    listener = await Participant.join(server, room_id, listener_token, f"{SETUP_NET}.2")
    speaker_peer = AudioClient(mic=ToneTrack(440), decode=False, record_packets=False)
    listener_peer = AudioClient(decode=False, record_packets=False)
    ports = media_ports(await host.media(speaker_peer))
    ports += media_ports(await listener.media(listener_peer))
    async with asyncio.timeout(MEDIA_TIMEOUT):
        await speaker_peer.connected()
        await listener_peer.connected()
        while listener_peer.packet_count < 25:  # noqa: ASYNC110 - a peer's counter, no event
            await asyncio.sleep(0.05)
    return World(server, room_id, host, listener, speaker_peer, listener_peer, ports, accounts)


# --- the probes --------------------------------------------------------------------------------


@dataclass
class Window:
    """What a real user saw during one window; latencies in ms, failures as inf."""

    healthz: list[float] = field(default_factory=list)
    lobby: list[float] = field(default_factory=list)
    joins: list[float] = field(default_factory=list)
    media_join: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    rss_kib: list[int] = field(default_factory=list)
    audio_pps: float = math.nan  # at the listener, over the window's last second
    pair_down: int = 0  # the pair's peers no longer "connected"
    transports: int | None = None  # the server's gauge at the end of the window
    log_bytes: int = 0  # server log written during the window


async def open_loop(
    interval: float, stop_at: float, one: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Start ``one()`` every ``interval`` seconds until ``stop_at``, then wait for them all."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()
    due = loop.time()
    while due < stop_at:
        pending.add(asyncio.create_task(one()))
        due += interval
        await asyncio.sleep(max(0.0, due - loop.time()))
    await asyncio.gather(*pending)


async def _http_probe(http: httpx.AsyncClient, path: str, into: list[float],
                      failures: Counter[str], label: str) -> None:
    started = time.perf_counter()
    try:
        response = await http.get(path)
    except httpx.HTTPError as exc:
        into.append(math.inf)
        failures[f"{label}: {type(exc).__name__}"] += 1
        return
    if response.status_code != 200:
        into.append(math.inf)
        failures[f"{label}: HTTP {response.status_code}"] += 1
        return
    into.append((time.perf_counter() - started) * 1000)


async def _join_probe(world: World, http: httpx.AsyncClient, account: tuple[str, str],
                      window: Window) -> None:
    """Sign in and join until ``welcome``; the time of both, or a failure and why."""
    handle, secret = account
    started = time.perf_counter()
    ws: ClientConnection | None = None
    why = ""
    try:
        async with asyncio.timeout(JOIN_TIMEOUT):
            response = await http.post("/api/auth/signin", json={"handle": handle,
                                                                  "password": secret})
            if response.status_code != 200:
                why = f"sign-in HTTP {response.status_code}"
            else:
                ws = await websockets.connect(world.server.ws_url(world.room_id),
                                              max_size=2**24, ping_interval=None,
                                              local_addr=(PROBE_ADDRESS, 0))
                await ws.send(json.dumps({"type": "join", "token": response.json()["token"]}))
                while not why:
                    message = json.loads(await ws.recv())
                    if message["type"] == "welcome":
                        break
                    if message["type"] == "error":
                        why = f"join error {message['code']}"
    except TimeoutError:
        why = "timeout"
    except (httpx.HTTPError, OSError, websockets.WebSocketException) as exc:
        why = type(exc).__name__
    if why:
        window.joins.append(math.inf)
        window.failures[f"join: {why}"] += 1
    else:
        window.joins.append((time.perf_counter() - started) * 1000)
    if ws is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.send(json.dumps({"type": "leave"})), 2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)


async def _media_probe(world: World, http: httpx.AsyncClient, window: Window) -> None:
    """A new guest listener: from its offer to the first audio packet, or why not."""
    participant: Participant | None = None
    peer: AudioClient | None = None
    why = ""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(MEDIA_TIMEOUT + JOIN_TIMEOUT):
            response = await http.post("/api/auth/guest", json={"display_name": "Newcomer"})
            if response.status_code != 200:
                why = f"guest HTTP {response.status_code}"
            else:
                participant = await Participant.join(world.server, world.room_id,
                                                     response.json()["token"], PROBE_ADDRESS)
                peer = AudioClient(decode=False, record_packets=False)
                started = time.perf_counter()
                await participant.media(peer)
                while peer.packet_count == 0:
                    if peer.pc.connectionState in ("failed", "closed"):
                        why = f"transport {peer.pc.connectionState}"
                        break
                    if time.perf_counter() - started > MEDIA_TIMEOUT:
                        why = "no audio"
                        break
                    await asyncio.sleep(0.02)
    except TimeoutError:
        why = "timeout"
    except RuntimeError as exc:
        why = str(exc)
    except (httpx.HTTPError, OSError, websockets.WebSocketException) as exc:
        why = type(exc).__name__
    if why:
        window.media_join.append(math.inf)
        window.failures[f"new listener: {why}"] += 1
    else:
        window.media_join.append((time.perf_counter() - started) * 1000)
    if peer is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(peer.close(), 5)
    if participant is not None:
        await participant.close()


async def measure(world: World, seconds: float) -> Window:
    window = Window()
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    log_before = world.server.log_bytes()
    accounts = iter(world.probe_accounts * 1000)
    audio: list[tuple[float, int]] = []
    fresh = httpx.Limits(max_keepalive_connections=0, max_connections=None)

    async def sample_rss() -> None:
        while loop.time() < stop_at:
            rss = world.server.rss_kib()
            if rss is not None:
                window.rss_kib.append(rss)
            await asyncio.sleep(RSS_INTERVAL)

    async def sample_audio() -> None:
        while loop.time() < stop_at:
            audio.append((loop.time(), world.listener_peer.packet_count))
            await asyncio.sleep(AUDIO_INTERVAL)
        audio.append((loop.time(), world.listener_peer.packet_count))

    async def media_once() -> None:
        await asyncio.sleep(min(1.0, seconds / 4))
        await _media_probe(world, http, window)

    async with httpx.AsyncClient(
        base_url=world.server.base_url, timeout=HTTP_TIMEOUT, limits=fresh,
        transport=httpx.AsyncHTTPTransport(local_address=PROBE_ADDRESS, limits=fresh),
    ) as http:
        await asyncio.gather(
            open_loop(HEALTHZ_INTERVAL, stop_at, lambda: _http_probe(
                http, "/healthz", window.healthz, window.failures, "healthz")),
            open_loop(LOBBY_INTERVAL, stop_at, lambda: _http_probe(
                http, "/api/rooms", window.lobby, window.failures, "lobby")),
            open_loop(JOIN_INTERVAL, stop_at, lambda: _join_probe(
                world, http, next(accounts), window)),
            media_once(),
            sample_rss(),
            sample_audio(),
        )
    recent = [(at, count) for at, count in audio if at >= audio[-1][0] - 1.0]
    span = recent[-1][0] - recent[0][0]
    window.audio_pps = (recent[-1][1] - recent[0][1]) / span if span > 0 else math.nan
    window.pair_down = sum(
        1 for peer in (world.speaker_peer, world.listener_peer)
        if peer.pc.connectionState != "connected"
    )
    await asyncio.sleep(0.5)  # the new listener's transport closes on the server
    window.transports = await world.server.transports()
    window.log_bytes = world.server.log_bytes() - log_before
    return window


# --- the attacks (each in its own process) -------------------------------------------------------


@dataclass
class Target:
    """What the attacker needs to know about the server."""

    base_url: str
    port: int
    room_id: str
    media_ports: list[int]
    media_port_count: int
    options: dict[str, Any]


class RawSocket(asyncio.Protocol):
    """A minimal WebSocket client: upgrade, masked frames; reads only what it is told to.

    ``parse`` off, it stops decoding frames after ``welcome`` and only counts bytes, so a
    hundred of them in one process can take a reaction flood's fan-out.
    """

    def __init__(self, path: str, host: str, parse: bool) -> None:
        loop = asyncio.get_running_loop()
        self.path = path
        self.host = host
        self.parse = parse
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.welcome: asyncio.Future[str] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.received_bytes = 0
        self.errors: Counter[str] = Counter()
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(mask_frame(0x1, json.dumps(message).encode()))

    def data_received(self, data: bytes) -> None:
        self.received_bytes += len(data)
        if self.welcome.done() and not self.parse:
            return
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[: end + 4]
            if not status.startswith(b"HTTP/1.1 101"):
                self._settle(f"upgrade refused: {status.decode(errors='replace')}")
                if self.transport is not None:
                    self.transport.close()
                return
            self.upgraded = True
        offset = 0
        while len(self.buffer) - offset >= 2:
            first, length = self.buffer[offset], self.buffer[offset + 1] & 0x7F
            head = 2
            if length == 126:
                if len(self.buffer) - offset < 4:
                    break
                length, head = int.from_bytes(self.buffer[offset + 2 : offset + 4], "big"), 4
            elif length == 127:
                if len(self.buffer) - offset < 10:
                    break
                length, head = int.from_bytes(self.buffer[offset + 2 : offset + 10], "big"), 10
            if len(self.buffer) - offset < head + length:
                break
            payload = bytes(self.buffer[offset + head : offset + head + length])
            offset += head + length
            self._frame(first & 0x0F, payload)
        del self.buffer[:offset]

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            try:
                message = json.loads(payload)
            except ValueError:
                return
            if message.get("type") == "welcome":
                self._settle("joined")
            elif message.get("type") == "error":
                self.errors[str(message.get("code"))] += 1
                if not self.welcome.done():
                    self._settle(f"refused: {message.get('code')}")
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        elif opcode == 0x9:
            self.send(mask_frame(0xA, payload))

    def _settle(self, outcome: str) -> None:
        if not self.welcome.done():
            self.welcome.set_result(outcome)

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle("closed before welcome")
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def raw_join(target: Target, address: str, token: str | None,
                   parse: bool) -> tuple[RawSocket | None, str]:
    """A RawSocket joined to the room, or None and why not."""
    loop = asyncio.get_running_loop()
    path = f"/ws/rooms/{target.room_id}"
    try:
        _, protocol = await asyncio.wait_for(loop.create_connection(
            lambda: RawSocket(path, f"127.0.0.1:{target.port}", parse),
            "127.0.0.1", target.port, local_addr=(address, 0)), JOIN_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        return None, type(exc).__name__
    protocol.send_json({"type": "join", "token": token} if token else {"type": "join"})
    try:
        outcome = await asyncio.wait_for(asyncio.shield(protocol.welcome), JOIN_TIMEOUT)
    except TimeoutError:
        outcome = "timeout"
    if outcome != "joined":
        protocol.close()
        return None, outcome
    return protocol, outcome


async def guest_token(http: httpx.AsyncClient, name: str) -> tuple[str | None, str]:
    try:
        response = await http.post("/api/auth/guest", json={"display_name": name})
    except httpx.HTTPError as exc:
        return None, type(exc).__name__
    if response.status_code != 200:
        return None, f"HTTP {response.status_code}"
    return str(response.json()["token"]), "ok"


class Attack:
    """Brought to full strength by ``prepare``; runs from ``start`` until ``stop``."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.options = target.options
        self.stats: Counter[str] = Counter()
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False

    async def prepare(self) -> None:
        """Whatever must be in place before the window starts."""

    def start(self) -> None:
        """Begin the part of the attack that runs during the window."""

    async def stop(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def paced(rate: float) -> Callable[[], Awaitable[int]]:
    """Each call sleeps ~10 ms and returns how many events are due, keeping ``rate`` a second
    however late the loop wakes."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = 0

    async def tick() -> int:
        nonlocal done
        await asyncio.sleep(0.01)
        due = int((loop.time() - started) * rate) - done
        done += due
        return due

    return tick


class SigninFlood(Attack):
    async def prepare(self) -> None:
        self.http = httpx.AsyncClient(
            base_url=self.target.base_url, timeout=30,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=50),
            transport=httpx.AsyncHTTPTransport(
                local_address=ATTACKER_ADDRESS,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=50)),
        )
        self.pending: set[asyncio.Task[None]] = set()

    async def _attempt(self, n: int) -> None:
        handle = f"f{n}_{secrets.token_hex(6)}"
        try:
            response = await self.http.post("/api/auth/signin", json={
                "handle": handle, "password": secrets.token_urlsafe(12)})
            self.stats[f"HTTP {response.status_code}"] += 1
        except httpx.HTTPError as exc:
            self.stats[type(exc).__name__] += 1

    async def _run(self) -> None:
        tick = paced(float(self.options["signin_rate"]))
        n = 0
        while True:
            for _ in range(await tick()):
                task = asyncio.create_task(self._attempt(n))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
                n += 1
                self.stats["attempts"] += 1

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self._run()))

    async def stop(self) -> None:
        await super().stop()
        self.stats["unanswered"] += len(self.pending)
        for task in list(self.pending):
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)
        await self.http.aclose()


class JunkDatagrams(Attack):
    KINDS = ("empty", "random", "fake RTP")

    def _datagram(self, n: int) -> bytes:
        kind = n % 3
        if kind == 0:
            return b""
        if kind == 1:
            return os.urandom(random.randint(1, 200))
        header = bytes([0x80, 111]) + random.getrandbits(16).to_bytes(2, "big")
        header += random.getrandbits(32).to_bytes(4, "big") + random.getrandbits(32).to_bytes(
            4, "big")
        return header + os.urandom(random.randint(20, 160))

    async def _run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((ATTACKER_ADDRESS, 0))
        sock.setblocking(False)
        ports = self.target.media_ports
        tick = paced(float(self.options["datagram_rate"]))
        n = 0
        try:
            while True:
                for _ in range(await tick()):
                    for port in ports:
                        try:
                            sock.sendto(self._datagram(n), ("127.0.0.1", port))
                            self.stats["sent"] += 1
                        except OSError as exc:  # an ICMP error from a closed port, a full buffer
                            self.stats[type(exc).__name__] += 1
                    n += 1
        finally:
            sock.close()

    def start(self) -> None:
        self.stats["ports"] = len(self.target.media_ports)
        self.tasks.append(asyncio.create_task(self._run()))


class _Stall(asyncio.Protocol):
    def __init__(self, closed: asyncio.Future[None]) -> None:
        self.closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class StalledConnections(Attack):
    HALF = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: stall"

    async def _slot(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            closed: asyncio.Future[None] = loop.create_future()
            try:
                transport, _ = await asyncio.wait_for(loop.create_connection(
                    functools.partial(_Stall, closed), "127.0.0.1", self.target.port,
                    local_addr=(ATTACKER_ADDRESS, 0)), HTTP_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                self.stats[f"connect {type(exc).__name__}"] += 1
                await asyncio.sleep(0.2)
                continue
            self.stats["connections opened"] += 1
            self.open += 1
            self.peak = max(self.peak, self.open)
            transport.write(self.HALF)
            try:
                await closed
                self.stats["closed by the server"] += 1
            finally:
                self.open -= 1
                transport.close()
            await asyncio.sleep(0.05)

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.open: int = 0
        self.peak: int = 0

    async def prepare(self) -> None:
        count = int(self.options["stalled"])
        self.tasks = [asyncio.create_task(self._slot()) for _ in range(count)]
        deadline = time.monotonic() + 10
        while self.open < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        self.stats["open when the window started"] = self.open

    async def stop(self) -> None:
        self.stats["peak open"] = self.peak
        self.stats["open at the end"] = self.open
        await super().stop()


class ReactionFlood(Attack):
    EMOJI = ("👏", "❤️", "😂", "🔥", "👍", "🙏", "😮", "🎉")

    async def _guest(self, n: int) -> RawSocket | None:
        address = f"{GUEST_NET}.{n + 1}"
        async with _bound_http(self.target.base_url, address, HTTP_TIMEOUT) as http:
            token, why = await guest_token(http, f"Guest {n}")
        if token is None:
            self.stats[f"guest {why}"] += 1
            return None
        sock, outcome = await raw_join(self.target, address, token, parse=False)
        self.stats["joined" if sock else f"join {outcome}"] += 1
        return sock

    async def prepare(self) -> None:
        guests = int(self.options["guests"])
        limit = asyncio.Semaphore(20)

        async def one(n: int) -> RawSocket | None:
            async with limit:
                return await self._guest(n)

        made = await asyncio.gather(*(one(n) for n in range(guests)))
        self.sockets = [s for s in made if s is not None]

    async def _send(self, sock: RawSocket) -> None:
        tick = paced(float(self.options["reaction_rate"]))
        frames = [mask_frame(0x1, json.dumps({"type": "reaction", "emoji": e}).encode())
                  for e in self.EMOJI]
        n = 0
        while not sock.lost.done():
            for _ in range(await tick()):
                sock.send(frames[n % len(frames)])
                n += 1
                self.stats["reactions sent"] += 1
        self.stats["guests closed by the server"] += 1

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._send(s)) for s in self.sockets]

    async def stop(self) -> None:
        await super().stop()
        self.stats["MiB received by the guests"] = sum(
            s.received_bytes for s in self.sockets) // MIB
        for sock in self.sockets:
            sock.close()


def _candidate_free(sdp: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True)
                   if not line.startswith(("a=candidate:", "a=end-of-candidates")))


class PortHoarding(Attack):
    async def _hoarder(self, n: int, http: httpx.AsyncClient, offer: str) -> None:
        token, why = await guest_token(http, f"Hoarder {n}")
        if token is None:
            self.stats[f"guest {why}"] += 1
            return
        sock, outcome = await raw_join(self.target, ATTACKER_ADDRESS, token, parse=True)
        if sock is None:
            self.stats[f"join {outcome}"] += 1
            return
        self.stats["joined"] += 1
        self.sockets.append(sock)
        while not sock.lost.done() and not self.stopping:
            sock.send_json({"type": "media_offer", "sdp": offer, "ref": f"h{n}"})
            self.stats["offers sent"] += 1
            await asyncio.sleep(2.0)

    async def prepare(self) -> None:
        peer = AudioClient(decode=False)
        try:
            offer = _candidate_free(await peer.offer())
        finally:
            await peer.close()
        self.sockets: list[RawSocket] = []
        self.http = _bound_http(self.target.base_url, ATTACKER_ADDRESS, HTTP_TIMEOUT)
        count = int(self.options["hoarders"] or self.target.media_port_count)
        self.tasks = [asyncio.create_task(self._hoarder(n, self.http, offer))
                      for n in range(count)]
        await asyncio.sleep(3.0)  # the offers answered (or refused) before the window

    async def stop(self) -> None:
        await super().stop()
        for sock in self.sockets:
            self.stats.update({f"offer error {k}": v for k, v in sock.errors.items()})
            sock.close()
        await self.http.aclose()


class WsJunk(Attack):
    def _junk(self) -> list[bytes]:
        oversized = json.dumps({"type": "ping", "ref": "x" * (WS_MAX_MESSAGE_BYTES * 3 // 2)})
        return [
            mask_frame(0x1, oversized.encode()),
            mask_frame(0x2, os.urandom(512)),
            mask_frame(0x1, b"{not json"),
            mask_frame(0x1, b'{"type": "ping", "ref": "\\ud800"}'),
            mask_frame(0x1, b'{"type": "ping", "ref": ' + b"9" * 5000 + b"}"),
        ]

    async def _socket(self, n: int, http: httpx.AsyncClient, junk: list[bytes]) -> None:
        bad_utf8 = mask_frame(0x1, b"\xff\xfe\xfd")
        token, why = await guest_token(http, f"Junk {n}")
        if token is None:
            self.stats[f"guest {why}"] += 1
        sent = 0
        while not self.stopping:
            sock, outcome = await raw_join(self.target, ATTACKER_ADDRESS, token, parse=True)
            if sock is None:
                self.stats[f"join {outcome}"] += 1
                await asyncio.sleep(0.2)
                continue
            self.stats["joins"] += 1
            self.sockets.append(sock)
            tick = paced(float(self.options["junk_rate"]))
            while not sock.lost.done():
                for _ in range(await tick()):
                    sent += 1
                    sock.send(bad_utf8 if sent % 50 == 0 else junk[sent % len(junk)])
                    self.stats["frames sent"] += 1
            self.stats[f"closed by the server ({sock.close_code})"] += 1
            await asyncio.sleep(0.1)

    async def prepare(self) -> None:
        self.sockets: list[RawSocket] = []
        self.http = _bound_http(self.target.base_url, ATTACKER_ADDRESS, HTTP_TIMEOUT)
        self.junk = self._junk()

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._socket(n, self.http, self.junk))
                      for n in range(int(self.options["junk_sockets"]))]

    async def stop(self) -> None:
        await super().stop()
        for sock in self.sockets:
            self.stats.update({f"error {k}": v for k, v in sock.errors.items()})
            sock.close()
        await self.http.aclose()


ATTACK_CLASSES: dict[str, type[Attack]] = {
    "signin-flood": SigninFlood,
    "junk-datagrams": JunkDatagrams,
    "stalled-connections": StalledConnections,
    "reaction-flood": ReactionFlood,
    "port-hoarding": PortHoarding,
    "ws-junk": WsJunk,
}


async def _attacker(pipe: Pipe, name: str, target: Target) -> None:
    loop = asyncio.get_running_loop()
    attack = ATTACK_CLASSES[name](target)
    await attack.prepare()
    pipe.send("ready")
    assert await loop.run_in_executor(None, pipe.recv) == "go"
    attack.start()
    assert await loop.run_in_executor(None, pipe.recv) == "stop"
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(attack.stop(), 15)
    pipe.send(dict(attack.stats))


def attacker_main(pipe: Pipe, name: str, target: Target) -> None:
    raise_open_files()
    asyncio.run(_attacker(pipe, name, target))


async def _recv(pipe: Pipe, timeout: float) -> Any:
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, pipe.poll, timeout):
        raise TimeoutError("the attacker process did not answer in time")
    return pipe.recv()


# --- one attack, start to finish ---------------------------------------------------------------


@dataclass
class Outcome:
    attack: str
    baseline: Window
    attacked: Window
    attacker: dict[str, int]
    load: tuple[float, float]


async def run_attack(name: str, args: argparse.Namespace) -> Outcome:
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix=f"abuse-{name}-", dir="/tmp"))
    server = Server(data_dir, free_udp_range(args.media_ports), args.media_ports)
    world: World | None = None
    process: BaseProcess | None = None
    try:
        server.launch()
        await server.wait_ready()
        world = await build_world(server, args.rooms, args.probe_accounts)
        baseline = await measure(world, args.baseline)
        baseline_transports = await server.transports()
        target = Target(server.base_url, server.port, world.room_id, world.ports,
                        args.media_ports, {
                            "signin_rate": args.signin_rate,
                            "datagram_rate": args.datagram_rate,
                            "stalled": args.stalled,
                            "guests": args.guests,
                            "reaction_rate": args.reaction_rate,
                            "hoarders": args.hoarders,
                            "junk_sockets": args.junk_sockets,
                            "junk_rate": args.junk_rate,
                        })
        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe()
        process = context.Process(target=attacker_main, args=(theirs, name, target),
                                  daemon=True)
        process.start()
        assert await _recv(mine, 60) == "ready"
        mine.send("go")
        attacked = await measure(world, args.seconds)
        mine.send("stop")
        stats: dict[str, int] = await _recv(mine, 30)
        if baseline_transports is not None:
            baseline.transports = baseline_transports
        return Outcome(name, baseline, attacked, stats, (load_before, os.getloadavg()[0]))
    finally:
        if process is not None:
            process.join(5)
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGKILL)
                process.join(5)
        if world is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(world.close(), 15)
        server.stop()
        if args.keep:
            print(f"  kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


# --- the report --------------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    value = percentile(values, q)
    failed = sum(1 for v in values if math.isinf(v))
    shown = "fail" if math.isinf(value) else f"{value:.0f} ms"
    return f"{shown} ({failed}/{len(values)} failed)" if failed else shown


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def transports_lost(outcome: Outcome) -> int:
    b, a = outcome.baseline, outcome.attacked
    gauge = max(0, (b.transports or 0) - a.transports) if a.transports is not None else 0
    silent = 1 if not a.audio_pps >= 10 else 0
    return min(2, max(gauge, a.pair_down, silent))


TARGETS: dict[tuple[str, str], tuple[str, Callable[[Outcome], bool]]] = {
    ("signin-flood", "lobby p95"): (
        "< 200 ms", lambda o: percentile(o.attacked.lobby, 0.95) < 200),
    ("signin-flood", "RSS growth"): (
        "< 200 MiB",
        lambda o: (max(o.attacked.rss_kib) - statistics.median(o.baseline.rss_kib)) < 200 * 1024),
    ("junk-datagrams", "transports lost"): ("0", lambda o: transports_lost(o) == 0),
    ("stalled-connections", "/healthz p99"): (
        "< 200 ms", lambda o: percentile(o.attacked.healthz, 0.99) < 200),
    ("port-hoarding", "new listener hears"): (
        "hears", lambda o: bool(o.attacked.media_join) and all(
            not math.isinf(v) for v in o.attacked.media_join)),
}


def rows(outcome: Outcome) -> list[tuple[str, str, str, str]]:
    b, a = outcome.baseline, outcome.attacked
    growth = (max(a.rss_kib) - statistics.median(b.rss_kib)) if a.rss_kib and b.rss_kib else 0
    return [
        ("/healthz p50", _ms(b.healthz, 0.5), _ms(a.healthz, 0.5), ""),
        ("/healthz p99", _ms(b.healthz, 0.99), _ms(a.healthz, 0.99), ""),
        ("lobby p50", _ms(b.lobby, 0.5), _ms(a.lobby, 0.5), ""),
        ("lobby p95", _ms(b.lobby, 0.95), _ms(a.lobby, 0.95), ""),
        ("lobby p99", _ms(b.lobby, 0.99), _ms(a.lobby, 0.99), ""),
        ("sign in + join p50", _ms(b.joins, 0.5), _ms(a.joins, 0.5), ""),
        ("sign in + join worst", _ms(b.joins, 1.0), _ms(a.joins, 1.0), ""),
        ("new listener hears", _ms(b.media_join, 1.0), _ms(a.media_join, 1.0), ""),
        ("RSS", _mib(statistics.median(b.rss_kib)) if b.rss_kib else "-",
         f"max {_mib(max(a.rss_kib))}" if a.rss_kib else "-", ""),
        ("RSS growth", "", _mib(growth), ""),
        ("listener audio", f"{b.audio_pps:.0f} pkt/s", f"{a.audio_pps:.0f} pkt/s", ""),
        ("transports lost", "0", str(transports_lost(outcome)), ""),
        ("server log written", f"{b.log_bytes / 1024:.0f} KiB", f"{a.log_bytes / 1024:.0f} KiB",
         ""),
    ]


def report(outcomes: list[Outcome]) -> str:
    lines = ["| attack | metric | baseline | under attack | target | result |",
             "|---|---|---|---|---|---|"]
    for outcome in outcomes:
        for metric, before, during, _ in rows(outcome):
            target, verdict = "", ""
            check = TARGETS.get((outcome.attack, metric))
            if check is not None:
                target = check[0]
                try:
                    verdict = "PASS" if check[1](outcome) else "MISS"
                except ValueError:  # no samples at all
                    verdict = "MISS"
            lines.append(f"| {outcome.attack} | {metric} | {before} | {during} | {target} "
                         f"| {verdict} |")
    lines.append("")
    for outcome in outcomes:
        achieved = ", ".join(f"{k} {v}" for k, v in sorted(outcome.attacker.items()))
        lines.append(f"- {outcome.attack} (load {outcome.load[0]:.1f} -> {outcome.load[1]:.1f}):"
                     f" {achieved}")
        failures = {**outcome.baseline.failures}
        if failures:
            lines.append("  - baseline failures: " + ", ".join(
                f"{k} x{v}" for k, v in sorted(failures.items())))
        if outcome.attacked.failures:
            lines.append("  - failures under attack: " + ", ".join(
                f"{k} x{v}" for k, v in sorted(outcome.attacked.failures.items())))
    return "\n".join(lines)


def as_json(outcome: Outcome) -> dict[str, Any]:
    def window(w: Window) -> dict[str, Any]:
        def pct(values: list[float]) -> dict[str, float | None]:
            return {f"p{int(q * 100)}": (None if not values or math.isinf(percentile(values, q))
                                         else round(percentile(values, q), 1))
                    for q in (0.5, 0.95, 0.99, 1.0)}

        return {
            "healthz_ms": pct(w.healthz), "lobby_ms": pct(w.lobby), "join_ms": pct(w.joins),
            "new_listener_ms": pct(w.media_join), "failures": dict(w.failures),
            "rss_kib": {"median": statistics.median(w.rss_kib) if w.rss_kib else None,
                        "max": max(w.rss_kib) if w.rss_kib else None},
            "audio_pps": w.audio_pps, "pair_down": w.pair_down, "transports": w.transports,
            "log_bytes": w.log_bytes,
        }

    return {"attack": outcome.attack, "baseline": window(outcome.baseline),
            "attacked": window(outcome.attacked), "transports_lost": transports_lost(outcome),
            "attacker": outcome.attacker, "load": outcome.load}


async def main_async(args: argparse.Namespace) -> list[Outcome]:
    names = ATTACKS if args.attack == "all" else (args.attack,)
    outcomes = []
    for name in names:
        print(f"{name}: {args.baseline:.0f} s quiet, then {args.seconds:.0f} s under attack...",
              flush=True)
        outcomes.append(await run_attack(name, args))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack", choices=("all", *ATTACKS), default="all")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each attack window")
    parser.add_argument("--baseline", type=float, default=4.0, help="length of the quiet window")
    parser.add_argument("--rooms", type=int, default=10, help="live rooms in the lobby")
    parser.add_argument("--probe-accounts", type=int, default=4)
    parser.add_argument("--media-ports", type=int, default=40, help="the server's UDP port range")
    parser.add_argument("--signin-rate", type=float, default=50.0)
    parser.add_argument("--datagram-rate", type=float, default=1000.0, help="per media port")
    parser.add_argument("--stalled", type=int, default=2000)
    parser.add_argument("--guests", type=int, default=100, help="reaction-flood guests (max 250)")
    parser.add_argument("--reaction-rate", type=float, default=20.0, help="per guest")
    parser.add_argument("--hoarders", type=int, default=0,
                        help="port-hoarding guests (default: --media-ports)")
    parser.add_argument("--junk-sockets", type=int, default=10)
    parser.add_argument("--junk-rate", type=float, default=100.0, help="frames/s per socket")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data directories")
    args = parser.parse_args()
    args.guests = min(args.guests, 250)
    raise_open_files()
    started = time.monotonic()
    outcomes = asyncio.run(main_async(args))
    print()
    print(f"{os.cpu_count()} CPUs; {args.baseline:.0f} s quiet and {args.seconds:.0f} s under "
          f"attack each, on a fresh server; {time.monotonic() - started:.0f} s in all")
    print(report(outcomes))
    out = ROOT / "bench" / "results" / "abuse.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([as_json(o) for o in outcomes], indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
