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
  WebSocket until `welcome`, every 1.5 s (8 s timeout), then leaves;
* a new listener's media: once per window a guest joins, offers, and waits for the first
  audio packet from the host (8 s timeout);
* the server's RSS (`VmRSS` of its process, every 0.2 s; growth is peak against peak);
* the listening pair: audio packets a second at the listener over the window, and transports
  lost (the largest of: the drop in the server's `audio_rooms_media_transports` gauge, the
  pair's peers no longer "connected", 1 if the listener got no packet in the last 2 s).

Every attack runs in its own process (bench/abuse_attacks.py: its CPU does not queue the
probes' event loop), from attacker addresses 127.0.0.2 and up (sockets bound with a local
address; the server sees them as those clients), and is brought to full strength before its
window starts:

* signin-flood: --signin-rate sign-in attempts a second from one address (or
  --signin-addresses in turn), each with a new handle and a random password, not waiting for
  answers;
* junk-datagrams: --datagram-rate datagrams a second (empty, random bytes, fake RTP) at each
  of the server's media ports for the host and the listener (taken from the answers'
  candidates);
* stalled-connections: --stalled connections from one address (or --stalled-addresses)
  that send half a request header and stall; with --stalled-reopen, one the server ends is
  reopened a second later;
* reaction-flood: --guests guests (one address each: this measures the fan-out, not the
  per-address caps) in the room, each sending reactions at --reaction-rate a second (the
  default per-socket budget);
* port-hoarding: --hoarders guests from one address (default: as many as the media port
  range) offering SDP with no ICE candidates, re-offering every 2 s;
* ws-junk: --junk-sockets guest sockets from one address sending --junk-rate frames a second
  each: oversized text, binary, invalid JSON, a lone surrogate, a 5,000-digit number and,
  every 50th frame, invalid UTF-8; a socket the server closes reconnects, and one holds back
  while the server has not read its last 1 MiB.

Prints one table (attack, metric, baseline, under attack, target, PASS/MISS) with the
issue's targets, and what each attack achieved; writes bench/results/abuse.json. Refusals
(429, closed sockets, failed offers) are outcomes and are counted, never crashes. Every wait
is bounded; everything started is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import websockets  # noqa: E402
from websockets.asyncio.client import ClientConnection  # noqa: E402

from audio_rooms.sfu.testing import AudioClient, ToneTrack  # noqa: E402
from bench.abuse_attacks import (  # noqa: E402
    ATTACK_CLASSES,
    HTTP_TIMEOUT,
    JOIN_TIMEOUT,
    Target,
    answer_within,
    attacker_main,
    bound_http,
    raise_open_files,
)

ATTACKS = tuple(ATTACK_CLASSES)
PROBE_ADDRESS = "127.0.0.1"
SETUP_NET = "127.0.2"  # the host, the listener, the probe accounts: one address each
SERVER_NOFILE = 1024  # the usual default soft limit; the hard limit is left as it is
MEDIA_TIMEOUT = 8.0
HEALTHZ_INTERVAL = 0.05
LOBBY_INTERVAL = 0.1
JOIN_INTERVAL = 1.5
RSS_INTERVAL = 0.2
AUDIO_INTERVAL = 0.1
SILENCE = 2.0  # no audio packet for this long (50 are due a second) means a transport died
PASSWORD_BYTES = 18
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
            # One server process: its CPU and memory are what this measures.
            "AUDIO_ROOMS_WORKERS": "1",
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
    lobby_rooms: int  # live rooms the server let us open

    async def close(self) -> None:
        for peer in (self.speaker_peer, self.listener_peer):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.close(), 5)
        await self.listener.close()
        await self.host.close()


async def _signup(server: Server, address: str, handle: str, secret: str) -> str:
    async with bound_http(server.base_url, address) as http:
        response = await http.post("/api/auth/signup", json={
            "handle": handle, "display_name": handle, "password": secret, "locale": "en"})
    response.raise_for_status()
    return str(response.json()["token"])


async def _create_room(server: Server, address: str, token: str, title: str) -> str | None:
    """A live open room's id, or None when the server refuses one more (a limit per account
    or address)."""
    async with bound_http(server.base_url, address) as http:
        response = await http.post("/api/rooms", json={"title": title, "visibility": "open"},
                                   headers={"Authorization": f"Bearer {token}"})
    if response.status_code == 429:
        return None
    response.raise_for_status()
    return str(response.json()["room"]["id"])


