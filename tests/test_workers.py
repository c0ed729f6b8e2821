"""``audio-rooms serve --workers 2`` as an operator runs it: a supervisor and two worker
processes on one port, one embedded Redis; each worker a node in the registry; a killed worker
comes back; SIGTERM stops everything; a supervisor killed with -9 leaves no worker behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import psutil
import pytest

from audio_rooms.state.embedded import find_redis_server
from audio_rooms.workers import (
    RESTART_MAX_DELAY,
    WorkersError,
    port_slices,
    restart_delay,
    worker_count,
)
from tests.conftest import eventually, free_port, join
from tests.serving import ServerCalls

SECRET = "workers-test-secret-key-0123456789-0123456789"


class Supervised(ServerCalls):
    """``audio-rooms serve --workers N`` in a process of its own, with no Redis configured."""

    def __init__(self, tmp_path: Path, workers: int, **settings: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = tmp_path / "data"
        self.log = tmp_path / "serve.log"
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("AUDIO_ROOMS_")}
        env.update({
            "AUDIO_ROOMS_DATA_DIR": str(self.data_dir),
            "AUDIO_ROOMS_SECRET_KEY": SECRET,
            "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
            "AUDIO_ROOMS_NODE_HEARTBEAT_INTERVAL": "0.5",
            "AUDIO_ROOMS_DRAIN_TIMEOUT": "5",
            **{f"AUDIO_ROOMS_{name.upper()}": value for name, value in settings.items()},
        })
        self.env = env
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "audio_rooms", "serve", "--port", str(self.port),
                 "--workers", str(workers)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        self.seen: set[int] = set()  # every descendant's pid, to clean up whatever is left

    def children(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []
        self.seen.update(p.pid for p in found)
        return found

    def workers(self) -> set[int]:
        return {p.pid for p in self.children() if "--worker" in _cmdline(p)}

    def redis_servers(self) -> set[int]:
        return {p.pid for p in self.children() if "redis-server" in _cmdline(p)}

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, timeout=5) as http:
            return await http.get(path)

    async def status(self, path: str) -> int | None:
        try:
            return (await self.get(path)).status_code
        except httpx.TransportError:
            return None

    async def ready(self, workers: int) -> None:
        async def up() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            return len(self.workers()) == workers and await self.status("/readyz") == 200

        await eventually(up, within=60, every=0.1)

    def ws_url(self, room_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{room_id}"


    async def node_pids(self) -> list[int]:
        """The pids ``audio-rooms nodes list`` shows, as an operator would run it."""
        env = {k: v for k, v in self.env.items() if k != "AUDIO_ROOMS_SECRET_KEY"}
        listed = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "audio_rooms", "nodes", "list"],
            env=env, capture_output=True, text=True, timeout=30,
        )
        assert listed.returncode == 0, listed.stderr
        return sorted(int(pid) for pid in re.findall(r"\bpid=(\d+)", listed.stdout))

    async def nodes_are_workers(self) -> bool:
        """The registry lists exactly the live workers (a dead one is not left in it)."""
        return await self.node_pids() == sorted(self.workers())

    def stop(self) -> None:
        self.children()
        for pid in [self.process.pid, *self.seen]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _gone(pids: set[int]) -> bool:
    return not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in pids)


Start = Callable[..., Supervised]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    made: list[Supervised] = []

    def starter(workers: int = 2, **settings: str) -> Supervised:
        made.append(Supervised(tmp_path, workers, **settings))
        return made[-1]

    yield starter
    for server in made:
        server.stop()


def test_the_media_port_range_is_cut_into_disjoint_slices_that_cover_it() -> None:
    slices = port_slices(40000, 40099, 3)
    assert slices == [(40000, 40032), (40033, 40065), (40066, 40099)]
    assert port_slices(5000, 5001, 2) == [(5000, 5000), (5001, 5001)]
    with pytest.raises(WorkersError, match="2 ports for 3 workers"):
        port_slices(5000, 5001, 3)


def test_restarts_back_off_to_a_cap_and_zero_means_one_worker_per_core() -> None:
    assert restart_delay(0) < restart_delay(1) < restart_delay(2)
    assert restart_delay(100) == RESTART_MAX_DELAY
    assert worker_count(3) == 3
    assert worker_count(0) == len(os.sched_getaffinity(0))


async def test_two_workers_share_the_port_each_a_node_and_a_killed_one_comes_back(
    start: Start,
) -> None:
    server = start(workers=2, media_port_min="43100", media_port_max="43199")
    await server.ready(workers=2)
    assert len(server.redis_servers()) == 1  # one embedded Redis, the supervisor's
    await eventually(server.nodes_are_workers, within=10, every=0.2)
    log = server.log.read_text()
    assert "[worker 0] audio_rooms.cli: worker 0: pid" in log
    assert "UDP ports 43100-43149" in log and "UDP ports 43150-43199" in log

    # People use it as one server: whichever worker takes each socket, a host sees every
    # guest who joins (room state and events go through the one Redis).
    host = await server.account("wkhost")
    room_id = await server.create_room(host)
    host_c = await join(server, room_id, host)
    guests = [await join(server, room_id, await server.account(f"wkguest{i}"))
              for i in range(4)]
    await host_c.expect("audience", count=4)

    victim = min(server.workers())
    os.kill(victim, signal.SIGKILL)
    await eventually(lambda: victim not in server.workers() and len(server.workers()) == 2,
                     within=20, every=0.1)
    await eventually(server.nodes_are_workers, within=15, every=0.2)
    assert "exited with -9; restarting" in server.log.read_text()
    assert await server.status("/readyz") == 200
    assert (await server.account("afterkill")).user_id

    # Those on the killed worker lost their sockets (the web client reconnects); fresh ones
    # for the drain below, spread over both workers again.
    for client in (host_c, *guests):
        await client.ws.close()
    clients = [await join(server, room_id, host)]
    clients += [await join(server, room_id, await server.account(f"wkagain{i}"))
                for i in range(4)]

    descendants = {server.process.pid, *(p.pid for p in server.children())}
    # SIGTERM drains every worker: each client, whichever worker it is on, is told to
    # reconnect, and then every process is gone.
    server.process.send_signal(signal.SIGTERM)
    for client in clients:
        await client.expect("reconnect", timeout=10)
        await client.ws.close()
    await eventually(lambda: server.process.poll() is not None, within=30, every=0.1)
    assert server.process.returncode == 0, server.log.read_text()[-3000:]
    await eventually(lambda: _gone(descendants), within=5, every=0.1)


async def test_workers_exit_when_the_supervisor_is_killed(start: Start) -> None:
    metrics = _two_free_ports()
    server = start(workers=2, metrics_port=str(metrics))
    await server.ready(workers=2)
    descendants = {p.pid for p in server.children()}
    assert len(descendants) == 3  # two workers and the embedded Redis
    # Each worker is its own scrape target, on the metrics port plus its index, and sees both.
    async def scraped(port: int) -> bool:
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                answer = await http.get(f"http://127.0.0.1:{port}/metrics")
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and "audio_rooms_nodes 2.0" in answer.text

    for port in (metrics, metrics + 1):
        await eventually(lambda: scraped(port), within=15, every=0.2)  # noqa: B023

    server.process.kill()
    server.process.wait(timeout=10)
    await eventually(lambda: _gone(descendants), within=30, every=0.1)
    assert "the supervisor is gone: stopping" in server.log.read_text()


async def test_every_worker_fails_healthz_while_the_embedded_redis_cannot_restart(
    start: Start, tmp_path: Path
) -> None:
    binary = tmp_path / "redis-server"
    _write_script(binary, f'exec {find_redis_server()} "$@"')
    server = start(workers=2, embedded_redis_binary=str(binary),
                   embedded_redis_restart_attempts="2")
    await server.ready(workers=2)

    _write_script(binary, "echo 'cannot start: broken on purpose' >&2; exit 1")
    (redis_pid,) = server.redis_servers()
    os.kill(redis_pid, signal.SIGKILL)

    async def all_failing() -> bool:
        # Fresh connections land on either worker: every answer must say failing.
        answers = [await server.get("/healthz") for _ in range(10)]
        return all(a.status_code == 503 and "broken on purpose" in a.json()["reason"]
                   for a in answers)

    await eventually(all_failing, within=20, every=0.2)

    _write_script(binary, f'exec {find_redis_server()} "$@"')

    async def all_healthy() -> bool:
        return all([await server.status("/healthz") == 200 for _ in range(10)])

    await eventually(all_healthy, within=30, every=0.2)


def test_too_few_media_ports_for_the_workers_is_refused_at_start(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUDIO_ROOMS_")}
    env.update({"AUDIO_ROOMS_DATA_DIR": str(tmp_path / "data"),
                "AUDIO_ROOMS_MEDIA_PORT_MIN": "43000", "AUDIO_ROOMS_MEDIA_PORT_MAX": "43000"})
    done = subprocess.run(
        [sys.executable, "-m", "audio_rooms", "serve", "--port", str(free_port()),
         "--workers", "2"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "1 ports for 2 workers" in done.stderr
    assert "Traceback" not in done.stderr


def _two_free_ports() -> int:
    """A port P with P + 1 free too."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise AssertionError("no two consecutive free ports")


def _write_script(path: Path, body: str) -> None:
    fresh = path.with_suffix(".new")
    fresh.write_text(f"#!/bin/sh\n{body}\n")
    fresh.chmod(fresh.stat().st_mode | stat.S_IXUSR)
    fresh.replace(path)
