"""Signalling fan-out benchmark: N WebSocket clients join one room, the host changes a role.

Starts the server as its own process (``python -m audio_rooms serve``), opens N guest listeners
spread over a few client processes, measures joins per second, then has the host alternate
``make_moderator`` / ``unmake_moderator`` on a speaker and measures, for every listener, the time
from the host sending the action to the listener receiving the ``role_changed`` delta. Clients and
host share the machine's clock (``time.time()`` across processes).

    python bench/signalling.py --clients 100,1000 --actions 20

Everything it starts (server, its embedded Redis, client processes) is stopped by PID on exit,
and every wait is bounded in time.
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
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark password 1"
CONNECT_CONCURRENCY = 50  # per client process: enough to keep the server busy, below its backlog
ACTION_INTERVAL = 0.25  # between actions, so fan-outs are measured one at a time
PHASE_TIMEOUT = 600.0  # joining 1,000 clients is O(N^2) deltas: minutes on a shared core


# --- client processes --------------------------------------------------------------------------


@dataclass
class Listener:
    token: str
    ws: ClientConnection | None = None
    received: dict[int, float] = field(default_factory=dict)  # role_changed version -> arrival
    closed_code: int | None = None
    task: asyncio.Task[None] | None = None
    transport: asyncio.Transport | None = None  # the light client's


async def _listen(listener: Listener, target: str) -> None:
    assert listener.ws is not None
    try:
        async for raw in listener.ws:
            arrived = time.time()
            message = json.loads(raw)
            if message.get("type") == "role_changed" and message.get("user_id") == target:
                listener.received[int(message["version"])] = arrived
    except websockets.ConnectionClosed as closed:
        listener.closed_code = closed.rcvd.code if closed.rcvd else 1006
    else:
        listener.closed_code = listener.ws.close_code


class LightSocket(asyncio.Protocol):
    """A minimal real WebSocket client: HTTP upgrade, masked client frames, ping/pong, close.

    It JSON-decodes only the frames that mention the measured delta, so a thousand of them on
    one core measure the server's fan-out rather than the clients' own decoding (the same idea
    as the SFU benchmark's light subscribers). ``--client full`` uses the websockets library.
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
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        length = len(payload)
        if length < 126:
            header = bytes([0x81, 0x80 | length])
        else:
            header = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
        assert self.transport is not None
        self.transport.write(header + mask + masked)

    def _control(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

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
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1] & 0x7F
            offset = 2
            if second == 126:
                if len(self.buffer) < 4:
                    return
                second, offset = int.from_bytes(self.buffer[2:4], "big"), 4
            elif second == 127:
                if len(self.buffer) < 10:
                    return
                second, offset = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < offset + second:
                return
            payload = bytes(self.buffer[offset : offset + second])
            del self.buffer[: offset + second]
            opcode = first & 0x0F
            if opcode == 0x1:
                self._text(payload, arrived)
            elif opcode == 0x9:
                self._control(0xA, payload)  # pong, or the server drops us after its timeout
            elif opcode == 0x8:
                self.listener.closed_code = int.from_bytes(payload[:2], "big") if payload else 1005

    def _text(self, payload: bytes, arrived: float) -> None:
        if not self.welcome.done():
            message = json.loads(payload)
            if message["type"] == "welcome":
                self.welcome.set_result("joined")
            elif message["type"] == "error":
                self.welcome.set_result(f"error {message['code']}")
            return
        if b'"role_changed"' in payload and self.target in payload:
            message = json.loads(payload)
            target = self.target.decode()
            if message.get("type") == "role_changed" and message.get("user_id") == target:
                self.listener.received[int(message["version"])] = arrived

    def connection_lost(self, exc: Exception | None) -> None:
        if self.listener.closed_code is None:
            self.listener.closed_code = 1006
        for future in (self.upgraded, self.welcome):
            if not future.done():
                future.set_exception(ConnectionError("connection lost"))


async def _join_light(listener: Listener, ws_url: str, target: str) -> str:
    host_port, _, path = ws_url.removeprefix("ws://").partition("/")
    host, _, port = host_port.partition(":")
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_connection(
            lambda: LightSocket(listener, target), host, int(port)
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
        return type(exc).__name__
    listener.transport = transport
    return outcome


async def _worker(pipe: Pipe) -> None:
    loop = asyncio.get_running_loop()
    command, base_url, room_id, count, target, light = await loop.run_in_executor(
        None, pipe.recv
    )
    assert command == "setup"
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

        async def guest(n: int) -> Listener:
            async with limit:
                response = await http.post("/api/auth/guest", json={"display_name": f"L{n}"})
            response.raise_for_status()
            return Listener(response.json()["token"])

        listeners = await asyncio.gather(*(guest(n) for n in range(count)))
    pipe.send("ready")
    command = await loop.run_in_executor(None, pipe.recv)
    assert command == "join"
    ws_url = base_url.replace("http://", "ws://") + f"/ws/rooms/{room_id}"

    async def join(listener: Listener) -> str:
        """"joined", or why not."""
        if light:
            async with limit:
                return await _join_light(listener, ws_url, target)
        async with limit:
            try:
                ws = await websockets.connect(
                    ws_url, max_size=2**24, max_queue=None, open_timeout=60, ping_interval=None,
                    compression=None,
                )
                await ws.send(json.dumps({"type": "join", "token": listener.token}))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if message["type"] == "welcome":
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

    outcomes = await asyncio.gather(*(join(listener) for listener in listeners))
    pipe.send(("joined", time.time(), dict(Counter(outcomes))))
    command = await loop.run_in_executor(None, pipe.recv)
    assert command == "collect"
    pipe.send(
        (
            [listener.received for listener in listeners],
            [listener.closed_code for listener in listeners if listener.closed_code is not None],
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
    _raise_open_files()
    asyncio.run(_worker(pipe))


# --- the server --------------------------------------------------------------------------------


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


class Server:
    def __init__(self, data_dir: Path, redis_url: str | None, cpu: int | None) -> None:
        self.port = _free_port()
        env = dict(os.environ)
        env.update(
            {
                "AUDIO_ROOMS_DATA_DIR": str(data_dir),
                "AUDIO_ROOMS_SECRET_KEY": "benchmark-secret-key-0123456789-abcdefghij",
                "AUDIO_ROOMS_MAX_LISTENERS": "100000",
                # Every listener is a guest, every host an account, all from this one machine.
                "AUDIO_ROOMS_GUEST_TOKENS_PER_ADDRESS_PER_HOUR": "1000000",
                "AUDIO_ROOMS_SIGNUPS_PER_ADDRESS_PER_HOUR": "100000",
                "AUDIO_ROOMS_WS_MESSAGES_PER_SECOND": "100000",
                "AUDIO_ROOMS_WS_BURST": "100000",
                "AUDIO_ROOMS_LOGIN_ATTEMPTS_PER_MINUTE": "10000",
                # Every simulated client comes from 127.0.0.1.
                "AUDIO_ROOMS_MAX_CONNECTIONS_PER_ADDRESS": "1000000",
                "AUDIO_ROOMS_MAX_WEBSOCKETS_PER_ADDRESS": "1000000",
                "AUDIO_ROOMS_LOG_LEVEL": "WARNING",
                "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
            }
        )
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        if redis_url:
            env["AUDIO_ROOMS_REDIS_URL"] = redis_url
        else:
            env.pop("AUDIO_ROOMS_REDIS_URL", None)
        self.log = (data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audio_rooms", "serve", "--port", str(self.port)],
            cwd=data_dir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=_raise_open_files,
        )
        if cpu is not None:
            os.sched_setaffinity(self.process.pid, {cpu})
        self.helpers: list[int] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    self.helpers = children(self.process.pid)  # the embedded redis-server
                    print(f"server pid {self.process.pid}, helpers {self.helpers}", flush=True)
                    return
            time.sleep(0.2)
        raise RuntimeError("server not ready in time")

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def first_error(self, lines: int = 40) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        start = next((i for i, line in enumerate(text) if "Traceback" in line), 0)
        return "\n".join(text[start : start + lines])

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the server process and of the processes it started (Redis)."""
        helpers = 0.0
        for pid in self.helpers:
            with contextlib.suppress(OSError):
                helpers += cpu_seconds(pid)
        return cpu_seconds(self.process.pid), helpers

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for pid in self.helpers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.log.close()


# --- the host ----------------------------------------------------------------------------------


class Peer:
    """Host or speaker in this process: reads continuously (so its outbox never fills) and
    remembers acks and the last role it saw."""

    def __init__(self, ws: ClientConnection, user_id: str) -> None:
        self.ws = ws
        self.user_id = user_id
        self.acks: dict[str, int] = {}
        self.errors: list[dict[str, Any]] = []
        self.joined = 0
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ack":
                    self.acks[message["ref"]] = int(message["version"])
                    self.changed.set()
                elif kind == "error":
                    self.errors.append(message)
                    self.changed.set()
                elif kind == "participant_joined":
                    self.joined += 1
                    self.changed.set()
                elif kind == "role_changed":
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
                                  max_size=2**24, max_queue=None, ping_interval=None)
    await ws.send(json.dumps({"type": "join", "token": token}))
    while json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] != "welcome":
        pass
    return Peer(ws, user_id)


@dataclass
class Result:
    clients: int
    processes: int
    joined: int
    failed: dict[str, int]
    joins_per_second: float
    latencies_ms: list[float]
    expected: int
    closed: list[int]
    server_cpu: float
    redis_cpu: float
    fanout_seconds: float


async def _recv(pipe: Pipe, timeout: float = PHASE_TIMEOUT) -> Any:
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, pipe.poll, timeout)
    if not ready:
        raise TimeoutError("a client process did not answer in time")
    return pipe.recv()


async def run_round(
    server: Server, n: int, processes: int, actions: int, cpu: int | None, round_no: int,
    light: bool,
) -> Result:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        host_id, host_token = await _account(http, f"host{round_no}")
        speaker_id, speaker_token = await _account(http, f"speaker{round_no}")
        response = await http.post("/api/rooms", json={"title": f"Bench {n}"},
                                   headers={"Authorization": f"Bearer {host_token}"})
        response.raise_for_status()
        room_id = response.json()["room"]["id"]
    host = await _peer(server, room_id, host_id, host_token)
    speaker = await _peer(server, room_id, speaker_id, speaker_token)
    await speaker.send("raise_hand")
    await host.send("invite_to_speak", user_id=speaker_id, ref="invite")
    await host.until(lambda: "invite" in host.acks, 10)
    await speaker.send("accept_invitation", ref="accept")
    await speaker.until(lambda: "accept" in speaker.acks, 10)

    context = multiprocessing.get_context("spawn")
    pipes: list[Pipe] = []
    workers = []
    try:
        shares = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
        for share in shares:
            mine, theirs = context.Pipe()
            worker = context.Process(target=worker_main, args=(theirs,), daemon=True)
            worker.start()
            if cpu is not None and worker.pid is not None:
                os.sched_setaffinity(worker.pid, {cpu})
            mine.send(("setup", server.base_url, room_id, share, speaker_id, light))
            pipes.append(mine)
            workers.append(worker)
        for pipe in pipes:
            assert await _recv(pipe) == "ready"

        host_seen = host.joined
        started = time.time()
        for pipe in pipes:
            pipe.send("join")
        finished = [await _recv(pipe) for pipe in pipes]
        outcomes: Counter[str] = Counter()
        for f in finished:
            outcomes.update(f[2])
        joined = outcomes.pop("joined", 0)
        joins_per_second = joined / (max(f[1] for f in finished) - started)
        # Let the participant_joined fan-out of the last joiners drain before measuring.
        await host.until(lambda: host.joined - host_seen >= joined, 120)
        await asyncio.sleep(1.0)

        sent: dict[int, float] = {}
        cpu_before = server.cpu()
        fanout_started = time.monotonic()
        for i in range(actions):
            kind = "make_moderator" if i % 2 == 0 else "unmake_moderator"
            ref = f"a{i}"
            at = time.time()
            await host.send(kind, user_id=speaker_id, ref=ref)
            await host.until(lambda ref=ref: ref in host.acks, 30)
            sent[host.acks[ref]] = at
            await asyncio.sleep(ACTION_INTERVAL)
        await asyncio.sleep(1.0)
        fanout_seconds = time.monotonic() - fanout_started
        cpu_after = server.cpu()

        latencies: list[float] = []
        closed: list[int] = []
        for pipe in pipes:
            pipe.send("collect")
        for pipe in pipes:
            received, codes = await _recv(pipe)
            closed += codes
            for per_client in received:
                latencies += [
                    (arrived - sent[version]) * 1000
                    for version, arrived in per_client.items()
                    if version in sent
                ]
    finally:
        for worker in workers:
            worker.join(15)
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGKILL)
                worker.join(5)
    await host.send("end_room")
    await host.close()
    await speaker.close()
    return Result(
        clients=n,
        processes=processes,
        joined=joined,
        failed=dict(outcomes),
        joins_per_second=joins_per_second,
        latencies_ms=latencies,
        expected=n * actions,
        closed=closed,
        server_cpu=cpu_after[0] - cpu_before[0],
        redis_cpu=cpu_after[1] - cpu_before[1],
        fanout_seconds=fanout_seconds,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def report(results: list[Result], actions: int) -> str:
    lines = [
        "| clients | joined | client procs | joins/s | p50 ms | p99 ms | max ms "
        "| delivered/expected | server CPU s (per action ms) | redis CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lat = r.latencies_ms
        lines.append(
            f"| {r.clients} | {r.joined} | {r.processes} | {r.joins_per_second:.0f} "
            f"| {statistics.median(lat) if lat else math.nan:.1f} | {percentile(lat, 0.99):.1f} "
            f"| {max(lat) if lat else math.nan:.1f} | {len(lat)}/{r.expected} "
            f"| {r.server_cpu:.2f} ({1000 * r.server_cpu / actions:.1f}) | {r.redis_cpu:.2f} |"
        )
    notes = [f"{r.clients} clients: {n} not joined ({why})" for r in results
             for why, n in r.failed.items()]
    notes += [f"{r.clients} clients: {len(r.closed)} closed during the round, codes "
              f"{sorted(set(r.closed))}" for r in results if r.closed]
    return "\n".join(lines + notes)


async def main_async(args: argparse.Namespace) -> int:
    sizes = [int(part) for part in args.clients.split(",") if part.strip()]
    pin = args.pin and len(os.sched_getaffinity(0)) >= 2
    server_cpu, client_cpu = (0, 1) if pin else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-signalling-") as tmp:
        server = Server(Path(tmp), args.redis_url, server_cpu)
        try:
            server.wait_ready()
            results = []
            for round_no, n in enumerate(sizes):
                processes = args.processes or max(1, math.ceil(n / 250))
                print(f"{n} clients in {processes} client process(es)...", flush=True)
                result = await asyncio.wait_for(
                    run_round(server, n, processes, args.actions, client_cpu, round_no,
                              args.client == "light"),
                    PHASE_TIMEOUT * 3,
                )
                results.append(result)
            print()
            print(f"{args.actions} role changes per round; {args.client} clients; "
                  + (f"server on CPU {server_cpu}, clients on CPU {client_cpu}; " if pin else "")
                  + f"load average before: {load_before:.1f}")
            print(report(results, args.actions))
            if any(r.failed or r.closed for r in results):
                print("\nserver log, first error:", server.first_error(), sep="\n")
        finally:
            server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="100,1000", help="comma-separated room sizes")
    parser.add_argument("--actions", type=int, default=20, help="role changes per room size")
    parser.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    parser.add_argument("--processes", type=int, default=0,
                        help="client processes (default: one per 250 clients)")
    parser.add_argument("--client", choices=("light", "full"), default="light",
                        help="light: minimal WebSocket clients that decode only the measured "
                        "delta; full: the websockets library, decoding everything")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the server to CPU 0 and the clients to CPU 1")
    args = parser.parse_args()
    _raise_open_files()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