async def build_world(server: Server, rooms: int, probe_accounts: int) -> World:
    host_token = await _signup(server, f"{SETUP_NET}.1", "benchhost", password())
    room_id = await _create_room(server, f"{SETUP_NET}.1", host_token, "Abuse bench")
    assert room_id is not None, "the server refused the first room"
    async with bound_http(server.base_url, f"{SETUP_NET}.2") as http:
        response = await http.post("/api/auth/guest", json={"display_name": "Listener"})
        response.raise_for_status()
        listener_token = str(response.json()["token"])
    accounts = []
    tokens = []
    for n in range(max(1, probe_accounts)):
        handle, secret = f"benchprobe{n}", password()
        tokens.append(await _signup(server, f"{SETUP_NET}.{10 + n}", handle, secret))
        accounts.append((handle, secret))
    # The rest of the lobby, spread over the probe accounts as the limits per account allow.
    lobby = 1
    for n in range(1, rooms):
        owner = n % len(tokens)
        if await _create_room(server, f"{SETUP_NET}.{10 + owner}", tokens[owner],
                              f"Lobby room {n}"):
            lobby += 1
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
    return World(server, room_id, host, listener, speaker_peer, listener_peer, ports, accounts,
                 lobby)


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
    audio_pps: float = math.nan  # at the listener, over the window
    silent_at_end: bool = False  # no packet at the listener in the window's last SILENCE s
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
    stage = "guest sign-in"
    started = time.perf_counter()
    try:
        async with asyncio.timeout(MEDIA_TIMEOUT):
            response = await http.post("/api/auth/guest", json={"display_name": "Newcomer"})
            if response.status_code != 200:
                why = f"guest HTTP {response.status_code}"
            else:
                stage = "join"
                participant = await Participant.join(world.server, world.room_id,
                                                     response.json()["token"], PROBE_ADDRESS)
                peer = AudioClient(decode=False, record_packets=False)
                started = time.perf_counter()
                stage = "answer"
                await participant.media(peer)
                stage = "first audio"
                while peer.packet_count == 0 and not why:
                    if peer.pc.connectionState in ("failed", "closed"):
                        why = f"transport {peer.pc.connectionState}"
                    await asyncio.sleep(0.02)
    except TimeoutError:
        why = f"timeout waiting for {stage}"
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
    span = audio[-1][0] - audio[0][0]
    window.audio_pps = (audio[-1][1] - audio[0][1]) / span if span > 0 else math.nan
    recent = [count for at, count in audio if at >= audio[-1][0] - SILENCE]
    window.silent_at_end = recent[-1] == recent[0]
    window.pair_down = sum(
        1 for peer in (world.speaker_peer, world.listener_peer)
        if peer.pc.connectionState != "connected"
    )
    await asyncio.sleep(0.5)  # the new listener's transport closes on the server
    window.transports = await world.server.transports()
    window.log_bytes = world.server.log_bytes() - log_before
    return window


# --- one attack, start to finish ---------------------------------------------------------------


@dataclass
class Outcome:
    attack: str
    baseline: Window
    attacked: Window
    attacker: dict[str, int]
    load: tuple[float, float]
    lobby_rooms: int
    seconds: float  # the whole run of this attack, server start to stop


