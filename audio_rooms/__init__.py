"""audio-rooms: a self-hostable live audio rooms server."""

__version__ = "0.1.0"
