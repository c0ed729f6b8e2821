"""Sign-up abuse: common passwords, sign-up floods from one address, names that hide or lie."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningServer, ServerFactory


async def sign_up(
    http: httpx.AsyncClient, handle: str, password: str = "correct horse battery",
    name: str = "Sara",
) -> httpx.Response:
    return await http.post("/api/auth/signup", json={
        "handle": handle, "display_name": name, "password": password, "locale": "en"})


@pytest.mark.parametrize("password", ["password123", "iloveyou1", "qwertyuiop", "sara12345"])
async def test_common_passwords_are_refused(server: RunningServer, password: str) -> None:
    async with server.http() as http:
        refused = await sign_up(http, "sara", password)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "weak_password"
        assert refused.json()["details"] == {"field": "password"}
        accepted = await sign_up(http, "sara", "saffron kettle drum")
        assert accepted.status_code == 201, accepted.text


async def test_one_address_cannot_sign_up_without_end(make_server: ServerFactory) -> None:
    server = await make_server(signups_per_address_per_hour=3)
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=10,
        transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2"),
    ) as http:
        for n in range(3):
            assert (await sign_up(http, f"bot{n}")).status_code == 201
        limited = await sign_up(http, "bot3")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    async with server.http() as http:
        assert (await sign_up(http, "sara")).status_code == 201


@pytest.mark.parametrize(
    "name", ["\u200b\u200b", "\u3164", " \u2800 ", "\u202e\u2066", "\u200c", "\u0301"]
)
async def test_invisible_names_are_refused(server: RunningServer, name: str) -> None:
    async with server.http() as http:
        user = await sign_up(http, "sara", name=name)
        guest = await http.post("/api/auth/guest", json={"display_name": name})
    for response in (user, guest):
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_field"
        assert response.json()["details"] == {"field": "display_name"}


async def test_format_characters_are_stripped_but_persian_zwnj_stays(
    server: RunningServer,
) -> None:
    async with server.http() as http:
        user = await sign_up(http, "sara", name="\u202eمی\u200cخواهم\u200b\u2066")
        guest = await http.post("/api/auth/guest", json={"display_name": "Ni\u200dma\ufeff"})
        assert user.status_code == 201, user.text
        assert user.json()["user"]["display_name"] == "می\u200cخواهم"
        assert guest.json()["user"]["display_name"] == "Nima"
    async with server.http(user.json()["token"]) as http:
        me = (await http.get("/api/auth/me")).json()
    assert me["user"]["display_name"] == "می\u200cخواهم"
