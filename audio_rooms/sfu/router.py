"""Router: the media of one room.

It holds one transport per participant, remembers who may produce, picks the speakers that are
forwarded (slots.py) and maps them onto each listener's slots, and owns the room's
:class:`ActiveSpeakerObserver` (closed with the router).
It knows nothing of roles: signalling tells it ``set_may_produce`` and it obeys on the next
packet. Taps (:meth:`Router.add_tap`) are also handed the packets of the speakers a listener's
slots carry, after the same checks, for listeners reached some other way than WebRTC.

Across nodes (docs/cascade.md) a router plays one of two parts for its room, or both: on the
room's *origin* it sends its selected speakers down a pipe to each edge (``open_pipe``); on an
*edge* it takes them from its inlet (``open_inlet``) as *remote producers*, selected and mapped
onto its listeners' slots exactly like local ones.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from audio_rooms.sfu.activespeaker import ActiveSpeakerObserver, ActiveSpeakersCallback
from audio_rooms.sfu.config import MediaConfig
from audio_rooms.sfu.consumer import Consumer
from audio_rooms.sfu.errors import OfferSuperseded, RouterClosed
from audio_rooms.sfu.offer import Offer
from audio_rooms.sfu.pipe import CONTROL_INTERVAL, Inlet, PipeKeys, PipeOut
from audio_rooms.sfu.pipe import LEVEL_EXT_ID as PIPE_LEVEL_EXT_ID
from audio_rooms.sfu.pipe import PAYLOAD_TYPE as PIPE_PAYLOAD_TYPE
from audio_rooms.sfu.producer import Producer, Tap
from audio_rooms.sfu.quota import TransportQuota
from audio_rooms.sfu.rtcp import SenderReports
from audio_rooms.sfu.slots import SpeakerSelector, assign, wanted_for
from audio_rooms.sfu.stats import ForwardingStats
from audio_rooms.sfu.transport import Transport, TransportState

logger = logging.getLogger(__name__)

# (room_id, participant_id, reason): a transport ended without being asked to; ``reason`` is a
# transport.Loss value.
TransportClosedCallback = Callable[[str, str, str], None]


class Router:
    def __init__(
        self,
        room_id: str,
        config: MediaConfig,
        stats: ForwardingStats,
        on_close: Callable[[Router], None] | None = None,
        reports: SenderReports | None = None,
        quota: TransportQuota | None = None,
        on_active_speakers: ActiveSpeakersCallback | None = None,
        on_transport_closed: TransportClosedCallback | None = None,
    ) -> None:
        self.room_id = room_id
        self.active_speakers = ActiveSpeakerObserver(room_id, on_active_speakers)
        self.on_transport_closed = on_transport_closed
        self._config = config
        self._stats = stats
        self._on_close = on_close
        self._reports = reports if reports is not None else SenderReports()
        self._quota = quota if quota is not None else TransportQuota(config.transports_per_address)
        self._transports: dict[str, Transport] = {}
        self._may_produce: dict[str, bool] = {}
        # One more than a listener's slots: a selected speaker hears the other `slots`.
        self._selector = SpeakerSelector(config.slots + 1)
        self._ticker: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        # Origin: one pipe per edge node pulling this room.
        self._pipes: dict[str, PipeOut] = {}
        self._last_control = 0.0
        # Edge: the inlet from the origin and the speakers it carries, by participant and SSRC.
        self.inlet: Inlet | None = None
        self._remote: dict[str, Producer] = {}
        self._remote_by_ssrc: dict[int, Producer] = {}
        # Origin of a federated room: speakers of other deployments, one uplink inlet per
        # server, their producers permission-checked here like local ones (docs/federation.md).
        self._uplinks: dict[str, Inlet] = {}
        self._uplinked: dict[str, dict[str, Producer]] = {}
        self._uplinked_by_ssrc: dict[str, dict[int, Producer]] = {}
        # When the router last had a transport (monotonic): the cascade closes idle routers.
        self.idle_since: float | None = time.monotonic()
        self._taps: list[Tap] = []
        self._tapped: dict[str, Producer] = {}  # the producers currently handing packets to taps

    def __repr__(self) -> str:
        return f"Router({self.room_id}, {len(self._transports)} transports)"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def on_active_speakers(self) -> ActiveSpeakersCallback | None:
        """Told who speaks when it changes (see :class:`ActiveSpeakerObserver`)."""
        return self.active_speakers.on_active_speakers

    @on_active_speakers.setter
    def on_active_speakers(self, callback: ActiveSpeakersCallback | None) -> None:
        self.active_speakers.on_active_speakers = callback

    @property
    def transports(self) -> dict[str, Transport]:
        return dict(self._transports)

    # --- signalling-facing API -----------------------------------------------------------------

    async def answer(
        self, participant_id: str, offer_sdp: str, address: str | None = None
    ) -> str:
        """Answer a participant's offer, replacing any transport it had (resume/ICE restart).

        ``address`` is the client's network address, counted against its quota of transports
        (:class:`TooManyTransports` when it holds its share); the replaced transport's place is
        given back first.
        """
        self._check_open()
        offer = Offer.parse(offer_sdp, self._config.slots)
        old = self._transports.pop(participant_id, None)
        if old is not None:
            logger.info("%r replacing %r", self, old)
            self._unmap(old)
            self._reselect()
            await old.close()
        self._check_open()
        transport = Transport(
            participant_id,
            owner=self.room_id,
            config=self._config,
            stats=self._stats,
            allowed=self._may_produce.get(participant_id, False),
            on_connected=self._transport_connected,
            on_lost=self._transport_lost,
            reports=self._reports,
            address=address,
            quota=self._quota,
        )
        self._transports[participant_id] = transport
        try:
            answer = await transport.negotiate(offer)
        except BaseException:
            if self._transports.get(participant_id) is transport:
                del self._transports[participant_id]
            await transport.close()
            raise
        if self._closed:
            await transport.close()
            raise RouterClosed()
        if self._transports.get(participant_id) is not transport:
            await transport.close()
            raise OfferSuperseded()
        self.idle_since = None
        self._ensure_ticker()
        self._reselect(joined=transport)
        return answer

    def set_may_produce(self, participant_id: str, allowed: bool) -> None:
        """Allow or stop forwarding a participant's microphone, from its very next packet."""
        self._may_produce[participant_id] = allowed
        transport = self._transports.get(participant_id)
        if transport is not None:
            transport.set_allowed(allowed)
        for producers in self._uplinked.values():
            uplinked = producers.get(participant_id)
            if uplinked is not None:
                uplinked.allowed = allowed
        logger.info("%r %s may produce: %s", self, participant_id, allowed)
        self._reselect()

    def add_tap(self, tap: Tap) -> None:
        """Also hand ``tap`` every packet forwarded from the speakers a listener's slots carry
        (the first ``slots`` selected), after the permission check: a mute stops it at once."""
        self._check_open()
        self._taps.append(tap)
        self._retap()

    def remove_tap(self, tap: Tap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)
            self._retap()

    def forget(self, participant_id: str) -> None:
        """Drop what is remembered about a participant who left the room for good."""
        self._may_produce.pop(participant_id, None)

    async def disconnect(self, participant_id: str) -> None:
        transport = self._transports.pop(participant_id, None)
        if transport is not None:
            self._unmap(transport)
            self._reselect()
            await transport.close()

    async def close(self) -> None:
        """Close every transport (and so every producer and consumer) and stop reporting."""
        if self._closed:
            return
        self._closed = True
        self.active_speakers.close()
        self._taps.clear()
        self._retap()
        if self._ticker is not None:
            self._ticker.cancel()
        for pipe in self._pipes.values():
            pipe.close()
        self._pipes.clear()
        self._close_inlet()
        for server in list(self._uplinks):
            self.close_uplink(server)
        transports = list(self._transports.values())
        self._transports.clear()
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._ticker is not None:
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        logger.info("%r closed", self)
        if self._on_close is not None:
            self._on_close(self)

    # --- transports' events --------------------------------------------------------------------

    def _transport_connected(self, transport: Transport) -> None:
        self._reselect(joined=transport)

    def _transport_lost(self, transport: Transport) -> None:
        assert transport.loss is not None  # set by the transport before it tells us
        pid = transport.participant_id
        if self._transports.get(pid) is not transport:
            return
        del self._transports[pid]
        self._unmap(transport)
        self._reselect()
        task = asyncio.ensure_future(transport.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        if self.on_transport_closed is not None:
            try:
                self.on_transport_closed(self.room_id, pid, transport.loss.value)
            except Exception:
                logger.exception("%r on_transport_closed failed", self)

    # --- selection and slots -------------------------------------------------------------------

    def _levels(self, now: float) -> dict[str, float]:
        levels = {
            pid: t.producer.meter.value(now)
            for pid, t in self._transports.items()
            if t.producer is not None and t.has_mic and t.producer.allowed
        }
        for producers in self._uplinked.values():
            for pid, producer in producers.items():
                if producer.allowed:
                    levels[pid] = producer.meter.value(now)
        for pid, producer in self._remote.items():
            levels[pid] = producer.meter.value(now)
        return levels

    def _reselect(self, joined: Transport | None = None) -> None:
        """Update the selection; remap everyone if it changed, else only ``joined``.

        A join or leave that does not change who is forwarded touches only that participant's
        slots (O(1) per join instead of O(listeners), which made filling a room quadratic).
        """
        changed = self._selector.update(self._levels(time.monotonic()), time.monotonic())
        if changed or (joined is not None and joined.participant_id in self._selector.selected):
            self._remap()
        elif joined is not None and self._transports.get(joined.participant_id) is joined:
            self._map(joined)

    def _map(self, transport: Transport) -> None:
        """Map one transport's slots onto the current selection (everyone else unchanged)."""
        if not transport.consumers:
            return
        selected = self._selector.selected
        wanted = wanted_for(selected, transport.participant_id, len(transport.consumers))
        mapping = assign([c.producer_id for c in transport.consumers], wanted)
        for consumer, speaker in zip(transport.consumers, mapping, strict=True):
            if consumer.producer_id == speaker:
                continue
            self._detach(consumer)
            consumer.attach(speaker)
            producer = self._producer(speaker)
            if producer is not None:
                producer.add_consumer(consumer)

    def _unmap(self, transport: Transport) -> None:
        """Take a departing transport's slots out of the speakers' feeds."""
        for consumer in transport.consumers:
            self._detach(consumer)

    def _detach(self, consumer: Consumer) -> None:
        producer = self._producer(consumer.producer_id)
        if producer is not None:
            producer.remove_consumer(consumer)

    def _producer(self, participant_id: str | None) -> Producer | None:
        if participant_id is None:
            return None
        remote = self._remote.get(participant_id)
        if remote is not None:
            return remote
        for producers in self._uplinked.values():
            uplinked = producers.get(participant_id)
            if uplinked is not None:
                return uplinked
        transport = self._transports.get(participant_id)
        return transport.producer if transport is not None else None

    def _remap(self) -> None:
        selected = self._selector.selected
        feeds: dict[str, list[Consumer]] = {pid: [] for pid in selected}
        for pid, transport in self._transports.items():
            if not transport.consumers:
                continue
            wanted = wanted_for(selected, pid, len(transport.consumers))
            mapping = assign([c.producer_id for c in transport.consumers], wanted)
            for consumer, speaker in zip(transport.consumers, mapping, strict=True):
                consumer.attach(speaker)
                if speaker is not None:
                    feeds[speaker].append(consumer)
        for pid, transport in self._transports.items():
            if transport.producer is not None:
                transport.producer.consumers = [] if pid in self._remote else feeds.get(pid, [])
        for producers in self._uplinked.values():
            for pid, producer in producers.items():
                producer.consumers = [] if pid in self._remote else feeds.get(pid, [])
        for pid, producer in self._remote.items():
            producer.consumers = feeds.get(pid, [])
        self._repipe()
        self._retap()
        logger.debug("%r forwarding %s", self, selected)

    # --- origin: pipes to edges ----------------------------------------------------------------

    @property
    def tapped(self) -> bool:
        """Whether something taps the room (listeners reached other than by WebRTC)."""
        return bool(self._taps)

    @property
    def pipes(self) -> dict[str, PipeOut]:
        return dict(self._pipes)

    def open_pipe(self, edge_id: str, address: tuple[str, int], sock: socket.socket) -> PipeKeys:
        """Send this room's selected speakers to ``address`` (an edge's inlet), from ``sock``.

        Replaces the edge's previous pipe, if any (a new inlet, a new key).
        """
        self._check_open()
        old = self._pipes.pop(edge_id, None)
        if old is not None:
            old.close()
        pipe = PipeOut(edge_id, address, sock, self._selector.size)
        self._pipes[edge_id] = pipe
        logger.info("%r opened %r", self, pipe)
        self._repipe()
        pipe.send_control()
        self._ensure_ticker()
        host, port = sock.getsockname()[:2]
        return PipeKeys(pipe.key, (host, port))

    def refresh_pipe(self, edge_id: str) -> bool:
        """An edge still pulls: keep its pipe (False if it has none)."""
        pipe = self._pipes.get(edge_id)
        if pipe is None:
            return False
        pipe.refreshed_at = time.monotonic()
        return True

    def close_pipe(self, edge_id: str) -> None:
        pipe = self._pipes.pop(edge_id, None)
        if pipe is not None:
            pipe.close()
            self._repipe()
            logger.info("%r closed %r", self, pipe)

    def _pipe_source(self, pid: str) -> Producer | None:
        """What a pipe carries for ``pid``: its own microphone here if it may speak, else its
        microphone from another deployment's uplink; never what came down this router's own
        inlet (that would send the origin its own audio back)."""
        transport = self._transports.get(pid)
        if (
            transport is not None and transport.producer is not None and transport.has_mic
            and transport.producer.allowed
        ):
            return transport.producer
        for producers in self._uplinked.values():
            uplinked = producers.get(pid)
            if uplinked is not None and uplinked.allowed:
                return uplinked
        return None

    def _repipe(self) -> None:
        """Carry the current selection on every pipe, and feed each speaker's lanes."""
        sources = {
            pid: source for pid in self._selector.selected
            if (source := self._pipe_source(pid)) is not None
        }
        selected = list(sources)
        for pipe in self._pipes.values():
            if pipe.assign(selected):
                pipe.send_control()
        producers = [t.producer for t in self._transports.values() if t.producer is not None]
        producers += [p for group in self._uplinked.values() for p in group.values()]
        for producer in producers:
            pid = producer.participant_id
            lanes = [
                slot for pipe in self._pipes.values()
                if (slot := pipe.slot_for(pid)) is not None
            ] if sources.get(pid) is producer else []
            if lanes or producer.pipe_slots:
                producer.pipe_slots = lanes

    # --- edge: the inlet from the origin -------------------------------------------------------

    async def open_inlet(self, origin_id: str, host: str) -> Inlet:
        """A new inlet for the pipe from ``origin_id`` (the previous one, if any, is closed)."""
        self._check_open()
        self._close_inlet()
        inlet = Inlet(
            origin_id, self._selector.size, self._stats, self._remote_rtp, self._remote_lanes
        )
        await inlet.open(host)
        if self._closed:
            inlet.close()
            raise RouterClosed()
        self._close_inlet()
        self.inlet = inlet
        self._ensure_ticker()
        return inlet

    def close_inlet(self) -> None:
        self._close_inlet()

    def _close_inlet(self) -> None:
        if self.inlet is not None:
            self.inlet.close()
            self.inlet = None
        if self._remote:
            self._remote_lanes({})

    def _remote_rtp(self, ssrc: int, data: bytes, arrival_ns: int) -> None:
        producer = self._remote_by_ssrc.get(ssrc)
        if producer is None:
            self._stats.drop("pipe_unknown_ssrc")
            return
        producer.handle_rtp(data, arrival_ns)

    def _remote_lanes(self, lanes: dict[int, str]) -> None:
        wanted = {pid: ssrc for ssrc, pid in lanes.items()}
        changed = False
        for pid, producer in list(self._remote.items()):
            if wanted.get(pid) != producer.ssrc:
                producer.close()
                del self._remote[pid]
                changed = True
        for pid, ssrc in wanted.items():
            if pid not in self._remote:
                self._remote[pid] = Producer(
                    pid,
                    PIPE_PAYLOAD_TYPE,
                    ssrc,
                    PIPE_LEVEL_EXT_ID,
                    None,
                    self._stats,
                    self._config.max_rtp_size,
                    allowed=True,
                )
                changed = True
        if not changed:
            return
        self._remote_by_ssrc = {p.ssrc: p for p in self._remote.values() if p.ssrc is not None}
        self._selector.update(self._levels(time.monotonic()), time.monotonic())
        self._remap()
        logger.debug("%r pulls %s", self, sorted(self._remote))

    # --- origin of a federated room: uplinks from other deployments -----------------------------

    @property
    def uplinks(self) -> dict[str, Inlet]:
        return dict(self._uplinks)

    async def open_uplink(self, server: str, host: str) -> Inlet:
        """An inlet for the speakers of ``server`` (another deployment): only its own users
        (``…@server``) are taken, each forwarded only while :meth:`set_may_produce` allows it."""
        self._check_open()
        self.close_uplink(server)
        inlet = Inlet(
            f"server:{server}", self._selector.size, self._stats,
            lambda ssrc, data, ns: self._uplink_rtp(server, ssrc, data, ns),
            lambda lanes: self._uplink_lanes(server, lanes),
        )
        await inlet.open(host)
        if self._closed:
            inlet.close()
            raise RouterClosed()
        self.close_uplink(server)
        self._uplinks[server] = inlet
        self._ensure_ticker()
        return inlet

    def close_uplink(self, server: str) -> None:
        inlet = self._uplinks.pop(server, None)
        if inlet is not None:
            inlet.close()
        if self._uplinked.get(server):
            self._uplink_lanes(server, {})
        self._uplinked.pop(server, None)
        self._uplinked_by_ssrc.pop(server, None)

    def _uplink_rtp(self, server: str, ssrc: int, data: bytes, arrival_ns: int) -> None:
        producer = self._uplinked_by_ssrc.get(server, {}).get(ssrc)
        if producer is None:
            self._stats.drop("pipe_unknown_ssrc")
            return
        producer.handle_rtp(data, arrival_ns)

    def _uplink_lanes(self, server: str, lanes: dict[int, str]) -> None:
        suffix = "@" + server
        wanted = {pid: ssrc for ssrc, pid in lanes.items() if pid.endswith(suffix)}
        if len(wanted) < len(lanes):
            self._stats.drop("pipe_foreign_speaker", len(lanes) - len(wanted))
        group = self._uplinked.setdefault(server, {})
        changed = False
        for pid, producer in list(group.items()):
            if wanted.get(pid) != producer.ssrc:
                producer.close()
                del group[pid]
                changed = True
        for pid, ssrc in wanted.items():
            if pid not in group:
                group[pid] = Producer(
                    pid, PIPE_PAYLOAD_TYPE, ssrc, PIPE_LEVEL_EXT_ID, None, self._stats,
                    self._config.max_rtp_size, allowed=self._may_produce.get(pid, False),
                )
                changed = True
        if not changed:
            return
        self._uplinked_by_ssrc[server] = {
            p.ssrc: p for p in group.values() if p.ssrc is not None
        }
        self._selector.update(self._levels(time.monotonic()), time.monotonic())
        self._remap()

    @property
    def remote_speakers(self) -> list[str]:
        """Speakers the inlet currently carries."""
        return sorted(self._remote)

    def _retap(self) -> None:
        """Point the selected speakers' producers (as a listener's slots carry them) at the taps,
        and take the others off; O(slots), and nothing at all is tapped without taps."""
        wanted = wanted_for(self._selector.selected, "", self._config.slots) if self._taps else []
        tapped: dict[str, Producer] = {}
        for pid in wanted:
            producer = self._producer(pid)
            if producer is not None:
                producer.tap = self._tap
                tapped[pid] = producer
        for pid, producer in self._tapped.items():
            if tapped.get(pid) is not producer:
                producer.tap = None
        self._tapped = tapped

    def _tap(self, speaker: str, seq: int, timestamp: int, payload: bytes, level: int) -> None:
        for tap in self._taps:
            try:
                tap(speaker, seq, timestamp, payload, level)
            except Exception:
                logger.exception("%r a tap failed", self)

    def _ensure_ticker(self) -> None:
        if self._ticker is None and not self._closed:
            self._ticker = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        interval = self._config.active_speaker_interval
        while True:
            await self._reports.beat.sleep(interval)
            now = time.monotonic()
            levels = self._levels(now)
            if self._selector.update(levels, now):
                self._remap()
            self.active_speakers.observe(levels)
            if self._pipes and now - self._last_control >= CONTROL_INTERVAL:
                self._last_control = now
                for pipe in self._pipes.values():
                    pipe.send_control()
            if self._transports:
                self.idle_since = None
            elif self.idle_since is None:
                self.idle_since = now

    def _check_open(self) -> None:
        if self._closed:
            raise RouterClosed()

    def count(self) -> tuple[int, int, int, int]:
        """(transports, producers, consumers, relayed transports) currently open."""
        transports = [t for t in self._transports.values() if t.state is not TransportState.CLOSED]
        return (
            len(transports),
            sum(1 for t in transports if t.has_mic),
            sum(len(t.consumers) for t in transports),
            sum(1 for t in transports if t.relayed),
        )
