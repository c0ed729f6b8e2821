"""How this deployment publishes and subscribes: plain pub/sub, or sharded pub/sub on a
Redis 7 cluster.

Plain PUBLISH on a cluster is broadcast over the cluster bus to every node, whatever the channel:
each room's every delta costs every shard. Redis 7's sharded pub/sub (SPUBLISH/SSUBSCRIBE) keeps
a channel on the shard that owns its slot, and a room's channel carries the room's hash tag
(state/keys.py), so a room's deltas stay on the room's shard. Redis 6 has no sharded pub/sub; a
cluster of 6s uses plain pub/sub, which reaches subscribers on every node.

Every server process of a deployment must make the same choice (a SPUBLISH never reaches a
plain SUBSCRIBE): it follows from the servers' version, read at start-up (:func:`channels_for`).

:class:`Channels` gives the publishers one call for both (inside a MULTI too: redis-py's
cluster pipeline refuses ``pipe.publish()``, but not the raw command), and the hub a subscriber
with the interface of redis-py's ``PubSub`` (``subscribe``, ``unsubscribe``, ``channels``,
``subscribed``, ``get_message``, ``aclose``), whichever kind it is underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPubSub, RedisCluster
from redis.crc import key_slot

logger = logging.getLogger(__name__)

SHARDED_SINCE = (7, 0)


@dataclass(frozen=True)
class Channels:
    sharded: bool = False

    @property
    def publish_command(self) -> str:
        return "SPUBLISH" if self.sharded else "PUBLISH"

    def publish(self, target: Any, channel: str, message: str | bytes) -> Any:
        """Publish on a client (returns an awaitable) or queue the publish in a pipeline."""
        return target.execute_command(self.publish_command, channel, message)

    def subscriber(self, redis: Any) -> Any:
        """A PubSub-like subscriber for the hub's reading loop."""
        if self.sharded:
            return ShardedSubscriber(redis)
        if isinstance(redis, RedisCluster):
            return _ResyncingClusterPubSub(redis)
        return _ResyncingPubSub(connection_pool=redis.connection_pool)


async def channels_for(redis: Any) -> Channels:
    """Sharded on a cluster whose every master runs Redis 7 or later, plain otherwise. Raises
    if a cluster cannot be asked (a server must not guess: see the module's docstring)."""
    if not isinstance(redis, RedisCluster):
        return Channels(sharded=False)
    infos = await redis.execute_command("INFO", "server", target_nodes=RedisCluster.PRIMARIES)
    versions = [_version(info) for info in _per_node(infos)]
    sharded = bool(versions) and min(versions) >= SHARDED_SINCE
    logger.info("Redis Cluster of %d masters, Redis %s: %s pub/sub", len(versions),
                ".".join(map(str, min(versions))) if versions else "?",
                "sharded" if sharded else "plain")
    return Channels(sharded=sharded)


def _per_node(infos: Any) -> list[dict[str, Any]]:
    if isinstance(infos, dict) and "redis_version" in infos:
        return [infos]
    if isinstance(infos, dict):
        return [i for i in infos.values() if isinstance(i, dict)]
    return []


def _version(info: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(part) for part in str(info["redis_version"]).split(".")[:2])


