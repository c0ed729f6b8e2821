"""The cascade: one room's media across nodes, an origin and edges (docs/cascade.md).

This node's part in every room it carries media for:

* **Origin** of a room while it holds the room's lease (state/leases.py). It renews the lease
  every tick; when a renewal fails (another node holds it now) or cannot be made for a whole
  lease, it *fences* itself: closes the room's router and tells each participant's client, via
  the node holding its WebSocket, to offer again (``origin_moved``). It answers ``pipe``
  requests for its own epoch only, and closes pipes edges stopped refreshing.
* **Edge** of a room while it has a router there and is not the origin: every tick it reads the
  lease and keeps one inlet pulling from the current holder, opening a new one (a new socket, a
  new key) when the holder or epoch changes or the inlet heard nothing for
  ``silence`` seconds. A stale origin's packets go to a closed socket.
* **Watchdog** for the participants whose WebSocket is here and whose media is elsewhere: once
  their media node has left the node registry, the client is told to offer again
  (``media_node_lost``) and is placed anew.

Nothing here blocks media on Redis: a tick that cannot reach Redis changes nothing, and the
lease (renewed every tick) outlives a Redis outage shorter than itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from audio_rooms import errors
from audio_rooms.placement import Candidate, choose_edge, choose_origin
from audio_rooms.sfu import MediaServer, Router
from audio_rooms.sfu.pipe import PipeKeys
from audio_rooms.state.bus import BusError, NodeBus, NodeUnreachable
from audio_rooms.state.leases import Lease, OriginLeases
from audio_rooms.state.nodes import NodeInfo
from audio_rooms.tasks import cancel_and_wait

logger = logging.getLogger(__name__)


class OriginMoved(errors.ServiceUnavailable):
    """This node is not (or no longer) the room's origin: place the offer again."""

    code = "origin_moved"


@dataclass(frozen=True)
class CascadeConfig:
    lease: float = 4.0  # seconds an origin lease lasts without renewal
    tick: float = 0.5
    edge_capacity: int = 800  # media transports a node takes before listeners go elsewhere
    request_timeout: float = 3.0  # a bus request to another node
    silence: float = 3.0  # an inlet that heard nothing this long is opened again
    pipe_timeout: float = 10.0  # an origin closes a pipe its edge stopped refreshing
    idle: float = 15.0  # a router with no transport and no pipe is closed after this
    lost_after: float = 0.0  # a media node absent from the registry this long is gone


# (room_id, user_id, reason): tell a participant's client, on this node, that its media ended.
Notify = Callable[[str, str, str], None]


