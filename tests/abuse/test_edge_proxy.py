"""Behind a trusted reverse proxy every client is counted by the address the proxy names, and
the proxy itself is not held to one client's share; anyone else's X-Forwarded-For is ignored."""

from __future__ import annotations

import httpx

from tests.conftest import AccountFactory, RunningServer, ServerFactory, create_room, join


async def guest_status(server: RunningServer, source: str, forwarded_for: str) -> int:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(base_url=server.base_url, transport=transport) as http:
        response = await http.post(
            "/api/auth/guest", json={"display_name": "Guest"},
            headers={"X-Forwarded-For": forwarded_for},
        )
    return response.status_code


async def test_clients_behind_a_trusted_proxy_are_counted_one_by_one(
    make_server: ServerFactory,
) -> None:
    server = await make_server(trusted_proxies="127.0.0.1", guest_tokens_per_address_per_hour=2)
    # Through the proxy (127.0.0.1): the client it names has its own allowance.
    assert [await guest_status(server, "127.0.0.1", "203.0.113.5") for _ in range(3)] == [
        200, 200, 429,
    ]
    assert await guest_status(server, "127.0.0.1", "203.0.113.6") == 200
    # Not a proxy (127.0.0.2): its header is ignored, so changing it buys nothing.
    statuses = [await guest_status(server, "127.0.0.2", f"198.51.100.{n}") for n in range(3)]
    assert statuses == [200, 200, 429]


async def test_a_trusted_proxy_may_carry_more_than_one_clients_share_of_sockets(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    server = await make_server(trusted_proxies="127.0.0.0/30", max_websockets_per_address=1)
    host = await make_account("Host")
    room_id = await create_room(server, host)
    guests = [await make_account(f"G{i}", guest=True) for i in range(3)]
    clients = [await join(server, room_id, account) for account in [host, *guests]]
    room = clients[-1].welcome["room"]
    assert {p["user_id"] for p in room["participants"]} == {host.user_id, guests[-1].user_id}
    assert {p["user_id"] for p in room["audience"]["page"]["listeners"]} == {
        account.user_id for account in guests
    }
