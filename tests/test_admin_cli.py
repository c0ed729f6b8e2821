"""The operator's CLI against the configured Redis and database, while a server runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.conftest import AccountFactory, RunningServer, connect, create_room, join


async def cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    s = server.settings
    env = {
        **os.environ,
        "AUDIO_ROOMS_DATA_DIR": str(s.data_dir),
        "AUDIO_ROOMS_REDIS_URL": s.redis_url or "",
        "AUDIO_ROOMS_SECRET_KEY": s.secret_key or "",
    }
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "audio_rooms", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )


async def test_admin_lists_and_ends_a_live_room(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, ana = await make_account("Host"), await make_account("Ana")
    room_id = await create_room(server, host, title="Evening")
    host_c, ana_c = await join(server, room_id, host), await join(server, room_id, ana)
    listed = await cli(server, "rooms", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if room_id in row)
    assert "status=live" in line and "listeners=1" in line and "title=Evening" in line
    ended = await cli(server, "rooms", "end", room_id)
    assert ended.returncode == 0, ended.stderr
    for client in (host_c, ana_c):
        assert (await client.expect("room_ended"))["reason"] == "ended_by_admin"
        assert await client.closed_with() == 4010
    async with server.http() as http:
        assert (await http.get(f"/api/rooms/{room_id}")).json()["room"]["status"] == "ended"
    missing = await cli(server, "rooms", "end", "nope")
    assert missing.returncode == 1 and "nope" in missing.stderr


async def test_admin_ban_removes_from_live_rooms_and_holds(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, eve = await make_account("Host"), await make_account("Eve")
    room_id = await create_room(server, host)
    host_c, eve_c = await join(server, room_id, host), await join(server, room_id, eve)
    result = await cli(server, "users", "ban", eve.user_id.split("@")[0])
    assert result.returncode == 0, result.stderr
    removed = await host_c.expect("participant_removed", user_id=eve.user_id)
    assert removed["banned"] is True
    assert await eve_c.closed_with() == 4011
    other_room = await create_room(server, host)
    refused = await connect(server, other_room, eve)
    assert (await refused.expect("error"))["code"] == "not_authenticated"  # signed out too
