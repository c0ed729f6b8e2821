"""The bus: requests between server processes (nodes) over Redis pub/sub.

Every node listens on its own inbox channel (:func:`keys.node_inbox`). ``call`` publishes a
request to another node's inbox and waits for the reply on its own; ``tell`` publishes without
waiting. A request the target does not answer within the timeout (it is gone, or nobody
subscribes to its inbox: PUBLISH reaches no one) raises :class:`NodeUnreachable`; a handler's
typed refusal comes back as :class:`BusError` with the error's code. Redis is the only thing
between nodes: whoever can publish on it is trusted, as whoever can write a room's state is.

Every message is JSON, at most :data:`MAX_MESSAGE` bytes; at most :data:`MAX_IN_FLIGHT`
requests wait for replies and as many handlers run at once (the rest are refused as ``busy``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from audio_rooms.state import keys
from audio_rooms.state.channels import Channels
from audio_rooms.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

MAX_MESSAGE = 256 * 1024
MAX_IN_FLIGHT = 256

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]


class BusError(Exception):
    """The other node refused the request; ``code`` is the error's wire code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class NodeUnreachable(Exception):
    """No reply within the timeout, or the request could not be sent."""


class NodeBus:
    def __init__(self, redis: Any, channels: Channels, node_id: str) -> None:
        self.redis = redis
        self.channels = channels
        self.node_id = node_id
        self.handlers: dict[str, Handler] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._subscriber: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._subscriber = self.channels.subscriber(self.redis)
        self._reader = asyncio.create_task(self._read(), name="bus-reader")

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await cancel_and_wait(self._reader, *self._running)
        self._reader = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NodeUnreachable("bus stopped"))
        self._pending.clear()
        if self._subscriber is not None:
            await self._subscriber.aclose()

    async def call(
        self, node_id: str, op: str, body: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """``op`` on ``node_id``: its handler's reply, or BusError / NodeUnreachable."""
        if len(self._pending) >= MAX_IN_FLIGHT:
            raise NodeUnreachable("too many requests in flight")
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            receivers = await self._publish(
                node_id, {"id": request_id, "from": self.node_id, "op": op, "body": body}
            )
            if not receivers:
                raise NodeUnreachable(f"{node_id} does not listen")
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise NodeUnreachable(f"{node_id} did not answer {op} in {timeout} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def listening(self, node_ids: set[str]) -> dict[str, bool]:
        """Whether each node's inbox has a subscriber now ({} if that cannot be known: Redis
        away, or a cluster, where a channel's subscribers are counted per server)."""
        if not node_ids or isinstance(self.redis, RedisCluster):
            return {}
        ids = sorted(node_ids)
        try:
            counts = await self.redis.execute_command(
                "PUBSUB", "SHARDNUMSUB" if self.channels.sharded else "NUMSUB",
                *(keys.node_inbox(n) for n in ids),
            )
        except (aioredis.RedisError, OSError):
            return {}
        # [channel, count, channel, count, ...]
        return {n: int(counts[2 * i + 1]) > 0 for i, n in enumerate(ids)}

    async def tell(self, node_id: str, op: str, body: dict[str, Any]) -> None:
        """``op`` on ``node_id`` without waiting for it (lost if it is gone)."""
        try:
            await self._publish(node_id, {"from": self.node_id, "op": op, "body": body})
        except NodeUnreachable:
            logger.info("bus: could not tell %s %s", node_id, op)

    async def _publish(self, node_id: str, message: dict[str, Any]) -> int:
        data = json.dumps(message, separators=(",", ":"))
        if len(data) > MAX_MESSAGE:
            raise ValueError("bus message too large")
        try:
            receivers = await self.channels.publish(self.redis, keys.node_inbox(node_id), data)
        except (aioredis.RedisError, OSError) as exc:
            raise NodeUnreachable(f"Redis: {exc}") from exc
        # PUBLISH counts subscribers; SPUBLISH on a cluster only this shard's: 0 means no one.
        return int(receivers) if isinstance(receivers, int) else 1

    async def _read(self) -> None:
        channel = keys.node_inbox(self.node_id)
        while True:
            try:
                if not self._subscriber.subscribed:
                    await self._subscriber.subscribe(channel)
                message = await self._subscriber.get_message(timeout=1.0)
            except (aioredis.ConnectionError, OSError):
                logger.warning("bus: lost the Redis pub/sub connection; retrying")
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            if message["type"] == "subscribe":
                self._ready.set()
                continue
            if message["type"] != "message":
                continue
            raw = message["data"]
            if len(raw) > MAX_MESSAGE:
                logger.warning("bus: dropped an oversized message")
                continue
            try:
                data = json.loads(raw)
                if not isinstance(data, dict):
                    raise ValueError
            except ValueError:
                logger.warning("bus: dropped an undecodable message")
                continue
            self._receive(data)

    def _receive(self, data: dict[str, Any]) -> None:
        if "re" in data:
            future = self._pending.get(data["re"]) if isinstance(data["re"], int) else None
            if future is not None and not future.done():
                if "error" in data:
                    future.set_exception(
                        BusError(str(data["error"]), str(data.get("message", "")))
                    )
                else:
                    reply = data.get("ok")
                    future.set_result(reply if isinstance(reply, dict) else {})
            return
        sender, op, body = data.get("from"), data.get("op"), data.get("body")
        if not isinstance(sender, str) or not isinstance(op, str) or not isinstance(body, dict):
            logger.warning("bus: dropped a malformed request")
            return
        request_id = data.get("id")
        if len(self._running) >= MAX_IN_FLIGHT:
            if isinstance(request_id, int):
                self._spawn(self._reply(sender, {"re": request_id, "error": "busy"}))
            return
        self._spawn(self._handle(sender, op, body, request_id))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _handle(self, sender: str, op: str, body: dict[str, Any], request_id: Any) -> None:
        handler = self.handlers.get(op)
        reply: dict[str, Any]
        if handler is None:
            reply = {"error": "unknown_operation", "message": op}
        else:
            try:
                reply = {"ok": await handler(sender, body) or {}}
            except BusError as exc:
                reply = {"error": exc.code, "message": exc.message}
            except Exception as exc:
                code = getattr(exc, "code", None)
                if isinstance(code, str):
                    reply = {"error": code, "message": str(exc)}
                else:
                    logger.exception("bus: %s from %s failed", op, sender)
                    reply = {"error": "internal_error"}
        if isinstance(request_id, int):
            await self._reply(sender, {"re": request_id, **reply})

    async def _reply(self, node_id: str, message: dict[str, Any]) -> None:
        try:
            await self._publish(node_id, {"from": self.node_id, **message})
        except NodeUnreachable:
            logger.info("bus: could not reply to %s", node_id)
