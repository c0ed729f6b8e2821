"""Logging set-up: readable text by default, one JSON object a line for log collectors.

Log records carry room and participant ids in their messages; tokens, passwords and TURN
secrets are never passed to a logger anywhere in the code base.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime

from audio_rooms.settings import LogFormat, Settings

# Set by the room WebSocket for the life of a connection: every log line written on behalf of
# that participant (signalling, media, state) carries them, so one person's story can be grepped.
room_id_var: ContextVar[str | None] = ContextVar("room_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "room_id", None) is None:
            record.room_id = room_id_var.get()
        if getattr(record, "user_id", None) is None:
            record.user_id = user_id_var.get()
        return True


class RepeatFilter(logging.Filter):
    """Lets ``limit`` records of each message through per ``window`` seconds, counts the rest,
    and says how many it held back when the window closes.

    A flood of one message (an accept loop failing with "Too many open files", the same
    client error over and over) would otherwise fill the disk and drown what matters. Records
    are the same message when they come from one logger, at one level, with one format string
    (their arguments may differ)."""

    MAX_KEYS = 1000  # distinct messages tracked per window; more share one count

    def __init__(self, limit: int, window: float = 10.0) -> None:
        super().__init__()
        self.limit = limit
        self.window = window
        self._counts: dict[tuple[str, int, str], int] = {}
        self._window_ends = time.monotonic() + window

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now >= self._window_ends:
            self._close_window(now)
        key = (record.name, record.levelno, str(record.msg)[:200])
        if key not in self._counts and len(self._counts) >= self.MAX_KEYS:
            key = ("", 0, "")
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count <= self.limit

    def _close_window(self, now: float) -> None:
        counts, self._counts = self._counts, {}
        self._window_ends = now + self.window
        for (name, level, message), count in counts.items():
            if count > self.limit:
                # Goes through this filter again, as the first of its kind in the new window.
                logging.getLogger(name or __name__).log(
                    level or logging.WARNING,
                    "%d more log records like %r in the last %.0f s were not written",
                    count - self.limit, message[:120], self.window,
                )


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.process is not None:
            entry["process"] = self.process
        for key in ("room_id", "user_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: Settings, process: str | None = None) -> None:
    """Logging to stderr; ``process`` (``"worker 2"``) names which of a supervisor's workers
    wrote each line, since they all write to the same stream."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter(settings.log_repeat_limit))
    handler.addFilter(ContextFilter())
    if settings.log_format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter(process))
    else:
        tag = f"[{process.replace('%', '%%')}] " if process else ""
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # aioice and aiortc log every ICE check at INFO, and alembic each of its plugins at every
    # start; keep them for debugging sessions only (alembic's migrations still log at INFO).
    for noisy in ("aioice", "aiortc", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
