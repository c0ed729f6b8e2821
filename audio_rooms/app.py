"""``create_app()``: the composition root. It builds settings, live state, durable state, the
SFU and the routes and wires them together; the behaviour lives in the objects it builds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from audio_rooms import errors
from audio_rooms.accounts.hashpool import HashPool
from audio_rooms.accounts.tokens import signer_for
from audio_rooms.cascade import CascadeConfig
from audio_rooms.db.database import Database
from audio_rooms.domain.room import Limits
from audio_rooms.edge import ConnectionLimits
from audio_rooms.federation import api as federation_api
from audio_rooms.federation.home import FederatedHome
from audio_rooms.federation.keys import ServerKeys
from audio_rooms.federation.origin import FederatedOrigin
from audio_rooms.federation.peers import PeerPolicy
from audio_rooms.federation.service import Federation
from audio_rooms.metrics import Metrics, MetricsServer, metrics_endpoint
from audio_rooms.node import Node
from audio_rooms.rooms import RoomService
from audio_rooms.services import Services
from audio_rooms.settings import Settings
from audio_rooms.sfu import IceServer, MediaConfig
from audio_rooms.signalling import admin_api, api, branding, schema
from audio_rooms.signalling.audience_tick import AudienceTicker
from audio_rooms.signalling.auth import Authenticator
from audio_rooms.signalling.connection import CloseCode
from audio_rooms.signalling.frames import ExposeProtocol
from audio_rooms.signalling.headers import SecurityHeaders
from audio_rooms.signalling.hub import Hub
from audio_rooms.signalling.listen import ListenRelays, listen_socket
from audio_rooms.signalling.media import RoomMedia
from audio_rooms.signalling.origin import SameOrigin
from audio_rooms.signalling.websocket import room_socket
from audio_rooms.state.adopt import adopt_old_rooms
from audio_rooms.state.bus import NodeBus
from audio_rooms.state.channels import channels_for
from audio_rooms.state.connect import connect as connect_redis
from audio_rooms.state.connect import describe as describe_redis
from audio_rooms.state.connect import redis_mode
from audio_rooms.state.embedded import EmbeddedRedis
from audio_rooms.state.leases import OriginLeases
from audio_rooms.state.nodes import NodeInfo, NodeRegistry, new_node_id
from audio_rooms.state.ratelimit import RateLimit
from audio_rooms.state.replication import ReplicaAcks
from audio_rooms.state.revocations import GuestRevocations
from audio_rooms.state.store import RoomStore
from audio_rooms.tasks import cancel_and_wait
from audio_rooms.webhooks import WebhookDeliverer, WebhookMetrics, WebhookQueue, webhook_config
from audio_rooms.workers import SupervisorLink

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"  # package data: a wheel ships it


def media_config(settings: Settings) -> MediaConfig:
    ice_servers: list[IceServer] = []
    if settings.stun_urls:
        ice_servers.append(IceServer(urls=settings.stun_urls))
    return MediaConfig(
        host_addresses=settings.media_host_addresses,
        port_min=settings.media_port_min,
        port_max=settings.media_port_max,
        announced_address=settings.media_announced_address,
        ice_servers=tuple(ice_servers),
        slots=settings.media_slots,
        connect_timeout=settings.media_connect_timeout,
        transports_per_address=settings.media_transports_per_address,
        pipe_host=pipe_host(settings),
        measure_latency=settings.media_measure_latency,
    )



def pipe_host(settings: Settings) -> str:
    """Where pipes between nodes bind (docs/cascade.md): the setting, else the first media host
    address, else the local address this machine reaches Redis from (loopback for the embedded
    one), which is one the other nodes sharing that Redis can reach too."""
    if settings.pipe_address:
        return settings.pipe_address
    if settings.media_host_addresses:
        return settings.media_host_addresses[0]
    target = None
    if settings.redis_url:
        target = urlsplit(settings.redis_url).hostname
    elif settings.redis_sentinels or settings.redis_cluster_nodes:
        target = (settings.redis_sentinels or settings.redis_cluster_nodes)[0].rsplit(":", 1)[0]
    if not target or target in ("localhost", "127.0.0.1", "::1"):
        return "127.0.0.1"
    try:
        family = socket.AF_INET6 if ":" in target.strip("[]") else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((target.strip("[]"), 9))  # no packet is sent: this only routes
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


async def prepare_data_dir(settings: Settings) -> None:
    """What happens once before the first request: the data directory, the signing key (made
    on first start) and the database schema. A supervisor does it before starting workers, so
    that they do not race to make the key or to migrate (workers.py); ``start_services`` does it
    again, which then changes nothing."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.resolved_secret_key()
    db = await Database.open(settings.resolved_database_url)
    db.close()


