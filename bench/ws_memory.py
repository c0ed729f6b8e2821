"""Server memory per WebSocket connection: N idle guests joined to one room (or a few).

Starts the server as its own process (``python -m audio_rooms serve``, with its embedded Redis,
so the server's RSS is the server's alone) with the default limits, signs up a host who opens a
room, then opens N guest WebSockets from client processes. Clients come from many loopback
addresses (127.0.x.y), so the per-address caps (``AUDIO_ROOMS_MAX_WEBSOCKETS_PER_ADDRESS``,
``..._GUEST_TOKENS_PER_ADDRESS_PER_HOUR``) hold as they would in production and nothing is
raised for the benchmark. Every client keeps reading, so nothing waits in the server's buffers.

RSS is read from /proc after a warm-up of a few joined sockets (so code paths and caches are
loaded) and after every guest was signed up (accounts are not connections), then at N/2 and at
N, each after the server went quiet. Reported: (RSS at N - RSS before)/N, and the marginal cost
over the second half, which leaves warm-up effects out.

``--rooms R`` spreads the clients over R rooms, each with its own host: joins into small rooms
make little garbage, so the figure comes closer to what an idle connection itself holds; in one
big room each join still reads and sends the whole participant list (until the audience tier).

    python bench/ws_memory.py --clients 2000 [--rooms 40]

Everything it starts (server, its Redis, client processes) is stopped by PID on exit, and every
wait is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import httpx
import websockets
from processes import cpu_seconds, free_port, raise_open_files, rss_kib, stop_process

REPO = Path(__file__).resolve().parent.parent
PER_ADDRESS = 20  # sockets (and guest sign-ups) per client address: under every default cap
CONCURRENCY = 20  # joins in flight per client process
PHASE_TIMEOUT = 900.0
QUIET_SECONDS = 3.0  # the server's CPU must stay idle this long before RSS is read


def address(k: int) -> str:
    """The k-th client address: 127.0.1.10, 127.0.1.11, ... (127.0.0.1 is the host's)."""
    return f"127.0.{k // 200 + 1}.{k % 200 + 10}"


# --- client processes --------------------------------------------------------------------------


async def _drain(ws: Any) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in ws:
            pass


async def _sign_up(base_url: str, index: int) -> str | None:
    transport = httpx.AsyncHTTPTransport(local_address=address(index // PER_ADDRESS))
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30) as http:
        response = await http.post("/api/auth/guest", json={"display_name": f"Guest {index}"})
    if response.status_code not in (200, 201):
        print(f"guest {index}: {response.status_code} {response.text[:200]}", flush=True)
        return None
    return str(response.json()["token"])


async def _open_one(base_url: str, room_id: str, index: int, token: str,
                    held: list[Any]) -> bool:
    ws_url = base_url.replace("http://", "ws://") + f"/ws/rooms/{room_id}"
    ws = await websockets.connect(ws_url, local_addr=(address(index // PER_ADDRESS), 0),
                                  max_size=2**24, open_timeout=60)
    await ws.send(f'{{"type":"join","token":"{token}"}}')
    while True:
        message = str(await asyncio.wait_for(ws.recv(), 60))
        if '"type":"welcome"' in message:
            break
        if '"type":"error"' in message:
            print(f"guest {index}: {message[:200]}", flush=True)
            await ws.close()
            return False
    held.append((ws, asyncio.create_task(_drain(ws))))
    return True


async def _gated(gate: asyncio.Semaphore, index: int, step: Any) -> Any:
    async with gate:
        for attempt in range(3):
            try:
                return await step()
            except (OSError, TimeoutError, httpx.HTTPError,
                    websockets.WebSocketException) as exc:
                print(f"guest {index} (attempt {attempt + 1}): {exc!r}", flush=True)
        return None


async def _worker(pipe: Pipe) -> None:
    """Commands: ``tokens`` signs guests up (kept here), ``open`` joins them, ``stop``."""
    loop = asyncio.get_running_loop()
    held: list[Any] = []
    tokens: dict[int, str] = {}
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "stop":
            break
        gate = asyncio.Semaphore(CONCURRENCY)
        if command[0] == "tokens":
            _, base_url, indices = command
            got = await asyncio.gather(*(
                _gated(gate, i, functools.partial(_sign_up, base_url, i)) for i in indices
            ))
            tokens.update((i, t) for i, t in zip(indices, got, strict=True) if t)
            pipe.send(sum(1 for t in got if t))
            continue
        _, base_url, room_ids, indices = command
        results = await asyncio.gather(*(
            _gated(gate, i, functools.partial(
                _open_one, base_url, room_ids[i % len(room_ids)], i, tokens[i], held))
            for i in indices if i in tokens
        ))
        pipe.send(sum(1 for r in results if r))
    for ws, task in held:
        task.cancel()
        with contextlib.suppress(Exception):
            await ws.close()
    pipe.send("stopped")


def worker_main(pipe: Pipe) -> None:
    raise_open_files()
    asyncio.run(_worker(pipe))


# --- the server ----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def wait_quiet(pid: int, timeout: float = 120.0) -> None:
    """Until the server used under 2% of a CPU for QUIET_SECONDS (its joins are all done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(QUIET_SECONDS)
        if cpu_seconds(pid) - before < 0.02 * QUIET_SECONDS:
            return
    print("warning: the server never went quiet", flush=True)


class Server:
    def __init__(self, data_dir: Path, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "AUDIO_ROOMS_DATA_DIR": str(data_dir),
                # One server process: its CPU and memory are what this measures.
                "AUDIO_ROOMS_WORKERS": "1",
                "AUDIO_ROOMS_SECRET_KEY": "benchmark-secret-key-0123456789-abcdefghij",
                "AUDIO_ROOMS_LOG_LEVEL": "WARNING",
                "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
            }
        )
        env.update(extra_env)
        env.pop("AUDIO_ROOMS_REDIS_URL", None)  # the embedded Redis: its memory is not ours
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.log = (data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audio_rooms", "serve", "--port", str(self.port)],
            cwd=data_dir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=raise_open_files,
        )
        self.helpers: list[int] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    self.helpers = children(self.process.pid)
                    return
            time.sleep(0.2)
        raise RuntimeError("server not ready in time")

    def stop(self) -> None:
        stop_process(self.process, signal.SIGINT, 30)
        for pid in self.helpers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.log.close()


# --- the run -------------------------------------------------------------------------------------


class Hosts:
    """The rooms' hosts, in a thread with its own event loop so that they keep reading (and
    answering pings) while the main thread waits on the client processes: a host that stopped
    reading would be dropped as a slow client, and its room would end."""

    def __init__(self, base_url: str, rooms: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.held: list[tuple[Any, asyncio.Task[None]]] = []
        self.room_ids: list[str] = []
        for k in range(rooms):
            room_id, ws, task = asyncio.run_coroutine_threadsafe(
                open_host(base_url, k), self.loop
            ).result(60)
            self.room_ids.append(room_id)
            self.held.append((ws, task))

    def stop(self) -> None:
        async def close() -> None:
            for ws, task in self.held:
                task.cancel()
                await ws.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def open_host(base_url: str, k: int) -> tuple[str, Any, asyncio.Task[None]]:
    """Host ``k`` signs up from 127.0.0.(2 + k), opens a room and joins it."""
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{2 + k}")
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30) as http:
        response = await http.post("/api/auth/signup", json={
            "handle": f"bench_host_{k}", "display_name": f"Host {k}",
            "password": "benchmark password 1", "locale": "en",
        })
        response.raise_for_status()
        token = response.json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        response = await http.post("/api/rooms", json={"title": "Memory", "visibility": "open"})
        response.raise_for_status()
        room_id = str(response.json()["room"]["id"])
    ws = await websockets.connect(base_url.replace("http://", "ws://") + f"/ws/rooms/{room_id}",
                                  local_addr=(f"127.0.0.{2 + k}", 0), max_size=2**24)
    await ws.send(f'{{"type":"join","token":"{token}"}}')
    return room_id, ws, asyncio.create_task(_drain(ws))


def phase(pipes: list[Pipe], command: tuple[Any, ...], indices: range) -> int:
    """Run ``command`` (plus each process's share of ``indices``) in every client process."""
    shares = [list(indices)[w::len(pipes)] for w in range(len(pipes))]
    for pipe, share in zip(pipes, shares, strict=True):
        pipe.send((*command, share))
    opened = 0
    for pipe in pipes:
        if not pipe.poll(PHASE_TIMEOUT):
            raise RuntimeError("a client process did not finish in time")
        opened += int(pipe.recv())
    return opened


def run(clients: int, processes: int, warmup: int, rooms: int,
        extra_env: dict[str, str]) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix="ws-memory-"))
    server = Server(data_dir, extra_env)
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[Any, Pipe]] = []
    hosts: Hosts | None = None
    try:
        server.wait_ready()
        pid = server.process.pid
        hosts = Hosts(server.base_url, rooms)
        for _ in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(target=worker_main, args=(theirs,), daemon=True)
            process.start()
            workers.append((process, ours))
        pipes = [pipe for _, pipe in workers]

        def settle() -> int:
            wait_quiet(pid)
            return rss_kib(pid)

        started = time.monotonic()
        base, everyone = server.base_url, range(warmup + clients)
        join = ("open", base, hosts.room_ids)
        phase(pipes, ("tokens", base), range(warmup))
        warm = phase(pipes, join, range(warmup))
        rss_unsigned = settle()
        # Guest accounts are made first: what they cost (the database, its caches) is not the
        # WebSockets'.
        signed = phase(pipes, ("tokens", base), everyone[warmup:])
        rss_before = settle()
        half = clients // 2
        first = phase(pipes, join, everyone[warmup:warmup + half])
        rss_half = settle()
        second = phase(pipes, join, everyone[warmup + half:])
        rss_after = settle()
        opened = first + second
        print(f"warm-up {warm}, guests {signed}, opened {opened}/{clients} "
              f"in {time.monotonic() - started:.0f} s", flush=True)
        result = {
            "clients": opened,
            "kib_per_guest_signup": (rss_before - rss_unsigned) / max(1, signed),
            "rss_before_mib": rss_before / 1024,
            "rss_half_mib": rss_half / 1024,
            "rss_after_mib": rss_after / 1024,
            "kib_per_connection": (rss_after - rss_before) / max(1, opened),
            "kib_per_connection_second_half": (rss_after - rss_half) / max(1, second),
        }
        return result
    finally:
        for process, pipe in workers:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
            with contextlib.suppress(OSError, EOFError):
                if pipe.poll(30):
                    pipe.recv()
            process.join(10)
            if process.is_alive():
                process.kill()
        if hosts is not None:
            hosts.stop()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--rooms", type=int, default=1,
                        help="spread the clients over this many rooms (each with its host)")
    parser.add_argument("--env", action="append", default=[],
                        help="NAME=VALUE for the server (to compare a setting)")
    args = parser.parse_args()
    raise_open_files()
    # A plain kill still stops the server and the clients (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    extra = dict(item.split("=", 1) for item in args.env)
    result = run(args.clients, args.processes, args.warmup, args.rooms, extra)
    print(f"server RSS: {result['rss_before_mib']:.1f} MiB before, "
          f"{result['rss_half_mib']:.1f} MiB at N/2, {result['rss_after_mib']:.1f} MiB at N")
    print(f"(signing the guests up first: {result['kib_per_guest_signup']:.1f} KiB each)")
    print(f"per connection: {result['kib_per_connection']:.1f} KiB "
          f"(second half alone: {result['kib_per_connection_second_half']:.1f} KiB) "
          f"over {result['clients']} joined WebSockets")


if __name__ == "__main__":
    main()
