"""Another site's page cannot act as a signed-in visitor: a cross-origin WebSocket or
cookie-authenticated POST is refused, bodies must be JSON, and the server's own pages (and
programs with a bearer token) work as before."""

from __future__ import annotations

import httpx
import pytest
import websockets
from websockets.typing import Origin

from audio_rooms.settings import SettingsError, load_settings
from tests.conftest import (
    AccountFactory,
    Client,
    RunningServer,
    ServerFactory,
    create_room,
)

EVIL = "http://evil.example"


async def ws_join(server: RunningServer, room_id: str, token: str, origin: str) -> Client:
    ws = await websockets.connect(server.ws_url(room_id), origin=Origin(origin))
    client = Client(ws)
    await client.send("join", token=token)
    client.welcome = await client.expect("welcome")
    return client


async def test_cross_origin_websocket_is_refused(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host)
    for origin in (EVIL, "null", f"http://127.0.0.1:{server.port + 1}"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await ws_join(server, room_id, host.token, origin)
        assert refused.value.response.status_code == 403
        assert b'"cross_origin"' in refused.value.response.body
    same = await ws_join(server, room_id, host.token, server.base_url)
    assert same.welcome["you"]["user_id"] == host.user_id
    await same.close()


async def test_cross_origin_cookie_post_is_refused(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as browser:
        browser.cookies.set("ar_session", host.token)
        forged = await browser.post("/api/rooms", json={"title": "Forged"},
                                    headers={"Origin": EVIL})
        sibling = await browser.post("/api/rooms", json={"title": "Forged"},
                                     headers={"Sec-Fetch-Site": "same-site"})
        sign_out = await browser.post("/api/auth/signout", headers={"Origin": "null"})
        assert (await browser.get("/api/auth/me")).status_code == 200  # still signed in
        own = await browser.post("/api/rooms", json={"title": "Mine"},
                                 headers={"Origin": server.base_url})
    for refused in (forged, sibling, sign_out):
        assert refused.status_code == 403 and refused.json()["code"] == "cross_origin"
    assert own.status_code == 201
    async with server.http(host.token) as api_client:  # bearer: no browser attaches it
        assert (await api_client.post("/api/rooms", json={"title": "API"},
                                      headers={"Origin": EVIL})).status_code == 201


async def test_listed_origins_are_allowed(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    server = await make_server(allowed_origins="https://rooms.example.org")
    host = await make_account("Host")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as browser:
        browser.cookies.set("ar_session", host.token)
        listed = await browser.post("/api/rooms", json={"title": "Listed"},
                                    headers={"Origin": "https://rooms.example.org"})
        other = await browser.post("/api/rooms", json={"title": "Other"},
                                   headers={"Origin": "https://other.example.org"})
    assert listed.status_code == 201
    assert other.status_code == 403


async def test_bodies_must_be_json(server: RunningServer) -> None:
    async with server.http() as http:
        plain = await http.post("/api/auth/guest", content=b'{"display_name": "G"}',
                                headers={"Content-Type": "text/plain"})
        form = await http.post("/api/auth/guest", data={"display_name": "G"})
        json_ok = await http.post("/api/auth/guest", content=b'{"display_name": "G"}',
                                  headers={"Content-Type": "application/json; charset=utf-8"})
    for refused in (plain, form):
        assert refused.status_code == 415 and refused.json()["code"] == "unsupported_media_type"
    assert json_ok.status_code == 200


def test_a_listed_origin_must_be_an_origin() -> None:
    with pytest.raises(SettingsError, match="AUDIO_ROOMS_ALLOWED_ORIGINS"):
        load_settings(allowed_origins="rooms.example.org/app")
    settings = load_settings(allowed_origins="https://Rooms.Example.org, http://127.0.0.1:8080")
    assert settings.allowed_origins == ("https://rooms.example.org", "http://127.0.0.1:8080")
