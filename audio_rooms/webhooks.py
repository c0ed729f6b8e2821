"""Webhooks: what happened in rooms, POSTed to the operator's URLs, signed, retried.

The process that applies a change (the room's transition, a listener's join) turns its domain
events into webhook events (:func:`webhook_events`) and appends one queue entry per URL to a
Redis stream (:class:`WebhookQueue`). Every server process runs a :class:`WebhookDeliverer`
that reads the stream in one consumer group, so each entry goes to one process. A failed
attempt is put in a sorted set with the time of its next try (exponential backoff); due entries
are moved back to the stream by a script, so exactly one process re-queues each. An entry a
process took and never acknowledged (it died mid-delivery) is claimed by another once idle past
the lease. The queue lives in Redis, so it survives a restart of every server process (the
embedded Redis keeps an append-only file). Delivery is at least once: a receiver dedupes on the
``X-Audio-Rooms-Delivery`` id, the same on every attempt of one event to one URL.

Signature (docs/operations.md, "Webhooks"): ``X-Audio-Rooms-Signature: t=<unix seconds>,
v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``; a receiver recomputes it over the raw body and
refuses a ``t`` older than a few minutes, which stops replays.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge

from audio_rooms.domain.events import Event
from audio_rooms.state import keys
from audio_rooms.tasks import cancel_and_wait

if TYPE_CHECKING:
    from audio_rooms.settings import Settings

logger = logging.getLogger(__name__)

# Domain event type -> webhook event type. participant_removed is a departure too.
EVENT_TYPES = {
    "room_started": "room.started",
    "room_ended": "room.ended",
    "participant_joined": "participant.joined",
    "participant_left": "participant.left",
    "participant_removed": "participant.left",
    "role_changed": "role.changed",
}
WEBHOOK_EVENTS = frozenset(EVENT_TYPES.values())

SIGNATURE_HEADER = "X-Audio-Rooms-Signature"
EVENT_HEADER = "X-Audio-Rooms-Event"
DELIVERY_HEADER = "X-Audio-Rooms-Delivery"
REPLAY_WINDOW = 300.0  # seconds a receiver should accept a signature's timestamp for
BATCH = 16  # queue entries a process takes at once (and so POSTs at once, at most)
RETRY_CAP = 3600.0  # seconds: the longest wait between two attempts


@dataclass(frozen=True)
class WebhookConfig:
    urls: tuple[str, ...]
    secret: str
    events: frozenset[str] = WEBHOOK_EVENTS
    max_attempts: int = 8
    retry_base: float = 2.0  # seconds before the second attempt; doubled for each next one
    timeout: float = 10.0
    queue_max: int = 100_000

    @property
    def lease(self) -> float:
        """How long an entry may stay taken and unacknowledged before another process takes
        it: longer than any attempt of a batch can last."""
        return 2 * self.timeout + 5


def webhook_config(settings: Settings) -> WebhookConfig | None:
    """The configuration the settings give, or None: no webhooks."""
    if not settings.webhook_urls or not settings.webhook_secret:
        return None
    return WebhookConfig(
        urls=settings.webhook_urls,
        secret=settings.webhook_secret,
        events=frozenset(settings.webhook_events) or WEBHOOK_EVENTS,
        max_attempts=settings.webhook_max_attempts,
        retry_base=settings.webhook_retry_base,
        timeout=settings.webhook_timeout,
        queue_max=settings.webhook_queue_max,
    )


# --- pure: events and signatures ---------------------------------------------------------------


def webhook_events(room_id: str, events: Iterable[Event], at: float) -> list[dict[str, Any]]:
    """The webhook events (JSON-ready) for a room's domain events; the rest are skipped."""
    out = []
    for event in events:
        kind = EVENT_TYPES.get(event.type)
        if kind is None:
            continue
        body: dict[str, Any] = {"id": uuid.uuid4().hex, "type": kind, "room_id": room_id,
                                "at": round(at, 3)}
        if event.subject is not None:
            body["user_id"] = event.subject
        if event.type == "role_changed":
            body["role"] = event.data.get("role")
            body["by"] = event.data.get("by")
        elif event.type in ("participant_left", "room_ended"):
            body["reason"] = event.data.get("reason")
        elif event.type == "participant_removed":
            body["reason"] = "banned" if event.data.get("banned") else "removed"
            body["by"] = event.data.get("by")
        elif event.type == "participant_joined":
            participant = event.data.get("participant") or {}
            body["role"] = participant.get("role")
        elif event.type == "room_started":
            body.update(event.data)
        out.append(body)
    return out


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float,
           window: float = REPLAY_WINDOW) -> bool:
    """What a receiver does: the MAC matches and the timestamp is recent."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > window:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def backoff(attempt: int, base: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): doubling, capped,
    with a little jitter so that a receiver coming back is not hit by everything at once."""
    delay: float = min(RETRY_CAP, base * 2.0 ** (attempt - 1))
    return delay * random.uniform(0.9, 1.1)


