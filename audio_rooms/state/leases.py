"""Origin leases: which node is a room's media origin, held in Redis with a fencing epoch.

A lease is ``"node_id|epoch"`` under :func:`keys.room_origin` with a TTL. Claiming increments
the room's epoch (:func:`keys.room_epoch`) and sets the lease only when nobody holds it (or the
holder is the one named to be replaced, a node the registry says is gone). The holder renews it
well within the TTL; renewing fails once another node holds it, and the old holder then stops
acting as origin (it *fences* itself). An edge pulls from the holder of the current epoch only,
and the origin answers a pipe request only for its own epoch, so a stale origin that wakes up
reaches nobody. Every script touches one room's keys (one hash tag): it runs on a cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audio_rooms.state import keys

_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[3] then
  return holder
end
local epoch = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. '|' .. epoch
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder and tonumber(redis.call('GET', KEYS[2]) or '0') == tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Lease:
    node_id: str
    epoch: int

    @property
    def value(self) -> str:
        return f"{self.node_id}|{self.epoch}"

    @classmethod
    def parse(cls, raw: bytes | str | None) -> Lease | None:
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else raw
        node_id, _, epoch = text.rpartition("|")
        if not node_id or not epoch.isdigit():
            return None
        return cls(node_id, int(epoch))


class OriginLeases:
    def __init__(self, redis: Any, ttl: float) -> None:
        self.redis = redis
        self.ttl = ttl
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def _px(self) -> int:
        return int(self.ttl * 1000)

    async def claim(self, room_id: str, node_id: str, replacing: Lease | None = None) -> Lease:
        """Take the room's origin for ``node_id``; returns the lease now held (by whoever)."""
        raw = await self._claim(
            keys=[keys.room_origin(room_id), keys.room_epoch(room_id)],
            args=[node_id, self._px, replacing.value if replacing else ""],
        )
        lease = Lease.parse(raw)
        assert lease is not None, f"unreadable origin lease {raw!r}"
        return lease

    async def renew(self, room_id: str, lease: Lease) -> bool:
        """Extend ``lease``; False if the room's origin is no longer it."""
        held = await self._renew(
            keys=[keys.room_origin(room_id), keys.room_epoch(room_id)],
            args=[lease.value, self._px, lease.epoch],
        )
        return bool(held)

    async def release(self, room_id: str, lease: Lease) -> None:
        await self._release(keys=[keys.room_origin(room_id)], args=[lease.value])

    async def read(self, room_id: str) -> Lease | None:
        return Lease.parse(await self.redis.get(keys.room_origin(room_id)))
