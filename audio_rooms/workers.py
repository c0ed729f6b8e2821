"""``serve --workers N``: one supervisor and N worker processes on one machine.

A worker is a whole server process, a node like any other (state/nodes.py): its own node id,
its own slice of the media UDP port range, cooperating with the other workers only through
Redis, exactly as nodes on several machines do. So one design serves many cores and many
machines; the supervisor only does what must happen once per machine:

- it holds the data directory's lock (datadir.py), starts the embedded Redis when no Redis is
  configured (and restarts it, state/embedded.py), creates the secret key and runs the database
  migrations, before any worker starts;
- it binds the HTTP port once; every worker accepts on that one socket (the kernel hands each
  connection to one of them), so any worker may answer any request;
- it restarts a worker that exits, after a back-off that doubles with each quick failure, and
  removes the dead worker's entry from the node registry at once instead of after its TTL;
- SIGTERM or SIGINT is passed on to every worker, which drains (server.py); the supervisor waits
  for them (bounded: the drain deadline plus :data:`STOP_MARGIN`, then SIGKILL).

Each worker holds the read end of a pipe from the supervisor. The supervisor writes the embedded
Redis's health down it (so every worker's ``/healthz`` fails when that Redis cannot be restarted,
as a single process's does); when the supervisor dies, even by SIGKILL, the kernel closes the
pipe and every worker sees end-of-file and drains and exits: no orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from audio_rooms.errors import ServiceUnavailable
from audio_rooms.settings import ENV_PREFIX, Settings
from audio_rooms.state.connect import connect, redis_mode
from audio_rooms.state.embedded import EmbeddedRedis, wait_exited
from audio_rooms.state.nodes import NodeRegistry

logger = logging.getLogger(__name__)

# Restarts: the first after RESTART_FIRST_DELAY seconds, doubling with each consecutive quick
# failure (a worker that exits within STABLE_SECONDS of starting) up to RESTART_MAX_DELAY, so a
# worker that cannot start costs one attempt every half minute, not a spinning core.
RESTART_FIRST_DELAY = 0.5
RESTART_MAX_DELAY = 30.0
STABLE_SECONDS = 30.0
# Seconds past the drain deadline a stopping worker gets (uvicorn's own graceful shutdown and
# the app's) before it is killed.
STOP_MARGIN = 10.0
# Seconds between two looks at the embedded Redis's health, passed on to the workers.
HEALTH_POLL = 0.5
BACKLOG = 2048  # uvicorn's default
FORGET_TIMEOUT = 2.0  # seconds to remove a dead worker from the node registry

_HEALTHY = b"redis ok\n"
_FAILING = b"redis failing "


class WorkersError(Exception):
    """The workers cannot be set up as configured; the message is one line for the operator."""


def worker_count(configured: int) -> int:
    """``configured``, or for 0 the CPU cores this process may run on (a container's cpuset,
    not the machine's)."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def port_slices(low: int, high: int, count: int) -> list[tuple[int, int]]:
    """``low..high`` cut into ``count`` disjoint ranges as equal as can be, in order."""
    total = high - low + 1
    if total < count:
        raise WorkersError(
            f"AUDIO_ROOMS_MEDIA_PORT_MIN..MAX has {total} ports for {count} workers: give each "
            "worker at least one (a port is one media transport), or run fewer workers")
    return [(low + total * i // count, low + total * (i + 1) // count - 1) for i in range(count)]


def restart_delay(failures: int) -> float:
    return min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2.0 ** min(failures, 16))


def listening_socket(host: str, port: int) -> socket.socket:
    """The HTTP port, bound once for every worker (as uvicorn would bind it for one)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


# --- in a worker ---------------------------------------------------------------------------------


class SupervisorLink:
    """A worker's end of its pipe from the supervisor: the embedded Redis's health as the
    supervisor last said (:attr:`failure`, read by ``/healthz``), and ``on_gone`` called once
    when the supervisor is gone."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.failure: str | None = None
        self._pending = b""
        self._on_gone: Callable[[], None] | None = None

    def watch(self, on_gone: Callable[[], None]) -> None:
        """Start reading on the running loop."""
        self._on_gone = on_gone
        os.set_blocking(self.fd, False)
        asyncio.get_running_loop().add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            asyncio.get_running_loop().remove_reader(self.fd)
            logger.warning("the supervisor is gone: stopping")
            if self._on_gone is not None:
                self._on_gone()
            return
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            self._said(line + b"\n")

    def _said(self, line: bytes) -> None:
        if line == _HEALTHY:
            self.failure = None
        elif line.startswith(_FAILING):
            self.failure = line[len(_FAILING):].decode(errors="replace").strip()


# --- the supervisor ------------------------------------------------------------------------------


@dataclass
class Worker:
    index: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    link: int | None = None  # the write end of its pipe
    started_at: float = 0.0
    failures: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        pid = self.process.pid if self.process is not None else None
        return f"worker {self.index} (pid {pid})"


class Supervisor:
    def __init__(
        self, settings: Settings, count: int, prepare: Callable[[Settings], Awaitable[None]]
    ) -> None:
        self.settings = settings
        self.count = count
        # Once, before any worker: the data directory, key and schema (app.prepare_data_dir,
        # passed in: the composition root imports this module, not the other way round).
        self.prepare = prepare
        self.embedded: EmbeddedRedis | None = None
        self.workers: list[Worker] = []
        self._sock: socket.socket | None = None
        self._redis: aioredis.Redis | None = None
        self._stopping: asyncio.Event | None = None
        self._signals = 0
        self._failure: str | None = None

    def plan(self) -> list[dict[str, str]]:
        """Each worker's settings that differ from the supervisor's (raises WorkersError)."""
        settings = self.settings
        plans: list[dict[str, str]] = [{} for _ in range(self.count)]
        if settings.media_port_min is not None and settings.media_port_max is not None:
            slices = port_slices(settings.media_port_min, settings.media_port_max, self.count)
            for plan, (low, high) in zip(plans, slices, strict=True):
                plan["MEDIA_PORT_MIN"], plan["MEDIA_PORT_MAX"] = str(low), str(high)
        if settings.metrics_port is not None:
            # One scrape target per worker: a shared port would answer each scrape from any one
            # of them, and their counters would seem to jump back and forth.
            if settings.metrics_port + self.count - 1 > 65535:
                raise WorkersError(f"AUDIO_ROOMS_METRICS_PORT {settings.metrics_port} leaves no "
                                   f"room for {self.count} workers' ports after it")
            for index, plan in enumerate(plans):
                plan["METRICS_PORT"] = str(settings.metrics_port + index)
        return plans

    async def run(self) -> int:
        """Set up, run the workers until a signal, stop them; the exit status."""
        try:
            plans = self.plan()
            self._sock = listening_socket(self.settings.host, self.settings.port)
        except (WorkersError, OSError) as exc:
            print(f"audio-rooms: {exc}", file=sys.stderr)
            return 1
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._signalled, signum)
        common = {f"{ENV_PREFIX}WORKERS": "1",
                  f"{ENV_PREFIX}HOST": self.settings.host,
                  f"{ENV_PREFIX}PORT": str(self._sock.getsockname()[1])}
        health: asyncio.Task[None] | None = None
        status = 0
        try:
            if redis_mode(self.settings) is None:
                self.embedded = EmbeddedRedis(
                    self.settings.data_dir / "redis",
                    binary=self.settings.embedded_redis_binary,
                    restart_attempts=self.settings.embedded_redis_restart_attempts,
                )
                common[f"{ENV_PREFIX}REDIS_URL"] = await self.embedded.start()
                self.embedded.supervise()
                self._redis = self.embedded.client()
                health = asyncio.create_task(self._watch_health(), name="embedded-redis-health")
            else:
                self._redis = connect(self.settings)
            await self.prepare(self.settings)
            self.workers = [
                Worker(index, {**os.environ, **common,
                               **{ENV_PREFIX + k: v for k, v in plan.items()}})
                for index, plan in enumerate(plans)
            ]
            for worker in self.workers:
                worker.task = asyncio.create_task(self._keep(worker), name=repr(worker))
            logger.info("supervisor pid %d: %d workers on %s:%s", os.getpid(), self.count,
                        self.settings.host, common[f"{ENV_PREFIX}PORT"])
            await self._stopping.wait()
        except ServiceUnavailable as exc:
            logger.critical("cannot start: %s", exc)
            status = 1
        finally:
            await self._stop_workers()
            if health is not None:
                health.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await health
            if self._redis is not None:
                with contextlib.suppress(aioredis.RedisError, OSError):
                    await self._redis.aclose()
            if self.embedded is not None:
                await self.embedded.stop()
            self._sock.close()
        return status

    def _signalled(self, signum: int) -> None:
        assert self._stopping is not None
        self._signals += 1
        if self._signals == 1:
            logger.info("signal %s: stopping %d workers", signum, self.count)
        # The first makes each worker drain; a second makes them stop draining at once.
        self._stopping.set()
        self._send(signum)

    def _send(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signum)

    def _spawn(self, worker: Worker) -> None:
        assert self._sock is not None
        listen = self._sock.fileno()
        read, write = os.pipe()
        try:
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "audio_rooms", "serve", "--worker", str(worker.index),
                 "--listen-fd", str(listen), "--supervisor-fd", str(read)],
                env=worker.env,
                pass_fds=(listen, read),
                # Its own process group: a terminal's Ctrl-C reaches the supervisor alone, which
                # passes it on once (two would skip the drain).
                process_group=0,
            )
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        # Never block the supervisor on a worker that does not read (a line is rarely written).
        os.set_blocking(write, False)
        worker.link = write
        worker.started_at = time.monotonic()
        self._tell(worker)
        env = worker.env
        ports = (f", UDP ports {env[ENV_PREFIX + 'MEDIA_PORT_MIN']}-"
                 f"{env[ENV_PREFIX + 'MEDIA_PORT_MAX']}" if ENV_PREFIX + "MEDIA_PORT_MIN" in env
                 else "")
        logger.info("%r started%s", worker, ports)

    async def _keep(self, worker: Worker) -> None:
        """Run ``worker``, and run it again whenever it exits, until stopping."""
        assert self._stopping is not None
        while not self._stopping.is_set():
            try:
                self._spawn(worker)
            except OSError as exc:
                logger.error("worker %d could not start: %s", worker.index, exc)
                worker.failures += 1
            else:
                assert worker.process is not None
                await wait_exited(worker.process)
                if worker.link is not None:
                    os.close(worker.link)
                    worker.link = None
                if self._stopping.is_set():
                    return
                quick = time.monotonic() - worker.started_at < STABLE_SECONDS
                worker.failures = worker.failures + 1 if quick else 0
                logger.error("%r exited with %s; restarting in %.1f s", worker,
                             worker.process.returncode, restart_delay(worker.failures))
                await self._forget(worker.process.pid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), restart_delay(worker.failures))

    async def _forget(self, pid: int) -> None:
        """Remove a dead worker's node from the registry now: placement must not wait three
        heartbeats to stop sending rooms to it."""
        if self._redis is None:
            return
        registry = NodeRegistry(self._redis, self.settings.node_heartbeat_interval)
        host = socket.gethostname()
        try:
            # Bounded: a Redis that hangs must not hold up the restart.
            async with asyncio.timeout(FORGET_TIMEOUT):
                for info in await registry.nodes():
                    if info.pid == pid and info.host == host:
                        await registry.leave(info.node_id)
        except (aioredis.RedisError, OSError, TimeoutError):
            logger.warning("could not remove worker pid %d from the node registry: Redis "
                           "unreachable (it expires by itself)", pid)

    async def _stop_workers(self) -> None:
        assert self._stopping is not None
        deadline = self.settings.drain_timeout + STOP_MARGIN
        tasks = [w.task for w in self.workers if w.task is not None]
        if not self._stopping.is_set():  # not stopped by a signal (which was passed on)
            self._stopping.set()
            self._send(signal.SIGTERM)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline)
            if pending:
                logger.error("workers still running %.0f s after the stop: killing them",
                             deadline)
                self._send(signal.SIGKILL)
                await asyncio.wait(pending)
        for worker in self.workers:
            if worker.link is not None:
                os.close(worker.link)
                worker.link = None

    async def _watch_health(self) -> None:
        assert self.embedded is not None
        while True:
            if self.embedded.failure != self._failure:
                self._failure = self.embedded.failure
                for worker in self.workers:
                    self._tell(worker)
            await asyncio.sleep(HEALTH_POLL)

    def _tell(self, worker: Worker) -> None:
        if worker.link is None:
            return
        line = _HEALTHY if self._failure is None else (
            _FAILING + self._failure.replace("\n", " ").encode()[:1000] + b"\n")
        try:
            os.write(worker.link, line)
        except OSError:  # it has just exited; its watcher will see that
            pass
