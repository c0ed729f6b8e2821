"""Signalling: the REST API and the per-participant WebSocket."""
