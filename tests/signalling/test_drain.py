"""SIGTERM during a live room: clients are told to reconnect, the server exits, and after a
restart against the same Redis everyone resumes with their role."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import Account, eventually, free_port, join


class ServerProcess:
    """``audio-rooms serve`` in a process of its own, so that it can be sent signals."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audio_rooms", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ws_url(self, room_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{room_id}"

    async def ready(self) -> None:
        async with httpx.AsyncClient() as http:

            async def answers() -> bool:
                try:
                    response = await http.get(f"http://127.0.0.1:{self.port}/readyz")
                except httpx.TransportError:
                    return False
                return response.status_code == 200

            await eventually(answers, within=30, every=0.1)

    async def exited(self) -> int:
        await eventually(lambda: self.process.poll() is not None, within=30)
        return self.process.returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
async def start_process(
    tmp_path: Path, redis_url: str
) -> AsyncIterator[Callable[[int], ServerProcess]]:
    made: list[ServerProcess] = []
    env = {
        **os.environ,
        "AUDIO_ROOMS_DATA_DIR": str(tmp_path / "data"),
        "AUDIO_ROOMS_REDIS_URL": redis_url,
        "AUDIO_ROOMS_SECRET_KEY": "drain-test-secret-key-0123456789-0123456789",
        "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
        "AUDIO_ROOMS_DRAIN_TIMEOUT": "10",
        "AUDIO_ROOMS_GRACE_PERIOD": "30",
        # One process: /metrics below must count both clients (tests/test_workers.py drains
        # several workers).
        "AUDIO_ROOMS_WORKERS": "1",
    }

    def start(port: int) -> ServerProcess:
        made.append(ServerProcess(env, port))
        return made[-1]

    yield start
    for process in made:
        process.stop()


async def _account(base: str, handle: str) -> Account:
    async with httpx.AsyncClient(base_url=base) as http:
        body = (
            await http.post(
                "/api/auth/signup",
                json={"handle": handle, "display_name": handle, "password": "a long password"},
            )
        ).json()
    return Account(body["user"]["id"], body["token"], handle)


async def test_sigterm_drains_and_rooms_survive_a_restart(
    start_process: Callable[[int], ServerProcess],
) -> None:
    port = free_port()
    first = start_process(port)
    await first.ready()
    base = f"http://127.0.0.1:{port}"
    host, sam = await _account(base, "drainhost"), await _account(base, "drainsam")
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {host.token}"}
                                 ) as http:
        room_id = (await http.post("/api/rooms", json={"title": "Live"})).json()["room"]["id"]
    host_c, sam_c = await join(first, room_id, host), await join(first, room_id, sam)
    await sam_c.send("raise_hand")
    await host_c.send("invite_to_speak", user_id=sam.user_id)
    await sam_c.send("accept_invitation")
    await host_c.expect("role_changed", user_id=sam.user_id, role="speaker")
    # The real server process (uvloop) sends deltas as shared frames, not through ASGI.
    async with httpx.AsyncClient(base_url=base) as http:
        metrics = (await http.get("/metrics")).text
    assert 'audio_rooms_connections_by_send_path{path="frames"} 2.0' in metrics

    first.process.send_signal(signal.SIGTERM)
    for client in (host_c, sam_c):
        told = await client.expect("reconnect")
        assert told["after_ms"] > 0
        await client.close()
    assert await first.exited() == 0

    second = start_process(port)
    await second.ready()
    host_again, sam_again = await join(second, room_id, host), await join(second, room_id, sam)
    assert host_again.welcome["resumed"] and sam_again.welcome["resumed"]
    assert sam_again.welcome["you"]["role"] == "speaker"
    assert host_again.welcome["you"]["role"] == "host"
