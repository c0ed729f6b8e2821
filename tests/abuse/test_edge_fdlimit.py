"""A server started under a low open-files soft limit raises it to the hard limit, so it can
hold more connections than the soft limit would have allowed and still answer."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import eventually, free_port

LOW = 256
CONNECTIONS = 400


def max_open_files(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line")


async def test_server_raises_its_open_files_limit(tmp_path: Path, redis_url: str) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2 * CONNECTIONS + 256:
        pytest.skip(f"the hard open-files limit here ({hard}) is too low to show the raise")
    port = free_port()
    env = {
        **os.environ,
        "AUDIO_ROOMS_DATA_DIR": str(tmp_path / "data"),
        "AUDIO_ROOMS_REDIS_URL": redis_url,
        "AUDIO_ROOMS_SECRET_KEY": "fd-limit-test-secret-key-0123456789-0123456789",
        "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
        "AUDIO_ROOMS_MAX_CONNECTIONS_PER_ADDRESS": str(2 * CONNECTIONS),
        "AUDIO_ROOMS_HTTP_HEADER_TIMEOUT": "60",
        # One process holds all the connections: past its own limit, not half of them each.
        "AUDIO_ROOMS_WORKERS": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "audio_rooms", "serve", "--port", str(port),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (LOW, hard)),
    )
    writers: list[asyncio.StreamWriter] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, within=30, every=0.1)
            assert max_open_files(process.pid) == (hard, hard)
            for _ in range(CONNECTIONS):  # more than the soft limit it was started with
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=("127.0.0.2", 0)
                )
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                writers.append(writer)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as fresh:
            assert (await fresh.get("/healthz")).status_code == 200  # a new connection
    finally:
        for writer in writers:
            writer.close()
        process.kill()
        await process.wait()
