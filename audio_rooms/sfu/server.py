"""MediaServer: the media plane of one worker process; it owns every room's router."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from audio_rooms.sfu import hooks
from audio_rooms.sfu.activespeaker import ActiveSpeakersCallback
from audio_rooms.sfu.beat import Beat
from audio_rooms.sfu.config import MediaConfig
from audio_rooms.sfu.pipe import sending_socket
from audio_rooms.sfu.quota import TransportQuota
from audio_rooms.sfu.router import Router, TransportClosedCallback
from audio_rooms.sfu.rtcp import SenderReports
from audio_rooms.sfu.stats import ForwardingStats, MediaStats

logger = logging.getLogger(__name__)


class MediaServer:
    """Every router it creates reports to the two callbacks (each is told the room's id)."""

    def __init__(
        self,
        config: MediaConfig,
        on_active_speakers: ActiveSpeakersCallback | None = None,
        on_transport_closed: TransportClosedCallback | None = None,
    ) -> None:
        # Fail at start-up, not on the first packet, if aiortc moved what the hooks rely on.
        hooks.check_compatibility()
        hooks.set_consent_timing(config.consent_interval, config.consent_failures)
        hooks.speed_up_stun()
        self.config = config
        self._on_active_speakers = on_active_speakers
        self._on_transport_closed = on_transport_closed
        self.forwarding = ForwardingStats(measure_latency=config.measure_latency)
        self._routers: dict[str, Router] = {}
        # One coarse clock for everything that may wait a little (beat.py): deferred reads of
        # listeners' sockets, consent timers, active-speaker ticks, and the RTCP sender reports
        # of every forwarded slot (rtcp.py).
        self.beat = Beat()
        self.sender_reports = SenderReports(self.beat, config.sender_report_interval)
        # One quota for all rooms: an address's transports count wherever they are.
        self.quota = TransportQuota(config.transports_per_address)
        self._pipe_socket: socket.socket | None = None
        # Rooms this node is the origin of, for stats (the cascade sets it).
        self.origins: Callable[[], int] = lambda: 0

    def pipe_socket(self) -> socket.socket:
        """The socket every pipe of this server sends from (made on first use)."""
        if self._pipe_socket is None:
            self._pipe_socket = sending_socket(self.config.pipe_host)
        return self._pipe_socket

    def routers(self) -> list[Router]:
        return list(self._routers.values())

    def router(self, room_id: str) -> Router:
        """The room's router, created on first use."""
        router = self._routers.get(room_id)
        if router is None:
            router = Router(
                room_id,
                self.config,
                self.forwarding,
                on_close=self._router_closed,
                reports=self.sender_reports,
                quota=self.quota,
                on_active_speakers=self._on_active_speakers,
                on_transport_closed=self._on_transport_closed,
            )
            self._routers[room_id] = router
            logger.info("MediaServer created %r", router)
        return router

    def get_router(self, room_id: str) -> Router | None:
        return self._routers.get(room_id)

    async def close_router(self, room_id: str) -> None:
        router = self._routers.pop(room_id, None)
        if router is not None:
            await router.close()

    async def close(self) -> None:
        routers = list(self._routers.values())
        self._routers.clear()
        await asyncio.gather(*(r.close() for r in routers), return_exceptions=True)
        self.sender_reports.close()
        self.beat.close()
        if self._pipe_socket is not None:
            self._pipe_socket.close()
            self._pipe_socket = None

    def stats(self) -> MediaStats:
        transports = producers = consumers = relayed = pipes = inlets = 0
        for router in self._routers.values():
            t, p, c, r = router.count()
            transports += t
            relayed += r
            producers += p
            consumers += c
            pipes += len(router.pipes)
            inlets += router.inlet is not None
        return MediaStats(
            routers=len(self._routers),
            transports=transports,
            relayed=relayed,
            producers=producers,
            consumers=consumers,
            forwarded_packets=self.forwarding.forwarded_packets,
            forwarded_bytes=self.forwarding.forwarded_bytes,
            drops=dict(self.forwarding.drops),
            lost=dict(self.forwarding.lost),
            pipes=pipes,
            inlets=inlets,
            origins=self.origins(),
        )

    def _router_closed(self, router: Router) -> None:
        if self._routers.get(router.room_id) is router:
            del self._routers[router.room_id]
