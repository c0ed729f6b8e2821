"""The REST API as a user (or the web client) sees it: accounts, rooms, follows, configuration,
and the shape of every error. Real server, real Redis, real WebSockets where rooms need people."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import (
    AccountFactory,
    RunningServer,
    ServerFactory,
    connect,
    create_room,
    join,
)

PASSWORD = "correct horse battery"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


async def sign_up(http: httpx.AsyncClient, handle: str, name: str = "Sara") -> httpx.Response:
    return await http.post(
        "/api/auth/signup",
        json={"handle": handle, "display_name": name, "password": PASSWORD, "locale": "en"},
    )


# --- accounts ----------------------------------------------------------------------------------


async def test_sign_up_sign_in_sign_out(server: RunningServer) -> None:
    async with server.http() as http:
        created = await sign_up(http, "sara")
        assert created.status_code == 201, created.text
        user = created.json()["user"]
        assert user["handle"] == "sara" and user["is_guest"] is False
        cookie = created.headers["set-cookie"]
        assert "ar_session=" in cookie and "httponly" in cookie.lower()

        assert_error(await sign_up(http, "SARA", "Another Sara"), 409, "handle_taken")
        wrong = await http.post("/api/auth/signin", json={"handle": "sara", "password": "nope"})
        assert_error(wrong, 401, "invalid_credentials")
        unknown = await http.post("/api/auth/signin", json={"handle": "nobody", "password": "x"})
        assert_error(unknown, 401, "invalid_credentials")

    async with server.http() as browser:
        signed_in = await browser.post(
            "/api/auth/signin", json={"handle": "Sara", "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        token = signed_in.json()["token"]
        # The browser is signed in by its cookie alone.
        me = await browser.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["user"]["id"] == user["id"]
        assert (await browser.post("/api/auth/signout")).status_code == 204
        assert_error(await browser.get("/api/auth/me"), 401, "not_authenticated")

    async with server.http(token) as api_client:
        # The token that session issued stops working everywhere, WebSocket included.
        assert_error(await api_client.get("/api/auth/me"), 401, "not_authenticated")
    async with server.http(created.json()["token"]) as http:
        assert (await http.get("/api/auth/me")).status_code == 200
        room_id = (await http.post("/api/rooms", json={"title": "Mine"})).json()["room"]["id"]
    stale = await connect(server, room_id, None, token=token)
    assert (await stale.expect("error"))["code"] == "not_authenticated"
    assert await stale.closed_with() == 4001


async def test_login_rate_limit(make_server: ServerFactory) -> None:
    server = await make_server(login_attempts_per_minute=3)
    async with server.http() as http:
        attempt = {"handle": "mallory", "password": "guess"}
        for _ in range(3):
            assert_error(await http.post("/api/auth/signin", json=attempt), 401,
                         "invalid_credentials")
        limited = await http.post("/api/auth/signin", json=attempt)
        assert_error(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60


async def test_guest_entry(server: RunningServer) -> None:
    async with server.http() as http:
        response = await http.post("/api/auth/guest", json={"display_name": "Nima"})
        assert response.status_code == 200, response.text
        guest = response.json()["user"]
        assert guest["is_guest"] is True and guest["display_name"] == "Nima"
        assert "handle" not in guest
    async with server.http(response.json()["token"]) as http:
        me = (await http.get("/api/auth/me")).json()["user"]
    assert me["id"] == guest["id"] and me["is_guest"] is True
    async with server.http() as http:
        assert_error(await http.get("/api/auth/me"), 401, "not_authenticated")


# --- rooms -------------------------------------------------------------------------------------


async def test_live_and_scheduled_rooms(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, other = await make_account("Host"), await make_account("Other")
    later = datetime.now(UTC) + timedelta(hours=2)
    async with server.http(host.token) as http:
        live = await create_room(server, host, title="Now")
        response = await http.post(
            "/api/rooms", json={"title": "Later", "scheduled_start": later.isoformat()}
        )
        assert response.status_code == 201, response.text
        scheduled = response.json()["room"]
        assert scheduled["status"] == "scheduled"
        assert datetime.fromisoformat(scheduled["scheduled_start"]) == later

        live_ids = [r["id"] for r in (await http.get("/api/rooms?status=live")).json()["rooms"]]
        scheduled_ids = [
            r["id"] for r in (await http.get("/api/rooms?status=scheduled")).json()["rooms"]
        ]
        assert live in live_ids and scheduled["id"] not in live_ids
        assert scheduled_ids == [scheduled["id"]]
        assert_error(await http.get("/api/rooms?status=ended"), 400, "invalid_field")

    early = await connect(server, scheduled["id"], host)
    assert (await early.expect("error"))["code"] == "room_not_live"

    async with server.http(other.token) as http:
        refused = await http.post(f"/api/rooms/{scheduled['id']}/start")
        assert_error(refused, 403, "not_permitted")
    async with server.http(host.token) as http:
        started = await http.post(f"/api/rooms/{scheduled['id']}/start")
        assert started.status_code == 200, started.text
        assert started.json()["room"]["status"] == "live"
        live_ids = [r["id"] for r in (await http.get("/api/rooms")).json()["rooms"]]
        assert scheduled["id"] in live_ids
        assert (await http.get("/api/rooms?status=scheduled")).json()["rooms"] == []
        assert_error(await http.get("/api/rooms/nope"), 404, "room_not_found")
    host_c = await join(server, scheduled["id"], host)
    assert host_c.welcome["you"]["role"] == "host"


async def test_room_detail_counts_people_who_joined(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    listeners = [await make_account(f"L{i}", guest=True) for i in range(2)]
    room_id = await create_room(server, host, title="Counted")
    async with server.http() as http:
        empty = (await http.get(f"/api/rooms/{room_id}")).json()["room"]
    assert empty["speakers"] == [] and empty["listener_count"] == 0
    host_c = await join(server, room_id, host)
    for listener in listeners:
        await join(server, room_id, listener)
    await host_c.expect("audience", count=2)
    async with server.http() as http:
        room = (await http.get(f"/api/rooms/{room_id}")).json()["room"]
    assert room["title"] == "Counted" and room["host"]["display_name"] == "Host"
    assert room["speakers"] == [{"user_id": host.user_id, "display_name": "Host", "role": "host"}]
    assert room["speaker_count"] == 1 and room["listener_count"] == 2


async def test_invite_link_opens_a_closed_room(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, friend, stranger = [await make_account(n) for n in ("Host", "Friend", "Stranger")]
    room_id = await create_room(server, host, visibility="closed")
    refused = await connect(server, room_id, friend)
    assert (await refused.expect("error"))["code"] == "not_allowed_in"
    assert await refused.closed_with() == 4003

    async with server.http(stranger.token) as http:
        assert_error(await http.post(f"/api/rooms/{room_id}/invite-link"), 403, "not_permitted")
    async with server.http(host.token) as http:
        response = await http.post(f"/api/rooms/{room_id}/invite-link")
    assert response.status_code == 200, response.text
    link = response.json()
    assert link["url"] == f"/r/{room_id}?invite={link['invite']}"

    friend_c = await join(server, room_id, friend, invite=link["invite"])
    assert friend_c.welcome["you"]["role"] == "listener"
    forged = await connect(server, room_id, stranger, invite="0" * 32)
    assert (await forged.expect("error"))["code"] == "not_allowed_in"
    assert await forged.closed_with() == 4003


async def test_social_room_admits_people_the_host_follows(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, fan, stranger = [await make_account(n) for n in ("Host", "Fan", "Stranger")]
    room_id = await create_room(server, host, visibility="social")
    async with server.http(host.token) as http:
        assert (await http.post(f"/api/users/{fan.user_id}/follow")).status_code == 204
        profile = (await http.get(f"/api/users/{fan.user_id}")).json()["user"]
        assert profile["followers"] == 1
        missing = await http.post("/api/users/nobody@localhost/follow")
        assert_error(missing, 404, "user_not_found")
    async with server.http(stranger.token) as http:  # following the host is not enough
        assert (await http.post(f"/api/users/{host.user_id}/follow")).status_code == 204

    fan_c = await join(server, room_id, fan)
    assert fan_c.welcome["room"]["visibility"] == "social"
    refused = await connect(server, room_id, stranger)
    assert (await refused.expect("error"))["code"] == "not_allowed_in"
    assert await refused.closed_with() == 4003


# --- operations and configuration --------------------------------------------------------------


async def test_health_and_client_config(server: RunningServer) -> None:
    async with server.http() as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        config = (await http.get("/api/config")).json()
    assert config["slots"] == 3
    assert config["ice_servers"] == []  # no STUN or TURN configured: host candidates only
    assert config["max_message_bytes"] == 64 * 1024


async def test_turn_credentials_follow_the_coturn_rest_scheme(
    make_server: ServerFactory,
) -> None:
    server = await make_server(turn_urls=("turn:127.0.0.1:3478",), turn_secret="s3cret")
    async with server.http() as http:
        signed_up = await http.post("/api/auth/signup", json={
            "handle": "turnhost", "display_name": "Host", "password": "correct horse battery"})
        host = signed_up.json()
    async with server.http(host["token"]) as http:
        created = await http.post("/api/rooms", json={"title": "TURN"})
    client = await connect(server, created.json()["room"]["id"], None, token=host["token"])
    servers = (await client.expect("welcome"))["ice_servers"]
    await client.close()
    turn = next(s for s in servers if "turn:127.0.0.1:3478" in s["urls"])
    expected = hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(expected).decode()
    expiry, _, _ = turn["username"].partition(":")
    assert int(expiry) > time.time()


# --- errors ------------------------------------------------------------------------------------


async def test_every_error_is_json_with_code_and_message(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host", guest=True)
    async with server.http() as http:
        assert_error(await http.get("/api/nothing-here"), 404, "not_found")
        malformed = await http.post(
            "/api/auth/signup", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_error(malformed, 400, "malformed_message")
        not_object = await http.post("/api/auth/guest", json=["a list"])
        assert_error(not_object, 400, "malformed_message")
        wrong_type = await http.post("/api/auth/guest", json={"display_name": 42})
        body = assert_error(wrong_type, 400, "invalid_field")
        assert body["details"]["field"] == "display_name"
        extra = await http.post("/api/auth/guest", json={"display_name": "A", "admin": True})
        assert_error(extra, 400, "invalid_field")
        huge = await http.post("/api/auth/guest", json={"display_name": "x" * 17 * 1024})
        assert_error(huge, 413, "message_too_large")
        assert_error(await http.post("/api/rooms", json={"title": "x"}), 401, "not_authenticated")
    async with server.http(host.token) as http:
        bad_date = await http.post("/api/rooms", json={"title": "x", "scheduled_start": "soon"})
        assert_error(bad_date, 400, "invalid_field")
