"""Signalling benchmark: N light WebSocket listeners join one room served by several server
processes on one Redis; the host then changes the stage and every listener times the delta.

One command starts a dedicated ``redis-server`` on a free port and ``--servers`` server processes
(``python -m audio_rooms serve``, each on its own port and data directory, one shared SQLite
database and one secret key, so a room and a guest token made on one are good on all). Guest
listeners are signed in, then join, spread round-robin over the servers, from client processes
of at most ``--per-process`` sockets each (one asyncio loop of light clients per process). Their
source addresses are spread over 127.0.0.2-127.0.0.250 and the per-address limits are lifted by
environment variables, so the server's abuse limits do not shape the figures.

It prints, per room size: joins/s for each successive thousand (tenths below 2,000 clients), so
a falling rate shows; overall and per-node joins/s; the delay from the host sending a stage
action (``--action role``: make/unmake moderator on a speaker; ``mute``: moderator mute/unmute)
to each listener receiving its delta, p50/p99 over every listener and action, and whether every
listener got every delta; server CPU per join and per stage change and Redis CPU (utime + stime
from /proc/PID/stat over the join phase and the action phase); server RSS per connection (RSS
after the joins minus before, over the connections); joins refused or timed out. Clients and host
share the machine's clock (``time.time()`` across processes).

    python bench/signalling.py                                  # 500 clients, 3 servers
    python bench/signalling.py --clients 10000 --join-time-limit 1200 --json out.json

A join phase longer than ``--join-time-limit`` is cut there: the report says how far it got, and
the stage actions are still measured on those who joined. Everything it starts (redis-server,
servers, client processes) is stopped by PID on exit, and every wait is bounded in time. It
works with the original protocol (every join a ``participant_joined`` delta) and with the
audience tier's (listeners' joins are counted in ``audience`` messages instead): it needs only
guest sign-in, ``join`` -> ``welcome`` and the stage deltas by version.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import httpx
import websockets
from processes import cpu_seconds, free_port, raise_open_files, rss_kib, stop_process
from websockets.asyncio.client import ClientConnection

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark password 1"
ACTION_INTERVAL = 0.25  # between actions, so fan-outs are measured one at a time
ACK_TIMEOUT = 60.0  # a stage action's ack, even from a server busy with a join backlog
SETUP_TIMEOUT = 600.0  # signing in 10,000 guests on a shared machine
SOURCE_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 251)]
SECRET_KEY = "benchmark-secret-key-0123456789-abcdefghij"


# --- client processes --------------------------------------------------------------------------


@dataclass
class Listener:
    token: str
    node: int
    source: str | None
    failure: str = ""  # why it has no token, if it has none
    received: dict[int, float] = field(default_factory=dict)  # delta version -> arrival
    started: float = 0.0
    welcomed: float | None = None
    closed_code: int | None = None
    ws: ClientConnection | None = None
    task: asyncio.Task[None] | None = None
    transport: asyncio.Transport | None = None  # the light client's


def _is_measured(message: dict[str, Any], target: str) -> bool:
    return message.get("type") in ("role_changed", "mute_changed") and (
        message.get("user_id") == target
    )


async def _listen(listener: Listener, target: str) -> None:
    assert listener.ws is not None
    try:
        async for raw in listener.ws:
            arrived = time.time()
            message = json.loads(raw)
            if _is_measured(message, target):
                listener.received[int(message["version"])] = arrived
    except websockets.ConnectionClosed as closed:
        listener.closed_code = closed.rcvd.code if closed.rcvd else 1006
    else:
        listener.closed_code = listener.ws.close_code


def _mask(payload: bytes) -> bytes:
    """Client frames are masked (RFC 6455); one integer XOR instead of a loop per byte."""
    mask = os.urandom(4)
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return mask + masked.to_bytes(len(payload), "big")


class LightSocket(asyncio.Protocol):
    """A minimal real WebSocket client: HTTP upgrade, masked client frames, ping/pong, close.

    It JSON-decodes only an error before ``welcome`` and the frames that mention the measured
    delta, so thousands of them on one core measure the server rather than the clients' own
    decoding (a real audience decodes on thousands of separate phones). ``--client full`` uses
    the websockets library and decodes everything.
    """

    def __init__(self, listener: Listener, target: str) -> None:
        self.listener = listener
        self.target = target.encode()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.welcome = asyncio.get_running_loop().create_future()
        self.handshake_done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send_text(self, text: str) -> None:
        payload = text.encode()
        length = len(payload)
        if length < 126:
            header = bytes([0x81, 0x80 | length])
        else:
            header = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
        assert self.transport is not None
        self.transport.write(header + _mask(payload))

    def _control(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + _mask(payload))

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self.buffer += data
        if not self.handshake_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            self.handshake_done = True
            if not self.upgraded.done():
                if head.startswith(b"HTTP/1.1 101"):
                    self.upgraded.set_result(None)
                else:
                    self.upgraded.set_exception(ConnectionError(head.split(b"\r\n")[0].decode()))
                    return
        buffer = self.buffer
        while len(buffer) >= 2:
            first, length = buffer[0], buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, offset = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < offset + length:
                return
            opcode = first & 0x0F
            if opcode == 0x1:
                self._text(bytes(buffer[offset : offset + length]), arrived)
            elif opcode == 0x9:
                self._control(0xA, bytes(buffer[offset : offset + length]))  # pong
            elif opcode == 0x8:
                payload = buffer[offset : offset + 2]
                self.listener.closed_code = int.from_bytes(payload, "big") if payload else 1005
            del buffer[: offset + length]

    def _text(self, payload: bytes, arrived: float) -> None:
        if not self.welcome.done():
            head = payload[:200]
            if b'"welcome"' in head:
                self.listener.welcomed = arrived
                self.welcome.set_result("joined")
            elif b'"error"' in head:
                self.welcome.set_result(f"error {json.loads(payload).get('code')}")
            return
        if self.target in payload and (
            b'"role_changed"' in payload or b'"mute_changed"' in payload
        ):
            message = json.loads(payload)
            if _is_measured(message, self.target.decode()):
                self.listener.received[int(message["version"])] = arrived

    def connection_lost(self, exc: Exception | None) -> None:
        if self.listener.closed_code is None:
            self.listener.closed_code = 1006
        for future in (self.upgraded, self.welcome):
            if not future.done():
                future.set_exception(ConnectionError("connection lost"))
                future.exception()  # retrieved: nobody may be waiting any more


async def _join_light(listener: Listener, ws_url: str, target: str) -> str:
    host_port, _, path = ws_url.removeprefix("ws://").partition("/")
    host, _, port = host_port.partition(":")
    loop = asyncio.get_running_loop()
    transport: asyncio.Transport | None = None
    try:
        transport, protocol = await loop.create_connection(
            lambda: LightSocket(listener, target), host, int(port),
            local_addr=(listener.source, 0) if listener.source else None,
        )
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await asyncio.wait_for(protocol.upgraded, 60)
        protocol.send_text(json.dumps({"type": "join", "token": listener.token}))
        outcome: str = await asyncio.wait_for(protocol.welcome, 60)
    except (OSError, TimeoutError, ConnectionError) as exc:
        if transport is not None:
            transport.close()
        return type(exc).__name__
    except asyncio.CancelledError:
        if transport is not None:
            transport.close()
        raise
    listener.transport = transport
    return outcome


async def _join_full(listener: Listener, ws_url: str, target: str) -> str:
    try:
        ws = await websockets.connect(
            ws_url, max_size=2**24, max_queue=None, open_timeout=60, ping_interval=None,
            compression=None,
            local_addr=(listener.source, 0) if listener.source else None,
        )
        await ws.send(json.dumps({"type": "join", "token": listener.token}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if message["type"] == "welcome":
                listener.welcomed = time.time()
                break
            if message["type"] == "error":
                return f"error {message['code']}"
    except websockets.ConnectionClosed as closed:
        return f"closed with {closed.rcvd.code if closed.rcvd else 1006}"
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        return type(exc).__name__
    listener.ws = ws
    listener.task = asyncio.create_task(_listen(listener, target))
    return "joined"


@dataclass
class WorkerSetup:
    base_urls: list[str]
    room_id: str
    first: int  # global number of this process's first client
    count: int
    target: str
    light: bool
    spread: bool
    concurrency: int


async def _worker(pipe: Pipe, setup: WorkerSetup) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_commands() -> None:
        """In a daemon thread: a blocked read must not hold up the loop's shutdown."""
        with contextlib.suppress(EOFError, OSError, RuntimeError):
            while True:
                command = pipe.recv()
                loop.call_soon_threadsafe(commands.put_nowait, command)
                if command == "collect":
                    return

    threading.Thread(target=read_commands, daemon=True).start()
    nodes = len(setup.base_urls)
    limit = asyncio.Semaphore(setup.concurrency)
    https = [httpx.AsyncClient(base_url=url, timeout=60) for url in setup.base_urls]
    try:

        async def guest(n: int) -> Listener:
            """A guest token, tried a few times: a sign-in that fails is counted, not fatal."""
            node = n % nodes
            source = SOURCE_ADDRESSES[n % len(SOURCE_ADDRESSES)] if setup.spread else None
            why = ""
            for attempt in range(5):
                try:
                    async with limit:
                        response = await https[node].post(
                            "/api/auth/guest", json={"display_name": f"L{n}"}
                        )
                    if response.status_code == 200:
                        return Listener(response.json()["token"], node, source)
                    why = f"sign-in {response.status_code}"
                except httpx.HTTPError as exc:
                    why = f"sign-in {type(exc).__name__}"
                await asyncio.sleep(0.5 * 2**attempt)
            return Listener("", node, source, failure=why)

        numbers = range(setup.first, setup.first + setup.count)
        listeners = await asyncio.gather(*(guest(n) for n in numbers))
    finally:
        for http in https:
            await http.aclose()
    pipe.send("ready")
    assert await commands.get() == "join"
    ws_urls = [url.replace("http://", "ws://") + f"/ws/rooms/{setup.room_id}"
               for url in setup.base_urls]
    join_one = _join_light if setup.light else _join_full

    async def join(listener: Listener) -> str:
        """"joined", or why not."""
        if listener.failure:
            return listener.failure
        async with limit:
            listener.started = time.time()
            return await join_one(listener, ws_urls[listener.node], setup.target)

    async def progress() -> None:
        while True:
            await asyncio.sleep(10)
            pipe.send(("progress", sum(1 for lst in listeners if lst.welcomed)))

    tasks = [asyncio.create_task(join(listener)) for listener in listeners]
    stop = asyncio.create_task(commands.get())
    reporter = asyncio.create_task(progress())
    either: list[asyncio.Future[Any]] = [asyncio.gather(*tasks, return_exceptions=True), stop]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    reporter.cancel()
    for task in tasks:  # at the time limit: give up on the joins still waiting or under way
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    outcomes = [
        "joined" if listener.welcomed is not None
        else "time limit" if task.cancelled()
        else type(task.exception()).__name__ if task.exception() is not None
        else task.result()
        for listener, task in zip(listeners, tasks, strict=True)
    ]
    pipe.send(
        (
            "joined",
            [(lst.node, lst.started, lst.welcomed) for lst in listeners if lst.welcomed],
            dict(Counter(outcomes)),
        )
    )
    command = await stop
    while command != "collect":
        command = await commands.get()
    pipe.send(
        (
            [listener.received for listener in listeners if listener.welcomed],
            [listener.closed_code for listener in listeners
             if listener.welcomed and listener.closed_code is not None],
        )
    )
    for listener in listeners:
        if listener.transport is not None:
            listener.transport.close()
        if listener.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.ws.close(), 2)
        if listener.task is not None:
            listener.task.cancel()


