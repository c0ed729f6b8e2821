"""The attacks of bench/abuse.py, each run in a process of its own.

Each :class:`Attack` is brought to full strength by ``prepare`` (before the measured window
starts), runs from ``start`` and is undone by ``stop``, which closes every socket it opened
and returns, in ``stats``, what it achieved and how the server refused it. Refusals (429s,
closed sockets, failed offers) are counted outcomes, never crashes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import os
import random
import resource
import secrets
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from typing import Any

import httpx

from audio_rooms.sfu.testing import AudioClient

ATTACKER_ADDRESS = "127.0.0.2"
GUEST_NET = "127.0.1"  # the reaction flood's guests: one address each
HTTP_TIMEOUT = 5.0
JOIN_TIMEOUT = 8.0
WS_MAX_MESSAGE_BYTES = 64 * 1024  # the server's default, for oversized frames
MIB = 1024 * 1024
RETRY_AFTER = 1.0  # before a stalled connection the server ended is reopened
WRITE_BACKLOG = MIB  # unread bytes a socket holds back for; a real flood is paced by TCP


def raise_open_files() -> None:
    """This process holds thousands of sockets: soft limit up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final client WebSocket frame (RFC 6455 section 5.2)."""
    n = len(payload)
    first = 0x80 | opcode
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


def bound_http(base_url: str, address: str, timeout: float = 30.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, timeout=timeout,
        transport=httpx.AsyncHTTPTransport(local_address=address),
    )


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
        self.upgraded: asyncio.Future[None] = loop.create_future()
        self.welcome: asyncio.Future[str] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.received_bytes = 0
        self.errors: Counter[str] = Counter()
        self.received: Counter[str] = Counter()  # message types, while parsing
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

    def send(self, frame: bytes) -> bool:
        """Write ``frame`` unless the server has not read the last WRITE_BACKLOG bytes."""
        if self.transport is None or self.transport.is_closing():
            return False
        if self.transport.get_write_buffer_size() > WRITE_BACKLOG:
            return False
        self.transport.write(frame)
        return True

    def send_json(self, message: dict[str, Any]) -> bool:
        return self.send(mask_frame(0x1, json.dumps(message).encode()))

    def data_received(self, data: bytes) -> None:
        self.received_bytes += len(data)
        if self.welcome.done() and not self.parse:
            return
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[: end + 4]
            if not status.startswith(b"HTTP/1.1 101"):
                self._settle(f"upgrade refused: {status.decode(errors='replace')}")
                self.upgraded.set_result(None)
                if self.transport is not None:
                    self.transport.close()
                return
            self.upgraded.set_result(None)
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
            self.received[str(message.get("type"))] += 1
            if message.get("type") == "welcome":
                self._settle("joined")
            elif message.get("type") == "error":
                self.errors[str(message.get("code"))] += 1
                if not self.welcome.done():
                    self._settle(f"refused: {message.get('code')}")
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.send(mask_frame(0x8, payload[:2]))  # the closing handshake; then TCP goes
            self.close()
        elif opcode == 0x9:
            self.send(mask_frame(0xA, payload))

    def _settle(self, outcome: str) -> None:
        if not self.welcome.done():
            self.welcome.set_result(outcome)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before the upgrade"))
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
    try:
        # Frames sent before the 101 answer are lost on uvicorn's side of the upgrade.
        await asyncio.wait_for(asyncio.shield(protocol.upgraded), JOIN_TIMEOUT)
        protocol.send_json({"type": "join", "token": token} if token else {"type": "join"})
        outcome = await asyncio.wait_for(asyncio.shield(protocol.welcome), JOIN_TIMEOUT)
    except TimeoutError:
        outcome = "timeout"
    except ConnectionError:
        outcome = "closed before the upgrade"
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


async def raw_post(port: int, path: str, body: dict[str, Any], address: str,
                   timeout: float) -> str:
    """One POST on a connection of its own; its status code, or why there was none.

    httpx's connection pool costs O(pending requests) per event: a flood that does not wait
    for answers starves its own event loop with it within seconds.
    """
    payload = json.dumps(body).encode()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(address, 0))
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                f"Connection: close\r\n\r\n".encode() + payload
            )
            status = await reader.readline()
    except TimeoutError:
        return "no answer"
    except OSError as exc:
        return type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
    parts = status.split()
    return f"HTTP {parts[1].decode()}" if len(parts) >= 2 else "closed without an answer"


class SigninFlood(Attack):
    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.pending: set[asyncio.Task[None]] = set()

    async def _attempt(self, n: int) -> None:
        body = {"handle": f"f{n}_{secrets.token_hex(6)}", "password": secrets.token_urlsafe(12)}
        address = f"127.0.0.{2 + n % int(self.options['signin_addresses'])}"
        self.stats[await raw_post(self.target.port, "/api/auth/signin", body, address, 60)] += 1

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
        self.stats["unanswered at the end"] += len(self.pending)
        for task in list(self.pending):
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)


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
    """``stalled`` connections from ``stalled_addresses`` addresses (127.0.0.2 and up), each
    sending half a request header, then nothing. With ``stalled_reopen`` a connection the
    server ends is reopened a second later (not at once: against a server that refuses at once
    that would be a connect flood, another attack)."""

    HALF = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: stall"

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.open: int = 0
        self.peak: int = 0

    async def _slot(self, address: str) -> None:
        loop = asyncio.get_running_loop()
        reopen = bool(self.options["stalled_reopen"])
        while not self.stopping:
            closed: asyncio.Future[None] = loop.create_future()
            try:
                transport, _ = await asyncio.wait_for(loop.create_connection(
                    functools.partial(_Stall, closed), "127.0.0.1", self.target.port,
                    local_addr=(address, 0)), HTTP_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                self.stats[f"connect {type(exc).__name__}"] += 1
                if not reopen:
                    return
                await asyncio.sleep(RETRY_AFTER)
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
            if not reopen:
                return
            await asyncio.sleep(RETRY_AFTER)

    async def prepare(self) -> None:
        count = int(self.options["stalled"])
        addresses = [f"127.0.0.{2 + n}" for n in range(int(self.options["stalled_addresses"]))]
        self.tasks = [asyncio.create_task(self._slot(addresses[n % len(addresses)]))
                      for n in range(count)]
        deadline = time.monotonic() + 5  # a server with a cap per address never lets all in
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
        async with bound_http(self.target.base_url, address, HTTP_TIMEOUT) as http:
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
                sent = sock.send(frames[n % len(frames)])
                n += 1
                self.stats["reactions sent" if sent else "reactions held back"] += 1
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
        first = True
        while not sock.lost.done() and not self.stopping:
            sock.send_json({"type": "media_offer", "sdp": offer, "ref": f"h{n}"})
            self.stats["offers sent"] += 1
            if first:
                deadline = time.monotonic() + JOIN_TIMEOUT
                while not (sock.received["media_answer"] or sock.errors or sock.lost.done()):
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
                self.settled.add(n)
                first = False
            await asyncio.sleep(2.0)

    async def _settle(self, n: int, http: httpx.AsyncClient, offer: str) -> None:
        try:
            await self._hoarder(n, http, offer)
        finally:
            self.settled.add(n)

    async def prepare(self) -> None:
        peer = AudioClient(decode=False)
        try:
            offer = _candidate_free(await peer.offer())
        finally:
            await peer.close()
        self.sockets: list[RawSocket] = []
        self.http = bound_http(self.target.base_url, ATTACKER_ADDRESS, HTTP_TIMEOUT)
        count = int(self.options["hoarders"] or self.target.media_port_count)
        self.settled: set[int] = set()
        self.tasks = [asyncio.create_task(self._settle(n, self.http, offer))
                      for n in range(count)]
        # Every hoarder's first offer answered (or refused) before the window starts.
        deadline = time.monotonic() + 2 * JOIN_TIMEOUT
        while len(self.settled) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await super().stop()
        for sock in self.sockets:
            self.stats.update({f"offer error {k}": v for k, v in sock.errors.items()})
            self.stats["offers answered"] += sock.received["media_answer"]
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
                    frame = bad_utf8 if sent % 50 == 0 else junk[sent % len(junk)]
                    if sock.send(frame):
                        self.stats["frames sent"] += 1
                    else:
                        self.stats["frames held back (server not reading)"] += 1
            self.stats[f"closed by the server ({sock.close_code})"] += 1
            await asyncio.sleep(0.1)

    async def prepare(self) -> None:
        self.sockets: list[RawSocket] = []
        self.http = bound_http(self.target.base_url, ATTACKER_ADDRESS, HTTP_TIMEOUT)
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
    started = time.monotonic()
    attack.start()
    assert await loop.run_in_executor(None, pipe.recv) == "stop"
    # The window, plus the probes still in flight at its end: the rates achieved follow.
    attack.stats["seconds attacked"] = round(time.monotonic() - started)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(attack.stop(), 15)
    pipe.send(dict(attack.stats))


def attacker_main(pipe: Pipe, name: str, target: Target) -> None:
    raise_open_files()
    asyncio.run(_attacker(pipe, name, target))


async def answer_within(pipe: Pipe, timeout: float, process: BaseProcess) -> Any:
    """The attacker's next message; RuntimeError as soon as its process has died."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await loop.run_in_executor(None, pipe.poll, 0.5):
            return pipe.recv()
        if not process.is_alive():
            raise RuntimeError(f"the attacker process exited with {process.exitcode}")
    raise TimeoutError("the attacker process did not answer in time")
