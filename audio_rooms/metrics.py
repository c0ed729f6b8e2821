"""Prometheus metrics at ``/metrics``.

Counters that the code increments (signalling messages, errors) live here; figures that already
exist elsewhere (rooms, participants, the media plane's counters) are read at scrape time by a
collector, so there is one source of truth for each. Each app has its own registry, so several
servers can run in one process (tests) without clashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as TallyCounter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from audio_rooms.app import Services

PREFIX = "audio_rooms"
LAG_INTERVAL = 0.5


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            f"{PREFIX}_signalling_messages",
            "WebSocket messages received, by type (invalid ones as 'invalid').",
            ["type"],
            registry=self.registry,
        )
        self.errors = Counter(
            f"{PREFIX}_signalling_errors",
            "Errors sent to clients, by code.",
            ["code"],
            registry=self.registry,
        )
        self.loop_lag = Gauge(
            f"{PREFIX}_event_loop_lag_seconds",
            "How late the event loop woke a timer, at the last sample.",
            registry=self.registry,
        )
        self._lag_task: asyncio.Task[None] | None = None

    def watch(self, services: Services) -> None:
        self.registry.register(_StateCollector(lambda: services))

    def start(self) -> None:
        self._lag_task = asyncio.create_task(self._measure_lag(), name="loop-lag")

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task

    async def _measure_lag(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(LAG_INTERVAL)
            self.loop_lag.set(max(0.0, time.perf_counter() - started - LAG_INTERVAL))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        services = self._services()
        rooms = GaugeMetricFamily(
            f"{PREFIX}_rooms", "Rooms with participants connected to this node."
        )
        rooms.add_metric([], len(services.hub.rooms))
        yield rooms
        by_role: TallyCounter[str] = TallyCounter(
            c.role.value for room in services.hub.rooms.values() for c in room.values()
        )
        participants = GaugeMetricFamily(
            f"{PREFIX}_participants", "Participants connected to this node, by role.",
            labels=["role"],
        )
        for role in ("host", "moderator", "speaker", "listener"):
            participants.add_metric([role], by_role.get(role, 0))
        yield participants
        paths: TallyCounter[str] = TallyCounter(
            "frames" if c.shares_frames else "asgi"
            for room in services.hub.rooms.values()
            for c in room.values()
        )
        send_paths = GaugeMetricFamily(
            f"{PREFIX}_connections_by_send_path",
            "Connections by how messages are sent: shared encoded frames (fast) or ASGI.",
            labels=["path"],
        )
        for path in ("frames", "asgi"):
            send_paths.add_metric([path], paths.get(path, 0))
        yield send_paths
        hashes = GaugeMetricFamily(
            f"{PREFIX}_password_hashes", "Password hashes running or waiting for a thread."
        )
        hashes.add_metric([], services.hashes.in_use)
        yield hashes
        refused = CounterMetricFamily(
            f"{PREFIX}_password_hashes_refused",
            "Sign-ins and sign-ups refused before hashing: address over its share, or pool full.",
            labels=["reason"],
        )
        for reason in ("address", "busy"):
            refused.add_metric([reason], services.hashes.refused[reason])
        yield refused
        if services.media is None:
            return
        stats = services.media.stats()
        for name, help_text, value in (
            ("routers", "Media routers (rooms with media on this node).", stats.routers),
            ("transports", "WebRTC transports (one per connected participant).",
             stats.transports),
            ("producers", "Producers (speakers' microphones).", stats.producers),
            ("consumers", "Consumers (listener slots).", stats.consumers),
        ):
            gauge = GaugeMetricFamily(f"{PREFIX}_media_{name}", help_text)
            gauge.add_metric([], value)
            yield gauge
        packets = CounterMetricFamily(
            f"{PREFIX}_forwarded_packets", "RTP packets forwarded to subscribers."
        )
        packets.add_metric([], stats.forwarded_packets)
        yield packets
        octets = CounterMetricFamily(f"{PREFIX}_forwarded_bytes", "RTP bytes forwarded.")
        octets.add_metric([], stats.forwarded_bytes)
        yield octets
        drops = CounterMetricFamily(
            f"{PREFIX}_dropped_packets", "RTP packets not forwarded, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(stats.drops.items()):
            drops.add_metric([reason], count)
        yield drops


async def metrics_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