def worker_main(pipe: Pipe) -> None:
    raise_open_files()
    setup = pipe.recv()
    try:
        asyncio.run(_worker(pipe, setup))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))  # for the report, not a silent hang
        raise


# --- the servers and their Redis ---------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """0 for a process that is gone (the report says so rather than the bench failing)."""
    try:
        return rss_kib(pid) * 1024
    except (OSError, RuntimeError):
        return 0


class Redis:
    """A dedicated redis-server on a free loopback port, no persistence."""

    def __init__(self, directory: Path, binary: str, cpus: set[int] | None) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(directory), "--maxclients", "20000",
             "--logfile", str(directory / "redis.log")],
            preexec_fn=raise_open_files,
        )
        if cpus:
            os.sched_setaffinity(self.process.pid, cpus)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=1
            ) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.1)
        raise RuntimeError("redis-server not ready in time")

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM, 10)


class Server:
    def __init__(
        self, tree: Path, directory: Path, database_url: str, redis_url: str,
        cpus: set[int] | None,
    ) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                "AUDIO_ROOMS_DATA_DIR": str(directory),
                # One server process: its CPU and memory are what this measures.
                "AUDIO_ROOMS_WORKERS": "1",
                "AUDIO_ROOMS_DATABASE_URL": database_url,
                "AUDIO_ROOMS_REDIS_URL": redis_url,
                "AUDIO_ROOMS_SECRET_KEY": SECRET_KEY,
                "AUDIO_ROOMS_MAX_LISTENERS": "1000000",
                # Every listener is a guest, every host an account, all from this one machine.
                "AUDIO_ROOMS_GUEST_TOKENS_PER_ADDRESS_PER_HOUR": "1000000",
                "AUDIO_ROOMS_SIGNUPS_PER_ADDRESS_PER_HOUR": "100000",
                "AUDIO_ROOMS_ROOMS_PER_ADDRESS_PER_HOUR": "1000000",
                "AUDIO_ROOMS_WS_MESSAGES_PER_SECOND": "100000",
                "AUDIO_ROOMS_WS_BURST": "100000",
                "AUDIO_ROOMS_LOGIN_ATTEMPTS_PER_MINUTE": "10000",
                # Clients come from 127.0.0.1 (sign-in) and 249 loopback addresses (sockets).
                "AUDIO_ROOMS_MAX_CONNECTIONS_PER_ADDRESS": "1000000",
                "AUDIO_ROOMS_MAX_WEBSOCKETS_PER_ADDRESS": "1000000",
                "AUDIO_ROOMS_LOG_LEVEL": "WARNING",
                "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
            }
        )
        # The server's code comes from ``tree`` (this checkout unless --tree says otherwise).
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
        self.log = (directory / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audio_rooms", "serve", "--port", str(self.port)],
            cwd=directory,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_open_files,
        )
        if cpus:
            os.sched_setaffinity(self.process.pid, cpus)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in time:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def first_error(self, lines: int = 40) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        start = next((i for i, line in enumerate(text) if "Traceback" in line), None)
        return "" if start is None else "\n".join(text[start : start + lines])

    def stop(self) -> None:
        stop_process(self.process, signal.SIGINT, 30)
        self.log.close()


