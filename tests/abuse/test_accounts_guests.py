"""Guest tokens: one address cannot mint them without end, and signing out ends one."""

from __future__ import annotations

import httpx

from tests.conftest import (
    Account,
    AccountFactory,
    RunningServer,
    ServerFactory,
    connect,
    create_room,
)


async def test_guest_tokens_are_capped_per_address(make_server: ServerFactory) -> None:
    server = await make_server(guest_tokens_per_address_per_hour=3)
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=10,
        transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2"),
    ) as http:
        for n in range(3):
            minted = await http.post("/api/auth/guest", json={"display_name": f"G{n}"})
            assert minted.status_code == 200, minted.text
        refused = await http.post("/api/auth/guest", json={"display_name": "G3"})
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert "token" not in refused.json()
    async with server.http() as http:  # someone else still gets in
        assert (await http.post("/api/auth/guest", json={"display_name": "Nima"})).is_success


async def test_guest_sign_out_revokes_the_token(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host)
    async with server.http() as http:
        entered = (await http.post("/api/auth/guest", json={"display_name": "Nima"})).json()
    guest = Account(entered["user"]["id"], entered["token"], "Nima")
    async with server.http(guest.token) as http:
        assert (await http.get("/api/auth/me")).status_code == 200
        assert (await http.post("/api/auth/signout")).status_code == 204
        assert (await http.get("/api/auth/me")).json()["code"] == "not_authenticated"
    refused = await connect(server, room_id, guest)
    assert (await refused.expect("error"))["code"] == "not_authenticated"
    assert await refused.closed_with() == 4001
