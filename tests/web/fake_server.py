"""A stand-in for the audio-rooms server, speaking its REST and WebSocket contract, for testing
the web client by itself in a real browser.

It keeps no room logic: a test plays the server's part, pushing the deltas it wants the client to
see (`push`) and reading the actions the client sent (`wait_for`). Media offers are recorded and
left unanswered. The end-to-end tests against the real server live elsewhere; these pin the
client's own behaviour (rendering, i18n, reconnection rules) without depending on it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

WEB = Path(__file__).resolve().parents[2] / "web"


def participant(user_id: str, name: str, role: str = "listener", **extra: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "display_name": name,
        "role": role,
        "is_guest": extra.pop("is_guest", False),
        "self_muted": extra.pop("self_muted", role != "host"),
        "muted_by_moderator": extra.pop("muted_by_moderator", False),
        "hand_raised": extra.pop("hand_raised", False),
        **extra,
    }


@dataclass
class Connection:
    websocket: WebSocket
    user_id: str
    loop: asyncio.AbstractEventLoop


@dataclass
class FakeServer:
    """State a test arranges before the client acts, and the record of what the client did."""

    rooms: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # session token -> user
    # room id -> participants for the welcome snapshot (the joining user is added to them)
    snapshots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hand_queues: dict[str, list[str]] = field(default_factory=dict)
    # user id -> role the welcome gives them (default listener)
    roles: dict[str, str] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    joined: list[Connection] = field(default_factory=list)  # every join, for `resumed`
    version: int = 1
    config: dict[str, Any] = field(
        default_factory=lambda: {
            "server_name": "audio-rooms test",
            "slots": 3,
            "ice_servers": [],
            "max_message_bytes": 16384,
            "locales": ["fa", "en"],
        }
    )
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- arranging -------------------------------------------------------------------------

    def add_room(self, room_id: str, title: str, **fields: Any) -> dict[str, Any]:
        room = {
            "id": room_id,
            "title": title,
            "description": fields.pop("description", ""),
            "visibility": fields.pop("visibility", "open"),
            "host": fields.pop("host", {"id": "u-host", "display_name": "Host"}),
            "scheduled_start": fields.pop("scheduled_start", None),
            "started_at": fields.pop("started_at", "2025-01-01T10:00:00Z"),
            "status": fields.pop("status", "live"),
            "speakers": fields.pop("speakers", []),
            "speaker_count": fields.pop("speaker_count", 0),
            "listener_count": fields.pop("listener_count", 0),
            **fields,
        }
        self.rooms[room_id] = room
        self.snapshots.setdefault(room_id, [])
        return room

    def add_user(self, token: str, user: dict[str, Any]) -> None:
        self.users[token] = user

    # --- acting as the server ---------------------------------------------------------------

    def push(self, msg: dict[str, Any], to: str | None = None, versioned: bool = True) -> None:
        """Send a message to every connection (or one user's); versioned ones get the next
        version, as the real server numbers deltas."""
        if versioned:
            with self._lock:
                self.version += 1
                msg = {**msg, "version": self.version}
        for conn in list(self.connections):
            if to is None or conn.user_id == to:
                asyncio.run_coroutine_threadsafe(
                    conn.websocket.send_text(json.dumps(msg)), conn.loop
                ).result(5)

    def close(self, user_id: str, code: int) -> None:
        for conn in list(self.connections):
            if conn.user_id == user_id:
                asyncio.run_coroutine_threadsafe(conn.websocket.close(code), conn.loop).result(5)

    def wait_for(self, msg_type: str, timeout: float = 10.0, after: int = 0) -> dict[str, Any]:
        """The first message of that type the client sent (from index `after` on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.received[after:]:
                if msg.get("type") == msg_type:
                    return msg
            time.sleep(0.05)
        raise AssertionError(f"client sent no {msg_type!r}; got {self.received!r}")

    def count(self, msg_type: str) -> int:
        return sum(1 for m in self.received if m.get("type") == msg_type)

    # --- the app ----------------------------------------------------------------------------

    def user_for(self, request: Request | WebSocket, token: str | None = None) -> dict | None:
        token = token or request.cookies.get("ar_session")
        return self.users.get(token) if token else None

    def app(self) -> Starlette:
        async def index(request: Request) -> Response:
            return FileResponse(WEB / "index.html")

        async def config(request: Request) -> Response:
            return JSONResponse(self.config)

        async def me(request: Request) -> Response:
            user = self.user_for(request)
            if user is None:
                return JSONResponse({"code": "not_authenticated", "message": "no"}, 401)
            return JSONResponse({"user": user})

        async def guest(request: Request) -> Response:
            body = await request.json()
            self.requests.append(("POST", "/api/auth/guest", body))
            token = f"guest-{len(self.users)}"
            user = {"id": f"g{len(self.users)}", "display_name": body["display_name"],
                    "is_guest": True}
            self.users[token] = user
            res = JSONResponse({"user": user, "token": token})
            res.set_cookie("ar_session", token, httponly=True, samesite="lax")
            return res

        async def signin(request: Request) -> Response:
            body = await request.json()
            self.requests.append(("POST", "/api/auth/signin", body))
            for token, user in self.users.items():
                if user.get("handle") == body.get("handle") and body.get("password") == "secret":
                    res = JSONResponse({"user": user, "token": token})
                    res.set_cookie("ar_session", token, httponly=True, samesite="lax")
                    return res
            return JSONResponse({"code": "invalid_credentials", "message": "no"}, 401)

        async def signout(request: Request) -> Response:
            res = Response(status_code=204)
            res.delete_cookie("ar_session")
            return res

        async def rooms(request: Request) -> Response:
            if request.method == "POST":
                body = await request.json()
                self.requests.append(("POST", "/api/rooms", body))
                if self.user_for(request) is None:
                    return JSONResponse({"code": "not_authenticated", "message": "no"}, 401)
                room_id = f"r{len(self.rooms) + 1}"
                status = "scheduled" if body.get("scheduled_start") else "live"
                room = self.add_room(room_id, body["title"], status=status,
                                     visibility=body["visibility"],
                                     scheduled_start=body.get("scheduled_start"))
                return JSONResponse({"room": room}, 201)
            status = request.query_params.get("status")
            return JSONResponse({"rooms": [r for r in self.rooms.values()
                                           if status is None or r["status"] == status]})

        async def room(request: Request) -> Response:
            room = self.rooms.get(request.path_params["room_id"])
            if room is None:
                return JSONResponse({"code": "room_not_found", "message": "no"}, 404)
            return JSONResponse({"room": room})

        async def ws(websocket: WebSocket) -> None:
            room_id = websocket.path_params["room_id"]
            await websocket.accept()
            join = json.loads(await websocket.receive_text())
            self.received.append(join)
            user = self.user_for(websocket, join.get("token"))
            if user is None:
                await websocket.close(4001)
                return
            room = self.rooms.get(room_id)
            if room is None:
                await websocket.close(4004)
                return
            role = self.roles.get(user["id"], "listener")
            me = participant(user["id"], user["display_name"], role,
                             is_guest=bool(user.get("is_guest")))
            people = [p for p in self.snapshots[room_id] if p["user_id"] != user["id"]] + [me]
            moderating = role in ("host", "moderator")
            resumed = any(c.user_id == user["id"] for c in self.joined)
            conn = Connection(websocket, user["id"], asyncio.get_running_loop())
            self.joined.append(conn)
            self.connections.append(conn)
            await websocket.send_text(json.dumps({
                "type": "welcome",
                "you": {"user_id": user["id"], "display_name": user["display_name"],
                        "role": role, "is_guest": bool(user.get("is_guest"))},
                "room": {
                    "id": room_id, "title": room["title"], "description": room["description"],
                    "visibility": room["visibility"], "host_id": room["host"]["id"],
                    "status": room["status"], "version": self.version,
                    "participants": people,
                    "hand_queue": self.hand_queues.get(room_id, []) if moderating else [],
                    "invited": False,
                },
                "version": self.version,
                "resumed": resumed,
                "ice_servers": self.config["ice_servers"],
                "slots": self.config["slots"],
            }))
            try:
                while True:
                    msg = json.loads(await websocket.receive_text())
                    self.received.append(msg)
                    if msg.get("type") == "ping":
                        await websocket.send_text(json.dumps({"type": "pong"}))
            except WebSocketDisconnect:
                pass
            finally:
                self.connections.remove(conn)

        return Starlette(routes=[
            Route("/", index),
            Route("/r/{room_id}", index),
            Route("/api/config", config),
            Route("/api/auth/me", me),
            Route("/api/auth/guest", guest, methods=["POST"]),
            Route("/api/auth/signin", signin, methods=["POST"]),
            Route("/api/auth/signout", signout, methods=["POST"]),
            Route("/api/rooms", rooms, methods=["GET", "POST"]),
            Route("/api/rooms/{room_id}", room),
            WebSocketRoute("/ws/rooms/{room_id}", ws),
            Mount("/", StaticFiles(directory=WEB)),
        ])


@contextmanager
def serving(fake: FakeServer, port: int = 0) -> Iterator[FakeServer]:
    """Run the fake on 127.0.0.1 in a thread for the duration of the block."""
    config = uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning",
                            ws="websockets-sansio", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake server did not start")
        time.sleep(0.02)
    sock = server.servers[0].sockets[0]
    fake.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    # Manual look: python -m tests.web.fake_server, then open the printed address.
    demo = FakeServer()
    demo.add_user("t-sara", {"id": "u-sara", "handle": "sara", "display_name": "سارا"})
    demo.add_room("r1", "گپ شبانه دربارهٔ موسیقی", listener_count=1234, speaker_count=3,
                  speakers=[{"user_id": "u-host", "display_name": "مریم احمدی", "role": "host"},
                            {"user_id": "u2", "display_name": "Ali Rezaei", "role": "speaker"},
                            {"user_id": "u3", "display_name": "نیما", "role": "moderator"}])
    demo.add_room("r2", "Weekly tech talk", status="scheduled",
                  scheduled_start="2030-03-21T18:30:00Z")
    demo.snapshots["r1"] = [
        participant("u-host", "مریم احمدی", "host"),
        participant("u3", "نیما", "moderator"),
        participant("u2", "Ali Rezaei", "speaker", self_muted=False),
        participant("u4", "رضا", hand_raised=True),
        participant("u5", "Sam"),
    ]
    demo.roles["u-sara"] = "moderator"
    demo.hand_queues["r1"] = ["u4"]
    with serving(demo, port=8765) as running:
        print(running.base_url, flush=True)
        threading.Event().wait()