async def start_services(
    settings: Settings, metrics: Metrics, with_media: bool = True
) -> Services:
    embedded: EmbeddedRedis | None = None
    logger.info("live state in %s", describe_redis(settings))
    if redis_mode(settings) is not None:
        redis = connect_redis(settings)
    else:
        embedded = EmbeddedRedis(
            settings.data_dir / "redis",
            binary=settings.embedded_redis_binary,
            restart_attempts=settings.embedded_redis_restart_attempts,
        )
        await embedded.start()
        embedded.supervise()
        redis = embedded.client()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = await Database.open(settings.resolved_database_url)
    store = RoomStore(redis)
    store.channels = channels = await channels_for(redis)
    if settings.redis_replica_acks:
        acks = ReplicaAcks(redis, settings.redis_replica_acks, settings.redis_replica_timeout,
                           metrics.replica_shortfalls)
        store.after_write = store.audience.after_write = acks.after_write
    signer = signer_for(settings)
    revocations = GuestRevocations(redis)
    limits = Limits(settings.max_speakers, settings.max_listeners)
    rooms = RoomService(
        db, store, settings.resolved_secret_key(), limits, settings.max_rooms_per_account
    )
    hub = Hub(
        redis, store, settings.heartbeat_interval, settings.grace_period,
        settings.empty_room_timeout, settings.reaction_tick, channels,
    )
    node_id = new_node_id()
    bus = NodeBus(redis, channels, node_id)
    deliverer: WebhookDeliverer | None = None
    hooks = webhook_config(settings)
    if hooks is not None:
        hook_metrics = WebhookMetrics(metrics.registry)
        store.on_events = WebhookQueue(redis, hooks, hook_metrics).enqueue
        deliverer = WebhookDeliverer(redis, hooks, hook_metrics, node_id)
    node_holder: list[Node] = []

    def registry_view() -> tuple[list[NodeInfo], float]:
        node = node_holder[0] if node_holder else None
        return (node.nodes, node.nodes_read_at) if node is not None else ([], 0.0)

    room_media = RoomMedia(
        media_config(settings) if with_media else None, rooms, hub, node_id, bus,
        OriginLeases(redis, settings.origin_lease), registry_view,
        CascadeConfig(lease=settings.origin_lease, edge_capacity=settings.edge_capacity),
    )
    media = room_media.media
    services = Services(
        settings=settings,
        redis=redis,
        db=db,
        store=store,
        rooms=rooms,
        hub=hub,
        auth=Authenticator(db, signer, settings.cookie_secure, revocations),
        media=media,
        room_media=room_media,
        login_limit=RateLimit(redis, "login", settings.login_attempts_per_minute, 60),
        signup_limit=RateLimit(redis, "signup", settings.signups_per_address_per_hour, 3600),
        room_create_limit=RateLimit(redis, "room-create", 30, 60),
        room_address_limit=RateLimit(
            redis, "room-create-address", settings.rooms_per_address_per_hour, 3600
        ),
        login_address_limit=RateLimit(
            redis, "login-address", settings.login_attempts_per_address_per_minute, 60
        ),
        guest_limit=RateLimit(redis, "guest", settings.guest_tokens_per_address_per_hour, 3600),
        hashes=HashPool(
            settings.password_hash_concurrency,
            settings.password_hash_queue,
            settings.password_hashes_per_address,
        ),
        revocations=revocations,
        federation=Federation(
            settings.federation_enabled,
            ServerKeys(settings.server_name, settings.resolved_secret_key(),
                       settings.federation_key_generation, settings.federation_key_retired_until),
            PeerPolicy.from_settings(settings.federation_allow, settings.federation_deny,
                                     settings.federation_peer_urls),
            redis,
        ),
        metrics=metrics,
        embedded_redis=embedded,
        webhooks=deliverer,
    )
    services.federated_origin = FederatedOrigin(services.federation, rooms, room_media)
    services.federated_home = FederatedHome(services.federation, db, media, redis)
    services.federation_peers = asyncio.create_task(
        services.federation.watch_peers(db.peer_policies), name="federation-peers")
    hub.listeners += [room_media.on_published, rooms.on_published,
                      services.federated_origin.on_published]
    if media is not None:
        services.listen = ListenRelays(room_media, hub.connection, settings.listen_max_lag,
                                       settings.listen_stall_timeout, settings.grace_period,
                                       settings.listen_batch_interval)
        hub.listeners.append(services.listen.on_published)
    hub.snapshots = rooms.snapshot_for_hub
    await hub.start()
    services.audience_ticker = AudienceTicker(hub, rooms, settings.audience_tick)
    services.audience_ticker.start()
    try:
        await adopt_old_rooms(redis)
        await store.rank_unranked()
    except (aioredis.RedisError, OSError):
        logger.warning("could not rank live rooms for the lobby: Redis unreachable")
    metrics.watch(hub, services.hashes, media, services.listen)
    metrics.start()
    if settings.metrics_port is not None:
        services.metrics_server = MetricsServer(
            services.metrics, settings.metrics_host, settings.metrics_port, settings.metrics_token
        )
        await services.metrics_server.start()
    services.node = Node(
        NodeRegistry(redis, settings.node_heartbeat_interval),
        f"{settings.host}:{settings.port}", hub, media, node_id, settings.edge_capacity,
    )
    node_holder.append(services.node)
    await bus.start()
    services.bus = bus
    services.node.start()
    room_media.start()
    metrics.watch_nodes(services.node)
    services.housekeeping = asyncio.create_task(_housekeeping(db), name="housekeeping")
    if deliverer is not None:
        deliverer.start()
    return services


