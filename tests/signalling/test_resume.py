"""Dropped connections: resume with the role within the grace period, gone after it; a server
restart against the same Redis keeps the room."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import (
    Account,
    AccountFactory,
    Client,
    LiveRoom,
    RunningServer,
    ServerFactory,
    create_room,
    join,
)


async def _speaker(server: RunningServer, room_id: str, host_c: Client, account: Account) -> Client:
    client = await join(server, room_id, account)
    await client.send("raise_hand")
    await host_c.send("invite_to_speak", user_id=account.user_id)
    await client.send("accept_invitation")
    await host_c.expect("role_changed", user_id=account.user_id, role="speaker")
    return client


async def test_resume_within_grace_keeps_role(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    room_id, host_c = live_room.room_id, live_room.host_c
    sam = await make_account("Sam")
    sam_c = await _speaker(server, room_id, host_c, sam)
    sam_c.ws.transport.abort()  # the phone lost its network: no close frame
    await asyncio.sleep(1.0)  # offline for a while, but less than the grace period
    again = await join(server, room_id, sam)
    assert again.welcome["you"]["role"] == "speaker"
    assert again.welcome["resumed"] is True
    # Past the old connection's drop deadline: the resumed speaker must not be dropped with it.
    await asyncio.sleep(server.settings.grace_period + 1.5)
    quiet = await host_c.quiet(0.3)
    assert not [m for m in quiet if m["type"] == "participant_left"]
    await again.send("mute", user_id=sam.user_id, ref="m")
    assert (await again.expect("ack", ref="m"))["type"] == "ack"


async def test_dropped_after_grace_period(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    room_id, host_c = live_room.room_id, live_room.host_c
    sam = await make_account("Sam")
    sam_c = await _speaker(server, room_id, host_c, sam)
    sam_c.ws.transport.abort()
    left = await host_c.expect(
        "participant_left", user_id=sam.user_id, timeout=server.settings.grace_period + 5
    )
    assert left["reason"] == "timeout"
    again = await join(server, room_id, sam)
    assert again.welcome["you"]["role"] == "listener"
    assert again.welcome["resumed"] is False


async def test_second_connection_replaces_the_first(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host)
    first = await join(server, room_id, host)
    second = await join(server, room_id, host)
    assert await first.closed_with() == 4009
    await second.send("ping", ref="p")
    await second.expect("pong", ref="p")


async def test_restart_with_same_redis_keeps_the_room(
    make_server: ServerFactory, make_account: AccountFactory, server: RunningServer
) -> None:
    host, sam = await make_account("Host"), await make_account("Sam")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    await _speaker(server, room_id, host_c, sam)
    await server.stop()
    restarted = await make_server(port=server.port, grace_period=30.0)
    host_again = await join(restarted, room_id, host)
    sam_again = await join(restarted, room_id, sam)
    assert host_again.welcome["you"]["role"] == "host"
    assert sam_again.welcome["you"]["role"] == "speaker"
    roles = {p["user_id"]: p["role"] for p in host_again.welcome["room"]["participants"]}
    assert roles == {host.user_id: "host", sam.user_id: "speaker"}


async def test_embedded_redis_keeps_rooms_across_restarts(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """With no Redis configured the server runs its own, persisting in the data directory."""
    first = await make_server(redis_url=None, data_dir=tmp_path / "embedded")
    async with first.http() as http:
        signup = await http.post("/api/auth/signup", json={
            "handle": "hostess", "display_name": "H", "password": "long enough pass"})
        token = signup.json()["token"]
    async with first.http(token) as http:
        room_id = (await http.post("/api/rooms", json={"title": "Kept"})).json()["room"]["id"]
    await first.stop()
    second = await make_server(redis_url=None, data_dir=tmp_path / "embedded", port=first.port)
    async with second.http(token) as http:
        assert (await http.get("/readyz")).status_code == 200
        room = (await http.get(f"/api/rooms/{room_id}")).json()["room"]
    assert room["status"] == "live"
    assert await second.services.store.load(room_id) is not None
