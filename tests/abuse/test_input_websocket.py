"""Hostile WebSocket input: poison that Python's json module accepts (lone surrogates, integers
past the 4,300-digit limit, NaN) is a typed error on a socket that stays up; a ``ref`` is echoed
only when it is a valid short string; unreadable frames (binary, oversized) are paid for from
the message budget, and a socket that keeps sending them is closed with 4000. Nobody else in
the room notices any of it."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.conftest import (
    AccountFactory,
    Client,
    RunningServer,
    ServerFactory,
    connect,
    create_room,
    join,
)

BAD_FRAMES_CLOSE = 4000


async def still_up(client: Client, ref: str) -> None:
    await client.send("ping", ref=ref)
    await client.expect("pong", ref=ref)


async def test_poison_json_is_a_typed_error_and_the_socket_stays_up(
    server: RunningServer, make_account: AccountFactory
) -> None:
    # An account, not a guest: the room must still take its raised hand at the end (guests
    # only listen).
    host, guest = await make_account("Host"), await make_account("Poisoner")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    client = await join(server, room_id, guest)
    await host_c.expect("audience", count=1)

    long_ref = "r" * 65
    cases: list[tuple[str | bytes, str, str | None]] = [
        ('{"type": "ping", "ref": "\\ud800"}', "malformed_message", None),
        ('{"type": "reaction", "emoji": "\\udc00", "ref": "r1"}', "malformed_message", None),
        ('{"type": "ping", "ref": "r2", "\\udbff": 1}', "malformed_message", None),
        ('{"type": "ping", "ref": "r3", "n": ' + "7" * 4301 + "}", "malformed_message", None),
        ('{"type": "ping", "ref": "r4", "n": NaN}', "malformed_message", None),
        ('{"type": "ping", "ref": "r5", "n": ' + "[" * 5000 + "]" * 5000 + "}",
         "malformed_message", None),
        (json.dumps({"type": "ping", "ref": long_ref}), "invalid_field", None),
        (json.dumps({"type": "ping", "ref": {"nested": "ref"}}), "invalid_field", None),
        (json.dumps({"type": "ping", "ref": "x" * 60_000}), "invalid_field", None),
        (json.dumps({"type": "raise_hand", "ref": "r6", "k" * 60_000: 1}), "invalid_field", "r6"),
        (json.dumps({"type": "nope" * 10_000, "ref": "r7"}), "unknown_message_type", "r7"),
        (b'{"type": "ping", "ref": "\xed\xa0\x80"}', "malformed_message", None),
        (b"\xff\xfe\x00", "malformed_message", None),
    ]
    for n, (frame, code, ref) in enumerate(cases):
        await client.ws.send(frame)
        raw = await asyncio.wait_for(client.ws.recv(), 5)
        while json.loads(raw)["type"] == "audience":  # the room's count, whenever it changes
            raw = await asyncio.wait_for(client.ws.recv(), 5)
        error = json.loads(raw)
        assert (error["type"], error["code"], error["ref"]) == ("error", code, ref), (n, error)
        assert len(raw) < 1024, (n, len(raw))  # nothing of the input is echoed back
        await still_up(client, f"after-{n}")

    # A surrogate *pair*, escaped as ensure_ascii encoders write it, is a valid character.
    await client.ws.send('{"type": "ping", "ref": "\\ud83d\\ude00"}')
    assert (await client.expect("pong"))["ref"] == "\U0001f600"

    # The room did not notice, and still works for everyone.
    heard = await host_c.quiet(0.3)
    assert [m for m in heard if m["type"] not in ("active_speakers", "audience")] == []
    await client.send("raise_hand")
    await host_c.expect("hand_raised", user_id=guest.user_id)


async def test_unreadable_frames_are_paid_from_the_budget(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    server = await make_server(ws_messages_per_second=0.5, ws_burst=3, ws_bad_frames_limit=100)
    host = await make_account("Host")
    room_id = await create_room(server, host)
    client = await join(server, room_id, host)
    for n in range(12):
        await client.ws.send(b"binary" if n % 2 else "x" * (70 * 1024))
    errors = [m for m in await client.quiet(1.0) if m["type"] == "error"]
    codes = [e["code"] for e in errors]
    assert "rate_limited" in codes, codes
    # Only the burst was answered one by one; the rest were refused for the budget.
    assert len([c for c in codes if c in ("malformed_message", "message_too_large")]) <= 4, codes


@pytest.mark.parametrize("frame", [b"\x00binary", "x" * (70 * 1024)], ids=["binary", "oversized"])
async def test_a_socket_that_keeps_sending_unreadable_frames_is_closed(
    make_server: ServerFactory, make_account: AccountFactory, frame: str | bytes
) -> None:
    server = await make_server(ws_bad_frames_limit=3, ws_bad_frames_window=60)
    host, pest = await make_account("Host"), await make_account("Pest", guest=True)
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    pest_c = await join(server, room_id, pest)
    for _ in range(3):
        await pest_c.ws.send(frame)
    await still_up(pest_c, "three-is-allowed")
    await pest_c.ws.send(frame)
    assert await pest_c.closed_with() == BAD_FRAMES_CLOSE

    # Before joining too: unreadable frames do not buy time before the join.
    lurker = Client(await websockets.connect(server.ws_url(room_id)))
    for _ in range(4):
        await lurker.ws.send(frame)
    assert await lurker.closed_with() == BAD_FRAMES_CLOSE

    await still_up(host_c, "host")


async def test_a_text_frame_that_is_not_utf8_fails_only_that_socket(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, guest = await make_account("Host"), await make_account("Sender", guest=True)
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    sender = await join(server, room_id, guest)
    # RFC 6455 8.1: invalid UTF-8 in a text frame fails the connection (1007). Only that one.
    await sender.ws.send(b'{"type": "ping", "ref": "\xff"}', text=True)
    assert await sender.closed_with() == 1007
    again = await connect(server, room_id, guest)
    assert (await again.expect("welcome"))["resumed"]
    await still_up(host_c, "host")


async def test_hostile_room_paths_are_refused_as_unknown_rooms(
    server: RunningServer, make_account: AccountFactory
) -> None:
    user = await make_account("Wanderer")
    for room_id in ("%ED%A0%80", "%FF%FE", "x" * 5000, "%00"):
        client = await connect(server, room_id, user)
        assert (await client.expect("error"))["code"] == "room_not_found", room_id[:20]
        assert await client.closed_with() == 4004