@dataclass
class Cluster:
    redis: Redis
    servers: list[Server]

    def cpu(self) -> tuple[list[float], float]:
        """CPU seconds of each server process, and of redis-server."""
        return [cpu_seconds(s.pid) for s in self.servers], cpu_seconds(self.redis.process.pid)

    def rss(self) -> list[int]:
        return [rss_bytes(s.pid) for s in self.servers]


# --- the host ----------------------------------------------------------------------------------


class Peer:
    """Host or speaker in this process: reads continuously (so its outbox never fills) and
    remembers acks, errors, and the room's size as either protocol shows it."""

    def __init__(self, ws: ClientConnection, user_id: str) -> None:
        self.ws = ws
        self.user_id = user_id
        self.acks: dict[str, int] = {}
        self.errors: list[dict[str, Any]] = []
        self.joined = 0  # participant_joined deltas (the original protocol)
        self.audience: int | None = None  # the last `audience` count (the audience tier)
        self.last_message = time.monotonic()
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                self.last_message = time.monotonic()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ack":
                    self.acks[message["ref"]] = int(message["version"])
                elif kind == "error":
                    self.errors.append(message)
                elif kind == "participant_joined":
                    self.joined += 1
                elif kind == "audience":
                    self.audience = int(message["count"])
                self.changed.set()

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, **fields}))

    async def until(self, condition: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.errors:
                raise RuntimeError(f"{self.user_id}: {self.errors[-1]}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.user_id}: condition not met in {timeout}s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self.task.cancel()


async def _account(http: httpx.AsyncClient, handle: str) -> tuple[str, str]:
    response = await http.post(
        "/api/auth/signup",
        json={"handle": handle, "display_name": handle, "password": PASSWORD, "locale": "en"},
    )
    response.raise_for_status()
    body = response.json()
    return body["user"]["id"], body["token"]


async def _peer(server: Server, room_id: str, user_id: str, token: str) -> Peer:
    ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/ws/rooms/{room_id}",
                                  max_size=2**26, max_queue=None, ping_interval=None)
    await ws.send(json.dumps({"type": "join", "token": token}))
    while json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] != "welcome":
        pass
    return Peer(ws, user_id)


