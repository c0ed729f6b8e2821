"""One data directory, one server: the lock a running ``audio-rooms serve`` holds on it.

Two servers on one data directory would share one SQLite file and, without a configured Redis,
start two redis-servers on one socket and one append-only file (the second unlinks the first
one's socket). So ``serve`` takes an exclusive ``flock`` on ``<data_dir>/server.lock`` before
starting anything, and holds it for the process's lifetime; the kernel drops it when the process
dies, even by SIGKILL, so a stale file never blocks a restart.

The lock file also says which Redis the running server uses, so that the operator's commands
(admin.py) talk to that one instead of starting their own beside it. It can hold a password
in the URL, so it is readable by its owner only, like the ``secret_key`` file next to it.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "server.lock"


class DataDirectoryInUse(Exception):
    """Another server holds the data directory; the message is one line for the operator."""


class NoRunningServer(Exception):
    """No server holds the data directory (so there is no Redis of its to talk to)."""


@dataclass(frozen=True)
class RunningServer:
    """What a running server wrote in its lock file."""

    pid: int
    redis_url: str


class ServerLock:
    """The exclusive lock on one data directory, held from :meth:`acquire` until the process
    exits (or :meth:`release`)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir.resolve() / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, redis_url: str) -> None:
        """Take the lock or raise :class:`DataDirectoryInUse`; then record ``redis_url``.

        The file is only written once the lock is ours: a refused second server leaves the
        first one's record as it was."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_running_server(self.path.parent)
            pid = f" (pid {holder.pid})" if holder is not None else ""
            raise DataDirectoryInUse(
                f"another audio-rooms server{pid} is already running on data directory "
                f"{self.path.parent}; stop it first, or set AUDIO_ROOMS_DATA_DIR to another one"
            ) from None
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "redis_url": redis_url}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def read_running_server(data_dir: Path) -> RunningServer | None:
    """The server running on ``data_dir`` (as its lock file says), or None when none holds it."""
    path = data_dir.resolve() / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a server runs, and its record is complete (written under the lock)
        else:
            return None  # nobody holds it: what the file says is from a server that exited
        try:
            record = json.loads(path.read_text() or "{}")
        except ValueError:  # not written by a server of this version: nothing to go on
            return None
    finally:
        os.close(fd)
    if not isinstance(record, dict) or "redis_url" not in record:
        return None
    return RunningServer(int(record.get("pid", 0)), str(record["redis_url"]))
