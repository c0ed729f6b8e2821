"""The shared-frame fast path: taken with the server's own uvicorn configuration, and frames
that any WebSocket client reads back as the same messages."""

from __future__ import annotations

import json

from audio_rooms.signalling.frames import text_frame
from audio_rooms.signalling.outbound import MediaAnswer
from tests.conftest import AccountFactory, RunningServer, create_room, join


def test_frames_of_every_length_class() -> None:
    for size in (0, 125, 126, 65535, 65536, 70000):
        frame = text_frame(b"x" * size)
        assert frame[0] == 0x81
        if size < 126:
            assert frame[1] == size and len(frame) == size + 2
        elif size < 65536:
            assert frame[1] == 126 and int.from_bytes(frame[2:4]) == size
        else:
            assert frame[1] == 127 and int.from_bytes(frame[2:10]) == size


async def test_fast_path_is_taken_and_clients_read_it(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, ana = await make_account("Host"), await make_account("Ana")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    ana_c = await join(server, room_id, ana)
    hub = server.services.hub
    # If an upgrade of uvicorn or websockets moved what frames.py relies on, this fails: the
    # server still works (ASGI path), but fan-out is an order of magnitude slower.
    connections = hub.connections(room_id)
    assert len(connections) == 2 and all(c.shares_frames for c in connections)
    big = "ن" * 40_000  # a multi-byte, 16-bit-length frame through the same path
    await host_c.send("reaction", emoji="🔥")
    reactions = await ana_c.expect("reactions")
    assert reactions["counts"] == {"🔥": 1}
    ana_connection = hub.connection(room_id, ana.user_id)
    assert ana_connection is not None
    ana_connection.send(MediaAnswer(sdp=big, ref="probe"))
    probe = await ana_c.expect("media_answer")
    assert probe["sdp"] == big
    assert json.loads(json.dumps(probe)) == probe
