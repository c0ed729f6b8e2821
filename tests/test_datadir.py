"""One data directory, one server: a second ``audio-rooms serve`` on it is refused and the first
keeps serving its rooms; the operator's CLI talks to the running server's embedded Redis, and
says so when no server runs instead of starting a Redis of its own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.abuse.test_redis_embedded_dies import Start, start_embedded  # noqa: F401
from tests.conftest import free_port, join


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audio_rooms", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )


async def test_a_second_server_on_the_same_data_directory_is_refused(
    start_embedded: Start, tmp_path: Path  # noqa: F811
) -> None:
    first = start_embedded()
    await first.ready()
    host = await first.account("lockhost")
    room_id = await first.create_room(host)
    host_c = await join(first, room_id, host)
    redis_pid = await first.redis_pid()

    refused = await asyncio.to_thread(
        run_cli, cli_env(tmp_path), "serve", "--port", str(free_port())
    )
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "already running on data directory" in lines[0], refused.stderr

    # Its Redis is the same process, still on its socket (a second one would have unlinked it).
    assert await first.redis_pid() == redis_pid
    assert (await first.get("/healthz")).status_code == 200
    assert (await first.get("/readyz")).status_code == 200
    lobby = await first.get(f"/api/rooms/{room_id}")
    assert lobby.json()["room"]["status"] == "live"
    # The host is still connected and the room still works end to end.
    guest = await first.account("lockguest")
    guest_c = await join(first, room_id, guest)
    assert host.user_id in {p["user_id"] for p in guest_c.welcome["room"]["participants"]}
    await host_c.expect("audience", count=1)


async def test_admin_cli_lists_the_rooms_of_the_running_embedded_redis_server(
    start_embedded: Start, tmp_path: Path  # noqa: F811
) -> None:
    server = start_embedded()
    await server.ready()
    host = await server.account("clihost")
    room_id = await server.create_room(host)
    await join(server, room_id, host)
    redis_pid = await server.redis_pid()

    listed = await asyncio.to_thread(run_cli, cli_env(tmp_path), "rooms", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if room_id in row)
    assert "status=live" in line and "speakers=1" in line
    # It used the server's Redis: no other redis-server took the data directory's socket.
    assert await server.redis_pid() == redis_pid
    assert (await server.get("/healthz")).status_code == 200
    unknown = await asyncio.to_thread(run_cli, cli_env(tmp_path), "users", "ban", "nosuchuser")
    assert unknown.returncode == 1 and "nosuchuser" in unknown.stderr


async def test_a_killed_server_leaves_no_stale_lock(
    start_embedded: Start, tmp_path: Path  # noqa: F811
) -> None:
    first = start_embedded()
    await first.ready()
    first.process.kill()
    first.process.wait()
    again = start_embedded()  # the same data directory: the kernel dropped the dead one's lock
    await again.ready()
    assert (await again.get("/healthz")).status_code == 200


def test_admin_cli_without_a_server_or_redis_url_says_so(tmp_path: Path) -> None:
    result = run_cli(cli_env(tmp_path), "rooms", "list")
    assert result.returncode == 1
    assert "no audio-rooms server is running" in result.stderr
    assert not (tmp_path / "data" / "redis").exists()  # and it started no Redis of its own


def cli_env(tmp_path: Path) -> dict[str, str]:
    """The operator's environment: the server's data directory (start_embedded's), no Redis."""
    env = {key: value for key, value in os.environ.items() if key != "AUDIO_ROOMS_REDIS_URL"}
    env["AUDIO_ROOMS_DATA_DIR"] = str(tmp_path / "data")
    return env
