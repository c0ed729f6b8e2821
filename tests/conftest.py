"""Shared fixtures: a real Redis, a real server on a free port, real WebSocket clients.

Redis: ``AUDIO_ROOMS_TEST_REDIS_URL`` when set, else a redis-server started for the session on
a free port, from the same binary source as the server's embedded Redis.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from audio_rooms.app import Services, create_app
from audio_rooms.db import Database
from audio_rooms.server import uvicorn_config
from audio_rooms.settings import Settings, load_settings
from audio_rooms.state.embedded import EmbeddedRedis

TEST_REDIS_VARIABLE = "AUDIO_ROOMS_TEST_REDIS_URL"


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], within: float = 5.0, every: float = 0.05
) -> None:
    """Wait until ``condition()`` holds (a plain or an async function); fail after ``within``
    seconds. Tests wait for what they need to see this way, never for a fixed time."""
    try:
        async with asyncio.timeout(within):
            while True:
                result = condition()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"condition not reached within {within}s") from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get(TEST_REDIS_VARIABLE)
    if configured:
        yield configured
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(), persist=False)
    loop = asyncio.new_event_loop()
    try:
        url = loop.run_until_complete(server.start())
        yield url
        loop.run_until_complete(server.stop())
    finally:
        loop.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@dataclass
class RunningServer:
    settings: Settings
    services: Services
    port: int
    _server: uvicorn.Server
    _task: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, room_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{room_id}"

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)

    async def stop(self) -> None:
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 30)


async def start_server(settings: Settings) -> RunningServer:
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings))
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.025)
    else:
        raise RuntimeError("server did not start")
    return RunningServer(settings, app.state.services, settings.port, server, task)


ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def make_server(
    tmp_path: Path, redis_url: str
) -> AsyncIterator[ServerFactory]:
    """Start servers (same Redis, same data directory unless told otherwise); stop them after."""
    running: list[RunningServer] = []

    async def make(**overrides: Any) -> RunningServer:
        values: dict[str, Any] = {
            "port": free_port(),
            "data_dir": tmp_path / "data",
            "redis_url": redis_url,
            "secret_key": "test-secret-key-that-is-long-enough-0123456789",
            "media_host_addresses": ("127.0.0.1",),
            "heartbeat_interval": 1.0,
            "grace_period": 3.0,
            "audience_tick": 0.2,
            "login_attempts_per_minute": 1000,
            "signups_per_address_per_hour": 1000,
        }
        values.update(overrides)
        server = await start_server(load_settings(**values))
        running.append(server)
        return server

    client = aioredis.from_url(redis_url)
    if not os.environ.get(TEST_REDIS_VARIABLE):
        await client.flushdb()
    await client.aclose()
    yield make
    for server in reversed(running):
        if not server._task.done():
            await server.stop()


@pytest.fixture
async def server(make_server: ServerFactory) -> RunningServer:
    return await make_server()


# --- clients -----------------------------------------------------------------------------------


@dataclass
class Client:
    """A participant over the real WebSocket, with helpers to wait for messages."""

    ws: ClientConnection
    user_id: str = ""
    welcome: dict[str, Any] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, **fields}))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.seen.append(message)
        return message

    async def expect(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next message of this type (and these fields), skipping others."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {kind} {match} within {timeout}s; saw {self.seen[-5:]}")
            message = await self.recv(left)
            if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                return message

    async def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Everything that arrives within ``seconds``."""
        got = []
        try:
            while True:
                got.append(await self.recv(seconds))
        except TimeoutError:
            return got

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        try:
            while True:
                await self.recv(timeout)
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class Account:
    user_id: str
    token: str
    display_name: str


AccountFactory = Callable[..., Awaitable[Account]]


@pytest.fixture
def make_account(server: RunningServer) -> AccountFactory:
    counter = iter(range(10_000))

    async def make(name: str | None = None, guest: bool = False) -> Account:
        n = next(counter)
        display = name or f"User {n}"
        async with server.http() as http:
            if guest:
                response = await http.post("/api/auth/guest", json={"display_name": display})
            else:
                response = await http.post(
                    "/api/auth/signup",
                    json={
                        "handle": f"user{n}_{os.getpid() % 1000}",
                        "display_name": display,
                        "password": "correct horse battery",
                        "locale": "en",
                    },
                )
        assert response.status_code in (200, 201), response.text
        body = response.json()
        return Account(body["user"]["id"], body["token"], display)

    return make


class Endpoint(Protocol):
    def ws_url(self, room_id: str) -> str: ...


async def connect(server: Endpoint, room_id: str, account: Account | None,
                  source: str | None = None, **join: Any) -> Client:
    """Open the room socket and send ``join``; ``source`` is the client address to connect
    from (127.0.0.2 and up are other addresses to the server, for per-address limits)."""
    ws = await websockets.connect(
        server.ws_url(room_id), max_size=2**22,
        local_addr=(source, 0) if source is not None else None,
    )
    client = Client(ws, account.user_id if account else "")
    payload = {"token": account.token} if account else {}
    payload.update(join)
    await client.send("join", **payload)
    return client


async def join(server: Endpoint, room_id: str, account: Account, **kw: Any) -> Client:
    client = await connect(server, room_id, account, **kw)
    client.welcome = await client.expect("welcome")
    return client


async def read_audience(base_url: str, room_id: str, limit: int) -> list[str]:
    """Every listener's user id, read page by page over REST in the order the server gives."""
    ids: list[str] = []
    cursor = ""
    async with httpx.AsyncClient(base_url=base_url) as http:
        while True:
            response = await http.get(f"/api/rooms/{room_id}/audience",
                                      params={"limit": limit, "cursor": cursor})
            assert response.status_code == 200, response.text
            page = response.json()
            ids += [p["user_id"] for p in page["listeners"]]
            if page["next"] is None:
                return ids
            cursor = page["next"]


async def create_room(server: RunningServer, host: Account, **fields: Any) -> str:
    async with server.http(host.token) as http:
        response = await http.post(
            "/api/rooms", json={"title": "Test room", "visibility": "open", **fields}
        )
    assert response.status_code == 201, response.text
    return str(response.json()["room"]["id"])


@dataclass
class LiveRoom:
    """An open room that is live, with its host signed up and joined over the WebSocket."""

    server: RunningServer
    host: Account
    room_id: str
    host_c: Client

    async def join(self, account: Account, **kw: Any) -> Client:
        return await join(self.server, self.room_id, account, **kw)


@pytest.fixture
async def live_room(server: RunningServer, make_account: AccountFactory) -> LiveRoom:
    host = await make_account("Host")
    room_id = await create_room(server, host)
    return LiveRoom(server, host, room_id, await join(server, room_id, host))


# --- databases ---------------------------------------------------------------------------------
# A real database per test: SQLite in tmp_path always, and PostgreSQL as well when
# AUDIO_ROOMS_TEST_DATABASE_URL is set. Each PostgreSQL test gets a schema of its own (through
# the connection's search_path), dropped afterwards, so a shared database is left as found.

PG_URL_VARIABLE = "AUDIO_ROOMS_TEST_DATABASE_URL"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database's URL, for tests that build one themselves (``db`` uses it too)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base_url = os.environ.get(PG_URL_VARIABLE)
    if not base_url:
        pytest.skip(f"{PG_URL_VARIABLE} is not set")
    schema = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url)
    try:
        yield database
    finally:
        database.close()
