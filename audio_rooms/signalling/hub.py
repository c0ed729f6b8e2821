"""This node's connections, grouped by room, fed from the rooms' Redis event channels.

The hub subscribes to a room's channel while it has at least one local connection in it, and
hands every published message to each of them in order, then to its ``listeners`` (the
composition root registers the media plane's and SQL's). It keeps its participants present in
Redis with heartbeats, applies the grace-period rule to every live room, and drains the node
before a restart. Others find connections through its accessors, never its dict.

Reactions take a shorter road: the hub tallies its own connections' reactions per room and,
once a tick, publishes each room's counts on the room's channel; every node hands them to its
connections as one ``reactions`` message. A hundred people clapping cost each listener one
frame per tick, and Redis one publish per room per node per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from audio_rooms.domain.actions import REACTIONS
from audio_rooms.domain.reactions import Tally
from audio_rooms.domain.transitions import end_if_abandoned
from audio_rooms.errors import AccountBanned, AudioRoomsError
from audio_rooms.signalling.connection import CloseCode, Connection
from audio_rooms.signalling.frames import text_frame
from audio_rooms.signalling.outbound import (
    ActiveSpeakers,
    Error,
    Reactions,
    Reconnect,
    ServerMessage,
    Snapshot,
)
from audio_rooms.state import keys
from audio_rooms.state.channels import Channels
from audio_rooms.state.store import Published, RoomStore
from audio_rooms.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

PublishedListener = Callable[[Published], Awaitable[None]]
# (room_id, viewer) -> the SNAPSHOT the viewer is shown and the version it holds; None once the
# room is gone. The composition root plugs in RoomService.snapshot.
SnapshotSource = Callable[[str, str], Awaitable[tuple[dict[str, Any], int] | None]]

# How long clients wait before reconnecting when told to: time for a restarted server to start.
RECONNECT_AFTER_MS = 1500


class Hub:
    def __init__(
        self,
        redis: aioredis.Redis,
        store: RoomStore,
        heartbeat_interval: float,
        grace_period: float,
        empty_room_timeout: float = 600.0,
        reaction_tick: float = 0.2,
        channels: Channels | None = None,
    ) -> None:
        self.redis = redis
        self.channels = channels or Channels()
        self.store = store
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.empty_room_timeout = empty_room_timeout
        self.reaction_tick = reaction_tick
        self.reactions = Tally()
        self._rooms: dict[str, dict[str, Connection]] = {}
        self.listeners: list[PublishedListener] = []
        # Set by drain(): no more joins on this node.
        self.draining = False
        self._pubsub = self.channels.subscriber(redis)
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._channel_lock = asyncio.Lock()
        # Set while no connection is on this node: a drain waits on it, not on its deadline.
        self._emptied = asyncio.Event()
        self._emptied.set()
        self._snapshots: set[asyncio.Task[None]] = set()
        # Rooms whose channel was lost with the pub/sub connection and not yet subscribed again.
        self._missed: set[str] = set()
        self.snapshots: SnapshotSource | None = None
        # Rooms followed without a connection here: this node carries their media
        # (docs/cascade.md), so it must hear their role changes.
        self._watched: set[str] = set()
        # The last active-speaker report per room (from the room's origin, over the channel).
        self.active_speakers: dict[str, ActiveSpeakers] = {}

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read(), name="hub-reader"),
            asyncio.create_task(self._heartbeat(), name="hub-heartbeat"),
            asyncio.create_task(self._sweep(), name="hub-sweeper"),
            asyncio.create_task(self._send_reactions(), name="hub-reactions"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        await self._pubsub.aclose()

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._rooms.values())

    def room_ids(self) -> list[str]:
        """The rooms with at least one connection on this node."""
        return list(self._rooms)

    def connections(self, room_id: str) -> list[Connection]:
        return list(self._rooms.get(room_id, {}).values())

    def connection(self, room_id: str, user_id: str) -> Connection | None:
        """The participant's current connection on this node, if any."""
        return self._rooms.get(room_id, {}).get(user_id)

    # --- connections ---------------------------------------------------------------------------

    async def attach(self, connection: Connection) -> None:
        """Register a connection and make sure its room's deltas reach this node.

        Returns once Redis confirmed the subscription, so a snapshot read afterwards misses no
        delta. A previous connection of the same user in the room is closed as replaced.
        """
        room = self._rooms.setdefault(connection.room_id, {})
        previous = room.get(connection.user_id)
        room[connection.user_id] = connection
        self._emptied.clear()
        if previous is not None and previous is not connection:
            previous.close(CloseCode.REPLACED)
        await self.store.keep_present(connection.room_id, [connection.user_id], self._lease)
        await self._subscribe(connection.room_id)

    async def detach(self, connection: Connection, left: bool) -> None:
        room = self._rooms.get(connection.room_id)
        if room is None or room.get(connection.user_id) is not connection:
            return  # already replaced by a newer connection of the same user
        del room[connection.user_id]
        # Forget the room before anything that awaits Redis (which may be down), so that a
        # drain sees the last connection go the moment it goes.
        emptied = not room and self._rooms.get(connection.room_id) is room
        if emptied:
            del self._rooms[connection.room_id]
            if not self._rooms:
                self._emptied.set()
        try:
            if not left:
                # The participant stays in the room for the grace period and may resume.
                await self.store.keep_present(connection.room_id, [connection.user_id],
                                              self.grace_period)
        finally:
            if emptied:
                await self._unsubscribe(connection.room_id)

    async def resend_snapshot(self, connection: Connection) -> None:
        """Send a fresh ``snapshot`` to a connection put on :meth:`Connection.hold`; deltas
        that arrived meanwhile follow it in order."""
        view = None
        try:
            if self.snapshots is not None:
                view = await self.snapshots(connection.room_id, connection.user_id)
        except (aioredis.RedisError, OSError):
            logger.warning("%r: no snapshot, Redis unreachable; deltas go on", connection)
        if view is not None and any(p["user_id"] == connection.user_id
                                    for p in view[0]["participants"]):
            connection.send(Snapshot.of(view[0], view[1]))
            connection.ready(view[1])
        else:
            connection.ready(connection.version)

    def _resync(self, connection: Connection) -> None:
        connection.hold()  # later deltas wait for the snapshot, in order
        # Reading and encoding a big room's snapshot takes tens of ms: not in the fan-out path
        # of everyone else, nor in the way of the next published message.
        task = asyncio.create_task(self.resend_snapshot(connection), name="snapshot")
        self._snapshots.add(task)
        task.add_done_callback(self._snapshots.discard)

    def broadcast(self, room_id: str, message: ServerMessage) -> None:
        """Send one message to every local connection of a room, encoded once for all."""
        text = json.dumps(message.wire(), ensure_ascii=False, separators=(",", ":"))
        frame = text_frame(text.encode())
        for connection in list(self._rooms.get(room_id, {}).values()):
            if connection.shares_frames:
                connection.send_frame(frame)
            else:
                connection.send_text(text)

    async def empty(self) -> None:
        """Return once no connection is left on this node."""
        await self._emptied.wait()

    async def drain(self, deadline: float) -> None:
        """Stop taking joins, ask every client to reconnect, and wait up to ``deadline``
        seconds for them to go; close whoever is left. Room state stays in Redis, and the
        participants' grace period lets them resume on the next server with their roles."""
        self.draining = True
        self.send_all(Reconnect(after_ms=RECONNECT_AFTER_MS))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.empty(), deadline)
        self.close_all(CloseCode.GOING_AWAY)
        logger.info("drained: %d connections left at the deadline", self.connection_count)

    def send_all(self, message: ServerMessage) -> None:
        for room_id in list(self._rooms):
            self.broadcast(room_id, message)

    def close_all(self, code: int) -> None:
        for room in self._rooms.values():
            for connection in list(room.values()):
                connection.close(code)

    def close_user(self, user_id: str) -> int:
        """Close every socket of ``user_id`` on this node, saying why; return how many."""
        message = Error.of(AccountBanned("This account is banned from this server."), None)
        closed = 0
        for room in list(self._rooms.values()):
            connection = room.get(user_id)
            if connection is not None:
                connection.send(message)
                connection.close(CloseCode.REMOVED)
                closed += 1
        return closed

    # --- Redis channel -------------------------------------------------------------------------

    async def _subscribe(self, room_id: str) -> None:
        channel = keys.room_events(room_id)
        async with self._channel_lock:
            if channel.encode() in self._pubsub.channels or channel in self._pubsub.channels:
                return
            confirmed = asyncio.get_running_loop().create_future()
            self._confirmations[channel] = confirmed
            await self._pubsub.subscribe(channel)
            self._subscribed.set()
        await asyncio.wait_for(confirmed, 10)

    async def _unsubscribe(self, room_id: str) -> None:
        async with self._channel_lock:
            if room_id not in self._rooms and room_id not in self._watched:
                self.active_speakers.pop(room_id, None)
                await self._pubsub.unsubscribe(keys.room_events(room_id))

    async def watch(self, room_id: str) -> None:
        """Follow a room's events without a connection of it here."""
        if room_id not in self._watched:
            self._watched.add(room_id)
            await self._subscribe(room_id)

    async def unwatch(self, room_id: str) -> None:
        if room_id in self._watched:
            self._watched.discard(room_id)
            await self._unsubscribe(room_id)

    async def publish_active_speakers(self, room_id: str, message: ActiveSpeakers) -> None:
        """Send a room's active speakers to its connections on every node."""
        data = json.dumps({"s": message.model_dump(mode="json")["speakers"]})
        try:
            await self.channels.publish(self.redis, keys.room_events(room_id), data)
        except (aioredis.RedisError, OSError):
            pass  # the next change goes out; the indicator is not worth a retry

    def _deliver_active_speakers(self, room_id: str, speakers: Any) -> None:
        message = ActiveSpeakers.model_validate({"speakers": speakers})
        self.active_speakers[room_id] = message
        self.broadcast(room_id, message)

    async def _listen_for_account_bans(self) -> None:
        """Subscribe to account bans for good: a ban must reach every node, whether or not it
        has rooms now. Redis may be down at start; the server starts anyway and waits for it."""
        while True:
            try:
                async with self._channel_lock:
                    await self._pubsub.subscribe(keys.ACCOUNT_BANS)
                    self._subscribed.set()
                return
            except (aioredis.ConnectionError, OSError):
                logger.warning("hub: Redis unreachable; listening for account bans once it is back")
                await asyncio.sleep(1.0)

    async def _read(self) -> None:
        await self._listen_for_account_bans()
        while True:
            if not self._pubsub.subscribed:
                self._subscribed.clear()
                await self._subscribed.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (aioredis.ConnectionError, OSError):
                logger.warning("hub: lost the Redis pub/sub connection; retrying")
                # Deltas published until the channels are subscribed again are lost: each
                # room's connections get a fresh snapshot once its channel is back.
                self._missed.update(self._rooms)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            channel = _text(message["channel"])
            if message["type"] == "subscribe":
                future = self._confirmations.pop(channel, None)
                if future is not None and not future.done():
                    future.set_result(None)
                if channel != keys.ACCOUNT_BANS:
                    room_id = keys.room_id_from_events_channel(channel)
                    if room_id in self._missed:
                        self._missed.discard(room_id)
                        for connection in list(self._rooms.get(room_id, {}).values()):
                            self._resync(connection)
            elif message["type"] == "message" and channel == keys.ACCOUNT_BANS:
                user_id = _text(message["data"])
                if self.close_user(user_id):
                    logger.info("hub: closed the sockets of %s, banned from the server", user_id)
            elif message["type"] == "message":
                room_id = keys.room_id_from_events_channel(channel)
                try:
                    data = json.loads(message["data"])
                    if "r" in data:
                        self._deliver_reactions(room_id, data["r"])
                        continue
                    if "s" in data:
                        self._deliver_active_speakers(room_id, data["s"])
                        continue
                    published = Published.from_data(room_id, data)
                except (ValueError, KeyError, TypeError, AttributeError, ValidationError):
                    logger.exception("hub: undecodable message on %s", channel)
                    continue
                await self._dispatch(published)

    async def _dispatch(self, published: Published) -> None:
        promoted: list[Connection] = []
        for connection in list(self._rooms.get(published.room_id, {}).values()):
            connection.deliver(published)
            if connection.needs_snapshot:
                connection.needs_snapshot = False
                promoted.append(connection)
        for connection in promoted:
            self._resync(connection)
        for listener in self.listeners:
            try:
                await listener(published)
            except Exception:
                logger.exception("hub: listener failed on room %s", published.room_id)

    # --- reactions -----------------------------------------------------------------------------

    def react(self, room_id: str, emoji: str) -> None:
        """Count a local participant's reaction; it goes out with the next tick."""
        self.reactions.add(room_id, emoji)

    async def _send_reactions(self) -> None:
        while True:
            await asyncio.sleep(self.reaction_tick)
            rooms = self.reactions.drain()
            if not rooms:
                continue
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for room_id, counts in rooms.items():
                        self.channels.publish(
                            pipe, keys.room_events(room_id), json.dumps({"r": counts}))
                    await pipe.execute()
            except (aioredis.RedisError, OSError):
                logger.warning("hub: %d rooms' reactions lost; Redis unreachable", len(rooms))

    def _deliver_reactions(self, room_id: str, counts: dict[str, Any]) -> None:
        valid = {
            emoji: int(n) for emoji, n in counts.items()
            if emoji in REACTIONS and isinstance(n, int) and n > 0
        }
        if valid:
            self.broadcast(room_id, Reactions(counts=valid))

    # --- presence ------------------------------------------------------------------------------

    @property
    def _lease(self) -> float:
        """How long a connected participant stays present if this node stops heartbeating."""
        return 2 * self.heartbeat_interval + self.grace_period

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            for room_id, room in list(self._rooms.items()):
                try:
                    await self.store.keep_present(room_id, list(room), self._lease)
                except (aioredis.ConnectionError, OSError):
                    logger.warning("hub: heartbeat for room %s failed", room_id)

    async def _sweep(self) -> None:
        interval = min(1.0, self.grace_period / 4)
        rounds = 0
        while True:
            await asyncio.sleep(interval)
            rounds += 1
            check_abandoned = rounds % 30 == 0
            try:
                for room_id in await self.store.live_room_ids():
                    connected_here = set(self._rooms.get(room_id, {}))
                    outcomes = await self.store.drop_overdue(room_id, connected_here)
                    for outcome in outcomes:
                        left = [e.subject for e in outcome.events if e.type == "participant_left"]
                        logger.info("room %s: dropped %s after the grace period", room_id, left)
                    if check_abandoned and not connected_here:
                        listening = await self.store.audience.count(room_id)
                        outcomes.append(await self.store.change(
                            room_id, functools.partial(
                                end_if_abandoned, empty_for=self.empty_room_timeout,
                                audience=listening),
                        ))
                    for outcome in outcomes:
                        if not outcome.state.live and outcome.events:
                            # Nobody may be connected here to hear it on the channel.
                            ended = Published(room_id, outcome.state.version, True,
                                              outcome.events, frozenset())
                            for listener in self.listeners:
                                await listener(ended)
            except (aioredis.ConnectionError, OSError):
                logger.warning("hub: sweep failed; Redis unreachable")
            except AudioRoomsError:
                logger.exception("hub: sweep failed")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
