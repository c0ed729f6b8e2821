"""Fixed-window rate limits kept in Redis, so they hold across every node of a deployment."""

from __future__ import annotations

import redis.asyncio as aioredis

from audio_rooms import errors
from audio_rooms.state import keys


class RateLimit:
    def __init__(self, redis: aioredis.Redis, scope: str, limit: int, window: int) -> None:
        self.redis = redis
        self.scope = scope
        self.limit = limit
        self.window = window

    async def hit(self, subject: str) -> None:
        """Count one attempt by ``subject``; raise RateLimited past the limit in this window."""
        key = keys.rate_limit(self.scope, subject)
        async with self.redis.pipeline(transaction=True) as pipe:
            # SET NX EX starts the window (and works on Redis 6, unlike EXPIRE NX).
            pipe.set(key, 0, ex=self.window, nx=True)
            pipe.incr(key)
            _, count = await pipe.execute()
        if int(count) > self.limit:
            ttl = await self.redis.ttl(key)
            raise errors.RateLimited(
                "Too many attempts; wait a moment and try again.", retry_after=max(int(ttl), 1)
            )
