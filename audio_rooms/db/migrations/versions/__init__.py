"""One module per schema revision, applied in order by :func:`audio_rooms.db.schema.upgrade`."""
