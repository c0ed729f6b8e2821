"""Server administrators: made by the CLI, the only ones the admin API answers, and its actions
(end a room, ban and unban an account) felt by the people in the rooms."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.conftest import AccountFactory, RunningServer, create_room, join

PASSWORD = "correct horse battery staple"


async def cli(
    server: RunningServer, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    s = server.settings
    env = {**os.environ, "AUDIO_ROOMS_DATA_DIR": str(s.data_dir),
           "AUDIO_ROOMS_REDIS_URL": s.redis_url or "", "AUDIO_ROOMS_SECRET_KEY": s.secret_key or ""}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "audio_rooms", *args], input=stdin,
        env=env, capture_output=True, text=True, timeout=60)


async def admin_token(server: RunningServer, handle: str = "boss") -> str:
    made = await cli(server, "users", "create", handle, "--admin", "--display-name", "The Boss",
                     stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "server administrator" in made.stdout
    async with server.http() as http:
        response = await http.post("/api/auth/signin", json={"handle": handle,
                                                               "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def test_only_administrators_get_the_admin_api(
    server: RunningServer, make_account: AccountFactory
) -> None:
    someone = await make_account("Someone")
    visitor = await make_account("Visitor", guest=True)
    async with server.http() as http:
        assert (await http.get("/api/admin/rooms")).status_code == 401
    for token in (someone.token, visitor.token):
        async with server.http(token) as http:
            for path in ("/api/admin/rooms", "/api/admin/users", "/api/admin/me"):
                response = await http.get(path)
                assert response.status_code == 403, path
                assert response.json()["code"] == "not_permitted"
            refused = await http.post("/api/admin/users/boss/ban", json={})
            assert refused.status_code == 403
    token = await admin_token(server)
    async with server.http(token) as http:
        assert (await http.get("/api/admin/me")).json()["is_admin"] is True
    # Promoted and demoted by the CLI; the API follows at once.
    handle = someone.user_id.split("@")[0]
    assert (await cli(server, "users", "promote", handle)).returncode == 0
    async with server.http(someone.token) as http:
        assert (await http.get("/api/admin/users")).status_code == 200
    assert (await cli(server, "users", "demote", handle)).returncode == 0
    async with server.http(someone.token) as http:
        assert (await http.get("/api/admin/users")).status_code == 403
    listed = await cli(server, "users", "list")
    boss = next(line for line in listed.stdout.splitlines() if "handle=boss" in line)
    assert "admin=yes" in boss


async def test_users_create_holds_the_sign_up_rules(server: RunningServer) -> None:
    bad_handle = await cli(server, "users", "create", "Sara.K", stdin=PASSWORD + "\n")
    assert bad_handle.returncode == 1 and "audio-rooms:" in bad_handle.stderr
    weak = await cli(server, "users", "create", "sara_k", stdin="123\n")
    assert weak.returncode == 1
    made = await cli(server, "users", "create", "sara_k", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    again = await cli(server, "users", "create", "sara_k", stdin=PASSWORD + "\n")
    assert again.returncode == 1
    missing = await cli(server, "users", "promote", "nobody_here")
    assert missing.returncode == 1 and "nobody_here" in missing.stderr


async def test_admin_ends_a_room_and_bans_and_unbans(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, eve = await make_account("Host"), await make_account("Eve")
    room_id = await create_room(server, host, title="Late show")
    host_c, eve_c = await join(server, room_id, host), await join(server, room_id, eve)
    token = await admin_token(server)
    eve_handle = eve.user_id.split("@")[0]
    async with server.http(token) as http:
        rooms = (await http.get("/api/admin/rooms")).json()["rooms"]
        live = next(r for r in rooms if r["id"] == room_id)
        assert (live["status"], live["title"], live["listeners"]) == ("live", "Late show", 1)

        banned = await http.post(f"/api/admin/users/{eve_handle}/ban", json={"reason": "spam"})
        assert banned.status_code == 200, banned.text
        assert banned.json()["removed_from"] == [room_id]
        removed = await host_c.expect("participant_removed", user_id=eve.user_id)
        assert removed["banned"] is True
        assert await eve_c.closed_with() == 4011
        users = (await http.get("/api/admin/users")).json()["users"]
        assert next(u for u in users if u["handle"] == eve_handle)["banned"] is True

        lifted = await http.post(f"/api/admin/users/{eve_handle}/unban")
        assert lifted.json()["was_banned"] is True
        users = (await http.get("/api/admin/users")).json()["users"]
        assert next(u for u in users if u["handle"] == eve_handle)["banned"] is False

        ended = await http.post(f"/api/admin/rooms/{room_id}/end")
        assert ended.status_code == 200, ended.text
        assert (await host_c.expect("room_ended"))["reason"] == "ended_by_admin"
        missing = await http.post("/api/admin/rooms/nope/end")
        assert missing.status_code == 404
        myself = await http.post("/api/admin/users/boss/ban", json={})
        assert myself.status_code == 403 and myself.json()["code"] == "not_permitted"
        too_long = await http.post(f"/api/admin/users/{eve_handle}/ban",
                                   json={"reason": "x" * 600})
        assert too_long.status_code == 400
