"""One address cannot hold all the room sockets: past its share of WebSockets the handshake is
refused with too_many_connections, a user elsewhere still joins, and a freed place is usable."""

from __future__ import annotations

import pytest
import websockets

from tests.conftest import Account, AccountFactory, Client, ServerFactory, create_room, join

ATTACKER = "127.0.0.2"


async def join_from(url: str, account: Account, source: str) -> Client:
    ws = await websockets.connect(url, local_addr=(source, 0))
    client = Client(ws, account.user_id)
    await client.send("join", token=account.token)
    client.welcome = await client.expect("welcome")
    return client


async def test_websockets_per_address_are_capped(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    server = await make_server(max_websockets_per_address=3)
    host = await make_account("Host")
    room_id = await create_room(server, host)
    url = server.ws_url(room_id)
    guests = [await make_account(f"G{i}", guest=True) for i in range(5)]
    held = [await join_from(url, guest, ATTACKER) for guest in guests[:3]]

    with pytest.raises(websockets.InvalidStatus) as refused:
        await join_from(url, guests[3], ATTACKER)
    assert refused.value.response.status_code == 429
    assert b'"too_many_connections"' in refused.value.response.body

    host_client = await join(server, room_id, host)  # another address: unaffected
    assert {p["user_id"] for p in host_client.welcome["room"]["participants"]} >= {
        g.user_id for g in guests[:3]
    }
    await held[0].close()
    await held[0].closed_with()
    again = await join_from(url, guests[4], ATTACKER)  # a freed place can be taken
    for client in (*held[1:], again, host_client):
        await client.close()