async def _housekeeping(db: Database) -> None:
    """Hourly: forget expired sign-in sessions."""
    while True:
        try:
            removed = await db.delete_expired_sessions()
            if removed:
                logger.info("housekeeping: removed %d expired sessions", removed)
        except Exception:
            logger.exception("housekeeping failed")
        await asyncio.sleep(3600)


async def stop_services(services: Services) -> None:
    await cancel_and_wait(services.housekeeping)
    if services.webhooks is not None:
        await services.webhooks.stop()
    await services.metrics.stop()
    if services.audience_ticker is not None:
        await services.audience_ticker.stop()
    await cancel_and_wait(services.federation_peers)
    await services.federated_home.stop()
    await services.federated_origin.stop()
    await services.room_media.stop()
    if services.bus is not None:
        await services.bus.stop()
    if services.node is not None:
        await services.node.stop()
    if services.metrics_server is not None:
        await services.metrics_server.stop()
    services.hub.close_all(CloseCode.GOING_AWAY)
    if services.listen is not None:
        services.listen.close_all(CloseCode.GOING_AWAY)
    await services.hub.stop()
    if services.media is not None:
        await services.media.close()
    services.hashes.close()
    await services.redis.aclose()
    services.db.close()
    if services.embedded_redis is not None:
        await services.embedded_redis.stop()


# --- routes ------------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """Liveness: fails only when restarting the process is the cure (the embedded Redis is down
    and could not be restarted). Redis or the database being unreachable is /readyz's concern."""
    services: Services = request.app.state.services
    embedded = services.embedded_redis
    supervisor: SupervisorLink | None = request.app.state.supervisor
    # A worker's embedded Redis is its supervisor's, which says how it is.
    failure = embedded.failure if embedded is not None else (
        supervisor.failure if supervisor is not None else None)
    if failure is not None:
        return JSONResponse({"status": "failing", "reason": failure}, 503)
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        await services.redis.ping()
        checks["redis"] = "ok"
    except (aioredis.RedisError, OSError) as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    try:
        await services.db.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    draining = services.hub.draining
    if draining:
        checks["draining"] = "yes"
    ready = all(v == "ok" for k, v in checks.items() if k != "draining") and not draining
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)


def _index(web_dir: Path, name: str = "index.html") -> Any:
    async def index(request: Request) -> Response:
        page = web_dir / name
        if not page.exists():
            return JSONResponse({"code": "not_found", "message": "No web client here."}, 404)
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    return index


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.AudioRoomsError)
    headers = {}
    retry = exc.details.get("retry_after")
    if retry:
        headers["Retry-After"] = str(retry)
    return JSONResponse(exc.to_wire(), status_code=exc.http_status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    return JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code)


async def _redis_down(request: Request, exc: Exception) -> Response:
    logger.error("Redis error on %s: %s", request.url.path, exc)
    return JSONResponse(
        {"code": "service_unavailable", "message": "Live state is unreachable; try again."}, 503
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"code": "internal_error", "message": "Something went wrong."}, 500)


def create_app(
    settings: Settings, with_media: bool = True, web_dir: Path | None = None,
    supervisor: SupervisorLink | None = None,
) -> Starlette:
    web = web_dir or settings.web_dir or WEB_DIR
    if settings.turn_urls and not settings.turn_secret:
        logger.warning("TURN disabled: AUDIO_ROOMS_TURN_URLS is set but AUDIO_ROOMS_TURN_SECRET "
                       "is not")

    connection_limits = ConnectionLimits.from_settings(settings)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await start_services(settings, metrics, with_media=with_media)
        app.state.services = services
        metrics.watch_connections(connection_limits)
        try:
            yield
        finally:
            await stop_services(services)

    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint(metrics, settings)),
        *api.routes,
        *admin_api.routes,
        *schema.routes,
        *branding.routes,
        *federation_api.routes,
        WebSocketRoute("/ws/rooms/{room_id}", room_socket),
        WebSocketRoute("/ws/rooms/{room_id}/listen", listen_socket),
        Route("/", _index(web)),
        Route("/r/{room_id}", _index(web)),
        Route("/f/{ref}", _index(web)),
        # Listen-only, compact, and the one page other sites may frame (headers.py).
        Route("/embed/r/{room_id}", _index(web, "embed.html")),
        Route("/admin", _index(web, "admin.html")),
    ]
    if web.is_dir():
        routes.append(Mount("/", StaticFiles(directory=web), name="web"))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(ExposeProtocol),
            Middleware(SecurityHeaders, embed_origins=settings.embed_origins),
            Middleware(SameOrigin, allowed_origins=settings.allowed_origins),
        ],
        lifespan=lifespan,
        exception_handlers={
            errors.AudioRoomsError: _app_error,
            HTTPException: _http_error,
            aioredis.RedisError: _redis_down,
            Exception: _unexpected,
        },
    )
    # Read by server.uvicorn_config: the caps are enforced below the application.
    app.state.connection_limits = connection_limits
    app.state.supervisor = supervisor  # in a worker (workers.py), read by /healthz
    return app
