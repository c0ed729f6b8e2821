"""Signed-out guest tokens, deny-listed in Redis until they would have expired.

A user's token is only as good as its session row, so signing out ends it. A guest token has no
row (guests have no account), so without this list it would keep working after sign-out for
the rest of its 12 hours, on every node.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from audio_rooms.state import keys


class GuestRevocations:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def revoke(self, guest_id: str, expires_at: int) -> None:
        """Refuse ``guest_id``'s token from now until ``expires_at`` (Unix seconds)."""
        ttl = expires_at - int(time.time())
        if ttl > 0:
            await self.redis.set(keys.guest_revoked(guest_id), 1, ex=ttl)

    async def is_revoked(self, guest_id: str) -> bool:
        return bool(await self.redis.exists(keys.guest_revoked(guest_id)))
