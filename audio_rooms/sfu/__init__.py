"""The media plane: an SFU on aiortc that forwards Opus packets without decoding them.

See docs/sfu.md for the objects (MediaServer, Router, Transport, Producer, Consumer), the rules
a client's SDP offer must follow, and how forwarding hooks into aiortc.
"""

from __future__ import annotations

from audio_rooms.sfu.audiolevel import SpeakerLevel
from audio_rooms.sfu.config import IceServer, MediaConfig
from audio_rooms.sfu.errors import (
    HookIncompatible,
    MalformedSdp,
    NoOpus,
    OfferSuperseded,
    RouterClosed,
    TooManyTracks,
    TooManyTransports,
    UnsupportedMedia,
)
from audio_rooms.sfu.router import Router
from audio_rooms.sfu.server import MediaServer
from audio_rooms.sfu.stats import MediaStats

__all__ = [
    "HookIncompatible",
    "IceServer",
    "MalformedSdp",
    "MediaConfig",
    "MediaServer",
    "MediaStats",
    "NoOpus",
    "OfferSuperseded",
    "Router",
    "RouterClosed",
    "SpeakerLevel",
    "TooManyTracks",
    "TooManyTransports",
    "UnsupportedMedia",
]
