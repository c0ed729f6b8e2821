"""Prometheus metrics at ``/metrics``.

Counters that the code increments (signalling messages, errors) live here; figures that already
exist elsewhere (rooms, participants, the media plane's counters) are read at scrape time by a
collector, so there is one source of truth for each. Each app has its own registry, so several
servers can run in one process (tests) without clashing.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import Counter as TallyCounter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from audio_rooms.tasks import cancel_and_wait

if TYPE_CHECKING:
    from audio_rooms.accounts.hashpool import HashPool
    from audio_rooms.edge import ConnectionLimits
    from audio_rooms.node import Node
    from audio_rooms.settings import Settings
    from audio_rooms.sfu import MediaServer
    from audio_rooms.signalling.hub import Hub
    from audio_rooms.signalling.listen import ListenRelays

PREFIX = "audio_rooms"
LAG_INTERVAL = 0.5
SCRAPE_HEADER_LIMIT = 8 * 1024  # bytes of request line and headers on the metrics port
SCRAPE_TIMEOUT = 5.0  # seconds for a scrape, from connection to answer
# Forwarding latency buckets, seconds: a healthy fan-out is tens to hundreds of microseconds; a
# loaded node's, milliseconds (docs/benchmarks.md).
LATENCY_BOUNDS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)


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
        self.closes = Counter(
            f"{PREFIX}_websocket_closes",
            "Room WebSockets the server closed, by close code (4008: too slow to read).",
            ["code"],
            registry=self.registry,
        )
        self.loop_lag = Gauge(
            f"{PREFIX}_event_loop_lag_seconds",
            "How late the event loop woke a timer, at the last sample.",
            registry=self.registry,
        )
        self.replica_shortfalls = Counter(
            f"{PREFIX}_redis_replica_shortfalls",
            "Room changes fewer replicas confirmed than AUDIO_ROOMS_REDIS_REPLICA_ACKS within "
            "AUDIO_ROOMS_REDIS_REPLICA_TIMEOUT (state/replication.py).",
            registry=self.registry,
        )
        self._lag_task: asyncio.Task[None] | None = None

    def watch(self, hub: Hub, hashes: HashPool, media: MediaServer | None,
              listen: ListenRelays | None = None) -> None:
        self.registry.register(_StateCollector(hub, hashes, media, listen))

    def watch_nodes(self, node: Node) -> None:
        self.registry.register(_NodeCollector(node))

    def watch_connections(self, limits: ConnectionLimits) -> None:
        self.registry.register(_ConnectionCollector(limits))

    def start(self) -> None:
        self._lag_task = asyncio.create_task(self._measure_lag(), name="loop-lag")

    async def stop(self) -> None:
        await cancel_and_wait(self._lag_task)

    async def _measure_lag(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(LAG_INTERVAL)
            self.loop_lag.set(max(0.0, time.perf_counter() - started - LAG_INTERVAL))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, hub: Hub, hashes: HashPool, media: MediaServer | None,
                 listen: ListenRelays | None = None) -> None:
        self._hub = hub
        self._hashes = hashes
        self._media = media
        self._listen = listen

    def collect(
        self,
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        hub = self._hub
        room_ids = hub.room_ids()
        rooms = GaugeMetricFamily(
            f"{PREFIX}_rooms", "Rooms with participants connected to this node."
        )
        rooms.add_metric([], len(room_ids))
        yield rooms
        connections = [c for room_id in room_ids for c in hub.connections(room_id)]
        by_role: TallyCounter[str] = TallyCounter(c.role.value for c in connections)
        participants = GaugeMetricFamily(
            f"{PREFIX}_participants", "Participants connected to this node, by role.",
            labels=["role"],
        )
        for role in ("host", "moderator", "speaker", "listener"):
            participants.add_metric([role], by_role.get(role, 0))
        yield participants
        paths: TallyCounter[str] = TallyCounter(
            "frames" if c.shares_frames else "asgi" for c in connections
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
        hashes.add_metric([], self._hashes.in_use)
        yield hashes
        yield _by_reason(
            "password_hashes_refused",
            "Sign-ins and sign-ups refused before hashing: address over its share, or pool full.",
            self._hashes.refused,
        )
        if self._media is None:
            return
        stats = self._media.stats()
        for name, help_text, value in (
            ("routers", "Media routers (rooms with media on this node).", stats.routers),
            ("transports", "WebRTC transports (one per connected participant).",
             stats.transports),
            ("producers", "Producers (speakers' microphones).", stats.producers),
            ("consumers", "Consumers (listener slots).", stats.consumers),
            ("pipes", "Pipes this node sends rooms' speakers down, as their origin, to edges.",
             stats.pipes),
            ("inlets", "Pipes this node pulls rooms' speakers from, as an edge.", stats.inlets),
            ("origins", "Rooms this node holds the origin lease of.", stats.origins),
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
        yield _by_reason(
            "dropped_packets",
            "Datagrams and RTP packets dropped on the way in or not forwarded, by reason.",
            stats.drops,
        )
        measured = self._media.forwarding.latency_histogram(LATENCY_BOUNDS)
        if measured is not None:
            cumulative, total, seconds = measured
            latency = HistogramMetricFamily(
                f"{PREFIX}_forwarding_latency_seconds",
                "Time from a packet's arrival to its last copy sent "
                "(AUDIO_ROOMS_MEDIA_MEASURE_LATENCY).")
            latency.add_metric(
                [], [(repr(bound), count) for bound, count in cumulative] + [("+Inf", total)],
                seconds)
            yield latency
        yield _by_reason(
            "media_transports_lost",
            "Media transports that ended without being asked to, by reason.",
            stats.lost,
        )
        if self._listen is not None:
            yield from _listen_metrics(self._listen, stats.transports, stats.relayed)


def _listen_metrics(
    listen: ListenRelays, transports: int, relayed: int
) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    paths = GaugeMetricFamily(
        f"{PREFIX}_listeners_by_path",
        "Participants receiving room audio on this node, by path: webrtc (a media transport "
        "reached directly), turn (a media transport reached through a TURN relay) or websocket "
        "(the listen socket, UDP blocked).",
        labels=["path"],
    )
    paths.add_metric(["webrtc"], transports - relayed)
    paths.add_metric(["turn"], relayed)
    paths.add_metric(["websocket"], listen.listener_count())
    yield paths
    counters = listen.counters
    for name, help_text, value in (
        ("listen_frames_sent", "Audio frames written to listen sockets.", counters.frames_sent),
        ("listen_frames_dropped",
         "Audio frames skipped for listen sockets more than AUDIO_ROOMS_LISTEN_MAX_LAG behind.",
         counters.frames_dropped),
        ("listen_bytes_sent", "Bytes of audio frames written to listen sockets.",
         counters.bytes_sent),
    ):
        counter = CounterMetricFamily(f"{PREFIX}_{name}", help_text)
        counter.add_metric([], value)
        yield counter


class _NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        nodes = self._node.nodes
        alive = GaugeMetricFamily(
            f"{PREFIX}_nodes", "Server processes alive in the node registry, as last read."
        )
        alive.add_metric([], len(nodes))
        yield alive
        load = GaugeMetricFamily(
            f"{PREFIX}_node_load",
            "Each live node's load as it last reported it: connections, rooms, "
            "media_packets_per_second, cpu (cores).",
            labels=["node", "figure"],
        )
        for info in nodes:
            for figure, value in asdict(info.load).items():
                load.add_metric([info.node_id, figure], value)
        yield load


class _ConnectionCollector(Collector):
    def __init__(self, limits: ConnectionLimits) -> None:
        self._limits = limits

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        limits = self._limits
        open_now = GaugeMetricFamily(
            f"{PREFIX}_connections_open", "Client connections open, by kind.", labels=["kind"]
        )
        open_now.add_metric(["http"], limits.open - limits.websockets)
        open_now.add_metric(["websocket"], limits.websockets)
        yield open_now
        yield _by_reason(
            "connections_refused",
            "Connections refused at a cap: node, address, websocket_address.",
            limits.refused,
            ("node", "address", "websocket_address"),
        )
        yield _by_reason(
            "connections_dropped",
            "Connections dropped before a request was read: headers (too slow), "
            "header_size (too large), body (idle).",
            limits.dropped,
            ("headers", "header_size", "body"),
        )


def token_accepted(expected: str | None, authorization: str) -> bool:
    """With ``AUDIO_ROOMS_METRICS_TOKEN`` set, a scrape must carry ``Authorization: Bearer``
    with it; the comparison takes the same time whatever the guess."""
    if expected is None:
        return True
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              expected.encode())


def metrics_endpoint(
    metrics: Metrics, settings: Settings
) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics`` on the public port, unless the metrics have a port of their own."""

    async def endpoint(request: Request) -> Response:
        if settings.metrics_port is not None:
            return JSONResponse({"code": "not_found", "message": "Not Found"}, 404)
        if not token_accepted(settings.metrics_token, request.headers.get("authorization", "")):
            return JSONResponse(
                {"code": "not_authenticated", "message": "Metrics need the metrics token."}, 401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return endpoint


class MetricsServer:
    """``GET /metrics`` alone, on its own address (``AUDIO_ROOMS_METRICS_HOST``/``_PORT``), so
    the public port does not serve it at all and a firewall can keep it to the monitoring
    network. Deliberately tiny: one request per connection, headers capped in size and time."""

    def __init__(self, metrics: Metrics, host: str, port: int, token: str | None) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._token = token
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=SCRAPE_HEADER_LIMIT
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(self._answer(head.decode("latin-1")))
                await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _answer(self, head: str) -> bytes:
        request_line, *header_lines = head.split("\r\n")
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method != "GET" or path != "/metrics":
            return _http(404, "application/json", b'{"code": "not_found"}')
        if not token_accepted(self._token, headers.get("authorization", "")):
            return _http(401, "application/json", b'{"code": "not_authenticated"}')
        return _http(200, CONTENT_TYPE_LATEST, self._metrics.render())


def _http(status: int, content_type: str, body: bytes) -> bytes:
    reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def _by_reason(
    name: str, help_text: str, counts: Mapping[str, int], known: tuple[str, ...] = ()
) -> CounterMetricFamily:
    """A counter with one series per reason; the ``known`` reasons are listed at 0 too."""
    family = CounterMetricFamily(f"{PREFIX}_{name}", help_text, labels=["reason"])
    for reason in sorted(set(known) | set(counts)):
        family.add_metric([reason], counts.get(reason, 0))
    return family
