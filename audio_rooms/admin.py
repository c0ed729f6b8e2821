"""The operator's commands: list and end rooms, list, ban and unban users, list nodes, against the
configured Redis and database; the admin page (admin_api.py) uses the same :class:`Admin`.
Creating accounts and granting the administrator role need the database only
(:func:`create_account`, :func:`set_admin`): the first administrator exists before the first
start. With no Redis configured they use the Redis of the server
running on the data directory (as its lock file says, datadir.py); they never start one of their
own, which would not be the one the server's rooms are in."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import anyio
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from audio_rooms import errors
from audio_rooms.accounts import passwords
from audio_rooms.accounts.handles import clean_display_name, validate_handle
from audio_rooms.datadir import NoRunningServer, read_running_server
from audio_rooms.db.database import Database
from audio_rooms.db.records import Locale, RoomStatus, UserRecord
from audio_rooms.domain.transitions import ADMIN, admin_end, admin_remove
from audio_rooms.settings import Settings
from audio_rooms.state import keys
from audio_rooms.state.channels import channels_for
from audio_rooms.state.connect import connect as connect_redis
from audio_rooms.state.connect import redis_mode
from audio_rooms.state.nodes import NodeRegistry
from audio_rooms.state.replication import ReplicaAcks
from audio_rooms.state.store import RoomStore
from audio_rooms.webhooks import WebhookMetrics, WebhookQueue, webhook_config


@dataclass
class Admin:
    settings: Settings
    db: Database
    store: RoomStore

    async def list_rooms(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for room_id in await self.store.live_room_ids():
            state = await self.store.load(room_id)
            if state is None or not state.live:
                continue
            listeners = await self.store.audience.count(room_id)
            rows.append(
                {
                    "id": room_id,
                    "status": "live",
                    "title": state.title,
                    "host": state.host_id,
                    "speakers": state.count(on_stage=True),
                    "listeners": listeners,
                }
            )
        for record in await self.db.list_rooms(RoomStatus.SCHEDULED):
            rows.append(
                {
                    "id": record.id,
                    "status": "scheduled",
                    "title": record.title,
                    "host": record.host_id,
                    "starts": record.scheduled_start.isoformat() if record.scheduled_start else "",
                }
            )
        return rows

    async def list_nodes(self) -> list[dict[str, object]]:
        """Server processes alive in the node registry, with the load each last reported."""
        now = time.time()
        return [
            {
                "node": info.node_id,
                "address": info.address,
                "pid": info.pid,  # which worker, when a supervisor runs several (workers.py)
                "up": f"{now - info.started_at:.0f}s",
                "seen": f"{now - info.seen_at:.1f}s ago",
                **asdict(info.load),
            }
            for info in await NodeRegistry(
                self.store.redis, self.settings.node_heartbeat_interval
            ).nodes()
        ]

    async def end_room(self, room_id: str, via: str = "cli") -> None:
        if await self.store.load(room_id) is None:
            record = await self.db.get_room(room_id)
            if record is None:
                raise errors.RoomNotFound(f"No room {room_id!r}.")
        else:
            await self.store.change(room_id, admin_end)
        record = await self.db.get_room(room_id)
        if record is not None and record.ended_at is None:
            await self.db.mark_room_ended(room_id, datetime.now(UTC))
        await self.db.log_moderation(room_id, ADMIN, "end_room", None, {"via": via})

    async def list_users(self) -> list[dict[str, object]]:
        banned = await self.db.server_banned_ids()
        return [
            {
                "handle": user.handle,
                "display_name": user.display_name,
                "banned": "yes" if user.id in banned else "no",
                "admin": "yes" if user.is_admin else "no",
                "created": user.created_at.isoformat(timespec="seconds"),
            }
            for user in await self.db.list_users()
        ]

    async def ban_user(self, handle: str, reason: str, via: str = "cli") -> tuple[str, list[str]]:
        """Ban from the whole server, at once: every session is revoked, every node closes the
        user's sockets, live rooms drop them, and no room admits them or lets them host."""
        user_id = await self._existing_user_id(handle)
        await self.db.add_ban(None, user_id, ADMIN, reason)
        await self.db.revoke_user_sessions(user_id)
        await self.store.channels.publish(self.store.redis, keys.ACCOUNT_BANS, user_id)
        removed_from = []
        for room_id in await self.store.live_room_ids():
            if await self.store.member(room_id, user_id) is not None:
                await self.store.change(
                    room_id, lambda s, now: admin_remove(s, user_id, now), about=(user_id,)
                )
                removed_from.append(room_id)
                await self.db.log_moderation(room_id, ADMIN, "ban", user_id, {"via": via})
        return user_id, removed_from

    async def unban_user(self, handle: str) -> tuple[str, bool]:
        """Lift a server-wide ban; the user signs in again. False if there was none."""
        user_id = await self._existing_user_id(handle)
        return user_id, await self.db.remove_ban(None, user_id)

    async def _existing_user_id(self, handle: str) -> str:
        return await existing_user_id(self.db, self.settings, handle)


