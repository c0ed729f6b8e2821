"""A server-wide ban (``audio-rooms users ban``) holds at once, on every node, until lifted."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import (
    Account,
    AccountFactory,
    RunningServer,
    ServerFactory,
    connect,
    create_room,
    join,
)
from tests.test_admin_cli import cli

PASSWORD = "correct horse battery"  # make_account's


async def sign_in(server: RunningServer, account: Account) -> httpx.Response:
    async with server.http() as http:
        return await http.post(
            "/api/auth/signin",
            json={"handle": account.user_id.split("@")[0], "password": PASSWORD},
        )


def listed(stdout: str) -> dict[str, dict[str, Any]]:
    rows = [dict(f.split("=", 1) for f in line.split("\t")) for line in stdout.splitlines()]
    return {row["handle"]: row for row in rows}


async def test_ban_closes_sockets_on_every_node_and_keeps_the_user_out(
    server: RunningServer, make_server: ServerFactory, make_account: AccountFactory
) -> None:
    other_node = await make_server()
    host, eve = await make_account("Host"), await make_account("Eve")
    first, second = await create_room(server, host), await create_room(server, host)
    here = await join(server, first, eve)
    there = await join(other_node, second, eve)
    handle = eve.user_id.split("@")[0]

    banned = await cli(server, "users", "ban", handle)

    assert banned.returncode == 0, banned.stderr
    for socket in (here, there):
        assert await socket.closed_with() == 4011
    async with server.http(eve.token) as http:  # every session is revoked
        assert (await http.get("/api/auth/me")).status_code == 401
    again = await sign_in(server, eve)
    assert again.status_code == 200
    eve_again = Account(eve.user_id, again.json()["token"], "Eve")
    async with other_node.http(eve_again.token) as http:
        refused = await http.post("/api/rooms", json={"title": "Mine now"})
    assert refused.status_code == 403 and refused.json()["code"] == "account_banned"
    kept_out = await connect(other_node, first, eve_again)
    assert (await kept_out.expect("error"))["code"] == "account_banned"
    assert await kept_out.closed_with() == 4003
    users = await cli(server, "users", "list")
    assert users.returncode == 0, users.stderr
    rows = listed(users.stdout)
    assert rows[handle]["banned"] == "yes" and rows[handle]["display_name"] == "Eve"
    assert rows[host.user_id.split("@")[0]]["banned"] == "no"
    assert rows[handle]["created"]


async def test_unban_lets_the_user_back(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, eve = await make_account("Host"), await make_account("Eve")
    room_id = await create_room(server, host)
    handle = eve.user_id.split("@")[0]
    assert (await cli(server, "users", "ban", handle)).returncode == 0

    lifted = await cli(server, "users", "unban", handle)

    assert lifted.returncode == 0, lifted.stderr
    token = (await sign_in(server, eve)).json()["token"]
    eve_again = Account(eve.user_id, token, "Eve")
    assert await create_room(server, eve_again)
    joined = await join(server, room_id, eve_again)
    assert joined.welcome["you"]["user_id"] == eve.user_id
    await joined.close()
    users = await cli(server, "users", "list")
    assert listed(users.stdout)[handle]["banned"] == "no"


async def test_unknown_users_are_refused(server: RunningServer) -> None:
    for command in ("ban", "unban"):
        result = await cli(server, "users", command, "nobody_here")
        assert result.returncode == 1
        assert "nobody_here" in result.stderr and "No user" in result.stderr
        assert result.stdout == ""
