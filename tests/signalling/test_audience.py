"""The audience tier as people in a room see it, over real sockets on two nodes sharing Redis:
listeners are counted, not announced; counts, samples and pages agree on both nodes within a
tick; stage events still reach everyone at once and in order; the capacity holds."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import (
    Account,
    AccountFactory,
    Client,
    RunningServer,
    ServerFactory,
    connect,
    create_room,
    join,
    read_audience,
)

LISTENERS = 24


async def guest(server: RunningServer, name: str, source: str) -> Account:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(base_url=server.base_url, transport=transport) as http:
        response = await http.post("/api/auth/guest", json={"display_name": name})
    assert response.status_code == 200, response.text
    body = response.json()
    return Account(body["user"]["id"], body["token"], name)


async def count_reaches(client: Client, count: int, timeout: float = 5.0) -> dict[str, Any]:
    """The first ``audience`` message with this count (the welcome's may already say it)."""
    if client.welcome["room"]["audience"]["count"] == count and not [
        m for m in client.seen if m["type"] == "audience"
    ]:
        return dict(client.welcome["room"]["audience"])
    return await client.expect("audience", timeout=timeout, count=count)


async def test_two_nodes_agree_on_count_sample_and_pages_and_stage_events_reach_all(
    make_server: ServerFactory, make_account: AccountFactory, server: RunningServer
) -> None:
    second = await make_server()
    host = await make_account("Host")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    watcher = await make_account("Watcher")
    watcher_c = await join(second, room_id, watcher)
    guests = [await guest(server, f"Guest {n}", f"127.0.0.{10 + n % 4}")
              for n in range(LISTENERS)]
    clients = [
        await join(server if n % 2 else second, room_id, g, source=f"127.0.0.{10 + n % 4}")
        for n, g in enumerate(guests)
    ]
    # Nobody was told of anyone's join one by one...
    for client in (host_c, watcher_c, *clients[:3]):
        assert not [m for m in client.seen if m["type"] == "participant_joined"]
    # ...and within a tick both nodes say the same count: the guests and the watcher.
    on_first = await count_reaches(host_c, LISTENERS + 1)
    on_second = await count_reaches(clients[0], LISTENERS + 1)
    assert on_first["sample"] == on_second["sample"]
    assert len(on_first["sample"]) == 12
    # The newest listener is the first face (nobody here is followed by a moderator).
    assert on_first["sample"][0]["user_id"] == guests[-1].user_id

    # The audience read page by page, from either node, in join order.
    pages = await read_audience(second.base_url, room_id, 10)
    async with httpx.AsyncClient(base_url=second.base_url) as http:
        refused = await http.get(f"/api/rooms/{room_id}/audience", params={"cursor": "x:"})
    assert pages == [watcher.user_id, *[g.user_id for g in guests]]
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_field"
    await clients[5].send("audience_page", cursor=None, limit=5, ref="pg")
    first_page = await clients[5].expect("audience_page", ref="pg")
    assert [p["user_id"] for p in first_page["listeners"]] == pages[:5]
    assert first_page["count"] == LISTENERS + 1

    # A stage event reaches every listener on both nodes, with the same version.
    await host_c.send("mute", user_id=host.user_id, ref="m")
    acked = await host_c.expect("ack", ref="m")
    for client in (watcher_c, *clients):
        muted = await client.expect("mute_changed", user_id=host.user_id)
        assert muted["version"] == acked["version"]

    # The watcher (an account) raises a hand: the host gets who it is; listeners hear nothing.
    await watcher_c.send("raise_hand")
    hand = await host_c.expect("hand_raised", user_id=watcher.user_id)
    assert hand["participant"]["display_name"] == "Watcher"
    await host_c.send("invite_to_speak", user_id=watcher.user_id)
    await watcher_c.expect("invited")
    await watcher_c.send("accept_invitation")
    for client in (host_c, clients[0], clients[1]):
        staged = await client.expect("role_changed", user_id=watcher.user_id, role="speaker")
        assert staged["participant"]["display_name"] == "Watcher"
    assert not [m for m in clients[0].seen if m["type"] in ("hand_raised", "invited")]
    # Off the audience: one fewer listening, everywhere.
    await count_reaches(host_c, LISTENERS)
    await count_reaches(clients[1], LISTENERS)

    # Listeners leaving are counted down, not announced.
    for client in clients[:4]:
        await client.send("leave")
        await client.closed_with()
    await count_reaches(host_c, LISTENERS - 4)
    await count_reaches(clients[5], LISTENERS - 4)
    assert not [m for m in host_c.seen if m["type"] == "participant_left"]


async def test_a_listener_resumes_and_a_removed_one_stays_out(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, ana = await make_account("Host"), await make_account("Ana")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    ana_c = await join(server, room_id, ana)
    assert ana_c.welcome["resumed"] is False
    assert ana_c.welcome["you"]["role"] == "listener"
    # Yourself, always, in your own participant list.
    assert ana.user_id in {p["user_id"] for p in ana_c.welcome["room"]["participants"]}
    ana_c.ws.transport.abort()  # a phone losing its network
    again = await join(server, room_id, ana)
    assert again.welcome["resumed"] is True
    assert again.welcome["room"]["audience"]["count"] == 1

    await host_c.send("remove", user_id=ana.user_id)
    await again.expect("participant_removed", user_id=ana.user_id)
    assert await again.closed_with() == 4011
    await count_reaches(host_c, 0)
    back = await join_refused(server, room_id, ana)
    assert back == ("removed", 4011)


async def join_refused(server: RunningServer, room_id: str, account: Account
                       ) -> tuple[str, int | None]:
    client = await connect(server, room_id, account)
    error = await client.expect("error")
    return error["code"], await client.closed_with()


async def test_the_capacity_holds_when_listeners_rush_in_on_two_nodes(
    make_server: ServerFactory, make_account: AccountFactory, server: RunningServer
) -> None:
    small = {"max_listeners": 10}
    first, second = await make_server(**small), await make_server(**small)
    host = await make_account("Host")
    room_id = await create_room(first, host)
    await join(first, room_id, host)
    guests = [await guest(first, f"Rush {n}", f"127.0.0.{20 + n % 4}") for n in range(16)]

    async def outcome(n: int, account: Account) -> str:
        client = await connect(first if n % 2 else second, room_id, account,
                               source=f"127.0.0.{20 + n % 4}")
        while True:
            message = await client.recv(10)
            if message["type"] == "welcome":
                return "in"
            if message["type"] == "error":
                return str(message["code"])

    results = await asyncio.gather(*(outcome(n, g) for n, g in enumerate(guests)))
    assert results.count("in") == 10 and results.count("room_full") == 6
    async with httpx.AsyncClient(base_url=second.base_url) as http:
        body = (await http.get(f"/api/rooms/{room_id}")).json()["room"]
    assert body["listener_count"] == 10