# --- one round ---------------------------------------------------------------------------------


@dataclass
class Result:
    tree: str  # which checkout's server code
    clients: int
    servers: int
    processes: int
    joined: int
    failed: dict[str, int]
    time_limited: bool
    join_seconds: float
    joins_per_second: float
    bucket: int
    bucket_rates: list[float]  # joins/s of each successive bucket of joins, in order
    node_joins: list[int]
    node_joins_per_second: list[float]
    join_ms_p50: float
    join_ms_p99: float
    actions: int
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_max: float
    delivered: int
    expected: int
    clients_missing_a_delta: int
    closed: dict[str, int]
    join_server_cpu_s: float
    join_redis_cpu_s: float
    action_server_cpu_s: float
    action_redis_cpu_s: float
    rss_before: list[int]
    rss_after: list[int]
    host_saw: str  # the room's size as the host's socket showed it after the joins
    action_note: str  # why the action phase stopped early, if it did
    load_average: list[float]


async def _recv(pipe: Pipe, timeout: float) -> Any:
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, pipe.poll, max(0.0, timeout))
    if not ready:
        raise TimeoutError("a client process did not answer in time")
    return pipe.recv()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def bucket_rates(welcomes: list[float], started: float, bucket: int) -> list[float]:
    """Joins/s of each successive ``bucket`` joins (the last one may be partial)."""
    ordered = sorted(welcomes)
    rates = []
    previous = started
    for begin in range(0, len(ordered), bucket):
        chunk = ordered[begin : begin + bucket]
        rates.append(len(chunk) / max(chunk[-1] - previous, 1e-6))
        previous = chunk[-1]
    return rates


