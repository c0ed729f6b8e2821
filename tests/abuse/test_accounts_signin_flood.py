"""Sign-in floods: many handles from one address, and more hashing than the server will do.

The flooding client connects from 127.0.0.2, so the server sees it as another address than the
real user on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.conftest import Account, RunningServer, ServerFactory, create_room, join

PASSWORD = "correct horse battery"


def client_from(server: RunningServer, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url,
        transport=httpx.AsyncHTTPTransport(
            local_address=address, limits=httpx.Limits(max_connections=200)
        ),
        timeout=30,
    )


async def flood(server: RunningServer, address: str, attempts: int) -> Counter[int]:
    async with client_from(server, address) as http:
        responses = await asyncio.gather(*(
            http.post("/api/auth/signin", json={"handle": f"victim{n}", "password": "guess1234"})
            for n in range(attempts)
        ))
    for response in responses:
        assert response.headers["content-type"].startswith("application/json")
        if response.status_code == 429:
            assert response.json()["code"] == "rate_limited"
            assert int(response.headers["retry-after"]) >= 1
    return Counter(r.status_code for r in responses)


async def test_a_real_user_signs_in_and_joins_during_a_flood_of_handles(
    make_server: ServerFactory,
) -> None:
    # The connection cap per address would cut the flood off before sign-in sees it; this test
    # is about the sign-in limits behind it.
    server = await make_server(
        login_attempts_per_address_per_minute=20, password_hash_concurrency=2,
        max_connections_per_address=1000,
    )
    async with server.http() as http:
        created = await http.post("/api/auth/signup", json={
            "handle": "sara", "display_name": "Sara", "password": PASSWORD, "locale": "en"})
        assert created.status_code == 201, created.text
        body = created.json()
    room_id = await create_room(server, Account(body["user"]["id"], body["token"], "Sara"))

    async def real_user() -> str:
        await asyncio.sleep(0.05)  # the flood is under way
        async with server.http() as http:
            response = await http.post(
                "/api/auth/signin", json={"handle": "sara", "password": PASSWORD}
            )
        assert response.status_code == 200, response.text
        joined = await join(server, room_id, Account(body["user"]["id"], response.json()["token"],
                                                     "Sara"))
        await joined.close()
        return str(joined.welcome["you"]["user_id"])

    statuses, joined_as = await asyncio.gather(flood(server, "127.0.0.2", 150), real_user())

    assert joined_as == "sara@localhost"
    assert statuses[429] >= 120, statuses
    assert set(statuses) <= {401, 429}, statuses
    assert statuses[401] <= 20


async def test_one_address_is_limited_across_handles(make_server: ServerFactory) -> None:
    server = await make_server(login_attempts_per_address_per_minute=5)
    async with client_from(server, "127.0.0.2") as http:
        for n in range(5):
            wrong = await http.post(
                "/api/auth/signin", json={"handle": f"someone{n}", "password": "guess1234"}
            )
            assert wrong.status_code == 401
        limited = await http.post(
            "/api/auth/signin", json={"handle": "someone_else", "password": "guess1234"}
        )
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    async with server.http() as http:  # another address is not held back
        other = await http.post("/api/auth/signin", json={"handle": "nobody", "password": "x" * 9})
    assert other.status_code == 401


async def test_hashing_refuses_past_its_queue_instead_of_piling_up(
    make_server: ServerFactory,
) -> None:
    server = await make_server(
        password_hash_concurrency=1, password_hash_queue=1, password_hashes_per_address=1
    )
    async with server.http() as http:  # guesses at a real account's password are hashed
        created = await http.post("/api/auth/signup", json={
            "handle": "target", "display_name": "Target", "password": PASSWORD})
        assert created.status_code == 201, created.text
    addresses = [f"127.0.0.{n}" for n in range(2, 12)]
    clients = [client_from(server, a) for a in addresses]
    try:
        responses = await asyncio.gather(*(
            http.post("/api/auth/signin", json={"handle": "target", "password": "guess1234"})
            for http in clients
        ))
    finally:
        for http in clients:
            await http.aclose()
    busy = [r for r in responses if r.status_code == 503]
    assert busy, [r.status_code for r in responses]
    assert all(r.json()["code"] == "busy" and int(r.headers["retry-after"]) >= 1 for r in busy)
    assert {r.status_code for r in responses} <= {401, 503}
    async with server.http() as http:  # once the burst is over, sign-in works again
        again = await http.post("/api/auth/signin", json={"handle": "nobody", "password": "x" * 9})
        metrics = (await http.get("/metrics")).text
    assert again.status_code == 401
    assert f'audio_rooms_password_hashes_refused_total{{reason="busy"}} {len(busy)}.0' in metrics
    assert "audio_rooms_password_hashes 0.0" in metrics


async def test_made_up_handles_from_many_addresses_leave_hashing_to_real_users(
    make_server: ServerFactory,
) -> None:
    # Unknown handles are answered without hashing (in the time a hash takes), so a flood of
    # made-up handles spread over many addresses cannot fill the pool: a real user signs in.
    server = await make_server(
        password_hash_concurrency=1, password_hash_queue=1, password_hashes_per_address=1,
        max_connections_per_address=1000,
    )
    async with server.http() as http:
        created = await http.post("/api/auth/signup", json={
            "handle": "sara", "display_name": "Sara", "password": PASSWORD})
        assert created.status_code == 201, created.text
    clients = [client_from(server, f"127.0.0.{n}") for n in range(2, 22)]
    try:
        floods = asyncio.gather(*(
            http.post("/api/auth/signin", json={"handle": f"nobody{i}{n}", "password": "guess1234"})
            for i, http in enumerate(clients) for n in range(5)
        ))
        await asyncio.sleep(0.05)  # the flood is under way
        async with server.http() as http:
            real = await http.post(
                "/api/auth/signin", json={"handle": "sara", "password": PASSWORD}
            )
        statuses = Counter(r.status_code for r in await floods)
    finally:
        for http in clients:
            await http.aclose()
    assert real.status_code == 200, real.text
    assert statuses[503] == 0 and statuses[401] > 0, statuses
