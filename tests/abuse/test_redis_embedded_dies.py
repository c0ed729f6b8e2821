"""The embedded redis-server killed under a running server: it is restarted, rooms come back
from its append-only file and people can create and join rooms again; when it cannot be
restarted, ``/healthz`` fails (503, with the reason) so an orchestrator restarts the app, and
recovers if a later attempt succeeds."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from audio_rooms.state.embedded import find_redis_server
from tests.conftest import eventually, free_port, join
from tests.serving import ServerCalls
from tests.signalling.test_drain import ServerProcess


class EmbeddedServer(ServerProcess, ServerCalls):
    """``audio-rooms serve`` with no Redis configured: it runs its own redis-server."""

    def __init__(self, env: dict[str, str], port: int, data_dir: Path) -> None:
        super().__init__(env, port)
        self.base = f"http://127.0.0.1:{port}"
        self.redis_socket = data_dir / "redis" / "redis.sock"

    async def redis_pid(self) -> int:
        client = aioredis.Redis(unix_socket_path=str(self.redis_socket))
        try:
            return int((await client.info("server"))["process_id"])
        finally:
            await client.aclose()

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, timeout=5) as http:
            return await http.get(path)



Start = Callable[..., EmbeddedServer]


@pytest.fixture
async def start_embedded(tmp_path: Path) -> AsyncIterator[Start]:
    made: list[EmbeddedServer] = []

    def start(**settings: str) -> EmbeddedServer:
        data_dir = tmp_path / "data"
        env = {
            key: value for key, value in os.environ.items()
            if key != "AUDIO_ROOMS_REDIS_URL"
        }
        env.update({
            "AUDIO_ROOMS_DATA_DIR": str(data_dir),
            "AUDIO_ROOMS_SECRET_KEY": "embedded-redis-test-key-0123456789-0123456789",
            "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
            # The embedded Redis is then the supervisor's, its health passed to each worker.
            "AUDIO_ROOMS_WORKERS": "2",
            **{f"AUDIO_ROOMS_{name.upper()}": value for name, value in settings.items()},
        })
        made.append(EmbeddedServer(env, free_port(), data_dir))
        return made[-1]

    yield start
    for server in made:
        server.stop()


async def test_a_killed_embedded_redis_is_restarted_with_its_rooms(
    start_embedded: Start,
) -> None:
    server = start_embedded()
    await server.ready()
    host, guest = await server.account("embhost"), await server.account("embguest")
    room_id = await server.create_room(host)
    host_c = await join(server, room_id, host)
    await asyncio.sleep(1.5)  # deliberately: the append-only file is synced every second
    first_pid = await server.redis_pid()

    os.kill(first_pid, signal.SIGKILL)

    async def back() -> bool:
        try:
            return await server.redis_pid() != first_pid
        except (OSError, aioredis.ConnectionError):
            return False

    await eventually(back, within=15, every=0.1)
    await eventually(lambda: _status(server, "/readyz", 200), within=15, every=0.1)
    assert (await server.get("/healthz")).status_code == 200
    # The room created before the crash is still live, with its host in it.
    guest_c = await join(server, room_id, guest)
    assert host.user_id in {p["user_id"] for p in guest_c.welcome["room"]["participants"]}
    # The host sees the guest come in: in the audience count, or in the fresh snapshot sent
    # once this node's pub/sub connection is back.
    deadline = asyncio.get_running_loop().time() + 8
    while True:
        message = await host_c.recv(deadline - asyncio.get_running_loop().time())
        if message["type"] == "audience" and message["count"] == 1:
            break
        if message["type"] == "snapshot" and message["room"]["audience"]["count"] == 1:
            break
    # And new rooms work end to end (Redis state, pub/sub fan-out).
    second_room = await server.create_room(host)
    again = await join(server, second_room, host)
    assert again.welcome["you"]["role"] == "host"


async def test_healthz_fails_while_embedded_redis_cannot_be_restarted(
    start_embedded: Start, tmp_path: Path
) -> None:
    # A redis-server the test can break after start: a script that runs the real one.
    binary = tmp_path / "redis-server"
    _write_script(binary, f'exec {find_redis_server()} "$@"')
    server = start_embedded(embedded_redis_binary=str(binary),
                            embedded_redis_restart_attempts="2")
    await server.ready()
    assert (await server.get("/healthz")).status_code == 200

    _write_script(binary, "echo 'cannot start: broken on purpose' >&2; exit 1")
    os.kill(await server.redis_pid(), signal.SIGKILL)

    await eventually(lambda: _status(server, "/healthz", 503), within=15, every=0.1)
    body = (await server.get("/healthz")).json()
    assert body["status"] == "failing"
    assert "redis-server" in body["reason"] and "broken on purpose" in body["reason"]
    assert (await server.get("/readyz")).status_code == 503

    # The supervisor keeps trying: once the binary works again, so does everything else.
    _write_script(binary, f'exec {find_redis_server()} "$@"')
    await eventually(lambda: _status(server, "/healthz", 200), within=15, every=0.1)
    await eventually(lambda: _status(server, "/readyz", 200), within=15, every=0.1)
    host = await server.account("backagain")
    assert await server.create_room(host)


async def _status(server: EmbeddedServer, path: str, status: int) -> bool:
    try:
        return (await server.get(path)).status_code == status
    except httpx.TransportError:
        return False


def _write_script(path: Path, body: str) -> None:
    fresh = path.with_suffix(".new")
    fresh.write_text(f"#!/bin/sh\n{body}\n")
    fresh.chmod(fresh.stat().st_mode | stat.S_IXUSR)
    fresh.replace(path)  # atomic: a restart never runs a half-written script