# --- the queue ---------------------------------------------------------------------------------


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        prefix = "audio_rooms_webhook"
        self.delivered = Counter(f"{prefix}_deliveries", "Webhook POSTs a receiver accepted "
                                 "(2xx).", registry=registry)
        self.retried = Counter(f"{prefix}_retries", "Webhook attempts that failed and were "
                               "scheduled again.", registry=registry)
        self.failed = Counter(f"{prefix}_failures", "Webhook deliveries given up after "
                              "AUDIO_ROOMS_WEBHOOK_MAX_ATTEMPTS attempts.", registry=registry)
        self.dropped = Counter(f"{prefix}_dropped", "Webhook events not queued: the queue was "
                               "full or Redis unreachable.", registry=registry)
        self.queued = Gauge(f"{prefix}_queue_depth", "Webhook deliveries waiting (due now, "
                            "taken, or waiting to be retried), at the last look.",
                            ["state"], registry=registry)


class WebhookQueue:
    """Appends deliveries to the stream; used by whoever applied a change."""

    def __init__(self, redis: aioredis.Redis, config: WebhookConfig,
                 metrics: WebhookMetrics) -> None:
        self.redis = redis
        self.config = config
        self.metrics = metrics

    async def enqueue(self, room_id: str, events: Sequence[Event]) -> None:
        bodies = [b for b in webhook_events(room_id, events, time.time())
                  if b["type"] in self.config.events]
        if not bodies:
            return
        try:
            if await self.redis.xlen(keys.WEBHOOK_QUEUE) >= self.config.queue_max:
                logger.warning("webhooks: queue full (%d); %d events dropped",
                               self.config.queue_max, len(bodies))
                self.metrics.dropped.inc(len(bodies) * len(self.config.urls))
                return
            async with self.redis.pipeline(transaction=False) as pipe:
                for body in bodies:
                    encoded = json.dumps(body, separators=(",", ":"))
                    for url in self.config.urls:
                        pipe.xadd(keys.WEBHOOK_QUEUE,
                                  {"url": url, "body": encoded, "attempt": "1"})
                await pipe.execute()
        except (aioredis.RedisError, OSError):
            logger.warning("webhooks: %d events of room %s lost: Redis unreachable",
                           len(bodies), room_id)
            self.metrics.dropped.inc(len(bodies) * len(self.config.urls))


# KEYS: queue, retries. ARGV: now, max entries. Moves due retries to the queue, each once.
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[2], member)
  local job = cjson.decode(member)
  redis.call('XADD', KEYS[1], '*', 'url', job.url, 'body', job.body,
             'attempt', tostring(job.attempt))
