"""Half-sent requests cannot take the server down: 500 stalled connections from one address
are held to that address's share and cut off at the header deadline, while a real user on
another address still gets answers, signs up and joins a room."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource

import httpx
import pytest

from tests.conftest import Account, RunningServer, ServerFactory, eventually, join

ATTACKER = "127.0.0.2"
STALLED = 520


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * STALLED:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * STALLED), hard))


async def stalled(server: RunningServer, count: int, source: str = ATTACKER) -> list[
    tuple[asyncio.StreamReader, asyncio.StreamWriter]
]:
    """``count`` connections that each send the start of a request and then nothing."""

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=(source, 0)
        )
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        return reader, writer

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes | None:
    """What the server said before closing, or None if it kept the connection open."""
    try:
        async with asyncio.timeout(within):
            return await reader.read()
    except TimeoutError:
        return None
    except ConnectionResetError:
        return b""


async def real_user_gets_in(server: RunningServer) -> None:
    async with server.http() as http:
        assert (await http.get("/healthz")).status_code == 200
        signed_up = await http.post("/api/auth/signup", json={
            "handle": "realuser", "display_name": "Real", "password": "correct horse battery"})
        assert signed_up.status_code == 201, signed_up.text
    user = Account(signed_up.json()["user"]["id"], signed_up.json()["token"], "Real")
    async with server.http(user.token) as http:
        created = await http.post("/api/rooms", json={"title": "Still here"})
        assert created.status_code == 201, created.text
    client = await join(server, created.json()["room"]["id"], user)
    assert client.welcome["you"]["role"] == "host"
    await client.close()


async def test_stalled_connections_do_not_lock_out_real_users(
    make_server: ServerFactory,
) -> None:
    server = await make_server(http_header_timeout=3.0, max_connections_per_address=100)
    connections = await stalled(server, STALLED)
    try:
        await real_user_gets_in(server)
        # Past the attacker's share the server answered at once, and it cut the rest off at the
        # header deadline; a real user on another address was never affected.
        answers = await asyncio.gather(*(closed_by_server(r, 8.0) for r, _ in connections))
        refused = [a for a in answers if a and b"too_many_connections" in a]
        assert len(refused) == STALLED - 100
        assert all(a is not None for a in answers), "a stalled connection was kept open"
        await healthz_answers(server)
    finally:
        for _, writer in connections:
            writer.close()


async def healthz_answers(server: RunningServer) -> None:
    async with server.http() as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_the_node_cap_answers_instead_of_hanging(make_server: ServerFactory) -> None:
    server = await make_server(max_connections=20, http_header_timeout=30.0)
    connections = await stalled(server, 20)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
            refused = await http.get("/healthz")
        assert refused.status_code == 503
        assert refused.json()["code"] == "too_many_connections"
    finally:
        for _, writer in connections:
            writer.close()

    async def healthy() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
                return (await http.get("/healthz")).status_code == 200
        return False

    await eventually(healthy, every=0.1)


async def test_oversized_headers_are_cut_off(make_server: ServerFactory) -> None:
    server = await make_server(http_max_header_bytes=8192)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for _ in range(20):
        writer.write(b"X-Filler: " + b"a" * 1000 + b"\r\n")
    assert await closed_by_server(reader, 5.0) is not None
    writer.close()
    await healthz_answers(server)


async def test_a_stalled_body_is_cut_off(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(http_idle_timeout=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /api/auth/guest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 200\r\n\r\n{\"display_name\": ")
    assert await closed_by_server(reader, 5.0) == b""  # dropped, no answer
    writer.close()
    await healthz_answers(server)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