class ShardedSubscriber:
    """SSUBSCRIBE to each channel on the master that owns its slot, one connection per master,
    read by one task each into one queue; messages are renamed to the plain kinds
    (``smessage`` -> ``message``, ``ssubscribe`` -> ``subscribe``) so readers need not care.

    redis-py's ``ClusterPubSub.get_sharded_message`` polls the masters in turn, each with the
    whole timeout: a message on the second would wait for the first's timeout to pass.

    A channel stays with the master it was subscribed on; moving slots between masters
    (resharding) while rooms are live needs their channels subscribed again (a restart).
    """

    KINDS = {"smessage": "message", "ssubscribe": "subscribe", "sunsubscribe": "unsubscribe"}

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self._nodes: dict[str, aioredis.client.PubSub] = {}
        self._clients: dict[str, aioredis.Redis] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._owner: dict[str, str] = {}  # channel -> node name
        self._queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()

    @property
    def channels(self) -> dict[str, None]:
        return dict.fromkeys(self._owner)

    @property
    def subscribed(self) -> bool:
        return bool(self._owner)

    async def subscribe(self, *channels: str) -> None:
        for channel in channels:
            if channel in self._owner:
                continue
            await self.cluster.initialize()
            node: Any = self.cluster.get_node_from_key(channel)
            if node is None:
                raise aioredis.ConnectionError(f"no cluster master holds {channel}'s slot")
            pubsub = self._pubsub_for(node.name, node.host, node.port)
            await pubsub.ssubscribe(channel)
            self._owner[channel] = node.name

    async def unsubscribe(self, *channels: str) -> None:
        for channel in channels:
            name = self._owner.pop(channel, None)
            if name is not None:
                await self._nodes[name].sunsubscribe(channel)

    async def get_message(self, timeout: float = 0.0) -> dict[str, Any] | None:
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        for task in self._readers.values():
            task.cancel()
        for task in self._readers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for pubsub in self._nodes.values():
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        for client in self._clients.values():
            await client.aclose()
        self._nodes.clear()
        self._clients.clear()
        self._readers.clear()

    def _pubsub_for(self, name: str, host: str, port: int) -> aioredis.client.PubSub:
        pubsub = self._nodes.get(name)
        if pubsub is None:
            kwargs = self.cluster.nodes_manager.connection_kwargs
            client = aioredis.Redis(
                host=host, port=port, password=kwargs.get("password"),
                username=kwargs.get("username"), ssl=bool(kwargs.get("ssl", False)),
                socket_connect_timeout=kwargs.get("socket_connect_timeout"),
            )
            pubsub = _ResyncingPubSub(connection_pool=client.connection_pool)
            self._clients[name] = client
            self._nodes[name] = pubsub
            self._readers[name] = asyncio.create_task(self._read(pubsub), name=f"pubsub-{name}")
        return pubsub

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        while True:
            if not pubsub.subscribed:
                await asyncio.sleep(0.05)
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
            except Exception as exc:
                # Handed to the reader as a lost connection, whatever redis-py raised (this task
                # must not die of it), so it resyncs its rooms; the next read reconnects and
                # subscribes the node's channels again.
                logger.warning("sharded pub/sub: %s: %s", type(exc).__name__, exc)
                lost = exc if isinstance(exc, aioredis.ConnectionError) else (
                    aioredis.ConnectionError(f"{type(exc).__name__}: {exc}"))
                self._queue.put_nowait(lost)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            kind = _text(message["type"])
            self._queue.put_nowait({**message, "type": self.KINDS.get(kind, kind)})


class _Resyncing:
    """redis-py may make a lost pub/sub connection again by itself within one read and
    subscribe its channels again without a word (it does for a connection the server dropped,
    on the per-master connections of sharded pub/sub): whatever was published in between is
    lost, and the hub, which resyncs rooms when it learns of a lost connection, would never
    learn. This raises that loss
    once, as a ConnectionError from ``get_message``, before the message that came first on the
    new connection (kept for the next call, so the resubscription confirmations all arrive
    after the hub knows).

    ``on_connect`` runs on every connect but the first (made before it is registered)."""

    _lost = False
    _held: dict[str, Any] | None = None

    async def on_connect(self, connection: Any) -> None:
        self._lost = True
        await super().on_connect(connection)  # type: ignore[misc]

    async def get_message(self, ignore_subscribe_messages: bool = False,
                          timeout: float | None = 0.0) -> dict[str, Any] | None:
        if self._held is not None:
            held, self._held = self._held, None
            return held
        message: dict[str, Any] | None = await super().get_message(  # type: ignore[misc]
            ignore_subscribe_messages=ignore_subscribe_messages, timeout=timeout)
        if self._lost:
            self._lost = False
            self._held = message
            raise aioredis.ConnectionError("pub/sub connection lost; subscribed again")
        return message


class _ResyncingPubSub(_Resyncing, aioredis.client.PubSub):
    async def _resubscribe_shard_channels(self) -> None:
        """Subscribe again slot by slot: one SSUBSCRIBE may name channels of one slot only,
        and a master's channels are of many (redis-py's own per-master pub/sub does the
        same; a plain PubSub sends them all at once, which the master refuses: CROSSSLOT)."""
        by_slot: dict[int, dict[Any, Any]] = {}
        for channel, handler in self.shard_channels.items():
            by_slot.setdefault(key_slot(self.encoder.encode(channel)), {})[channel] = handler
        for subscriptions in by_slot.values():
            await self._resubscribe(subscriptions, self.ssubscribe)


class _ResyncingClusterPubSub(_Resyncing, ClusterPubSub):
    pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
