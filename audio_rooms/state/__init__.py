"""Live state in Redis: rooms, participants, presence, and the event fan-out between nodes."""
