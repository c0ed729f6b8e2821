"""Media-plane configuration: network settings and forwarding limits."""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server the SFU's own peer connections use."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class MediaConfig:
    # Addresses to gather host candidates on; () means every non-loopback interface (aioice's
    # default). Tests use ("127.0.0.1",).
    host_addresses: tuple[str, ...] = ()
    # UDP port range for ICE; None means ephemeral ports.
    port_min: int | None = None
    port_max: int | None = None
    # Public IP announced in the SDP instead of the bound address (1:1 NAT).
    announced_address: str | None = None
    ice_servers: tuple[IceServer, ...] = ()
    slots: int = 3
    max_rtp_size: int = 1200
    active_speaker_interval: float = 0.2
    # RFC 7675 consent freshness: a peer that stops answering for interval x failures seconds
    # is gone. aioice applies this process-wide (see hooks.set_consent_timing).
    consent_interval: float = 5.0
    consent_failures: int = 6
    # How often each forwarded slot sends an RTCP sender report. libwebrtc's audio default:
    # receivers of audio only need it for round-trip time and A/V sync (no video here).
    sender_report_interval: float = 5.0
    # Record every forwarded packet's in-process latency in a histogram (benchmarks).
    measure_latency: bool = False
    # A transport not connected (ICE and DTLS) this many seconds after its answer is closed, so
    # an offer nobody follows up does not hold a UDP port.
    connect_timeout: float = 10.0
    # Media transports one client address may hold at once, across rooms (None: no limit).
    transports_per_address: int | None = None
    # The address pipes between nodes use (sfu/pipe.py): an origin sends from it, an edge's
    # inlets listen on it. Other nodes must reach it.
    pipe_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError("slots must be at least 1")
        if (self.port_min is None) != (self.port_max is None):
            raise ValueError("port_min and port_max go together")
        if (
            self.port_min is not None
            and self.port_max is not None
            and not 1 <= self.port_min <= self.port_max <= 65535
        ):
            raise ValueError("invalid UDP port range")
        if not 0.5 <= self.sender_report_interval <= 30:
            raise ValueError("sender_report_interval must be 0.5-30 s")
        if self.active_speaker_interval < 0.2:
            raise ValueError("active speakers are reported at most 5 times a second")
        if not 0.1 <= self.connect_timeout <= 600:
            raise ValueError("connect_timeout must be 0.1-600 s")
        if self.transports_per_address is not None and self.transports_per_address < 1:
            raise ValueError("transports_per_address must be at least 1")

    def rtc_configuration(self) -> RTCConfiguration:
        """aiortc configuration with exactly the configured ICE servers (none: no STUN at all).

        aiortc falls back to a public Google STUN server when given no list; an explicit empty
        list keeps a server from contacting anything it was not told to.
        """
        return RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
                for s in self.ice_servers
            ]
        )
