"""The lobby under room spam: paged, busiest rooms first, and a cap on how many rooms one
account or one address may open."""

from __future__ import annotations

from typing import Any

import httpx

from audio_rooms.state import keys
from tests.conftest import (
    AccountFactory,
    RunningServer,
    ServerFactory,
    create_room,
    eventually,
    join,
)


async def page(server: RunningServer, query: str) -> dict[str, Any]:
    async with server.http() as http:
        response = await http.get(f"/api/rooms?{query}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_lobby_pages_rank_busy_rooms_above_empty_spam(
    server: RunningServer, make_account: AccountFactory
) -> None:
    spammer = await make_account("Spammer")
    spam = [await create_room(server, spammer, title=f"Spam {i}") for i in range(4)]
    busy_hosts = [await make_account(f"Host {i}") for i in range(2)]
    busy = [await create_room(server, h, title=f"Real {i}") for i, h in enumerate(busy_hosts)]
    # Real rooms have people in them: three in the first, two in the second.
    await join(server, busy[0], busy_hosts[0])
    await join(server, busy[1], busy_hosts[1])
    for i in range(2):
        await join(server, busy[0], await make_account(f"Fan {i}", guest=True))
    await join(server, busy[1], await make_account("Fan 9", guest=True))

    # The ranking counts the audience once a tick (AUDIO_ROOMS_AUDIENCE_TICK).
    async def ranked() -> bool:
        return [r["id"] for r in (await page(server, "limit=2"))["rooms"]] == busy

    await eventually(ranked, within=5)
    first = await page(server, "limit=2")
    assert [r["id"] for r in first["rooms"]] == busy
    assert first["rooms"][0]["listener_count"] == 2
    assert first["next_cursor"]
    seen = [r["id"] for r in first["rooms"]]
    cursor = first["next_cursor"]
    while cursor:
        following = await page(server, f"limit=2&cursor={cursor}")
        seen += [r["id"] for r in following["rooms"]]
        cursor = following["next_cursor"]
    assert sorted(seen) == sorted(busy + spam) and len(seen) == len(set(seen))

    async with server.http() as http:
        for bad in ("limit=0", "limit=100000", "cursor=-1", "cursor=abc", "limit=1e3"):
            response = await http.get(f"/api/rooms?{bad}")
            assert response.status_code == 400, bad
            assert response.json()["code"] == "invalid_field"


async def test_scheduled_rooms_are_paged(
    server: RunningServer, make_account: AccountFactory
) -> None:
    hosts = [await make_account(f"Host {i}") for i in range(3)]
    for i, host in enumerate(hosts):
        await create_room(server, host, title=f"Later {i}",
                          scheduled_start=f"2099-01-0{i + 1}T10:00:00+00:00")
    first = await page(server, "status=scheduled&limit=2")
    assert [r["title"] for r in first["rooms"]] == ["Later 0", "Later 1"]
    rest = await page(server, f"status=scheduled&limit=2&cursor={first['next_cursor']}")
    assert [r["title"] for r in rest["rooms"]] == ["Later 2"] and rest["next_cursor"] is None


async def test_rooms_per_account_are_capped(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    server = await make_server(max_rooms_per_account=2)
    host = await make_account("Host")
    first = await create_room(server, host)
    await create_room(server, host, scheduled_start="2099-01-01T10:00:00+00:00")
    async with server.http(host.token) as http:
        refused = await http.post("/api/rooms", json={"title": "Third"})
    assert refused.status_code == 409 and refused.json()["code"] == "too_many_rooms"
    # Ending a room gives its place back.
    host_c = await join(server, first, host)
    await host_c.send("end_room")
    assert await host_c.closed_with() == 4010
    await create_room(server, host)


async def test_rooms_per_address_are_capped(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    server = await make_server(rooms_per_address_per_hour=3)
    accounts = [await make_account(f"Sock {i}") for i in range(4)]
    for account in accounts[:3]:
        await create_room(server, account)
    async with server.http(accounts[3].token) as http:
        refused = await http.post("/api/rooms", json={"title": "One too many"})
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    # Someone else, elsewhere, still opens a room.
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(
        base_url=server.base_url, transport=transport,
        headers={"Authorization": f"Bearer {accounts[3].token}"},
    ) as http:
        allowed = await http.post("/api/rooms", json={"title": "From elsewhere"})
    assert allowed.status_code == 201, allowed.text


async def test_rooms_live_before_an_upgrade_are_listed_after_it(
    server: RunningServer, make_server: ServerFactory, make_account: AccountFactory, redis: Any
) -> None:
    # A room that went live before the lobby ranked rooms has no place in the ranking; a server
    # started on that Redis gives it one, so the room is not missing from the lobby.
    old = server
    host = await make_account("Host")
    room_id = await create_room(old, host, title="From before")
    await redis.zrem(keys.LIVE_ACTIVITY, room_id)
    assert room_id not in [r["id"] for r in (await page(old, "limit=50"))["rooms"]]
    new = await make_server()
    assert room_id in [r["id"] for r in (await page(new, "limit=50"))["rooms"]]
