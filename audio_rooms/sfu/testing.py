"""Test support for anyone who needs real audio over the SFU: tone tracks, FFT, aiortc clients.

Shipped in the package so that signalling and end-to-end tests can drive real WebRTC peers:

* :class:`ToneTrack` sends a sine wave (48 kHz, 20 ms frames, real-time pacing);
* :func:`dominant_frequency` finds what a listener hears;
* :class:`AudioClient` is an aiortc peer restricted to given host addresses (no STUN unless
  given ICE servers; a TURN server and no host addresses make it relay-only), that offers a
  microphone m-line and receive-only slots (the rules in docs/sfu.md), records every RTP
  packet it receives per slot and, if asked, the decoded audio.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from av import AudioFrame

from audio_rooms.sfu import hooks, rtp


def tap_rtp(
    dtls: RTCDtlsTransport, callback: Callable[[bytes], None], passthrough: bool = True
) -> None:
    """Show every decrypted RTP packet of ``dtls`` to ``callback`` (test and load clients).

    With ``passthrough`` the packet then takes aiortc's normal path (jitter buffer, decoder);
    without, it stops here, which is what a load client that only counts packets wants.
    """

    def wrap(original: hooks.RtpData) -> hooks.RtpData:
        async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            callback(data)
            if passthrough:
                await original(data, arrival_time_ms)

        return handle_rtp_data

    hooks.wrap_rtp_data(dtls, wrap)


def tap_rtcp(dtls: RTCDtlsTransport, callback: Callable[[bytes], None]) -> None:
    """Show every decrypted RTCP datagram of ``dtls`` to ``callback``, then handle it."""

    def wrap(original: hooks.RtcpData) -> hooks.RtcpData:
        async def handle_rtcp_data(data: bytes) -> None:
            callback(data)
            await original(data)

        return handle_rtcp_data

    hooks.wrap_rtcp_data(dtls, wrap)


def filter_outgoing(dtls: RTCDtlsTransport, keep: Callable[[bytes], bool]) -> None:
    """Drop datagrams ``dtls`` sends for which ``keep`` is false (a lossy link).

    ``keep`` sees the protected datagram; its first two bytes tell RTP from RTCP.
    """

    def wrap(original: hooks.Send) -> hooks.Send:
        async def send(data: bytes) -> None:
            if keep(data):
                await original(data)

        return send

    hooks.wrap_send(dtls, wrap)


def sever(pc: RTCPeerConnection) -> None:
    """Close ``pc``'s sockets without a word to the peer: a client that vanished."""
    for transport in hooks.udp_transports(pc):
        transport.close()


SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class ToneTrack(MediaStreamTrack):
    """A sine tone as an aiortc audio track, paced in real time like a microphone."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._sample = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            due = self._start + self._sample / SAMPLE_RATE
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        t = (np.arange(FRAME_SAMPLES) + self._sample) / SAMPLE_RATE
        wave = self.amplitude * np.sin(2 * math.pi * self.frequency * t)
        samples = (wave * 32767).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._sample
        frame.time_base = TIME_BASE
        self._sample += FRAME_SAMPLES
        return frame


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency in ``samples`` (Hann window, interpolated FFT peak)."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size < 16:
        raise ValueError("too few samples")
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size)))
    k = int(np.argmax(spectrum[1:])) + 1
    if 1 <= k < spectrum.size - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        denom = a - 2 * b + c
        k_f = k + (0.5 * (a - c) / denom if denom else 0.0)
    else:
        k_f = float(k)
    return float(k_f * rate / x.size)


def rms_dbfs(samples: np.ndarray) -> float:
    """Level of 16-bit samples in dB relative to full scale."""
    x = np.asarray(samples, dtype=np.float64) / 32768.0
    return float(20 * math.log10(max(1e-12, math.sqrt(float(np.mean(x * x))))))


@dataclass
class ReceivedPacket:
    ssrc: int
    payload_type: int
    sequence_number: int
    timestamp: int
    audio_level: int | None
    arrival: float


@dataclass
class Slot:
    """One receiving m-line of a client: what arrived on it."""

    mid: str
    ssrc: int | None = None
    packets: list[ReceivedPacket] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)

    def samples(self, last_seconds: float | None = None) -> np.ndarray:
        """Decoded audio, mono 48 kHz."""
        frames = self.frames
        if last_seconds is not None:
            frames = frames[-max(1, int(last_seconds * SAMPLE_RATE / FRAME_SAMPLES)) :]
        if not frames:
            return np.zeros(0)
        return np.concatenate(frames)


class AudioClient:
    """A real aiortc peer talking to the SFU the way the web client does.

    It offers one ``sendrecv`` m-line for the microphone (slot 1) and ``recvonly`` m-lines for
    the other slots; ``mic`` may be None (a listener who can later be given a track). With
    ``decode`` the received audio is decoded and kept per slot; without, packets are only
    recorded (a light client for load tests).
    """

    def __init__(
        self,
        mic: MediaStreamTrack | None = None,
        slots: int = 3,
        host_addresses: Iterable[str] = ("127.0.0.1",),
        decode: bool = True,
        record_packets: bool = True,
        ice_servers: Iterable[RTCIceServer] = (),
    ) -> None:
        self.mic = mic
        self.slot_count = slots
        self.host_addresses = tuple(host_addresses)
        self.decode = decode
        self.record_packets = record_packets
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self.slots: list[Slot] = []
        self.packet_count = 0
        self._by_ssrc: dict[int, Slot] = {}
        self._level_ext_id: int | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._tapped = False

    async def offer(self) -> str:
        if self.slot_count >= 1:
            self.pc.addTransceiver(self.mic or "audio", direction="sendrecv")
        else:
            self.pc.addTransceiver(self.mic or "audio", direction="sendonly")
        for _ in range(max(0, self.slot_count - 1)):
            self.pc.addTransceiver("audio", direction="recvonly")
        if self.decode:
            self.pc.on("track", self._on_track)
        else:
            for transceiver in self.pc.getTransceivers():
                hooks.silence_receiver(transceiver.receiver)
        hooks.restrict_gathering(self.pc, self.host_addresses)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        description = aiortc_sdp.SessionDescription.parse(answer_sdp)
        for media in description.media:
            for ext in media.rtp.headerExtensions:
                if ext.uri == "urn:ietf:params:rtp-hdrext:ssrc-audio-level":
                    self._level_ext_id = ext.id
            if media.direction in ("sendrecv", "sendonly"):
                slot = Slot(mid=str(media.rtp.muxId))
                if media.ssrc:
                    slot.ssrc = media.ssrc[0].ssrc
                    self._by_ssrc[slot.ssrc] = slot
                self.slots.append(slot)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        hooks.guard_late_start(self.pc)
        dtls = self.pc.getTransceivers()[0].receiver.transport
        tap_rtp(dtls, self._on_rtp, passthrough=self.decode)

    async def connected(self) -> None:
        """Wait until ICE and DTLS are up (wrap in ``asyncio.timeout`` to bound it)."""
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed"):
                raise ConnectionError(f"client connection {self.pc.connectionState}")
            await asyncio.sleep(0.02)

    def _on_rtp(self, data: bytes) -> None:
        self.packet_count += 1
        if not self.record_packets:
            return
        # The SFU's own ingress parser: what it forwards must pass what it accepts.
        h = rtp.parse(data, self._level_ext_id)
        slot = self._by_ssrc.get(h.ssrc)
        if slot is not None:
            level = h.audio_level if h.audio_level >= 0 else None
            slot.packets.append(
                ReceivedPacket(
                    h.ssrc, h.payload_type, h.sequence_number, h.timestamp, level, time.monotonic()
                )
            )

    def _on_track(self, track: MediaStreamTrack) -> None:
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                mid = transceiver.mid
                self._readers.append(asyncio.ensure_future(self._read(track, mid)))

    async def _read(self, track: MediaStreamTrack, mid: str | None) -> None:
        try:
            while True:
                frame = await track.recv()
                slot = next((s for s in self.slots if s.mid == mid), None)
                if slot is None or not isinstance(frame, AudioFrame):
                    continue
                pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1)
                slot.frames.append(pcm)
        except MediaStreamError:
            return

    def slot_of(self, ssrc: int) -> Slot | None:
        return self._by_ssrc.get(ssrc)

    def received(self) -> int:
        return sum(len(s.packets) for s in self.slots)

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._readers.clear()
        await self.pc.close()
        if self.mic is not None:
            self.mic.stop()
