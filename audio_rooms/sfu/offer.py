"""A client's SDP offer, checked against the rules of the audio-rooms media plane.

Rules (docs/sfu.md has the client's view): audio only, Opus required, BUNDLE. The first audio
m-line the client sends on (sendrecv or sendonly) is its microphone. Every m-line the client
receives on (recvonly or sendrecv) is a slot, up to the configured number of slots.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import sdp

from audio_rooms.sfu.errors import MalformedSdp, NoOpus, TooManyTracks, UnsupportedMedia

MAX_SDP_BYTES = 64 * 1024
# Each remote candidate becomes a held candidate pair per local candidate until the connect
# timeout: a browser sends a handful per m-line (host, server-reflexive and relay, per
# interface), so this leaves room for many interfaces while a crafted offer stays small.
MAX_CANDIDATES_PER_LINE = 32
SENDING = ("sendrecv", "sendonly")
RECEIVING = ("sendrecv", "recvonly")


@dataclass(frozen=True)
class MediaLine:
    """One audio m-line of the offer, from the client's point of view."""

    index: int
    mid: str
    direction: str
    is_mic: bool
    is_slot: bool
    ssrc: int | None  # the SSRC the client announced for what it sends on this m-line


@dataclass(frozen=True)
class Offer:
    sdp: str
    lines: tuple[MediaLine, ...]
    # (address, port) of the TURN relay candidates the client offered: how the SFU tells a
    # relayed client, whose candidates aiortc may learn as peer-reflexive instead (a browser
    # puts them on the first m-line of the BUNDLE only).
    relay_addresses: frozenset[tuple[str, int]] = frozenset()

    @property
    def mic(self) -> MediaLine | None:
        return next((line for line in self.lines if line.is_mic), None)

    @property
    def slots(self) -> tuple[MediaLine, ...]:
        return tuple(line for line in self.lines if line.is_slot)

    @classmethod
    def parse(cls, text: str, max_slots: int) -> Offer:
        """Validate ``text``; raise a MediaError subclass naming the first rule it breaks."""
        if not isinstance(text, str) or not text.strip():
            raise MalformedSdp("the offer is empty")
        if len(text) > MAX_SDP_BYTES:
            raise MalformedSdp("the offer is too large", limit=MAX_SDP_BYTES)
        try:
            description = sdp.SessionDescription.parse(text)
        except Exception as exc:
            # aiortc's parser signals bad input with whatever its code trips over
            # (ValueError, IndexError, StopIteration, KeyError...).
            raise MalformedSdp(f"the offer is not valid SDP ({type(exc).__name__})") from exc
        if not description.media:
            raise MalformedSdp("the offer has no m-line")

        lines: list[MediaLine] = []
        relays: set[tuple[str, int]] = set()
        have_mic = False
        for index, media in enumerate(description.media):
            if media.kind != "audio":
                raise UnsupportedMedia(f"only audio is supported, not {media.kind}")
            if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
                raise MalformedSdp("an m-line has no ICE credentials", mline=index)
            if media.dtls is None or not media.dtls.fingerprints:
                raise MalformedSdp("an m-line has no DTLS fingerprint", mline=index)
            if len(media.ice_candidates) > MAX_CANDIDATES_PER_LINE:
                raise MalformedSdp(
                    "an m-line has too many ICE candidates",
                    mline=index, limit=MAX_CANDIDATES_PER_LINE,
                )
            relays.update((c.ip, c.port) for c in media.ice_candidates if c.type == "relay")
            if not media.rtcp_mux:
                raise MalformedSdp("rtcp-mux is required", mline=index)
            if not media.rtp.muxId:
                raise MalformedSdp("every m-line needs a mid", mline=index)
            if not any(_is_opus(codec) for codec in media.rtp.codecs):
                raise NoOpus("every audio m-line must offer Opus/48000/2", mline=index)
            direction = media.direction
            if direction not in ("sendrecv", "sendonly", "recvonly", "inactive"):
                raise MalformedSdp("an m-line has no direction", mline=index)
            is_mic = direction in SENDING and not have_mic
            if direction == "sendonly" and have_mic:
                raise TooManyTracks("only one microphone may be sent", mline=index)
            have_mic = have_mic or is_mic
            ssrc = media.ssrc[0].ssrc if media.ssrc else None
            lines.append(
                MediaLine(
                    index=index,
                    mid=str(media.rtp.muxId),
                    direction=direction,
                    is_mic=is_mic,
                    is_slot=direction in RECEIVING,
                    ssrc=ssrc,
                )
            )

        slots = sum(1 for line in lines if line.is_slot)
        if slots > max_slots:
            raise TooManyTracks(
                f"at most {max_slots} receiving audio m-lines", slots=slots, limit=max_slots
            )
        if len(lines) > 1:
            bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
            bundled = {str(item) for item in bundle.items} if bundle else set()
            if any(line.mid not in bundled for line in lines):
                raise UnsupportedMedia("all m-lines must be in one BUNDLE group")
        return cls(sdp=text, lines=tuple(lines), relay_addresses=frozenset(relays))


def _is_opus(codec: object) -> bool:
    mime = str(getattr(codec, "mimeType", "")).lower()
    return (
        mime == "audio/opus"
        and getattr(codec, "clockRate", None) == 48000
        and getattr(codec, "channels", None) == 2
    )
