"""Hostile REST input: every body, path and query an attacker can send is answered with a typed
4xx (a JSON ``{"code", "message"}``), never a 500, and the error never grows with the input.
Afterwards the server still serves a real user."""

from __future__ import annotations

import httpx

from tests.conftest import AccountFactory, RunningServer, create_room, join

# A body that is valid JSON for Python's json module but poison for everything after it.
HOSTILE_BODIES: list[tuple[str, bytes]] = [
    ("lone surrogate", b'{"handle": "\\ud800x", "display_name": "x", "password": "p"}'),
    ("lone surrogate key", b'{"\\udfff": 1}'),
    ("surrogate bytes (CESU-8)", b'{"display_name": "\xed\xa0\x80"}'),
    ("huge integer", b'{"locale": ' + b"9" * 5000 + b"}"),
    ("huge nested integer", b'{"x": [[[' + b"1" * 4400 + b"]]]}"),
    ("not utf-8", b'{"display_name": "\xff\xfe"}'),
    ("utf-16", '{"display_name": "x"}'.encode("utf-16")),
    ("NaN", b'{"display_name": NaN}'),
    ("array", b"[1, 2, 3]"),
    ("string", b'"hello"'),
    ("null", b"null"),
    ("deep nesting", b"[" * 8000 + b"]" * 8000),
    ("deep nesting in a field", b'{"title": ' + b"[" * 7000 + b"]" * 7000 + b"}"),
    ("truncated", b'{"title": "x'),
    ("huge key", b'{"' + b"k" * 15000 + b'": 1}'),
    ("huge float", b'{"title": 1e999999}'),
    ("far-future schedule", b'{"title": "t", "scheduled_start": "9999-12-31T23:59:59+00:00"}'),
    ("ancient schedule", b'{"title": "t", "scheduled_start": "0001-01-01T00:00:00-23:59"}'),
    ("schedule before year 1", b'{"title": "t", "scheduled_start": "0001-01-01T00:00:00+23:59"}'),
    ("schedule after 9999", b'{"title": "t", "scheduled_start": "9999-12-31T23:59:59-23:59"}'),
    ("numeric schedule", b'{"title": "t", "scheduled_start": 1e300}'),
    ("schedule without zone", b'{"title": "t", "scheduled_start": "2030-01-01T00:00:00"}'),
    ("too large", b'{"title": "' + b"x" * (17 * 1024) + b'"}'),
]

ENDPOINTS = ["/api/auth/signup", "/api/auth/signin", "/api/auth/guest", "/api/rooms"]


def assert_typed_4xx(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:200])
    body = response.json()
    assert isinstance(body["code"], str) and isinstance(body["message"], str), (what, body)
    assert len(response.content) < 1024, (what, len(response.content))  # nothing echoed back


async def test_hostile_bodies_get_typed_errors(
    server: RunningServer, make_account: AccountFactory
) -> None:
    user = await make_account("Poster")
    async with server.http(user.token) as http:
        for name, body in HOSTILE_BODIES:
            for path in ENDPOINTS:
                response = await http.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
                if path == "/api/rooms" and name.endswith("schedule") and (
                    response.status_code == 201
                ):
                    continue  # a valid (if odd) schedule is a room, not an error
                assert_typed_4xx(response, f"{name} -> {path}")
        too_large = dict(HOSTILE_BODIES)["too large"]
        response = await http.post("/api/rooms", content=too_large)
        assert (response.status_code, response.json()["code"]) == (413, "message_too_large")
        for name in ("lone surrogate", "huge integer", "not utf-8", "deep nesting"):
            response = await http.post(
                "/api/auth/guest", content=dict(HOSTILE_BODIES)[name],
                headers={"Content-Type": "application/json"},
            )
            assert (response.status_code, response.json()["code"]) == (400, "malformed_message")

    # Still serving: a real user creates a room and joins it.
    room_id = await create_room(server, user)
    client = await join(server, room_id, user)
    assert client.welcome["you"]["role"] == "host"


async def test_hostile_paths_and_queries_get_typed_errors(
    server: RunningServer, make_account: AccountFactory
) -> None:
    user = await make_account("Prober")
    long = "x" * 5000
    async with server.http(user.token) as http:
        for path in (
            "/api/rooms/%ED%A0%80",
            "/api/rooms/%FF%FE",
            f"/api/rooms/{long}",
            "/api/rooms/%00",
            "/api/users/%ED%A0%80",
            f"/api/users/{long}",
            "/api/rooms?status=%ED%A0%80",
            f"/api/rooms?status={long}",
            "/api/rooms?status=live&status=%FF",
        ):
            assert_typed_4xx(await http.get(path), path)
        for path in (
            "/api/rooms/%ED%A0%80/start",
            f"/api/rooms/{long}/invite-link",
            "/api/users/%ED%A0%80/follow",
            f"/api/users/{long}/follow",
        ):
            assert_typed_4xx(await http.post(path), path)
        assert (await http.get("/api/rooms")).status_code == 200
