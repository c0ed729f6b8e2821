"""Slow clients never slow the room (issue 12, item 5).

A participant that stops reading while the room keeps changing is closed with 4008 once more
than ``AUDIO_ROOMS_WS_SEND_BUFFER_BYTES`` wait for it; everyone else keeps getting every delta
as it happens; and when it comes back within the grace period it resumes with a fresh snapshot
of everything it missed. Real server, real sockets: the stalled client's socket has a tiny
receive window and its reader is paused, so the server's buffers fill as they would for a
phone that went into a tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets

from audio_rooms.signalling import connection as connection_module
from tests.conftest import (
    Account,
    AccountFactory,
    Client,
    RunningServer,
    ServerFactory,
    create_room,
    eventually,
    join,
)

SEND_BUFFER = 64 * 1024  # the smallest bound the settings allow: fills in a few hundred deltas
MAX_TOGGLES = 4000  # far more deltas than fill the bound and every buffer before it
BATCH = 50
PROMPT = 5.0  # generous: a delta later than this to a reading client is a failure


def _tiny_receive_buffer_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Set before connecting, so the window the server sees stays small.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


@dataclass
class Drain:
    """Reads a client's messages in the background (the host must keep reading too, or it
    would become a slow client itself)."""

    client: Client
    task: asyncio.Task[None] | None = None
    versions: list[int] = field(default_factory=list)

    async def _run(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                message = await self.client.recv(timeout=3600)
                if message["type"] == "mute_changed":
                    self.versions.append(message["version"])

    def __enter__(self) -> Drain:
        self.task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()


@dataclass
class StalledRoom:
    server: RunningServer
    room_id: str
    host: Account
    host_c: Client
    reader_c: Client
    staller: Account
    stalled: Client


@pytest.fixture
async def stalled_room(
    make_server: ServerFactory, make_account: AccountFactory
) -> AsyncIterator[StalledRoom]:
    # A generous inbound budget lets the host make deltas faster than a stalled client drains;
    # a long grace period leaves time to come back.
    server = await make_server(ws_messages_per_second=5000, ws_burst=5000, grace_period=60.0,
                               ws_send_buffer_bytes=SEND_BUFFER)
    host, reader = await make_account("Host"), await make_account("Reader", guest=True)
    staller = await make_account("Staller", guest=True)
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    reader_c = await join(server, room_id, reader)
    ws = await websockets.connect(
        server.ws_url(room_id), sock=_tiny_receive_buffer_socket(server.port), max_queue=1
    )
    stalled = Client(ws, staller.user_id)
    await stalled.send("join", token=staller.token)
    stalled.welcome = await stalled.expect("welcome")
    await reader_c.expect("audience", count=2)  # the reader and the staller listen
    ws.transport.pause_reading()
    yield StalledRoom(server, room_id, host, host_c, reader_c, staller, stalled)
    with contextlib.suppress(Exception):
        ws.transport.abort()


async def toggle_until_dropped(room: StalledRoom) -> tuple[int, list[int]]:
    """The host toggles its mute until the server drops the stalled client; the reader must
    get every delta, each batch within :data:`PROMPT`. Returns the toggles made and the
    versions the reader saw."""
    hub = room.server.services.hub
    seen: list[int] = []
    toggles = 0
    with Drain(room.host_c):
        while toggles < MAX_TOGGLES:
            for _ in range(BATCH):
                await room.host_c.send("mute" if toggles % 2 == 0 else "unmute",
                                       user_id=room.host.user_id)
                toggles += 1
            for _ in range(BATCH):
                message = await room.reader_c.expect("mute_changed", timeout=PROMPT)
                seen.append(message["version"])
            held = hub.connection(room.room_id, room.staller.user_id)
            if held is None or held.closing:
                break
    assert toggles < MAX_TOGGLES, "the stalled client was never dropped"
    # Every delta reached the reader, in order, none missing.
    assert seen == list(range(seen[0], seen[0] + len(seen))), seen
    return toggles, seen


async def test_a_stalled_client_is_dropped_with_4008_and_resumes_with_a_fresh_snapshot(
    stalled_room: StalledRoom,
) -> None:
    room = stalled_room
    toggles, seen = await toggle_until_dropped(room)
    # Dropped by the bound, not by chance: a few hundred deltas of ~150 bytes fill 64 KiB and
    # the (capped) kernel buffers before it; far fewer than a megabyte's worth.
    assert toggles * 150 < 16 * SEND_BUFFER, toggles

    # The reader is still served at once, while the dropped client has not read a byte.
    await room.host_c.send("unmute" if toggles % 2 else "mute", user_id=room.host.user_id)
    toggles += 1
    last = await room.reader_c.expect("mute_changed", timeout=PROMPT)
    assert last["version"] == seen[-1] + 1

    # When it reads again it finds what was buffered before the drop, in order, then 4008.
    room.stalled.ws.transport.resume_reading()
    versions: list[int] = []
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            message = await room.stalled.recv(PROMPT)
            if message["type"] == "mute_changed":
                versions.append(message["version"])
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
    assert versions == list(range(versions[0], versions[0] + len(versions)))
    assert versions[-1] < last["version"]  # it did miss deltas
    # The operator sees it: one socket closed as too slow.
    async def counted() -> bool:
        async with room.server.http() as http:
            metrics = (await http.get("/metrics")).text
        return 'audio_rooms_websocket_closes_total{code="4008"} 1.0' in metrics

    await eventually(counted, within=5)

    # It comes back within the grace period: resumed, with the room as it is now.
    back = await join(room.server, room.room_id, room.staller)
    welcome: dict[str, Any] = back.welcome
    assert welcome["resumed"] is True
    assert welcome["version"] == last["version"]
    by_id = {p["user_id"]: p for p in welcome["room"]["participants"]}
    assert by_id[room.host.user_id]["self_muted"] == last["self_muted"]
    assert room.staller.user_id in by_id
    # And it follows the room from there.
    with Drain(room.host_c):
        await room.host_c.send("unmute" if toggles % 2 else "mute", user_id=room.host.user_id)
        delta = await back.expect("mute_changed", timeout=PROMPT)
    assert delta["version"] == last["version"] + 1
    await back.close()


async def test_a_client_that_never_reads_again_is_cut_off_and_freed(
    stalled_room: StalledRoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection_module, "CLOSE_TIMEOUT", 1.0)
    room = stalled_room
    hub = room.server.services.hub
    await toggle_until_dropped(room)
    # It never reads its close: within the close timeout the server aborts the connection,
    # frees what was buffered for it and detaches it (its grace period runs from there).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0 + PROMPT
    while hub.connection(room.room_id, room.staller.user_id) is not None:
        assert loop.time() < deadline, "the stalled connection was never let go"
        await asyncio.sleep(0.05)
    # The socket itself is gone from the server, with what was buffered for it.
    port = room.stalled.ws.transport.get_extra_info("sockname")[1]
    while any(getattr(p, "client", None) == ("127.0.0.1", port)
              for p in room.server._server.server_state.connections):
        assert loop.time() < deadline, "the stalled socket was never closed"
        await asyncio.sleep(0.05)
    # Still in the room (it may come back), and the room goes on for everyone else.
    store = room.server.services.store
    assert await store.member(room.room_id, room.staller.user_id) is not None
    with Drain(room.host_c):
        await room.host_c.send("ping", ref="after")
        await room.reader_c.send("ping", ref="reader-after")
        await room.reader_c.expect("pong", ref="reader-after", timeout=PROMPT)
    # What it finds when it reads at last: a connection that was cut, not a 4008.
    room.stalled.ws.transport.resume_reading()
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await room.stalled.recv(PROMPT)
