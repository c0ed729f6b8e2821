"""Redis going away is reported as service_unavailable, never a crash; service comes back."""

from __future__ import annotations

from pathlib import Path

from audio_rooms.state.embedded import EmbeddedRedis
from tests.conftest import Account, ServerFactory, connect, create_room, free_port, join


async def test_redis_outage_is_an_error_not_a_crash(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    port = free_port()
    redis = EmbeddedRedis(tmp_path / "own-redis", port=port, persist=True)
    await redis.start()
    try:
        server = await make_server(redis_url=f"redis://127.0.0.1:{port}/0")
        async with server.http() as http:
            body = (await http.post("/api/auth/signup", json={
                "handle": "outage", "display_name": "O", "password": "long enough pass"})).json()
        host = Account(body["user"]["id"], body["token"], "O")
        room_id = await create_room(server, host)
        host_c = await join(server, room_id, host)

        await redis.stop()
        await host_c.send("mute", user_id=host.user_id, ref="m1")
        error = await host_c.expect("error", ref="m1", timeout=20)
        assert error["code"] == "service_unavailable"
        async with server.http() as http:
            ready = await http.get("/readyz")
            listed = await http.get("/api/rooms")
        assert ready.status_code == 503
        assert listed.status_code == 503 and listed.json()["code"] == "service_unavailable"
        refused = await connect(server, room_id, host)
        assert (await refused.expect("error", timeout=20))["code"] == "service_unavailable"

        await redis.start()
        await host_c.send("mute", user_id=host.user_id, ref="m2")
        assert (await host_c.expect("ack", ref="m2", timeout=20))["version"] > 0
    finally:
        await redis.stop()