async def run_attack(name: str, args: argparse.Namespace) -> Outcome:
    started = time.monotonic()
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
        target = Target(server.base_url, server.port, world.room_id, world.ports,
                        args.media_ports, {
                            "signin_rate": args.signin_rate,
                            "datagram_rate": args.datagram_rate,
                            "signin_addresses": args.signin_addresses,
                            "stalled": args.stalled,
                            "stalled_addresses": args.stalled_addresses,
                            "stalled_reopen": args.stalled_reopen,
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
        if await answer_within(mine, 60, process) != "ready":
            raise RuntimeError("the attacker process did not get ready")
        mine.send("go")
        attacked = await measure(world, args.seconds)
        mine.send("stop")
        try:
            stats: dict[str, int] = await answer_within(mine, 30, process)
        except (RuntimeError, TimeoutError) as exc:
            stats = {f"no report from the attacker: {exc}": 1}
        return Outcome(name, baseline, attacked, stats, (load_before, os.getloadavg()[0]),
                       world.lobby_rooms, time.monotonic() - started)
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
    silent = 1 if a.silent_at_end else 0
    return min(2, max(gauge, a.pair_down, silent))


def rss_growth(outcome: Outcome) -> float:
    """Peak against peak, in KiB: every sign-in of the probe holds a 64 MiB argon2 buffer for a
    moment, in the quiet window too."""
    return max(outcome.attacked.rss_kib) - max(outcome.baseline.rss_kib)


TARGETS: dict[tuple[str, str], tuple[str, Callable[[Outcome], bool]]] = {
    ("signin-flood", "lobby p95"): (
        "< 200 ms", lambda o: percentile(o.attacked.lobby, 0.95) < 200),
    ("signin-flood", "RSS growth"): (
        "< 200 MiB",
        lambda o: rss_growth(o) < 200 * 1024),
    ("junk-datagrams", "transports lost"): ("0", lambda o: transports_lost(o) == 0),
    ("stalled-connections", "/healthz p99"): (
        "< 200 ms", lambda o: percentile(o.attacked.healthz, 0.99) < 200),
    ("port-hoarding", "new listener hears"): (
        "hears", lambda o: bool(o.attacked.media_join) and all(
            not math.isinf(v) for v in o.attacked.media_join)),
}


def rows(outcome: Outcome) -> list[tuple[str, str, str]]:
    b, a = outcome.baseline, outcome.attacked
    return [
        ("/healthz p50", _ms(b.healthz, 0.5), _ms(a.healthz, 0.5)),
        ("/healthz p99", _ms(b.healthz, 0.99), _ms(a.healthz, 0.99)),
        ("lobby p50", _ms(b.lobby, 0.5), _ms(a.lobby, 0.5)),
        ("lobby p95", _ms(b.lobby, 0.95), _ms(a.lobby, 0.95)),
        ("lobby p99", _ms(b.lobby, 0.99), _ms(a.lobby, 0.99)),
        ("sign in + join p50", _ms(b.joins, 0.5), _ms(a.joins, 0.5)),
        ("sign in + join worst", _ms(b.joins, 1.0), _ms(a.joins, 1.0)),
        ("new listener hears", _ms(b.media_join, 1.0), _ms(a.media_join, 1.0)),
        ("RSS median", _mib(statistics.median(b.rss_kib)) if b.rss_kib else "-",
         _mib(statistics.median(a.rss_kib)) if a.rss_kib else "-"),
        ("RSS peak", _mib(max(b.rss_kib)) if b.rss_kib else "-",
         _mib(max(a.rss_kib)) if a.rss_kib else "-"),
        ("RSS growth", "", _mib(rss_growth(outcome)) if a.rss_kib and b.rss_kib else "-"),
        ("listener audio", f"{b.audio_pps:.0f} pkt/s", f"{a.audio_pps:.0f} pkt/s"),
        ("transports lost", "0", str(transports_lost(outcome))),
        ("server log written", f"{b.log_bytes / 1024:.0f} KiB",
         f"{a.log_bytes / 1024:.0f} KiB"),
    ]


def report(outcomes: list[Outcome]) -> str:
    lines = ["| attack | metric | baseline | under attack | target | result |",
             "|---|---|---|---|---|---|"]
    for outcome in outcomes:
        for metric, before, during in rows(outcome):
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
        lines.append(f"- {outcome.attack} ({outcome.seconds:.0f} s, {outcome.lobby_rooms} rooms "
                     f"in the lobby, load {outcome.load[0]:.1f} -> {outcome.load[1]:.1f}): "
                     f"{achieved}")
        if outcome.baseline.failures:
            lines.append("  - baseline failures: " + ", ".join(
                f"{k} x{v}" for k, v in sorted(outcome.baseline.failures.items())))
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
            "audio_pps": w.audio_pps, "silent_at_end": w.silent_at_end,
            "pair_down": w.pair_down, "transports": w.transports,
            "log_bytes": w.log_bytes,
        }

    return {"attack": outcome.attack, "baseline": window(outcome.baseline),
            "attacked": window(outcome.attacked), "transports_lost": transports_lost(outcome),
            "attacker": outcome.attacker, "load": outcome.load,
            "lobby_rooms": outcome.lobby_rooms, "seconds": round(outcome.seconds, 1)}


async def main_async(args: argparse.Namespace) -> list[Outcome]:
    names = ATTACKS if args.attack == "all" else (args.attack,)
    outcomes = []
    for name in names:
        print(f"{name}: {args.baseline:.0f} s quiet, then {args.seconds:.0f} s under attack...",
              flush=True)
        try:
            outcomes.append(await run_attack(name, args))
        except (RuntimeError, TimeoutError, OSError, httpx.HTTPError,
                websockets.WebSocketException) as exc:
            # One attack that could not be set up says so; the others still run.
            print(f"{name}: not measured: {type(exc).__name__}: {exc}", flush=True)
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
    parser.add_argument("--signin-addresses", type=int, default=1, choices=range(1, 200),
                        metavar="N", help="spread the sign-in flood over N addresses")
    parser.add_argument("--datagram-rate", type=float, default=1000.0, help="per media port")
    parser.add_argument("--stalled", type=int, default=2000)
    parser.add_argument("--stalled-addresses", type=int, default=1, choices=range(1, 200),
                        metavar="N", help="spread the stalled connections over N addresses")
    parser.add_argument("--stalled-reopen", action="store_true",
                        help="reopen a stalled connection the server ended, a second later")
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
