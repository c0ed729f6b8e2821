"""The HTTP server process: uvicorn's configuration, and graceful drain.

The first SIGTERM (or SIGINT) drains before uvicorn shuts down.

Draining stops new joins, tells every connected client to reconnect, waits up to
``AUDIO_ROOMS_DRAIN_TIMEOUT`` seconds for them to leave, then lets uvicorn exit. A second
signal exits at once. Live room state is in Redis throughout, so clients that come back within
the grace period (to this server restarted, or to another node) resume with their roles.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from audio_rooms.edge import edge_protocols
from audio_rooms.settings import Settings
from audio_rooms.workers import SupervisorLink

logger = logging.getLogger(__name__)

# uvicorn refuses larger frames outright (closing with 1009); below this size the server answers
# an oversized message with a message_too_large error and keeps the connection.
WS_HARD_LIMIT_FACTOR = 16


def log_media_plan(settings: Settings) -> None:
    """Say at start-up what the media plane will do, so an operator sees a misconfiguration
    (wrong addresses, no TURN behind a NAT, the fast path not built) before a listener hears
    nothing. TURN's shared secret is never logged, only whether one is set."""
    from audio_rooms.sfu import egress, hooks

    addresses = settings.media_host_addresses or tuple(hooks.default_host_addresses())
    origin = "configured" if settings.media_host_addresses else "all interfaces"
    logger.info("media: ICE host addresses %s (%s)", ", ".join(addresses) or "none", origin)
    if settings.media_announced_address:
        logger.info("media: announced address %s", settings.media_announced_address)
    if settings.media_port_min is not None:
        logger.info("media: UDP ports %d-%d", settings.media_port_min, settings.media_port_max)
    else:
        logger.info("media: UDP ports ephemeral (AUDIO_ROOMS_MEDIA_PORT_MIN/MAX not set)")
    logger.info("media: STUN %s", ", ".join(settings.stun_urls) or "none")
    turn = ", ".join(settings.turn_urls) or "none"
    secret = "with" if settings.turn_secret else "without"
    logger.info("media: TURN %s (%s shared secret)", turn, secret)
    if egress.fast_path_enabled():
        logger.info("media: compiled fast path in use")
    elif egress.compiled is not None:
        logger.info("media: compiled fast path built but disabled (AUDIO_ROOMS_SFU_FASTPATH=0)")
    else:
        logger.info("media: compiled fast path not built: forwarding in Python")


def uvicorn_config(app: Starlette, settings: Settings) -> uvicorn.Config:
    http, ws = edge_protocols(
        app.state.connection_limits, settings.http_header_timeout, settings.http_idle_timeout,
        settings.http_max_header_bytes,
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # Connection caps and header/body deadlines (edge.py); keep-alive idle as the latter.
        http=http,
        ws=ws,
        timeout_keep_alive=settings.http_idle_timeout,
        ws_max_size=settings.ws_max_message_bytes * WS_HARD_LIMIT_FACTOR,
        # Deltas are a few hundred bytes: compressing each one for each listener would cost
        # more CPU than everything else in a fan-out, and would make frames differ per client
        # (signalling/frames.py writes one encoded frame to all of them).
        ws_per_message_deflate=False,
        log_config=None,
        # Access logs would record room links with their invite tokens; the app logs instead.
        access_log=False,
        # Only from the configured proxies: anyone else could name any address they like.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        # The media plane's fast paths (sfu/hooks/: direct SRTP sends on each pair's socket,
        # listeners' sockets read on the beat) work on asyncio's selector transports; uvloop's
        # are opaque C objects, where every forwarded copy would take aioice's slow path.
        loop="asyncio",
    )


class DrainingServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, app: Starlette, deadline: float,
        supervisor: SupervisorLink | None = None,
    ) -> None:
        super().__init__(config)
        self.app = app
        self.deadline = deadline
        self.supervisor = supervisor
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        if self.supervisor is not None:
            # A worker whose supervisor died (even by SIGKILL) stops as if told to.
            self.supervisor.watch(lambda: self.handle_exit(signal.SIGTERM, None))
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is not None or self._loop is None or not self.started:
            super().handle_exit(sig, frame)
            return
        logger.info("signal %s: draining for up to %.0f s", sig, self.deadline)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain = asyncio.create_task(self._drain_then_exit(), name="drain")

    async def _drain_then_exit(self) -> None:
        try:
            await self.app.state.services.hub.drain(self.deadline)
        finally:
            self.should_exit = True
