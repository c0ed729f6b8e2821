"""A drain waits *up to* its timeout: when every client leaves at once, the process exits at
once instead of sitting out the whole ``AUDIO_ROOMS_DRAIN_TIMEOUT``."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from tests.conftest import Account, free_port, join
from tests.signalling.test_drain import ServerProcess

LONG_DRAIN = 60  # far longer than the test may take: exiting at all proves it did not wait


async def _account(base: str, handle: str) -> Account:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            "/api/auth/signup",
            json={"handle": handle, "display_name": handle, "password": "a long password"},
        )
    body = response.json()
    return Account(body["user"]["id"], body["token"], handle)


async def test_sigterm_exits_as_soon_as_the_last_client_left(
    tmp_path: Path, redis_url: str
) -> None:
    env = {
        **os.environ,
        "AUDIO_ROOMS_DATA_DIR": str(tmp_path / "data"),
        "AUDIO_ROOMS_REDIS_URL": redis_url,
        "AUDIO_ROOMS_SECRET_KEY": "drain-test-secret-key-0123456789-0123456789",
        "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
        "AUDIO_ROOMS_DRAIN_TIMEOUT": str(LONG_DRAIN),
    }
    port = free_port()
    process = ServerProcess(env, port)
    try:
        await process.ready()
        base = f"http://127.0.0.1:{port}"
        host, guest = await _account(base, "quickhost"), await _account(base, "quickguest")
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {host.token}"}
        ) as http:
            room_id = (await http.post("/api/rooms", json={"title": "Live"})).json()["room"]["id"]
        clients = [await join(process, room_id, host), await join(process, room_id, guest)]

        process.process.send_signal(signal.SIGTERM)
        for client in clients:
            await client.expect("reconnect")
            await client.close()
        async with asyncio.timeout(20):
            assert await process.exited() == 0
    finally:
        process.stop()
