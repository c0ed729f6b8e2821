"""Fan-out benchmark of the audio-rooms SFU, side by side with Janus VideoRoom.

    python bench/sfu_fanout.py [--listeners 50,200,500] [--speakers 1,3] [--seconds 12]
                               [--janus | --no-janus] [--label NAME]

What runs (2-core machine):

* the SFU under test in its own process pinned to core 0 (``taskset``), with in-process latency
  measurement on (``MediaConfig.measure_latency``);
* load clients pinned to core 1, in processes of at most 125 peers: 3 speakers (aiortc peers
  sending a real Opus tone, ``nice -10``) and "light" listeners: real aiortc peers (ICE, DTLS,
  SRTP, RTCP) that count RTP datagrams at the ICE layer and authenticate + decrypt 1 in 16 of
  them through aiortc's SRTP (see LightCount), never decoding;
* with ``--janus`` (the default when ``janus`` is installed), Debian's Janus 1.1.2 VideoRoom
  under the same load in the same run: pinned to core 0 like the SFU, ``event_loops = 2``,
  HTTP API on 127.0.0.1, RTP ports 40000-40999, one audio-only room with the same 3 publishers
  and the same number of light subscribers (each subscribed to all 3 feeds). libnice never
  offers 127.0.0.1, so the whole benchmark runs in a private network namespace (``unshare
  -n``, needs root) where ``lo`` is up and a veth interface holds 127.0.0.2/32; Janus gathers
  only on it (``-E``) and Janus's clients only on 127.0.0.2. No packet leaves loopback.

For each listener count each server is started afresh. For each speaker count the first N
speakers are resumed (the others stay paused: they send nothing), after a warm-up the window
(--seconds) measures the server's CPU (utime + stime of its process, /proc/PID/stat) and the
packets the listeners received; then the speakers pause and, once the last packets have
drained, delivery is checked exactly: every RTP packet the enabled speakers sent (counted at
their DTLS transports) times the listener count must have reached the listeners.

A row is VALID only with zero loss (delivered == expected) and a server core that was not
starved; a row with loss has no efficiency figure (printed in brackets, for diagnosis only).
Printed per row: forwarded packets per CPU-second of the server, its CPU share, loss, p50/p99
forwarding latency (datagram arrival to egress send, in the SFU only), RSS per listener, the
1-minute load average at the window. Then the ratio ours / Janus for every configuration.
JSON and a PNG go to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENTS_PER_PROCESS = 125
SPEAKERS = 3
HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
JANUS_ADDR = "127.0.0.2"
JANUS_IFACE = "vjanus0"
JANUS_HTTP = "http://127.0.0.1:8088/janus"
JANUS_ROOM = 4242
JANUS_LIBS = Path("/usr/lib/x86_64-linux-gnu/janus")


# --- the SFU process ---------------------------------------------------------------------------


async def run_sfu(port: int) -> None:
    from audio_rooms.sfu import MediaConfig, MediaServer

    try:
        from audio_rooms.sfu import egress

        fast_path = egress.fast_path_enabled()
    except ImportError:  # an older tree (before/after comparisons)
        fast_path = None

    media = MediaServer(MediaConfig(host_addresses=("127.0.0.1",), measure_latency=True))
    router = media.router("bench")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (asyncio.CancelledError, ConnectionError):
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            msg = json.loads(line)
            reply: dict[str, Any] = {}
            op = msg["op"]
            if op == "answer":
                reply["sdp"] = await router.answer(msg["pid"], msg["sdp"])
            elif op == "allow":
                router.set_may_produce(msg["pid"], msg["allowed"])
            elif op == "stats":
                s = media.stats()
                reply = {
                    "forwarded": s.forwarded_packets,
                    "drops": s.drops,
                    "transports": s.transports,
                    "p50": media.forwarding.latency_percentile(0.5),
                    "p99": media.forwarding.latency_percentile(0.99),
                    "fast_path": fast_path,
                }
            elif op == "reset":
                media.forwarding.reset_latency()
                if os.environ.get("SFU_BENCH_GC") == "freeze":
                    # What a deployment can do (docs/sfu.md): move everything alive now out of
                    # the collector's reach and collect the young generation less often.
                    import gc

                    gc.collect()
                    gc.freeze()
                    gc.set_threshold(50_000, 20, 100)
            writer.write((json.dumps(reply) + "\n").encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 20)
    print("READY", flush=True)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await media.close()


# --- load clients ------------------------------------------------------------------------------


def pausable_tone(frequency: float) -> Any:
    from audio_rooms.sfu.testing import SAMPLE_RATE, ToneTrack

    class PausableTone(ToneTrack):
        """A tone that stops and restarts without a catch-up burst."""

        def __init__(self) -> None:
            super().__init__(frequency)
            self.running = asyncio.Event()

        def pause(self) -> None:
            self.running.clear()

        def resume(self) -> None:
            if not self.running.is_set():
                if self._start is not None:
                    # ToneTrack paces from its start: move it so the next frame is due now.
                    self._start = time.monotonic() - self._sample / SAMPLE_RATE
                self.running.set()

        async def recv(self) -> Any:
            await self.running.wait()
            return await super().recv()

    return PausableTone()


SAMPLE_EVERY = 16


class LightCount:
    """What a light listener does with received RTP: count it at the ICE layer.

    One Python aiortc peer spends ~20 us per packet in DTLS-SRTP and asyncio plumbing, so one
    client core cannot take 500 listeners x 3 streams. A light listener counts every RTP
    datagram as it comes off its ICE pair and sends 1 in SAMPLE_EVERY on through aiortc's DTLS
    transport, which authenticates and decrypts it (SRTP); those must all come out: ``verified
    == sampled``, else the run is invalid. RTCP, STUN (consent) and DTLS take their normal path.
    """

    def __init__(self) -> None:
        self.received = 0
        self.sampled = 0
        self.verified = 0

    def install(self, pc: Any) -> None:
        from audio_rooms.sfu import hooks, testing

        for conn in hooks.ice_connections(pc):
            original = conn.data_received

            def data_received(data: bytes, component: int, original: Any = original) -> None:
                if len(data) > 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223:
                    self.received += 1
                    if self.received % SAMPLE_EVERY:
                        return
                    self.sampled += 1
                original(data, component)

            conn.data_received = data_received
        dtls = pc.getTransceivers()[0].receiver.transport
        testing.tap_rtp(dtls, self._verified, passthrough=False)

    def _verified(self, data: bytes) -> None:
        self.verified += 1

    def counts(self) -> dict[str, int]:
        return {"received": self.received, "sampled": self.sampled, "verified": self.verified}


def count_sent_rtp(pc: Any, counter: list[int]) -> None:
    """Count the RTP packets (not RTCP) ``pc`` sends, at its DTLS transport."""
    from audio_rooms.sfu import testing

    dtls = pc.getTransceivers()[0].sender.transport

    def keep(data: bytes) -> bool:
        if len(data) > 1 and not 192 <= data[1] <= 223:
            counter[0] += 1
        return True

    testing.filter_outgoing(dtls, keep)


async def client_loop(
    counts: Any, tracks: list[Any], closers: list[Any], extra: dict[str, Any] | None = None
) -> None:
    """Answer the orchestrator on stdin: count, resume N, pause, (empty line) quit."""
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        if line == "count":
            print(json.dumps(counts()), flush=True)
        elif line.startswith("resume"):
            n = int(line.split()[1])
            for i, track in enumerate(tracks):
                if i < n:
                    track.resume()
                else:
                    track.pause()
            print("{}", flush=True)
        elif line == "pause":
            for track in tracks:
                track.pause()
            print("{}", flush=True)
    for close in closers:
        await close()


async def run_sfu_clients(port: int, prefix: str, count: int, speakers: bool) -> None:
    from audio_rooms.sfu.testing import AudioClient

    if speakers:
        # Speakers share core 1 with saturated listener processes; a starved encoder would
        # make the SFU look idle. Their own CPU is not counted anywhere.
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)

    async def call(**msg: Any) -> dict[str, Any]:
        writer.write((json.dumps(msg) + "\n").encode())
        await writer.drain()
        reply: dict[str, Any] = json.loads(await reader.readline())
        return reply

    clients: list[AudioClient] = []
    tracks = []
    light = LightCount()
    for i in range(count):
        if speakers:
            track = pausable_tone(300 + 110 * i)
            tracks.append(track)
            # slots=0: a speaker sends and receives nothing, like a Janus publisher.
            client = AudioClient(mic=track, slots=0, decode=False)
        else:
            client = AudioClient(slots=3, decode=False, record_packets=False)
        answer = await call(op="answer", pid=f"{prefix}{i}", sdp=await client.offer())
        await client.accept(answer["sdp"])
        if not speakers:
            light.install(client.pc)
        clients.append(client)
    for client in clients:
        async with asyncio.timeout(60):
            await client.connected()
    sent = [0]
    if speakers:
        for client in clients:
            count_sent_rtp(client.pc, sent)
    writer.close()
    await client_loop(
        lambda: {**light.counts(), "sent": sent[0]},
        tracks,
        [c.close for c in clients],
    )


class JanusApi:
    """Janus's HTTP API: one session, many handles, one long poll dispatching events."""

    def __init__(self) -> None:
        import httpx

        self.http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=20))
        self.session = 0
        self.events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._tx = 0

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._tx += 1
        body = {**body, "transaction": f"t{self._tx}"}
        r = await self.http.post(JANUS_HTTP + path, json=body)
        reply: dict[str, Any] = r.json()
        if reply.get("janus") == "error":
            raise RuntimeError(f"janus: {reply}")
        return reply

    async def start(self) -> None:
        self.session = (await self.post("", {"janus": "create"}))["data"]["id"]
        self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            try:
                r = await self.http.get(f"{JANUS_HTTP}/{self.session}?maxev=100")
            except Exception:
                await asyncio.sleep(0.1)
                continue
            events = r.json()
            for event in events if isinstance(events, list) else [events]:
                sender = event.get("sender")
                if sender in self.events and ("plugindata" in event or "jsep" in event):
                    self.events[sender].put_nowait(event)

    async def attach(self) -> int:
        handle: int = (
            await self.post(
                f"/{self.session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}
            )
        )["data"]["id"]
        self.events[handle] = asyncio.Queue()
        return handle

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a plugin message and return its event (synchronous replies included)."""
        msg: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        reply = await self.post(f"/{self.session}/{handle}", msg)
        if reply.get("janus") == "success":
            return reply
        async with asyncio.timeout(60):
            event = await self.events[handle].get()
        data = event.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise RuntimeError(f"janus videoroom: {data}")
        return event

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        try:
            await self.post(f"/{self.session}", {"janus": "destroy"})
        except Exception:
            pass
        await self.http.aclose()


async def run_janus_clients(count: int, speakers: bool) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from audio_rooms.sfu import hooks

    if speakers:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    api = JanusApi()
    await api.start()
    pcs: list[Any] = []
    tracks: list[Any] = []
    light = LightCount()
    sent = [0]

    for i in range(count):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc)
        handle = await api.attach()
        if speakers:
            track = pausable_tone(300 + 110 * i)
            tracks.append(track)
            pc.addTransceiver(track, direction="sendonly")
            hooks.restrict_gathering(pc, [JANUS_ADDR])
            await pc.setLocalDescription(await pc.createOffer())
            event = await api.message(
                handle,
                {
                    "request": "joinandconfigure",
                    "room": JANUS_ROOM,
                    "ptype": "publisher",
                    "id": i + 1,
                    "display": f"s{i}",
                },
                {"type": "offer", "sdp": pc.localDescription.sdp, "trickle": False},
            )
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=event["jsep"]["sdp"], type="answer")
            )
        else:
            event = await api.message(
                handle,
                {
                    "request": "join",
                    "room": JANUS_ROOM,
                    "ptype": "subscriber",
                    "streams": [{"feed": f + 1} for f in range(SPEAKERS)],
                },
            )
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=event["jsep"]["sdp"], type="offer")
            )
            for transceiver in pc.getTransceivers():
                hooks.silence_receiver(transceiver.receiver)
            hooks.restrict_gathering(pc, [JANUS_ADDR])
            await pc.setLocalDescription(await pc.createAnswer())
            hooks.guard_late_start(pc)
            light.install(pc)
            await api.message(
                handle,
                {"request": "start", "room": JANUS_ROOM},
                {"type": "answer", "sdp": pc.localDescription.sdp, "trickle": False},
            )
    for pc in pcs:
        async with asyncio.timeout(60):
            while pc.connectionState != "connected":
                if pc.connectionState in ("failed", "closed"):
                    raise ConnectionError(f"janus peer {pc.connectionState}")
                await asyncio.sleep(0.05)
    if speakers:
        for pc in pcs:
            count_sent_rtp(pc, sent)

    async def close_all() -> None:
        for pc in pcs:
            await pc.close()
        await api.close()

    await client_loop(lambda: {**light.counts(), "sent": sent[0]}, tracks, [close_all])


# --- orchestration -----------------------------------------------------------------------------


class Proc:
    """One of the benchmark's processes (this script, or ``script``) pinned to ``core``, driven
    line by line over its stdin/stdout."""

    def __init__(
        self,
        core: int,
        *args: str,
        env: dict[str, str] | None = None,
        script: str = __file__,
    ) -> None:
        self.p = subprocess.Popen(
            ["taskset", "-c", str(core), sys.executable, script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )

    def wait_ready(self) -> None:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"process {self.p.pid} failed to start: {line!r}")

    def ask(self, line: str) -> dict[str, Any]:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        reply: dict[str, Any] = json.loads(self.p.stdout.readline())
        return reply

    def stop(self) -> None:
        assert self.p.stdin is not None
        try:
            self.p.stdin.write("\n")
            self.p.stdin.flush()
            self.p.wait(timeout=120)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


class Control:
    """The orchestrator's own connection to the SFU's control port."""

    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rw")

    def call(self, **msg: Any) -> dict[str, Any]:
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        reply: dict[str, Any] = json.loads(self.file.readline())
        return reply


def listener_groups(listeners: int, role: str, extra: list[str]) -> list[Proc]:
    groups = []
    left = listeners
    g = 0
    while left > 0:
        n = min(CLIENTS_PER_PROCESS, left)
        groups.append(Proc(1, "--role", role, "--count", str(n), "--prefix", f"g{g}-", *extra))
        left -= n
        g += 1
    for proc in groups:
        proc.wait_ready()
    return groups


def measure(
    server: str,
    server_pid: int,
    speakers: Proc,
    groups: list[Proc],
    listeners: int,
    speaker_counts: list[int],
    seconds: float,
    rss_per_listener: float,
    ctl: Control | None,
) -> list[dict[str, Any]]:
    rows = []

    def received() -> int:
        return sum(int(p.ask("count")["received"]) for p in groups)

    def sampled_verified() -> tuple[int, int]:
        counts = [p.ask("count") for p in groups]
        return sum(c["sampled"] for c in counts), sum(c["verified"] for c in counts)

    for active in speaker_counts:
        speakers.ask("pause")
        if ctl is not None:
            for i in range(SPEAKERS):
                ctl.call(op="allow", pid=f"s{i}", allowed=i < active)
        time.sleep(1.0)  # drained
        sent_start = int(speakers.ask("count")["sent"])
        recv_start = received()
        fwd_start = ctl.call(op="stats")["forwarded"] if ctl is not None else 0
        speakers.ask(f"resume {active}")
        resumed = time.monotonic()
        time.sleep(2.0)  # slots mapped, streams and the encoder steady
        if ctl is not None:
            ctl.call(op="reset")
        load = os.getloadavg()[0]
        f0 = ctl.call(op="stats")["forwarded"] if ctl is not None else None
        r0 = received()
        cpu0 = cpu_seconds(server_pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu1 = cpu_seconds(server_pid)
        t1 = time.monotonic()
        r1 = received()
        load = max(load, os.getloadavg()[0])
        stats = ctl.call(op="stats") if ctl is not None else {}
        speakers.ask("pause")
        resumed = time.monotonic() - resumed
        time.sleep(1.0)  # the last packets drain
        fwd_total = ctl.call(op="stats")["forwarded"] - fwd_start if ctl is not None else None
        sent_total = int(speakers.ask("count")["sent"]) - sent_start
        recv_total = received() - recv_start
        sampled, verified = sampled_verified()
        expected = sent_total * listeners
        loss = 1 - recv_total / expected if expected else None
        cpu = cpu1 - cpu0
        window = r1 - r0
        # A speaker starved on the client core would make the server look idle: it must send
        # its 50 packets a second.
        speaker_rate = sent_total / active / resumed
        valid = loss is not None and abs(loss) == 0 and speaker_rate > 45 and sampled == verified
        row = {
            "server": server,
            "speakers": active,
            "listeners": listeners,
            "seconds": round(t1 - t0, 2),
            "delivered_in_window": window,
            "server_cpu_seconds": round(cpu, 3),
            "server_cpu_share": round(cpu / (t1 - t0), 3),
            "packets_per_cpu_second": round(window / cpu) if cpu > 0 else None,
            # What the server sent in the window, per CPU-second: not lowered by loss at the
            # clients (a busy load-client core), so comparable between runs of the same server.
            "forwarded_per_cpu_second": (
                round((stats["forwarded"] - f0) / cpu) if f0 is not None and cpu > 0 else None
            ),
            "expected_packets": expected,
            "delivered_packets": recv_total,
            "srtp_sampled_verified": [sampled, verified],
            # The server's own count (ours only): tells loss in the server from loss at clients.
            "forwarded_packets": fwd_total,
            "loss": round(loss, 5) if loss is not None else None,
            "speaker_packets_per_second": round(speaker_rate, 1),
            "latency_p50_ms": round(stats["p50"] * 1e3, 3) if stats.get("p50") else None,
            "latency_p99_ms": round(stats["p99"] * 1e3, 3) if stats.get("p99") else None,
            "rss_per_listener_kib": round(rss_per_listener / 1024, 1),
            "load_average_1min": round(load, 2),
            "drops": stats.get("drops"),
            "fast_path": stats.get("fast_path"),
            "valid": valid,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def scenario_sfu(
    listeners: int, speaker_counts: list[int], seconds: float, port: int, env: dict[str, str]
) -> list[dict[str, Any]]:
    sfu = Proc(0, "--role", "sfu", "--port", str(port), env=env)
    sfu.wait_ready()
    sfu_pid = sfu.p.pid  # taskset execs the interpreter: same PID
    ctl = Control(port)
    speakers = Proc(1, "--role", "speakers", "--port", str(port), "--count", str(SPEAKERS))
    speakers.wait_ready()
    speakers.ask("pause")
    time.sleep(1.0)
    rss_before = rss_bytes(sfu_pid)
    groups = listener_groups(listeners, "listeners", ["--port", str(port)])
    time.sleep(1.0)
    rss = (rss_bytes(sfu_pid) - rss_before) / listeners
    name = "ours" + ("" if env.get("AUDIO_ROOMS_SFU_FASTPATH") != "0" else " (python)")
    if "AUDIO_ROOMS_SFU_OWN_SRTP" in env:
        name += f" (own srtp {env['AUDIO_ROOMS_SFU_OWN_SRTP']})"
    try:
        return measure(
            name, sfu_pid, speakers, groups, listeners, speaker_counts, seconds, rss, ctl
        )
    finally:
        ctl.file.close()
        ctl.sock.close()
        for proc in [*groups, speakers, sfu]:
            proc.stop()


def janus_config(folder: Path) -> Path:
    (folder / "plugins").mkdir()
    (folder / "transports").mkdir()
    (folder / "plugins" / "libjanus_videoroom.so").symlink_to(
        JANUS_LIBS / "plugins" / "libjanus_videoroom.so"
    )
    (folder / "transports" / "libjanus_http.so").symlink_to(
        JANUS_LIBS / "transports" / "libjanus_http.so"
    )
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{folder}/plugins"
    transports_folder = "{folder}/transports"
    events_folder = "{folder}/none"
    loggers_folder = "{folder}/none"
    debug_level = 3
    session_timeout = 0
    event_loops = 2
}}
media: {{
    rtp_port_range = "40000-40999"
}}
nat: {{
    ice_enforce_list = "{JANUS_IFACE}"
}}
plugins: {{}}
transports: {{}}
events: {{}}
loggers: {{}}
"""
    )
    (folder / "janus.transport.http.jcfg").write_text(
        """general: {
    json = "plain"
    base_path = "/janus"
    http = true
    port = 8088
    ip = "127.0.0.1"
    https = false
}
admin: {
    admin_http = false
}
"""
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return folder / "janus.jcfg"


def scenario_janus(
    listeners: int, speaker_counts: list[int], seconds: float
) -> list[dict[str, Any]]:
    import httpx

    folder = Path(tempfile.mkdtemp(prefix="janus-bench-", dir="/tmp"))
    log = open(folder / "janus.log", "w")  # noqa: SIM115 (closed in finally)
    janus = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            "janus",
            "-F",
            str(folder),
            "-C",
            str(janus_config(folder)),
            "-r",
            "40000-40999",
            "-E",
            JANUS_IFACE,
            "-o",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    groups: list[Proc] = []
    speakers: Proc | None = None
    try:
        for _ in range(100):
            try:
                httpx.get("http://127.0.0.1:8088/janus/info", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        create = {"janus": "create", "transaction": "c"}
        session = httpx.post(JANUS_HTTP, json=create).json()["data"]["id"]
        attach = {"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": "a"}
        handle = httpx.post(f"{JANUS_HTTP}/{session}", json=attach).json()["data"]["id"]
        room = {
            "request": "create",
            "room": JANUS_ROOM,
            "publishers": SPEAKERS,
            "audiocodec": "opus",
            "audiolevel_ext": True,
            "notify_joining": False,
        }
        reply = httpx.post(
            f"{JANUS_HTTP}/{session}/{handle}",
            json={"janus": "message", "transaction": "r", "body": room},
        ).json()
        if reply.get("plugindata", {}).get("data", {}).get("videoroom") != "created":
            raise RuntimeError(f"janus room: {reply}")
        speakers = Proc(1, "--role", "janus-speakers", "--count", str(SPEAKERS))
        speakers.wait_ready()
        speakers.ask("pause")
        time.sleep(1.0)
        rss_before = rss_bytes(janus.pid)
        groups = listener_groups(listeners, "janus-listeners", [])
        time.sleep(1.0)
        rss = (rss_bytes(janus.pid) - rss_before) / listeners
        return measure(
            "janus", janus.pid, speakers, groups, listeners, speaker_counts, seconds, rss, None
        )
    finally:
        for proc in [*groups, *([speakers] if speakers else [])]:
            proc.stop()
        janus.terminate()
        try:
            janus.wait(timeout=20)
        except subprocess.TimeoutExpired:
            janus.kill()
            janus.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def setup_namespace() -> None:
    """Inside ``unshare -n``: lo up, a veth pair with 127.0.0.2/32 on one end (for libnice)."""
    for cmd in (
        "ip link set lo up",
        f"ip link add {JANUS_IFACE} type veth peer name vjanus1",
        f"ip addr add {JANUS_ADDR}/32 dev {JANUS_IFACE}",
        f"ip link set {JANUS_IFACE} up",
        "ip link set vjanus1 up",
    ):
        subprocess.run(cmd.split(), check=True)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for server in sorted({r["server"] for r in results}):
        for s in sorted({r["speakers"] for r in results}):
            rows = [r for r in results if r["speakers"] == s and r["server"] == server]
            if not rows:
                continue
            xs = [r["listeners"] for r in rows]
            ys = [r["packets_per_cpu_second"] if r["valid"] else None for r in rows]
            ax1.plot(
                xs,
                [y if y is not None else float("nan") for y in ys],
                "o-",
                label=f"{server}, {s} speaker(s)",
            )
            if server.startswith("ours"):
                ax2.plot(
                    xs, [r["latency_p99_ms"] or 0 for r in rows], "o-", label=f"{server} {s} p99"
                )
                ax2.plot(
                    xs, [r["latency_p50_ms"] or 0 for r in rows], "x--", label=f"{server} {s} p50"
                )
    ax1.axhline(60_000, color="grey", linestyle=":", label="target 60k")
    ax1.axhline(150_000, color="black", linestyle=":", label="goal 150k")
    ax1.set(
        xlabel="listeners",
        ylabel="forwarded packets / CPU-second (valid rows)",
        title="fan-out efficiency",
    )
    ax2.axhline(2, color="grey", linestyle=":", label="target p99 2 ms")
    ax2.set(xlabel="listeners", ylabel="ms", title="forwarding latency in the SFU")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        f"{'server':<14} {'spk':>3} {'lis':>4} {'pkts/CPU-s':>11} {'cpu':>5} {'loss':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'RSS/lis KiB':>11} {'load':>5}  valid"
    )
    for r in results:
        pps = r["packets_per_cpu_second"]
        shown = f"{pps}" if r["valid"] else f"({pps})"
        print(
            f"{r['server']:<14} {r['speakers']:>3} {r['listeners']:>4} {shown:>11} "
            f"{r['server_cpu_share']:>5} {r['loss']!s:>8} {r['latency_p50_ms']!s:>7} "
            f"{r['latency_p99_ms']!s:>7} {r['rss_per_listener_kib']:>11} "
            f"{r['load_average_1min']:>5}  {'yes' if r['valid'] else 'NO'}"
        )
    print_janus_ratios(results)


def print_janus_ratios(results: list[dict[str, Any]]) -> None:
    """Ours / Janus in packets per CPU-second, row by row of the same room (sfu_cascade.py
    prints them too)."""
    janus = {(r["speakers"], r["listeners"]): r for r in results if r["server"] == "janus"}
    for r in results:
        j = janus.get((r["speakers"], r["listeners"]))
        if r["server"] == "janus" or j is None:
            continue
        both = r["valid"] and j["valid"]
        ratio = r["packets_per_cpu_second"] / j["packets_per_cpu_second"]
        print(
            f"ratio {r['server']}/janus {r['speakers']}x{r['listeners']}: {ratio:.2f}"
            + ("" if both else "  (not valid: a side lost packets or was starved)")
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--role",
        default="bench",
        choices=["bench", "sfu", "speakers", "listeners", "janus-speakers", "janus-listeners"],
    )
    ap.add_argument("--port", type=int, default=47811)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--prefix", default="l")
    ap.add_argument("--listeners", default="50,200,500")
    ap.add_argument("--speakers", default="1,3")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--janus", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument(
        "--python-path", action="store_true", help="also run the SFU with its pure-Python egress"
    )
    ap.add_argument(
        "--own-srtp",
        default="",
        help="comma-separated AUDIO_ROOMS_SFU_OWN_SRTP values to run the SFU with, one after the"
        " other for each listener count (e.g. 1,0: AES-GCM sealed in the slot, then by libsrtp)",
    )
    ap.add_argument("--no-sfu", action="store_true", help="Janus only")
    ap.add_argument("--label", default="sfu_fanout")
    args = ap.parse_args()

    if args.role == "sfu":
        asyncio.run(run_sfu(args.port))
        return
    if args.role in ("speakers", "listeners"):
        prefix = "s" if args.role == "speakers" else args.prefix
        asyncio.run(run_sfu_clients(args.port, prefix, args.count, args.role == "speakers"))
        return
    if args.role in ("janus-speakers", "janus-listeners"):
        asyncio.run(run_janus_clients(args.count, args.role == "janus-speakers"))
        return

    janus = args.janus if args.janus is not None else shutil.which("janus") is not None
    if janus and os.environ.get("SFU_BENCH_NETNS") != "1":
        # Everything (both servers, every client) in a private network namespace.
        env = dict(os.environ, SFU_BENCH_NETNS="1")
        cmd = ["unshare", "-n", sys.executable, __file__, *sys.argv[1:]]
        raise SystemExit(subprocess.call(cmd, env=env))
    if os.environ.get("SFU_BENCH_NETNS") == "1":
        setup_namespace()

    speaker_counts = [int(x) for x in args.speakers.split(",")]
    results: list[dict[str, Any]] = []
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for listeners in (int(x) for x in args.listeners.split(",")):
        if not args.no_sfu:
            for own_srtp in args.own_srtp.split(",") if args.own_srtp else [None]:
                env = dict(os.environ)
                if own_srtp is not None:
                    env["AUDIO_ROOMS_SFU_OWN_SRTP"] = own_srtp
                results += scenario_sfu(listeners, speaker_counts, args.seconds, args.port, env)
            if args.python_path:
                env["AUDIO_ROOMS_SFU_FASTPATH"] = "0"
                results += scenario_sfu(listeners, speaker_counts, args.seconds, args.port, env)
        if janus:
            results += scenario_janus(listeners, speaker_counts, args.seconds)
    out = ROOT / "bench" / "results" / args.label
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    print_table(results)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
