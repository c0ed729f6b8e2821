"""Misbehaving WebSocket clients: bad frames are answered with errors on a connection that stays
up; only authentication, bans, removal and the end of a room close it (with documented codes);
and nothing one client sends or fails to read reaches anyone else or the room's state."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from audio_rooms.state.store import RoomStore
from tests.conftest import (
    AccountFactory,
    Client,
    LiveRoom,
    RunningServer,
    connect,
    create_room,
    join,
)

ERROR_KEYS = {"type", "code", "message", "ref"}


async def still_up(client: Client, ref: str) -> None:
    """The same connection answers a ping after whatever came before it."""
    await client.send("ping", ref=ref)
    await client.expect("pong", ref=ref)


async def error_for(client: Client, frame: str | bytes) -> dict[str, Any]:
    await client.ws.send(frame)
    error = await client.expect("error")
    assert set(error) >= ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"]
    return error


async def room_facts(store: RoomStore, room_id: str) -> tuple[int, dict[str, str]]:
    state = await store.load(room_id)
    assert state is not None
    return state.version, {p.user_id: p.role.value for p in state.participants.values()}


async def test_bad_frames_get_errors_and_the_connection_stays_up(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    host, room_id, host_c = live_room.host, live_room.room_id, live_room.host_c
    listener = await make_account("Listener", guest=True)
    client = await join(server, room_id, listener)
    await host_c.expect("audience", count=1)
    before = await room_facts(server.services.store, room_id)
    too_large = json.dumps({"type": "reaction", "emoji": "x" * (64 * 1024), "ref": "big"})
    cases: list[tuple[str | bytes, str, str | None]] = [
        ("this is not json", "malformed_message", None),
        ('{"type": "ping"', "malformed_message", None),
        ("[1, 2, 3]", "malformed_message", None),
        (b"\x00\x01binary", "malformed_message", None),
        ('{"ref": "r-notype"}', "invalid_field", "r-notype"),
        ('{"type": 7, "ref": "r-type"}', "invalid_field", "r-type"),
        ('{"type": "fly_away", "ref": "r1"}', "unknown_message_type", "r1"),
        ('{"type": "mute", "user_id": 7, "ref": "r2"}', "invalid_field", "r2"),
        ('{"type": "mute", "ref": "r3"}', "invalid_field", "r3"),
        ('{"type": "raise_hand", "extra": 1, "ref": "r4"}', "invalid_field", "r4"),
        ('{"type": "reaction", "emoji": "", "ref": "r5"}', "invalid_field", "r5"),
        (too_large, "message_too_large", None),
        ('{"type": "join", "ref": "r6"}', "already_in_room", "r6"),
        ('{"type": "end_room", "ref": "r7"}', "not_permitted", "r7"),
        (json.dumps({"type": "remove", "user_id": host.user_id, "ref": "r8"}),
         "not_permitted", "r8"),
        ('{"type": "accept_invitation", "ref": "r9"}', "no_invitation", "r9"),
        ('{"type": "mute", "user_id": "nobody", "ref": "r10"}', "not_permitted", "r10"),
    ]
    for n, (frame, code, ref) in enumerate(cases):
        error = await error_for(client, frame)
        assert (error["code"], error["ref"]) == (code, ref), (frame[:60], error)
        await still_up(client, f"ping-{n}")
    assert await room_facts(server.services.store, room_id) == before
    # The host heard nothing of it.
    heard = await host_c.quiet(0.3)
    assert [m for m in heard if m["type"] not in ("active_speakers", "audience")] == []


async def test_join_failures_close_with_documented_codes(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host)

    forged = await connect(server, room_id, None, token="not-a-token")
    assert (await forged.expect("error"))["code"] == "not_authenticated"
    assert await forged.closed_with() == 4001

    anonymous = await connect(server, room_id, None)
    assert (await anonymous.expect("error"))["code"] == "not_authenticated"
    assert await anonymous.closed_with() == 4001

    lost = await connect(server, "no-such-room", host)
    assert (await lost.expect("error"))["code"] == "room_not_found"
    assert await lost.closed_with() == 4004

    ws = await websockets.connect(server.ws_url(room_id))
    chatty = Client(ws)
    for n in range(5):
        await chatty.send("ping", ref=f"p{n}")
        error = await chatty.expect("error", ref=f"p{n}")
        assert error["code"] == "not_in_room"
    assert (await chatty.expect("error"))["code"] == "not_authenticated"
    assert await chatty.closed_with() == 4001

    host_c = await join(server, room_id, host)
    await host_c.send("end_room")
    assert await host_c.closed_with() == 4010
    late = await connect(server, room_id, host)
    assert (await late.expect("error"))["code"] == "room_ended"
    assert await late.closed_with() == 4010


async def test_a_flood_is_rate_limited_without_touching_anyone_else(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    host, room_id, host_c = live_room.host, live_room.room_id, live_room.host_c
    flooder = await make_account("Flooder")
    watcher = await make_account("Watcher", guest=True)
    flood_c = await join(server, room_id, flooder)
    watch_c = await join(server, room_id, watcher)
    store = server.services.store
    version, roles = await room_facts(store, room_id)

    garbage = [
        "{{{",
        '{"type": "nonsense"}',
        json.dumps({"type": "make_moderator", "user_id": flooder.user_id}),
        json.dumps({"type": "remove", "user_id": watcher.user_id}),
        '{"type": "end_room"}',
        '{"type": "ping"}',
    ]

    async def flood() -> None:
        for n in range(2000):
            await flood_c.ws.send(garbage[n % len(garbage)])

    async def host_acts() -> None:
        # Deltas keep reaching the others while the flood is being read.
        for muted in (True, False):
            await host_c.send("mute" if muted else "unmute", user_id=host.user_id)
            await watch_c.expect("mute_changed", user_id=host.user_id, self_muted=muted)

    await asyncio.gather(flood(), host_acts())
    errors = [m for m in await flood_c.quiet(1.0) if m["type"] == "error"]
    assert "rate_limited" in {e["code"] for e in errors}
    assert len(errors) < 200  # rate-limit errors are themselves limited, not one per frame
    await asyncio.sleep(2.5)  # the budget refills
    await still_up(flood_c, "after-flood")
    assert await room_facts(store, room_id) == (version + 2, roles)
    assert not any(m["type"] == "error" for m in watch_c.seen + host_c.seen)
