"""Media-plane errors. Each ``code`` is part of the wire protocol: clients key on it."""

from __future__ import annotations

from audio_rooms.errors import MediaError, ServiceUnavailable


class MalformedSdp(MediaError):
    """The offer is not SDP aiortc can apply (syntax, ICE credentials, no rtcp-mux...)."""

    code = "malformed_sdp"


class NoOpus(MediaError):
    """An audio m-line of the offer does not offer Opus/48000/2."""

    code = "no_opus"


class TooManyTracks(MediaError):
    """More receiving audio m-lines than slots, or more than one sending m-line."""

    code = "too_many_tracks"


class UnsupportedMedia(MediaError):
    """The offer has a non-audio m-line (video, data channel) or is not a BUNDLE offer."""

    code = "unsupported_media"


class RouterClosed(MediaError):
    """The room's media router was closed (the room ended) while the request was in flight."""

    code = "router_closed"
    http_status = 410


class HookIncompatible(ServiceUnavailable):
    """The installed aiortc lacks an internal the SFU hooks; forwarding cannot work."""

    code = "media_hooks_incompatible"


class OfferSuperseded(MediaError):
    """A newer offer from the same participant replaced this one before it was answered."""

    code = "offer_superseded"
    http_status = 409


class TooManyTransports(MediaError):
    """The client's address already holds as many media transports as one address may."""

    code = "too_many_media_transports"
    http_status = 429