class Cascade:
    def __init__(
        self,
        node_id: str,
        media: MediaServer,
        leases: OriginLeases,
        bus: NodeBus,
        nodes: Callable[[], tuple[list[NodeInfo], float]],
        config: CascadeConfig,
    ) -> None:
        self.node_id = node_id
        self.media = media
        self.leases = leases
        self.bus = bus
        self._nodes = nodes
        self.config = config
        self.notify: Notify = lambda room_id, user_id, reason: None
        self.on_router_closed: Callable[[str], None] = lambda room_id: None
        self.held: dict[str, Lease] = {}  # rooms this node is the origin of
        self._renewed: dict[str, float] = {}  # when each held lease was last renewed
        self._pulling: dict[str, Lease] = {}  # edge rooms: the lease our inlet pulls from
        # Participants whose media is here: (room, user) -> the node of their WebSocket.
        self.served: dict[tuple[str, str], str] = {}
        # Participants whose WebSocket is here: (room, user) -> the node carrying their media.
        self.placed: dict[tuple[str, str], str] = {}
        self._missing_since: dict[str, float] = {}
        self._suspects: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._kicks: set[asyncio.Task[None]] = set()
        self._lock: dict[str, asyncio.Lock] = {}
        media.origins = lambda: len(self.held)
        bus.handlers.update(
            uplink=self._on_uplink,
            uplink_keys=self._on_uplink_keys,
            uplink_state=self._on_uplink_state,
            pipe=self._on_pipe,
            refresh=self._on_refresh,
            unpipe=self._on_unpipe,
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cascade")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, *self._kicks)
        for room_id, lease in list(self.held.items()):
            with contextlib.suppress(aioredis.RedisError, OSError):
                await self.leases.release(room_id, lease)
        self.held.clear()

    # --- nodes and placement -------------------------------------------------------------------

    def live(self) -> list[NodeInfo]:
        nodes, _ = self._nodes()
        now = time.monotonic()
        return [
            n for n in nodes
            if n.media and self._suspects.get(n.node_id, 0) < now
        ]

    def is_live(self, node_id: str) -> bool:
        return node_id == self.node_id or any(n.node_id == node_id for n in self.live())

    def suspect(self, node_id: str) -> None:
        """``node_id`` did not answer: place nothing there for a few seconds."""
        if node_id != self.node_id:
            self._suspects[node_id] = time.monotonic() + 3 * self.config.tick + 2

    def _candidates(self) -> list[Candidate]:
        return [
            Candidate(n.node_id, n.load.cpu, n.load.transports, n.edge_capacity)
            for n in self.live()
        ]

    async def origin(self, room_id: str) -> Lease:
        """The room's origin lease, claimed (for the least loaded node) if nobody holds it or
        its holder is gone."""
        lease = await self.leases.read(room_id)
        if lease is not None and self.is_live(lease.node_id):
            return lease
        target = choose_origin(self._candidates(), self.node_id)
        claimed = await self.leases.claim(room_id, target, replacing=lease)
        if claimed.node_id == target:
            logger.info("cascade: %s is the origin of room %s (epoch %d)",
                        target, room_id, claimed.epoch)
        return claimed

    def edge(self, exclude: tuple[str, ...] = ()) -> str:
        """The node to carry one more listener."""
        own = self.media.stats().transports
        return choose_edge(self._candidates(), self.node_id, self.config.edge_capacity, own,
                           exclude)

    def is_origin(self, room_id: str) -> bool:
        return room_id in self.held

    async def take_origin(self, room_id: str) -> Lease:
        """Act as the room's origin: its lease must name this node (OriginMoved if not)."""
        held = self.held.get(room_id)
        if held is not None:
            return held
        lease = await self.leases.read(room_id)
        if lease is None:
            lease = await self.leases.claim(room_id, self.node_id)
        if lease.node_id != self.node_id:
            raise OriginMoved("Another node carries this room's stage now.")
        self.held[room_id] = lease
        self._renewed[room_id] = time.monotonic()
        router = self.media.get_router(room_id)
        if router is not None and router.inlet is not None:
            router.close_inlet()
        self._pulling.pop(room_id, None)
        return lease

    def kick(self, room_id: str) -> None:
        """Pull the room's stage now, not at the next tick (a listener just arrived)."""
        if room_id in self.held:
            return
        task = asyncio.ensure_future(self._pull_guarded(room_id))
        self._kicks.add(task)
        task.add_done_callback(self._kicks.discard)

    # --- the tick ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick)
            try:
                await self.tick()
            except Exception:
                logger.exception("cascade: tick failed")

    async def tick(self) -> None:
        now = time.monotonic()
        await self._renew(now)
        for router in self.media.routers():
            room_id = router.room_id
            if room_id in self.held:
                self._close_stale_pipes(router, now)
            elif router.transports or router.tapped:
                await self._pull_guarded(room_id)
            idle = router.idle_since
            if (
                not router.transports and not router.pipes and not router.tapped
                and idle is not None and now - idle > self.config.idle
            ):
                await self.close_room(room_id)
        await self._watch_placed(now)

    async def _renew(self, now: float) -> None:
        for room_id, lease in list(self.held.items()):
            try:
                held = await self.leases.renew(room_id, lease)
            except (aioredis.RedisError, OSError):
                if now - self._renewed.get(room_id, now) < self.config.lease:
                    continue
                held = False
                logger.warning("cascade: could not renew the origin lease of room %s for %.1f s",
                               room_id, self.config.lease)
            if held:
                self._renewed[room_id] = now
                continue
            if self.held.get(room_id) is lease:
                logger.warning("cascade: lost the origin of room %s (epoch %d): fencing",
                               room_id, lease.epoch)
                await self._fence(room_id)

    async def _fence(self, room_id: str) -> None:
        """No longer the origin: forward nothing more, send every participant elsewhere."""
        self.held.pop(room_id, None)
        self._renewed.pop(room_id, None)
        router = self.media.get_router(room_id)
        if router is not None:
            users = list(router.transports)
            await self.media.close_router(room_id)
            self.on_router_closed(room_id)
            for user_id in users:
                await self.tell_participant(room_id, user_id, "origin_moved")

    def _close_stale_pipes(self, router: Router, now: float) -> None:
        for edge_id, pipe in router.pipes.items():
            if now - pipe.refreshed_at > self.config.pipe_timeout:
                logger.info("cascade: %s stopped pulling room %s", edge_id, router.room_id)
                router.close_pipe(edge_id)
        for server, inlet in router.uplinks.items():
            if now - max(inlet.last_heard, inlet.opened_at) > self.config.pipe_timeout:
                logger.info("cascade: %s stopped sending to room %s", server, router.room_id)
                router.close_uplink(server)

    async def close_room(self, room_id: str) -> None:
        """Close the room's router here, and give up its lease if held (idle or ended)."""
        await self.media.close_router(room_id)
        self._pulling.pop(room_id, None)
        self._lock.pop(room_id, None)
        lease = self.held.pop(room_id, None)
        self._renewed.pop(room_id, None)
        if lease is not None:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await self.leases.release(room_id, lease)
        for key in [k for k in self.served if k[0] == room_id]:
            del self.served[key]
        self.on_router_closed(room_id)

    # --- edge: pulling from the origin ---------------------------------------------------------

    async def _pull_guarded(self, room_id: str) -> None:
        lock = self._lock.setdefault(room_id, asyncio.Lock())
        if lock.locked():
            return
        async with lock:
            try:
                await self._pull(room_id)
            except (aioredis.RedisError, OSError):
                pass  # Redis away: keep pulling from whoever we pull from

    async def _pull(self, room_id: str) -> None:
        router = self.media.get_router(room_id)
        if router is None or room_id in self.held:
            return
        lease = await self.leases.read(room_id)
        if lease is None:
            return  # no origin yet: nobody on stage has connected
        if lease.node_id == self.node_id:
            await self.take_origin(room_id)
            return
        inlet = router.inlet
        now = time.monotonic()
        if (
            inlet is not None
            and self._pulling.get(room_id) == lease
            and now - max(inlet.last_heard, inlet.opened_at) < self.config.silence
        ):
            await self.bus.tell(lease.node_id, "refresh", {"room": room_id, "epoch": lease.epoch})
            return
        inlet = await router.open_inlet(lease.node_id, self.media.config.pipe_host)
        self._pulling[room_id] = lease
        assert inlet.address is not None
        try:
            reply = await self.bus.call(
                lease.node_id, "pipe",
                {"room": room_id, "epoch": lease.epoch, "address": list(inlet.address)},
                self.config.request_timeout,
            )
            inlet.accept(PipeKeys(base64.b64decode(reply["key"]),
                                  (str(reply["source"][0]), int(reply["source"][1]))))
            logger.info("cascade: pulling room %s from %s (epoch %d)",
                        room_id, lease.node_id, lease.epoch)
        except (NodeUnreachable, BusError, KeyError, TypeError, ValueError, IndexError) as exc:
            logger.info("cascade: could not pull room %s from %s: %s", room_id, lease.node_id, exc)
            if isinstance(exc, NodeUnreachable):
                self.suspect(lease.node_id)
            self._pulling.pop(room_id, None)
            if router.inlet is inlet:
                router.close_inlet()

    # --- origin: the bus requests of edges -----------------------------------------------------

    def _held_router(self, body: dict[str, Any]) -> Router:
        room_id, epoch = body.get("room"), body.get("epoch")
        lease = self.held.get(room_id) if isinstance(room_id, str) else None
        if lease is None or lease.epoch != epoch:
            raise OriginMoved("Not the origin of that room at that epoch.")
        assert isinstance(room_id, str)
        return self.media.router(room_id)

    @staticmethod
    def _edge(sender: str, body: dict[str, Any]) -> str:
        """Who pulls: the asking node, or the other deployment it asks for (federation)."""
        edge = body.get("edge")
        return edge if isinstance(edge, str) and edge.startswith("server:") else sender

    async def open_pipe_for(self, body: dict[str, Any]) -> dict[str, Any]:
        """A pipe request made on this node itself (for another deployment)."""
        return await self._on_pipe(self.node_id, body)

    async def handle_here(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """A bus request for this node, made by this node itself."""
        return await self.bus.handlers[op](self.node_id, body) or {}

    # --- origin of a federated room: uplinks from other deployments (docs/federation.md) ----

    @staticmethod
    def _server(body: dict[str, Any]) -> str:
        server = body.get("server")
        if not isinstance(server, str) or not 1 <= len(server) <= 253:
            raise errors.InvalidField("bad server", field="server")
        return server

    async def _on_uplink(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        router = self._held_router(body)
        inlet = await router.open_uplink(self._server(body), self.media.config.pipe_host)
        assert inlet.address is not None
        return {"address": list(inlet.address)}

    async def _on_uplink_keys(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        router = self._held_router(body)
        inlet = router.uplinks.get(self._server(body))
        if inlet is None:
            raise OriginMoved("No uplink is open for that server.")
        try:
            source = body["source"]
            inlet.accept(PipeKeys(base64.b64decode(body["key"]), (str(source[0]), int(source[1]))))
        except (KeyError, TypeError, ValueError, IndexError):
            raise errors.InvalidField("bad uplink keys", field="key") from None
        return {}

    async def _on_uplink_state(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            router = self._held_router(body)
        except OriginMoved:
            return {"open": False}
        inlet = router.uplinks.get(self._server(body))
        return {"open": inlet is not None and inlet.source is not None}

    async def _on_pipe(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        sender = self._edge(sender, body)
        router = self._held_router(body)
        address = body.get("address")
        if (
            not isinstance(address, list) or len(address) != 2
            or not isinstance(address[0], str) or not isinstance(address[1], int)
        ):
            raise errors.InvalidField("bad pipe address", field="address")
        keys = router.open_pipe(sender, (address[0], address[1]), self.media.pipe_socket())
        return {"key": base64.b64encode(keys.key).decode(), "source": list(keys.source)}

    async def _on_refresh(self, sender: str, body: dict[str, Any]) -> None:
        with contextlib.suppress(OriginMoved):
            self._held_router(body).refresh_pipe(self._edge(sender, body))

    async def _on_unpipe(self, sender: str, body: dict[str, Any]) -> None:
        with contextlib.suppress(OriginMoved):
            self._held_router(body).close_pipe(sender)

    # --- participants --------------------------------------------------------------------------

    async def tell_participant(self, room_id: str, user_id: str, reason: str) -> None:
        """Tell a participant served here, via the node of its WebSocket, that its media ended."""
        ws_node = self.served.pop((room_id, user_id), None)
        if ws_node is None or ws_node == self.node_id:
            self.notify(room_id, user_id, reason)
        else:
            await self.bus.tell(
                ws_node, "media_failed", {"room": room_id, "user": user_id, "reason": reason}
            )

    async def _watch_placed(self, now: float) -> None:
        elsewhere = {n for n in self.placed.values() if n != self.node_id}
        if not elsewhere:
            return
        # A node killed on a machine that stays up is gone from the bus at once (Redis sees
        # its connection close): no need to wait for its registration to expire.
        listening = await self.bus.listening(elsewhere)
        nodes, read_at = self._nodes()
        if now - read_at > 3 * self.config.tick or not any(
            n.node_id == self.node_id for n in nodes
        ):
            # The registry is not current (Redis away, or just back and this node not yet in
            # it): absence from it proves nothing.
            self._missing_since.clear()
            return
        present = {n.node_id for n in nodes if listening.get(n.node_id, True)}
        for key, node_id in list(self.placed.items()):
            if node_id == self.node_id or node_id in present:
                self._missing_since.pop(node_id, None)
                continue
            since = self._missing_since.setdefault(node_id, now)
            if now - since >= self.config.lost_after:
                logger.warning("cascade: media node %s is gone; %s of room %s offers again",
                               node_id, key[1], key[0])
                del self.placed[key]
                self.notify(key[0], key[1], "media_node_lost")
