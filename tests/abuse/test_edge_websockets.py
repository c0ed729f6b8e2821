"""One address cannot hold all the room sockets: past its share of WebSockets the handshake is
refused with too_many_connections, a user elsewhere still joins, and a freed place is usable."""

from __future__ import annotations

import pytest
import websockets

from tests.conftest import AccountFactory, ServerFactory, create_room, join

ATTACKER = "127.0.0.2"


async def test_websockets_per_address_are_capped(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    server = await make_server(max_websockets_per_address=3)
    host = await make_account("Host")
    room_id = await create_room(server, host)
    guests = [await make_account(f"G{i}", guest=True) for i in range(5)]
    held = [await join(server, room_id, guest, source=ATTACKER) for guest in guests[:3]]

    with pytest.raises(websockets.InvalidStatus) as refused:
        await join(server, room_id, guests[3], source=ATTACKER)
    assert refused.value.response.status_code == 429
    assert b'"too_many_connections"' in refused.value.response.body

    host_client = await join(server, room_id, host)  # another address: unaffected
    listening = host_client.welcome["room"]["audience"]["page"]["listeners"]
    assert {p["user_id"] for p in listening} >= {g.user_id for g in guests[:3]}
    await held[0].close()
    await held[0].closed_with()
    again = await join(server, room_id, guests[4], source=ATTACKER)  # a freed place can be taken
    for client in (*held[1:], again, host_client):
        await client.close()
