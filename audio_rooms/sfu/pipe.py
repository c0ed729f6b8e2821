"""Pipes: a room's selected speakers carried from its origin node to an edge node.

A room's *origin* terminates its speakers; an *edge* terminates listeners and pulls the room's
selected speakers once over a pipe (docs/cascade.md). A pipe is plain RTP over UDP protected
with SRTP (AES-128-GCM, one fresh key per pipe, agreed over the nodes' control channel):

* :class:`PipeOut` (origin side, one per edge): ``lanes`` streams, one per place in the room's
  selection (a listener's slots + 1), each with its own SSRC. A lane is an egress slot like a
  listener's (``egress.new_slot``), fed by the speaker's producer in the same fan-out call, so
  the permission check at the origin covers it: a muted speaker's very next packet is dropped
  before it reaches any pipe. The RFC 6464 audio level travels in the header.
* A control packet, SRTCP-protected RTCP APP named ``ARSL`` (audio-rooms selection), says which
  speaker each lane carries: ``[[ssrc, participant_id], ...]`` as JSON. It is sent on every
  change of the selection and every :data:`CONTROL_INTERVAL` seconds, so a lost one is repaired
  and the edge can tell a live pipe (something heard) from a dead one.
* :class:`Inlet` (edge side, one per room): a UDP socket that takes datagrams only from the
  origin's announced source address, authenticates and decrypts them with the pipe's key, and
  hands each packet to the router's remote producer for its lane. Anything else is dropped and
  counted (``pipe_*`` drop reasons).

Loss stays a gap in the sequence numbers (as on any forwarded link), reordering passes through
(libsrtp's replay window takes packets up to 128 behind). The origin never learns what an edge
received: edges re-pipe when their inlet goes silent (``last_heard``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import pylibsrtp

from audio_rooms.sfu import egress
from audio_rooms.sfu.hooks import EgressPath
from audio_rooms.sfu.rtp import header_template
from audio_rooms.sfu.slots import assign
from audio_rooms.sfu.stats import ForwardingStats

logger = logging.getLogger(__name__)

PAYLOAD_TYPE = 111  # Opus, as every client negotiates it
LEVEL_EXT_ID = 1  # the one-byte header extension id the audio level travels under
PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
KEY_LENGTH = 28  # AES-128 key + 12-byte salt
CONTROL_INTERVAL = 0.5
APP_NAME = b"ARSL"
RTCP_APP = 204
MAX_CONTROL = 1200  # bytes of a control packet's JSON
MAX_PARTICIPANT_ID = 64


@dataclass(frozen=True)
class PipeKeys:
    """What an edge needs to accept a pipe: the SRTP key and where packets come from."""

    key: bytes
    source: tuple[str, int]


def control_packet(ssrc: int, lanes: list[tuple[int, str]]) -> bytes:
    """The plain RTCP APP packet that maps lanes (SSRC) to speakers."""
    data = json.dumps(lanes, separators=(",", ":")).encode()
    data += b" " * (-len(data) % 4)
    length = (12 + len(data)) // 4 - 1
    return struct.pack("!BBHI4s", 0x80, RTCP_APP, length, ssrc, APP_NAME) + data


def parse_control(packet: bytes, max_lanes: int) -> dict[int, str] | None:
    """The lane map of a plain ``ARSL`` APP packet, or None if it is not a valid one."""
    if len(packet) < 12 or packet[1] != RTCP_APP or packet[8:12] != APP_NAME:
        return None
    if len(packet) - 12 > MAX_CONTROL:
        return None
    try:
        lanes = json.loads(packet[12:])
    except ValueError:
        return None
    if not isinstance(lanes, list) or len(lanes) > max_lanes:
        return None
    result: dict[int, str] = {}
    for lane in lanes:
        if (
            not isinstance(lane, list)
            or len(lane) != 2
            or not isinstance(lane[0], int)
            or not 0 <= lane[0] < 1 << 32
            or not isinstance(lane[1], str)
            or not 0 < len(lane[1]) <= MAX_PARTICIPANT_ID
        ):
            return None
        result[lane[0]] = lane[1]
    return result


class PipeOut:
    """The origin's end of one pipe to one edge."""

    def __init__(
        self, edge_id: str, address: tuple[str, int], sock: socket.socket, lanes: int
    ) -> None:
        self.edge_id = edge_id
        self.address = address
        self.key = secrets.token_bytes(KEY_LENGTH)
        self._sock = sock
        self._session = pylibsrtp.Session(
            pylibsrtp.Policy(
                key=self.key,
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                srtp_profile=PROFILE,
            )
        )
        self.path = EgressPath(
            self._session.protect, self._sendto, address, self._session, sock, self.key
        )
        ssrcs = random.sample(range(1, 1 << 32), lanes + 1)
        self._control_ssrc = ssrcs.pop()
        self.ssrcs = ssrcs
        self.slots: list[egress.Slot] = []
        for ssrc in ssrcs:
            header, level_pos = header_template(ssrc, LEVEL_EXT_ID, None, None)
            plain, _ = header_template(ssrc, None, None, None)
            slot = egress.new_slot(
                bytes(header),
                bytes(plain),
                level_pos,
                PAYLOAD_TYPE,
                random.randrange(0, 32768),
                random.randrange(0, 1 << 32),
            )
            slot.set_path(self.path)
            self.slots.append(slot)
        self.speakers: list[str | None] = [None] * lanes
        self.opened_at = time.monotonic()
        self.refreshed_at = self.opened_at
        self.closed = False

    def __repr__(self) -> str:
        return f"PipeOut(to {self.edge_id} at {self.address[0]}:{self.address[1]})"

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._sock.sendto(data, addr)
        except OSError:
            pass  # a full socket buffer drops the packet, as the network would

    def assign(self, selected: list[str]) -> bool:
        """Carry ``selected`` (in lanes that keep who stays); True if a lane changed."""
        mapping = assign(self.speakers, selected[: len(self.slots)])
        changed = False
        for i, speaker in enumerate(mapping):
            if speaker != self.speakers[i]:
                self.speakers[i] = speaker
                self.slots[i].resync = True
                changed = True
        return changed

    def slot_for(self, speaker: str) -> egress.Slot | None:
        for i, carried in enumerate(self.speakers):
            if carried == speaker:
                return self.slots[i]
        return None

    def send_control(self) -> None:
        if self.closed:
            return
        lanes = [
            (self.ssrcs[i], speaker) for i, speaker in enumerate(self.speakers) if speaker
        ]
        try:
            data = self._session.protect_rtcp(control_packet(self._control_ssrc, lanes))
        except pylibsrtp.Error:
            logger.warning("%r could not protect its control packet", self)
            return
        self._sendto(data, self.address)

    def close(self) -> None:
        self.closed = True
        for slot in self.slots:
            slot.set_path(None)


