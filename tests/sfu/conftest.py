"""Fixtures for media-plane tests: a media server on 127.0.0.1 and real aiortc clients."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from audio_rooms.sfu import MediaConfig, MediaServer, Router, hooks
from audio_rooms.sfu.testing import AudioClient

LOOPBACK = MediaConfig(host_addresses=("127.0.0.1",))

Join = Callable[..., Awaitable[AudioClient]]


async def _media(config: MediaConfig) -> AsyncIterator[MediaServer]:
    server = MediaServer(config)
    try:
        yield server
    finally:
        await server.close()
        # MediaServer sets aioice's consent timing process-wide; leave the defaults behind.
        hooks.set_consent_timing(5, 6)


@pytest.fixture
async def media() -> AsyncIterator[MediaServer]:
    async for server in _media(LOOPBACK):
        yield server


@pytest.fixture
async def media_1s_reports() -> AsyncIterator[MediaServer]:
    """A media server whose slots send sender reports every second (5 s by default)."""
    async for server in _media(dataclasses.replace(LOOPBACK, sender_report_interval=1.0)):
        yield server


@pytest.fixture
async def join() -> AsyncIterator[Join]:
    """join(router, participant_id, **AudioClient kwargs): a connected client, closed after."""
    clients: list[AudioClient] = []

    async def join(router: Router, participant_id: str, **kwargs: object) -> AudioClient:
        client = AudioClient(**kwargs)  # type: ignore[arg-type]
        clients.append(client)
        answer = await router.answer(participant_id, await client.offer())
        await client.accept(answer)
        async with asyncio.timeout(10):
            await client.connected()
        return client

    try:
        yield join
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``condition()`` holds; fail after ``within`` seconds."""
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")