async def existing_user_id(db: Database, settings: Settings, handle: str) -> str:
    """The id of this server's account ``handle`` (or ``handle@server``); UserNotFound."""
    user_id = handle if "@" in handle else f"{handle.lower()}@{settings.server_name}"
    if await db.get_user(user_id) is None:
        raise errors.UserNotFound(f"No user {handle!r} on this server.")
    return user_id


async def create_account(db: Database, settings: Settings, handle: str, display_name: str,
                         password: str, admin: bool) -> UserRecord:
    """An account made by the operator, held to the sign-up rules (handle, password)."""
    handle = validate_handle(handle)
    display_name = clean_display_name(display_name or handle)
    passwords.check_password_policy(password)
    password_hash = await anyio.to_thread.run_sync(
        passwords.hash_new_password, password, (handle, display_name))
    user = await db.create_user(handle, display_name, password_hash, Locale.EN.value,
                                settings.server_name)
    if admin:
        await db.set_admin(user.id, True)
    return user


async def set_admin(db: Database, settings: Settings, handle: str, admin: bool) -> str:
    """Grant (or take away) the administrator role; the user's id."""
    user_id = await existing_user_id(db, settings, handle)
    await db.set_admin(user_id, admin)
    return user_id


@contextlib.asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Admin]:
    """Raise :class:`NoRunningServer` when there is no Redis to talk to."""
    if redis_mode(settings) is not None:
        redis = connect_redis(settings)
    else:
        running = read_running_server(settings.data_dir)
        if running is None:
            raise NoRunningServer(
                f"no audio-rooms server is running on data directory {settings.data_dir.resolve()}"
                " and AUDIO_ROOMS_REDIS_URL is not set: start it (audio-rooms serve), or give"
                " this command the server's AUDIO_ROOMS_DATA_DIR or AUDIO_ROOMS_REDIS_URL"
            )
        if not running.redis_url:
            raise NoRunningServer(
                "the server running on this data directory uses Redis Sentinel or a Redis"
                " Cluster: give this command the same AUDIO_ROOMS_REDIS_* settings"
            )
        redis = aioredis.from_url(running.redis_url)
    db = await Database.open(settings.resolved_database_url)
    try:
        store = RoomStore(redis)
        store.channels = await channels_for(redis)
        if settings.redis_replica_acks:
            store.after_write = ReplicaAcks(
                redis, settings.redis_replica_acks, settings.redis_replica_timeout
            ).after_write
        hooks = webhook_config(settings)
        if hooks is not None:
            # Queued for the server processes to deliver; this command delivers nothing.
            store.on_events = WebhookQueue(
                redis, hooks, WebhookMetrics(CollectorRegistry())).enqueue
        yield Admin(settings, db, store)
    finally:
        db.close()
        await redis.aclose()
