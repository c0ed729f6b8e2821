"""Webhooks against a real HTTP receiver on loopback that fails the first attempts: every event
arrives, signed, once per delivery id, and the queue outlives the server processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from audio_rooms.domain.events import Event
from audio_rooms.settings import SettingsError, load_settings
from audio_rooms.state import keys
from audio_rooms.webhooks import (
    SIGNATURE_HEADER,
    WebhookConfig,
    WebhookDeliverer,
    WebhookMetrics,
    WebhookQueue,
    sign,
    verify,
)
from tests.conftest import (
    Account,
    RunningServer,
    ServerFactory,
    create_room,
    eventually,
    free_port,
    join,
)

pytestmark = pytest.mark.timeout(60)

SECRET = "webhook-secret-0123456789abcdef"


@dataclass
class Receiver:
    """An HTTP endpoint that answers 503 to its first ``fail_first`` requests, then 204."""

    fail_first: int
    port: int = field(default_factory=free_port)
    attempts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        self.attempts.append((headers, body))
        if len(self.attempts) <= self.fail_first:
            return Response(status_code=503)
        if not verify(SECRET, headers[SIGNATURE_HEADER.lower()], body, time.time()):
            return Response(status_code=401)
        self.accepted.append({**json.loads(body),
                              "delivery": headers["x-audio-rooms-delivery"]})
        return Response(status_code=204)

    def types(self) -> list[str]:
        return [event["type"] for event in self.accepted]


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=receiver.port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done())
    try:
        yield receiver
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def signed_up(server: RunningServer, handle: str) -> Account:
    async with server.http() as http:
        response = await http.post("/api/auth/signup", json={
            "handle": handle, "display_name": handle.title(),
            "password": "correct horse battery", "locale": "en"})
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(body["user"]["id"], body["token"], handle)


def hooked(url: str, **more: Any) -> dict[str, Any]:
    return {"webhook_urls": (url,), "webhook_secret": SECRET, "webhook_retry_base": 0.2, **more}


async def metric(server: RunningServer, name: str) -> float:
    async with server.http() as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_signature_is_refused_when_body_or_time_differ() -> None:
    body = b'{"type":"room.started"}'
    now = int(time.time())
    header = sign(SECRET, now, body)
    assert verify(SECRET, header, body, now)
    assert not verify(SECRET, header, body + b" ", now)
    assert not verify("another-secret-0123456789", header, body, now)
    assert not verify(SECRET, header, body, now + 3600)  # a replay an hour later
    assert not verify(SECRET, "v1=00", body, now)


async def test_room_events_arrive_signed_after_failed_attempts(
    make_server: ServerFactory,
) -> None:
    async with receiving(Receiver(fail_first=3)) as receiver:
        server = await make_server(**hooked(receiver.url))
        host = await signed_up(server, "hook_host")
        guest = await signed_up(server, "hook_guest")
        room_id = await create_room(server, host)
        host_c = await join(server, room_id, host)
        listener = await join(server, room_id, guest)
        await host_c.send("invite_to_speak", user_id=guest.user_id)
        await listener.expect("invited")
        await listener.send("accept_invitation")
        await host_c.expect("role_changed", user_id=guest.user_id)
        await listener.send("leave")
        await host_c.expect("participant_left", user_id=guest.user_id)
        await host_c.send("end_room")
        await host_c.expect("room_ended")

        wanted = ["room.started", "participant.joined", "participant.joined", "role.changed",
                  "participant.left", "room.ended"]
        await eventually(lambda: sorted(receiver.types()) == sorted(wanted), within=30)
        assert all(event["room_id"] == room_id for event in receiver.accepted)
        joined = {e["user_id"] for e in receiver.accepted if e["type"] == "participant.joined"}
        assert joined == {host.user_id, guest.user_id}
        role = next(e for e in receiver.accepted if e["type"] == "role.changed")
        assert (role["user_id"], role["role"]) == (guest.user_id, "speaker")
        # The refused attempts were tried again under the same delivery id; none arrived twice.
        deliveries = [e["delivery"] for e in receiver.accepted]
        assert len(deliveries) == len(set(deliveries))
        failed_ids = {h["x-audio-rooms-delivery"] for h, _ in receiver.attempts[:3]}
        assert failed_ids <= set(deliveries)
        assert await metric(server, "audio_rooms_webhook_retries_total") == 3
        assert await metric(server, "audio_rooms_webhook_deliveries_total") == len(wanted)


async def test_queue_survives_restart_and_two_processes_deliver_once(
    make_server: ServerFactory,
) -> None:
    receiver = Receiver(fail_first=0)
    # The receiver is down while the first server runs: everything waits to be retried.
    first = await make_server(**hooked(receiver.url))
    host = await signed_up(first, "restart_host")
    rooms = [await create_room(first, host, title=f"Room {n}") for n in range(3)]
    await eventually(lambda: _positive(metric(first, "audio_rooms_webhook_retries_total")))
    await first.stop()

    async with receiving(receiver):
        second = await make_server(**hooked(receiver.url))
        third = await make_server(**hooked(receiver.url))
        await eventually(lambda: len(receiver.accepted) >= 3, within=30)
        await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one
        assert sorted(e["room_id"] for e in receiver.accepted) == sorted(rooms)
        assert set(receiver.types()) == {"room.started"}
        assert len({e["delivery"] for e in receiver.accepted}) == len(receiver.accepted)
        delivered = (await metric(second, "audio_rooms_webhook_deliveries_total")
                     + await metric(third, "audio_rooms_webhook_deliveries_total"))
        assert delivered == 3


async def _positive(value: Any) -> bool:
    return bool(await value > 0)


async def test_a_delivery_taken_by_a_process_that_died_is_claimed_by_another(
    redis: aioredis.Redis,
) -> None:
    await redis.delete(keys.WEBHOOK_QUEUE, keys.WEBHOOK_RETRIES)
    async with receiving(Receiver(fail_first=0)) as receiver:
        config = WebhookConfig(urls=(receiver.url,), secret=SECRET, timeout=0.5)
        metrics = WebhookMetrics(CollectorRegistry())
        await WebhookQueue(redis, config, metrics).enqueue(
            "room1", [Event("room_started", "host@x", {"title": "T"})])
        # A process takes the entry and dies before acknowledging it.
        await redis.xgroup_create(keys.WEBHOOK_QUEUE, keys.WEBHOOK_GROUP, id="0")
        taken = await redis.xreadgroup(keys.WEBHOOK_GROUP, "dead", {keys.WEBHOOK_QUEUE: ">"})
        assert len(taken[0][1]) == 1
        survivor = WebhookDeliverer(redis, config, metrics, "survivor")
        survivor.start()
        try:
            await asyncio.sleep(1.0)
            assert receiver.accepted == []  # not before the lease ran out
            await eventually(lambda: len(receiver.accepted) == 1, within=config.lease + 5)
        finally:
            await survivor.stop()
        assert receiver.accepted[0]["room_id"] == "room1"
        assert await redis.xlen(keys.WEBHOOK_QUEUE) == 0


def test_webhook_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(SettingsError, match="AUDIO_ROOMS_WEBHOOK_SECRET"):
        load_settings(webhook_urls="https://hooks.example.org/rooms")
    with pytest.raises(SettingsError, match="AUDIO_ROOMS_WEBHOOK_URLS"):
        load_settings(webhook_urls="ftp://hooks.example.org", webhook_secret=SECRET)
    with pytest.raises(SettingsError, match="AUDIO_ROOMS_WEBHOOK_EVENTS"):
        load_settings(webhook_urls="https://h.example.org", webhook_secret=SECRET,
                      webhook_events="room.started,room.exploded")
    with pytest.raises(SettingsError, match="AUDIO_ROOMS_WEBHOOK_SECRET"):
        load_settings(webhook_urls="https://h.example.org", webhook_secret="CHANGE-ME-0123456789")
    settings = load_settings(webhook_urls="https://a.example.org/x, https://b.example.org",
                             webhook_secret=SECRET, webhook_events="room.started")
    assert settings.webhook_urls == ("https://a.example.org/x", "https://b.example.org")
    assert SECRET not in repr(settings)