# (ssrc, plain RTP packet, arrival in perf_counter_ns)
RemoteRtp = Callable[[int, bytes, int], None]
# {ssrc: participant id}
RemoteLanes = Callable[[dict[int, str]], None]


class Inlet(asyncio.DatagramProtocol):
    """An edge's end of the pipe from a room's origin."""

    def __init__(
        self,
        origin_id: str,
        lanes: int,
        stats: ForwardingStats,
        on_rtp: RemoteRtp,
        on_lanes: RemoteLanes,
    ) -> None:
        self.origin_id = origin_id
        self._lanes = lanes
        self._stats = stats
        self._on_rtp = on_rtp
        self._on_lanes = on_lanes
        self._transport: asyncio.DatagramTransport | None = None
        self._session: pylibsrtp.Session | None = None
        self.source: tuple[str, int] | None = None
        self.address: tuple[str, int] | None = None
        self.opened_at = time.monotonic()
        self.last_heard = 0.0  # monotonic time of the last authenticated packet
        self.packets = 0
        self.closed = False

    def __repr__(self) -> str:
        return f"Inlet(from {self.origin_id})"

    async def open(self, host: str) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        self.address = (sockname[0], sockname[1])
        return self.address

    def accept(self, keys: PipeKeys) -> None:
        """Take packets from ``keys.source`` protected with ``keys.key`` (a new pipe)."""
        if len(keys.key) != KEY_LENGTH:
            raise ValueError("bad pipe key")
        self._session = pylibsrtp.Session(
            pylibsrtp.Policy(
                key=keys.key,
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                srtp_profile=PROFILE,
            )
        )
        self.source = (keys.source[0], int(keys.source[1]))
        self.opened_at = time.monotonic()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        stats = self._stats
        session = self._session
        if session is None or self.closed:
            stats.drop("pipe_not_ready")
            return
        if (addr[0], addr[1]) != self.source:
            stats.drop("pipe_foreign_source")
            return
        if len(data) < 12 or len(data) > egress.BUFFER_SIZE:
            stats.drop("pipe_malformed")
            return
        is_rtcp = 192 <= data[1] <= 223
        try:
            plain = session.unprotect_rtcp(data) if is_rtcp else session.unprotect(data)
        except pylibsrtp.Error:
            stats.drop("pipe_unauthenticated")
            return
        self.last_heard = time.monotonic()
        if is_rtcp:
            lanes = parse_control(plain, self._lanes)
            if lanes is None:
                stats.drop("pipe_malformed")
                return
            self._on_lanes(lanes)
            return
        self.packets += 1
        self._on_rtp(int.from_bytes(plain[8:12], "big"), plain, time.perf_counter_ns())

    def error_received(self, exc: Exception) -> None:
        logger.debug("%r socket error: %s", self, exc)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def sending_socket(host: str) -> socket.socket:
    """The origin's one non-blocking UDP socket every pipe of a media server sends from."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((host, 0))
    return sock
