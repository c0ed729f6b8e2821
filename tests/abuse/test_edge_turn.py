"""TURN credentials are a key to a relay: nobody gets one without being in a live room, and the
ones handed out expire soon (but a participant can always get fresh ones)."""

from __future__ import annotations

import time

from tests.conftest import AccountFactory, ServerFactory, create_room, join

TURN = {"turn_urls": ("turn:127.0.0.1:3478?transport=udp",), "turn_secret": "turn-secret-x"}


def turn_of(servers: list[dict[str, object]]) -> dict[str, object]:
    return next(s for s in servers if "username" in s)


async def test_anonymous_config_carries_no_turn_credentials(make_server: ServerFactory) -> None:
    server = await make_server(stun_urls=("stun:127.0.0.1:3478",), **TURN)
    async with server.http() as http:
        anonymous = (await http.get("/api/config")).json()
        guest = (await http.post("/api/auth/guest", json={"display_name": "G"})).json()
    async with server.http(guest["token"]) as http:
        signed_in = (await http.get("/api/config")).json()
    for config in (anonymous, signed_in):
        assert config["ice_servers"] == [{"urls": ["stun:127.0.0.1:3478"]}]
        assert "turn-secret-x" not in str(config) and "credential" not in str(config)


async def test_participants_get_short_lived_turn_credentials_and_can_renew_them(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    server = await make_server(turn_ttl=120, **TURN)
    host = await make_account("Host")
    room_id = await create_room(server, host)
    client = await join(server, room_id, host)
    first = turn_of(client.welcome["ice_servers"])
    assert client.welcome["ice_servers_ttl"] == 120
    expiry = int(str(first["username"]).partition(":")[0])
    assert time.time() < expiry <= time.time() + 121

    await client.send("ice_servers", ref="renew")
    renewed = await client.expect("ice_servers", ref="renew")
    assert renewed["ice_servers_ttl"] == 120
    assert str(turn_of(renewed["ice_servers"])["username"]).endswith(f":{host.user_id}")
    await client.close()
