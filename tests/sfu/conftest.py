"""Fixtures for media-plane tests: a media server on 127.0.0.1 and real aiortc clients."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from audio_rooms.sfu import MediaConfig, MediaServer, Router, hooks
from audio_rooms.sfu.testing import SAMPLE_RATE, AudioClient, Slot

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


def decoded_seconds(slot: Slot) -> float:
    """How much audio a decoding client has heard on ``slot``."""
    return sum(len(frame) for frame in slot.frames) / SAMPLE_RATE


def hears_for(client: AudioClient, seconds: float, slots: int = 1) -> Callable[[], bool]:
    """A condition for ``eventually``: ``slots`` of the client's slots have decoded at least
    ``seconds`` of audio each (enough for a one-second analysis window past the start)."""
    return lambda: sum(1 for s in client.slots if decoded_seconds(s) >= seconds) >= slots
