"""``Services``: the objects a request handler uses, built once by ``app.start_services``.

A plain container with no behaviour: the composition root (``app.py``) builds and wires it, and
handlers (``signalling/``, ``metrics.py``) read it from ``app.state.services``, so that nothing
below the root needs to import the root.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from audio_rooms.accounts.hashpool import HashPool
from audio_rooms.db.database import Database
from audio_rooms.federation.home import FederatedHome
from audio_rooms.federation.origin import FederatedOrigin
from audio_rooms.federation.service import Federation
from audio_rooms.metrics import Metrics, MetricsServer
from audio_rooms.node import Node
from audio_rooms.rooms import RoomService
from audio_rooms.settings import Settings
from audio_rooms.sfu import MediaServer
from audio_rooms.signalling.audience_tick import AudienceTicker
from audio_rooms.signalling.auth import Authenticator
from audio_rooms.signalling.hub import Hub
from audio_rooms.signalling.listen import ListenRelays
from audio_rooms.signalling.media import RoomMedia
from audio_rooms.state.bus import NodeBus
from audio_rooms.state.embedded import EmbeddedRedis
from audio_rooms.state.ratelimit import RateLimit
from audio_rooms.state.revocations import GuestRevocations
from audio_rooms.state.store import RoomStore
from audio_rooms.webhooks import WebhookDeliverer


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    db: Database
    store: RoomStore
    rooms: RoomService
    hub: Hub
    auth: Authenticator
    media: MediaServer | None
    room_media: RoomMedia
    login_limit: RateLimit
    signup_limit: RateLimit
    room_create_limit: RateLimit
    room_address_limit: RateLimit
    login_address_limit: RateLimit
    guest_limit: RateLimit
    hashes: HashPool
    revocations: GuestRevocations
    federation: Federation
    federated_origin: FederatedOrigin = field(init=False, repr=False)
    federated_home: FederatedHome = field(init=False, repr=False)
    metrics: Metrics
    federation_peers: asyncio.Task[None] | None = field(default=None, repr=False)
    housekeeping: asyncio.Task[None] | None = field(default=None, repr=False)
    embedded_redis: EmbeddedRedis | None = field(default=None, repr=False)
    metrics_server: MetricsServer | None = field(default=None, repr=False)
    node: Node | None = field(default=None, repr=False)
    bus: NodeBus | None = field(default=None, repr=False)
    audience_ticker: AudienceTicker | None = field(default=None, repr=False)
    # The listen WebSockets' relays (None without media).
    listen: ListenRelays | None = field(default=None, repr=False)
    webhooks: WebhookDeliverer | None = field(default=None, repr=False)
