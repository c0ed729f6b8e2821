"""Transport: one participant's WebRTC connection (an RTCPeerConnection) and what rides on it.

A transport owns the participant's Producer (its microphone, if it offered one) and one Consumer
per slot. Closing it closes them. It tells its router when it connects and when it is lost: the
peer went away by itself (consent expired, ICE failure, DTLS close) or never connected within
``connect_timeout`` of the answer (an offer nobody follows up must not hold a UDP port). The
router decides what follows. It holds a place in its client address's :class:`TransportQuota`
from its making to its closing.

Its peer connection sends connectivity checks only to addresses that first sent it a valid
STUN request, and takes nothing but STUN from any other address (hooks.probe_only_requesters,
hooks.install_ingress): a stranger who knows the port can neither end the transport nor use it
to send STUN to a third party.

aiortc has no ICE restart: a new offer from the same participant replaces its transport with a
fresh one (the router does that), which is also how a client resumes after a network change.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError
from av.frame import Frame

from audio_rooms.sfu import hooks
from audio_rooms.sfu.config import MediaConfig
from audio_rooms.sfu.consumer import CLOCK_RATE, Consumer
from audio_rooms.sfu.errors import MalformedSdp, NoOpus
from audio_rooms.sfu.offer import Offer
from audio_rooms.sfu.producer import Producer
from audio_rooms.sfu.quota import TransportQuota
from audio_rooms.sfu.rtcp import SenderReports
from audio_rooms.sfu.stats import ForwardingStats

logger = logging.getLogger(__name__)

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


class TransportState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class Loss(enum.Enum):
    """Why a transport ended without being asked to (part of the wire protocol: media_failed)."""

    CONNECT_TIMEOUT = "connect_timeout"  # no ICE and DTLS within connect_timeout of the answer
    FAILED = "connection_failed"  # ICE or DTLS failed
    CLOSED = "connection_closed"  # the peer closed DTLS or stopped answering consent checks


class SilentTrack(MediaStreamTrack):
    """The track of a slot's sender: it never yields a frame.

    The sender is negotiated normally (SSRC, payload type, RTCP) but its encoder is never fed;
    the forwarder sends on its SSRC instead. A track that never returns keeps aiortc's RTP loop
    asleep, where a sender with no track would poll every 20 ms.
    """

    kind = "audio"

    async def recv(self) -> Frame:
        await asyncio.get_running_loop().create_future()
        raise MediaStreamError


class Transport:
    def __init__(
        self,
        participant_id: str,
        owner: str,
        config: MediaConfig,
        stats: ForwardingStats,
        allowed: bool,
        on_connected: Callable[[Transport], None],
        on_lost: Callable[[Transport], None],
        reports: SenderReports | None = None,
        address: str | None = None,
        quota: TransportQuota | None = None,
    ) -> None:
        # First, so that a refused transport holds nothing.
        self._quota = quota if quota is not None else TransportQuota(None)
        self._quota.acquire(address)
        self.address = address
        self.participant_id = participant_id
        self.name = f"{owner}/{participant_id}"
        self.state = TransportState.NEW
        self.loss: Loss | None = None
        self.producer: Producer | None = None
        self.consumers: list[Consumer] = []
        self._config = config
        self._stats = stats
        self._allowed = allowed
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._pc: RTCPeerConnection | None = None
        self._closed = asyncio.Event()
        # The server's one sender-report timer (a private one for a transport made alone).
        self._reports = reports if reports is not None else SenderReports()
        self._senders: list[RTCRtpSender] = []
        self._beat = self._reports.beat
        # The transport's sockets, read on the beat while its participant may not speak.
        self._readers: list[tuple[int, Callable[[], None]]] = []
        self._deadline: asyncio.TimerHandle | None = None
        self._relay_addresses: frozenset[tuple[str, int]] = frozenset()

    def __repr__(self) -> str:
        return f"Transport({self.name}, {self.state.value})"

    @property
    def has_mic(self) -> bool:
        return self.producer is not None and self.producer.payload_type is not None

    @property
    def relayed(self) -> bool:
        """Whether the peer reaches this transport through a TURN server: its selected pair's
        remote address is one of the relay candidates it offered."""
        if self.state is not TransportState.CONNECTED or self._pc is None:
            return False
        remote = hooks.selected_remote_candidate(self._pc)
        return remote is not None and (
            remote.type == "relay" or (remote.host, remote.port) in self._relay_addresses
        )

    async def negotiate(self, offer: Offer) -> str:
        """Apply the client's offer and return the SDP answer, candidates included."""
        if self.state is not TransportState.NEW:
            raise RuntimeError(f"{self!r} negotiated twice")
        self.state = TransportState.CONNECTING
        self._relay_addresses = offer.relay_addresses
        pc = self._pc = RTCPeerConnection(self._config.rtc_configuration())
        pc.on("connectionstatechange", self._connection_state_changed)
        opus = [
            c
            for c in (RTCRtpSender.getCapabilities("audio").codecs or [])
            if c.mimeType.lower() == "audio/opus"
        ]
        for line in offer.lines:
            # Transceivers are created in the offer's order, so setRemoteDescription pairs each
            # m-line with the one made for it.
            if line.is_slot:
                direction = "sendrecv" if line.is_mic else "sendonly"
                transceiver = pc.addTransceiver(SilentTrack(), direction=direction)
            else:
                direction = "recvonly" if line.is_mic else "inactive"
                transceiver = pc.addTransceiver("audio", direction=direction)
            transceiver.setCodecPreferences(opus)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        except ValueError as exc:
            raise MalformedSdp(f"the offer was refused: {exc}") from exc
        except Exception as exc:
            if "Failed to set remote" in str(exc):
                raise NoOpus("no common audio codec") from exc
            raise MalformedSdp(f"the offer was refused: {exc}") from exc

        cfg = self._config
        if cfg.host_addresses or cfg.port_min is not None or cfg.announced_address:
            hooks.restrict_gathering(
                pc,
                cfg.host_addresses or hooks.default_host_addresses(),
                cfg.port_min,
                cfg.port_max,
                cfg.announced_address,
            )
        transceivers = pc.getTransceivers()
        hooks.guard_late_start(pc)
        # Offers are BUNDLE-only (offer.py): one ICE connection carries every m-line.
        validated = [
            hooks.probe_only_requesters(conn, self._stats.drop)
            for conn in hooks.ice_connections(pc)
        ]
        mic_receiver: RTCRtpReceiver | None = None
        if offer.mic is not None:
            mic_receiver = transceivers[offer.mic.index].receiver
            hooks.silence_receiver(mic_receiver)

        # aiortc gathers every candidate before setLocalDescription returns (no trickle).
        await pc.setLocalDescription(await pc.createAnswer())
        for conn in hooks.ice_connections(pc):
            hooks.align_consent(conn, self._beat.sleep)
        answer = pc.localDescription.sdp
        self._build(offer, answer, mic_receiver)
        dtls = transceivers[offer.lines[0].index].receiver.transport
        assert self.producer is not None
        hooks.install_ingress(
            dtls,
            self.producer.handle_rtp,
            hooks.RtcpThinner(mic_receiver),
            self._stats.drop,
            validated[0],
        )
        self._deadline = asyncio.get_running_loop().call_later(
            cfg.connect_timeout, self._connect_timed_out
        )
        logger.info(
            "%r answered: mic=%s slots=%d", self, offer.mic is not None, len(self.consumers)
        )
        return answer

    def _build(self, offer: Offer, answer: str, mic_receiver: RTCRtpReceiver | None) -> None:
        description = aiortc_sdp.SessionDescription.parse(answer)
        transceivers = self._pc.getTransceivers() if self._pc else []
        mic_pt: int | None = None
        mic_level_id: int | None = None
        for line in offer.lines:
            media = description.media[line.index]
            if media.direction == "inactive" or not media.rtp.codecs:
                continue
            payload_type = int(media.rtp.codecs[0].payloadType or 0)
            ext_ids = {ext.uri: ext.id for ext in media.rtp.headerExtensions}
            if line.is_mic:
                mic_pt = payload_type
                mic_level_id = ext_ids.get(AUDIO_LEVEL_URI)
            if line.is_slot and media.ssrc:
                consumer = Consumer(
                    name=self.name,
                    index=len(self.consumers),
                    mid=line.mid,
                    ssrc=media.ssrc[0].ssrc,
                    payload_type=payload_type,
                    level_ext_id=ext_ids.get(AUDIO_LEVEL_URI),
                    mid_ext_id=ext_ids.get(MID_URI),
                )
                sender = transceivers[line.index].sender
                hooks.take_over_sender_reports(sender, consumer.counters)
                self._senders.append(sender)
                self.consumers.append(consumer)
        self.producer = Producer(
            participant_id=self.participant_id,
            payload_type=mic_pt,
            ssrc=offer.mic.ssrc if offer.mic else None,
            audio_level_id=mic_level_id,
            receiver=mic_receiver,
            stats=self._stats,
            max_rtp_size=self._config.max_rtp_size,
            allowed=self._allowed,
        )

    def _connection_state_changed(self) -> None:
        pc = self._pc
        if pc is None or self.state is TransportState.CLOSED:
            return
        state = pc.connectionState
        logger.debug("%r connection %s", self, state)
        if state == "connected" and self.state is TransportState.CONNECTING:
            dtls = pc.getTransceivers()[0].receiver.transport
            path = hooks.egress_path(dtls)
            if path is None:
                logger.warning("%r connected without an SRTP path", self)
                return
            for consumer, sender in zip(self.consumers, self._senders, strict=True):
                consumer.path = path
                self._reports.add(sender, consumer, CLOCK_RATE)
            self.state = TransportState.CONNECTED
            self._cancel_deadline()
            self._readers = hooks.deferrable_readers(pc)
            if not self._allowed:
                self._beat.defer_reads(self._readers)
            logger.info("%r connected", self)
            self._on_connected(self)
        elif state in ("failed", "closed"):
            logger.info("%r lost its peer (%s)", self, state)
            self._lost(Loss.FAILED if state == "failed" else Loss.CLOSED)

    def _connect_timed_out(self) -> None:
        self._deadline = None
        if self.state is TransportState.CONNECTING:
            logger.info("%r not connected within %.1f s", self, self._config.connect_timeout)
            self._lost(Loss.CONNECT_TIMEOUT)

    def _lost(self, loss: Loss) -> None:
        if self.loss is not None:
            return
        self.loss = loss
        self._stats.lost[loss.value] += 1
        self._on_lost(self)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def set_allowed(self, allowed: bool) -> None:
        """Forward (or stop forwarding) this participant's microphone from its next packet.

        A participant who may speak has its sockets read at once; one who may not is read on
        the beat (it sends nothing that needs an answer within a beat).
        """
        connected = self.state is TransportState.CONNECTED
        if connected and allowed:
            # Still not allowed while this reads what the client sent before: a muted speaker's
            # queued packets are dropped, not forwarded after the unmute.
            self._beat.read_now(self._readers)
        self._allowed = allowed
        if self.producer is not None:
            self.producer.allowed = allowed
        if connected and not allowed:
            self._beat.defer_reads(self._readers)

    async def close(self) -> None:
        """Close the producer, the consumers and the peer connection (idempotent)."""
        if self.state is TransportState.CLOSED:
            await self._closed.wait()
            return
        self.state = TransportState.CLOSED
        self._cancel_deadline()
        self._quota.release(self.address)
        self._beat.forget(self._readers)
        if self.producer is not None:
            self.producer.close()
        for consumer in self.consumers:
            self._reports.remove(consumer)
            consumer.close()
        pc, self._pc = self._pc, None
        try:
            if pc is not None:
                await pc.close()
        finally:
            self._closed.set()
            logger.info("%r closed", self)