end
return #due
"""


class WebhookDeliverer:
    """One process's share of the deliveries: reads the stream in the consumer group."""

    def __init__(self, redis: aioredis.Redis, config: WebhookConfig, metrics: WebhookMetrics,
                 consumer: str) -> None:
        self.redis = redis
        self.config = config
        self.metrics = metrics
        self.consumer = consumer
        self._move_due = redis.register_script(_MOVE_DUE)
        self._task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=config.timeout, follow_redirects=False)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._http.aclose()
        # Leave the group tidy: a consumer holding nothing goes (each start is a new one).
        # One holding entries (cancelled mid-delivery) stays, for another to claim them.
        try:
            pending = await self.redis.xpending_range(
                keys.WEBHOOK_QUEUE, keys.WEBHOOK_GROUP, min="-", max="+", count=1,
                consumername=self.consumer)
            if not pending:
                await self.redis.xgroup_delconsumer(
                    keys.WEBHOOK_QUEUE, keys.WEBHOOK_GROUP, self.consumer)
        except (aioredis.RedisError, OSError):
            pass

    async def _run(self) -> None:
        await self._make_group()
        while True:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError) as exc:
                logger.warning("webhooks: Redis unreachable (%s); trying again", exc)
                await asyncio.sleep(1.0)
                await self._make_group()
            except Exception:
                logger.exception("webhooks: delivery round failed")
                await asyncio.sleep(1.0)

    async def _make_group(self) -> None:
        try:
            await self.redis.xgroup_create(keys.WEBHOOK_QUEUE, keys.WEBHOOK_GROUP, id="0",
                                           mkstream=True)
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except (aioredis.RedisError, OSError):
            pass  # _round meets it again and waits

    async def _round(self) -> None:
        await self._move_due(keys=[keys.WEBHOOK_QUEUE, keys.WEBHOOK_RETRIES],
                             args=[time.time(), 100])
        # Entries another process took and never acknowledged (it died mid-delivery).
        claimed: Any = await self.redis.xautoclaim(
            keys.WEBHOOK_QUEUE, keys.WEBHOOK_GROUP, self.consumer,
            min_idle_time=int(self.config.lease * 1000), start_id="0-0", count=BATCH)
        entries = [entry for entry in claimed[1] if entry[1]]  # deleted ones come back empty
        if not entries:
            read: Any = await self.redis.xreadgroup(
                keys.WEBHOOK_GROUP, self.consumer, {keys.WEBHOOK_QUEUE: ">"}, count=BATCH,
                block=1000)
            entries = [entry for _, stream_entries in read for entry in stream_entries]
        if entries:
            await asyncio.gather(*(self._deliver(entry_id, fields)
                                   for entry_id, fields in entries))
        await self._note_depth()

    async def _deliver(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        url = fields[b"url"].decode()
        body = fields[b"body"]
        attempt = int(fields.get(b"attempt", b"1"))
        event = json.loads(body)
        ok = await self._post(url, body, event)
        if ok:
            self.metrics.delivered.inc()
        elif attempt < self.config.max_attempts:
            self.metrics.retried.inc()
            job = json.dumps({"url": url, "body": body.decode(), "attempt": attempt + 1})
            await self.redis.zadd(keys.WEBHOOK_RETRIES,
                                  {job: time.time() + backoff(attempt, self.config.retry_base)})
        else:
            self.metrics.failed.inc()
            logger.warning("webhooks: gave up on %s %s to %s after %d attempts",
                           event.get("type"), event.get("id"), url, attempt)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(keys.WEBHOOK_QUEUE, keys.WEBHOOK_GROUP, entry_id)
            pipe.xdel(keys.WEBHOOK_QUEUE, entry_id)
            await pipe.execute()

    async def _post(self, url: str, body: bytes, event: dict[str, Any]) -> bool:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.config.secret, int(time.time()), body),
            EVENT_HEADER: str(event.get("type")),
            DELIVERY_HEADER: f"{event.get('id')}",
            "User-Agent": "audio-rooms-webhooks",
        }
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            logger.info("webhooks: %s to %s failed: %s", event.get("type"), url,
                        type(exc).__name__)
            return False
        if 200 <= response.status_code < 300:
            return True
        logger.info("webhooks: %s to %s answered %d", event.get("type"), url,
                    response.status_code)
        return False

    async def _note_depth(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(keys.WEBHOOK_QUEUE)
            pipe.zcard(keys.WEBHOOK_RETRIES)
            queued, retrying = await pipe.execute()
        self.metrics.queued.labels("queued").set(queued)
        self.metrics.queued.labels("retrying").set(retrying)