async def run_round(cluster: Cluster, tree: str, n: int, args: argparse.Namespace,
                    round_no: int, client_cpus: set[int] | None) -> Result:
    servers = cluster.servers
    async with httpx.AsyncClient(base_url=servers[0].base_url, timeout=60) as http:
        host_id, host_token = await _account(http, f"host{round_no}")
        speaker_id, speaker_token = await _account(http, f"speaker{round_no}")
        response = await http.post("/api/rooms", json={"title": f"Bench {n}"},
                                   headers={"Authorization": f"Bearer {host_token}"})
        response.raise_for_status()
        room_id = response.json()["room"]["id"]
    host = await _peer(servers[0], room_id, host_id, host_token)
    speaker = await _peer(servers[-1], room_id, speaker_id, speaker_token)
    await speaker.send("raise_hand")
    await host.send("invite_to_speak", user_id=speaker_id, ref="invite")
    await host.until(lambda: "invite" in host.acks, 20)
    await speaker.send("accept_invitation", ref="accept")
    await speaker.until(lambda: "accept" in speaker.acks, 20)
    if args.action == "mute":  # a moderator mute needs the speaker unmuted... by themself
        await speaker.send("unmute", user_id=speaker_id, ref="self-unmute")
        await speaker.until(lambda: "self-unmute" in speaker.acks, 20)

    processes = args.processes or max(2, math.ceil(n / args.per_process))
    processes = min(processes, n)
    context = multiprocessing.get_context("spawn")
    pipes: list[Pipe] = []
    workers = []
    try:
        shares = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
        first = 0
        for share in shares:
            mine, theirs = context.Pipe()
            worker = context.Process(target=worker_main, args=(theirs,), daemon=True)
            worker.start()
            if client_cpus and worker.pid is not None:
                os.sched_setaffinity(worker.pid, client_cpus)
            mine.send(WorkerSetup([s.base_url for s in servers], room_id, first, share,
                                  speaker_id, args.client == "light", args.spread,
                                  args.concurrency))
            first += share
            pipes.append(mine)
            workers.append(worker)
        deadline = time.monotonic() + SETUP_TIMEOUT
        for pipe in pipes:
            message = await _recv(pipe, deadline - time.monotonic())
            if message != "ready":
                raise RuntimeError(f"a client process failed: {message}")

        await asyncio.sleep(1.0)
        rss_before = cluster.rss()
        cpu_before = cluster.cpu()
        started = time.time()
        for pipe in pipes:
            pipe.send("join")
        # Progress once a minute, and the time limit: the join phase is where O(N^2) shows.
        deadline = time.monotonic() + args.join_time_limit
        finished: list[Any] = [None] * len(pipes)
        progress = [0] * len(pipes)
        time_limited = False
        next_note = time.monotonic() + 60
        while any(f is None for f in finished):
            for i, pipe in enumerate(pipes):
                while finished[i] is None and pipe.poll():
                    message = pipe.recv()
                    if message[0] == "progress":
                        progress[i] = message[1]
                    elif message[0] == "error":
                        raise RuntimeError(f"a client process failed:\n{message[1]}")
                    else:
                        finished[i] = message
            now = time.monotonic()
            if now >= deadline and not time_limited:
                time_limited = True
                print(f"join time limit ({args.join_time_limit:.0f} s) reached: stopping",
                      flush=True)
                for i, pipe in enumerate(pipes):
                    if finished[i] is None:
                        pipe.send("stop")
                deadline = now + 60
            elif now >= deadline:
                raise TimeoutError("client processes did not stop their joins in time")
            if now >= next_note:
                next_note = now + 60
                print(f"  {time.time() - started:.0f} s: {sum(progress)} joined (as of the last "
                      f"10 s), {sum(f is not None for f in finished)}/{len(pipes)} client "
                      "processes done", flush=True)
            await asyncio.sleep(0.05)
        outcomes: Counter[str] = Counter()
        welcomed: list[tuple[int, float, float]] = []
        for f in finished:
            welcomed += f[1]
            outcomes.update(f[2])
        joined = outcomes.pop("joined", 0)
        join_end = max((w[2] for w in welcomed), default=started)
        cpu_joined = cluster.cpu()
        print(f"  joined {joined}/{n} in {join_end - started:.1f} s; not joined: "
              f"{dict(outcomes)}; server CPU {sum(cpu_joined[0]) - sum(cpu_before[0]):.1f} s",
              flush=True)
        # Let the fan-out of the last joins drain (the original protocol sends one delta per
        # join to everyone; the audience tier a count a second): the host's socket goes quiet.
        with contextlib.suppress(TimeoutError):
            await host.until(
                lambda: time.monotonic() - host.last_message > 2.0
                or host.joined >= joined or (host.audience or 0) >= joined,
                180,
            )
        await asyncio.sleep(1.5)
        rss_after = cluster.rss()
        host_saw = (f"audience count {host.audience}" if host.audience is not None
                    else f"{host.joined} participant_joined")

        sent: dict[int, float] = {}
        action_note = ""
        cpu_actions = cluster.cpu()
        for i in range(args.actions):
            if args.action == "role":
                kind = "make_moderator" if i % 2 == 0 else "unmake_moderator"
            else:
                kind = "mute" if i % 2 == 0 else "unmute"
            ref = f"a{i}"
            at = time.time()
            await host.send(kind, user_id=speaker_id, ref=ref)
            try:
                await host.until(lambda ref=ref: ref in host.acks, ACK_TIMEOUT)
            except TimeoutError:  # a server still busy with a backlog: report what we have
                action_note = f"action {i + 1} ({kind}) not acknowledged in {ACK_TIMEOUT:.0f} s"
                print(action_note, flush=True)
                break
            sent[host.acks[ref]] = at
            await asyncio.sleep(ACTION_INTERVAL)
        await asyncio.sleep(1.0)
        cpu_done = cluster.cpu()

        latencies: list[float] = []
        closed: Counter[str] = Counter()
        missing = 0
        for pipe in pipes:
            pipe.send("collect")
        deadline = time.monotonic() + 120
        for pipe in pipes:
            received, codes = await _recv(pipe, deadline - time.monotonic())
            closed.update(str(code) for code in codes)
            for per_client in received:
                got = [(arrived - sent[v]) * 1000 for v, arrived in per_client.items() if v in sent]
                latencies += got
                missing += len(got) < len(sent)
    finally:
        for worker in workers:
            worker.join(20)
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGKILL)
                worker.join(5)
    with contextlib.suppress(Exception):
        await host.send("end_room")
    await host.close()
    await speaker.close()

    join_seconds = max(join_end - started, 1e-6)
    nodes = len(servers)
    node_joins = [sum(1 for w in welcomed if w[0] == k) for k in range(nodes)]
    node_ends = [max((w[2] for w in welcomed if w[0] == k), default=started) for k in range(nodes)]
    bucket = args.bucket or (1000 if n >= 2000 else max(1, n // 10))
    join_ms = [(w[2] - w[1]) * 1000 for w in welcomed]
    return Result(
        tree=tree,
        clients=n,
        servers=nodes,
        processes=processes,
        joined=joined,
        failed=dict(outcomes),
        time_limited=time_limited,
        join_seconds=join_seconds,
        joins_per_second=joined / join_seconds,
        bucket=bucket,
        bucket_rates=bucket_rates([w[2] for w in welcomed], started, bucket),
        node_joins=node_joins,
        node_joins_per_second=[
            j / max(end - started, 1e-6) for j, end in zip(node_joins, node_ends, strict=True)
        ],
        join_ms_p50=percentile(join_ms, 0.5),
        join_ms_p99=percentile(join_ms, 0.99),
        actions=len(sent),
        latency_ms_p50=statistics.median(latencies) if latencies else math.nan,
        latency_ms_p99=percentile(latencies, 0.99),
        latency_ms_max=max(latencies) if latencies else math.nan,
        delivered=len(latencies),
        expected=joined * len(sent),
        clients_missing_a_delta=missing,
        closed=dict(closed),
        join_server_cpu_s=sum(cpu_joined[0]) - sum(cpu_before[0]),
        join_redis_cpu_s=cpu_joined[1] - cpu_before[1],
        action_server_cpu_s=sum(cpu_done[0]) - sum(cpu_actions[0]),
        action_redis_cpu_s=cpu_done[1] - cpu_actions[1],
        rss_before=rss_before,
        rss_after=rss_after,
        host_saw=host_saw,
        action_note=action_note,
        load_average=list(os.getloadavg()),
    )


# --- the report --------------------------------------------------------------------------------


def report(r: Result) -> str:
    per_join = 1000 * r.join_server_cpu_s / max(r.joined, 1)
    per_action = 1000 * r.action_server_cpu_s / max(r.actions, 1)
    rss_per = (sum(r.rss_after) - sum(r.rss_before)) / max(r.joined, 1) / 1024
    first, last = (r.bucket_rates[0], r.bucket_rates[-1]) if r.bucket_rates else (0.0, 0.0)
    limited = " (JOIN TIME LIMIT REACHED)" if r.time_limited else ""
    lines = [
        f"== {r.tree}: {r.clients} clients, {r.servers} servers, {r.processes} client "
        f"processes{limited}",
        f"joined {r.joined}/{r.clients} in {r.join_seconds:.1f} s: {r.joins_per_second:.0f} "
        f"joins/s overall; per node "
        + ", ".join(f"{j} at {rate:.0f}/s" for j, rate in
                    zip(r.node_joins, r.node_joins_per_second, strict=True)),
        f"joins/s per successive {r.bucket}: "
        + " ".join(f"{rate:.0f}" for rate in r.bucket_rates)
        + (f"  (last/first {last / first:.2f})" if first else ""),
        f"join time (connect -> welcome) p50 {r.join_ms_p50:.0f} ms, p99 {r.join_ms_p99:.0f} ms",
        f"not joined: {sum(r.failed.values())} {r.failed or ''}".rstrip(),
        f"host saw: {r.host_saw}",
        f"stage-change delivery over {r.actions} actions: p50 {r.latency_ms_p50:.1f} ms, "
        f"p99 {r.latency_ms_p99:.1f} ms, max {r.latency_ms_max:.1f} ms; delivered "
        f"{r.delivered}/{r.expected}; clients missing a delta: {r.clients_missing_a_delta}",
        f"server CPU: {r.join_server_cpu_s:.1f} s over the joins ({per_join:.2f} ms per join), "
        f"{r.action_server_cpu_s:.2f} s over the actions ({per_action:.1f} ms per stage change)",
        f"redis CPU: {r.join_redis_cpu_s:.1f} s over the joins "
        f"({1000 * r.join_redis_cpu_s / max(r.joined, 1):.2f} ms per join), "
        f"{r.action_redis_cpu_s:.2f} s over the actions",
        f"server RSS: {sum(r.rss_before) / 2**20:.0f} -> {sum(r.rss_after) / 2**20:.0f} MiB "
        f"({rss_per:.1f} KiB per connection)",
        "load average after: " + " ".join(f"{x:.2f}" for x in r.load_average),
    ]
    if r.action_note:
        lines.append(f"actions stopped early: {r.action_note}")
    if r.closed:
        lines.append(f"closed during the round: {r.closed}")
    return "\n".join(lines)


def _redis_binary() -> str:
    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("no redis-server found (apt-get install redis-server)")


def summary(results: list[Result]) -> str:
    """Every round in one table: before and after side by side when --tree names both."""
    lines = [
        "| tree | clients | joined | joins/s | per node | first / last bucket joins/s "
        "| stage p50 / p99 ms | delivered | CPU per join ms | CPU per stage change ms "
        "| RSS KiB per conn | redis CPU s (joins / actions) | load |",
        "|---|---:|---:|---:|---|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in results:
        rates = r.bucket_rates or [math.nan]
        limited = " (time limit)" if r.time_limited else ""
        lines.append(
            f"| {r.tree} | {r.clients} | {r.joined}{limited} | {r.joins_per_second:.0f} "
            f"| {' / '.join(f'{x:.0f}' for x in r.node_joins_per_second)} "
            f"| {rates[0]:.0f} / {rates[-1]:.0f} (per {r.bucket}) "
            f"| {r.latency_ms_p50:.1f} / {r.latency_ms_p99:.1f} | {r.delivered}/{r.expected} "
            f"| {1000 * r.join_server_cpu_s / max(r.joined, 1):.2f} "
            f"| {1000 * r.action_server_cpu_s / max(r.actions, 1):.1f} "
            f"| {(sum(r.rss_after) - sum(r.rss_before)) / max(r.joined, 1) / 1024:.1f} "
            f"| {r.join_redis_cpu_s:.1f} / {r.action_redis_cpu_s:.2f} "
            f"| {r.load_average[0]:.1f} |"
        )
    return "\n".join(lines)


async def run_tree(label: str, tree: Path, args: argparse.Namespace,
                   pin: tuple[set[int] | None, set[int] | None], results: list[Result]) -> None:
    """Start a Redis and the servers from ``tree``, run every room size on them, stop them."""
    server_cpus, client_cpus = pin
    with tempfile.TemporaryDirectory(prefix="bench-signalling-") as tmp:
        root = Path(tmp)
        redis = Redis(root / "redis", args.redis_server or _redis_binary(), server_cpus)
        servers: list[Server] = []
        try:
            redis.wait_ready()
            database_url = f"sqlite:///{root / 'audio-rooms.db'}"
            # The first server migrates the shared database; the others start after it.
            servers.append(Server(tree, root / "node0", database_url, redis.url, server_cpus))
            servers[0].wait_ready()
            for k in range(1, args.servers):
                servers.append(
                    Server(tree, root / f"node{k}", database_url, redis.url, server_cpus)
                )
            for server in servers[1:]:
                server.wait_ready()
            cluster = Cluster(redis, servers)
            print(f"{label} ({tree}): redis-server pid {redis.process.pid}; servers "
                  + ", ".join(f"pid {s.pid} on :{s.port}" for s in servers), flush=True)
            for round_no, n in enumerate(args.sizes):
                print(f"{label}: {n} clients over {args.servers} servers...", flush=True)
                result = await asyncio.wait_for(
                    run_round(cluster, label, n, args, round_no, client_cpus),
                    SETUP_TIMEOUT + args.join_time_limit + 900,
                )
                results.append(result)
                print(report(result), flush=True)
            for k, server in enumerate(servers):
                if error := server.first_error():
                    print(f"\n{label} server {k} log, first error:", error, sep="\n")
        finally:
            for server in servers:
                server.stop()
            redis.stop()


async def main_async(args: argparse.Namespace) -> int:
    args.sizes = [int(part) for part in args.clients.split(",") if part.strip()]
    pin = args.pin and len(os.sched_getaffinity(0)) >= 2
    server_cpus, client_cpus = ({0}, {1}) if pin else (None, None)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    load_before = os.getloadavg()
    results: list[Result] = []
    for label, tree in args.trees:
        await run_tree(label, tree, args, (server_cpus, client_cpus), results)
    print()
    print(f"{args.actions} stage actions ({args.action}) per round; {args.client} clients"
          + ("; servers and redis on CPU 0, clients and host on CPU 1" if pin else "")
          + "; load average before: " + " ".join(f"{x:.2f}" for x in load_before))
    if len(results) > 1:
        for result in results:
            print(report(result))
    print(summary(results))
    if args.json:
        with open(args.json, "w") as out:  # noqa: ASYNC230 - once, after everything stopped
            json.dump({"load_average_before": load_before, "args": vars(args),
                       "results": [asdict(r) for r in results]}, out, indent=1, default=str)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="500", help="comma-separated room sizes")
    parser.add_argument("--servers", type=int, default=3, help="server processes on one Redis")
    parser.add_argument("--actions", type=int, default=20, help="stage actions per room size")
    parser.add_argument("--action", choices=("role", "mute"), default="role",
                        help="role: make/unmake moderator on a speaker (role_changed); "
                        "mute: moderator mute/unmute of a speaker (mute_changed)")
    parser.add_argument("--processes", type=int, default=0,
                        help="client processes (default: one per --per-process clients, >= 2)")
    parser.add_argument("--per-process", type=int, default=1000,
                        help="clients per client process when --processes is not given")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="joins under way at once per client process")
    parser.add_argument("--join-time-limit", type=float, default=600.0,
                        help="seconds; a longer join phase is cut and reported as such")
    parser.add_argument("--bucket", type=int, default=0,
                        help="joins per rate bucket (default 1000, tenths below 2,000 clients)")
    parser.add_argument("--client", choices=("light", "full"), default="light",
                        help="light: minimal WebSocket clients that decode only the measured "
                        "deltas; full: the websockets library, decoding everything")
    parser.add_argument("--no-spread", dest="spread", action="store_false",
                        help="connect every socket from 127.0.0.1 instead of 127.0.0.2-250")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin servers and Redis to CPU 0 and the clients to CPU 1")
    parser.add_argument("--redis-server", help="the redis-server binary to run")
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH",
                        help="run the servers from this checkout (repeat for before/after in "
                        "one report; default: this one)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    args.trees = [
        (label or Path(path).name, Path(path).resolve())
        for label, _, path in (t.rpartition("=") for t in args.tree)
    ] or [("this", REPO)]
    raise_open_files()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
