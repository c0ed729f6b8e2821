"""Mouth-to-ear latency of listeners on the listen WebSocket (the UDP-blocked fallback), with
and without packet loss on the server's link.

    python bench/fallback_latency.py [--listeners 20] [--seconds 20] [--loss 0 2]

Needs root (``ip netns``), iproute2, and, where the kernel has no netem, ``llc`` (LLVM).

The server (``python -m audio_rooms serve``, one process, embedded Redis) runs in a network
namespace of its own, joined to this one by a veth pair; the speaker and the listeners run
here and reach it over that link. Loss is applied to everything the server sends (its veth's
egress): with ``tc netem loss`` where the kernel has netem, else with a tc BPF filter in
direct-action mode that drops each packet with the given probability (a few lines of LLVM IR
compiled by ``llc`` below; this machine's kernel has neither netem nor gact). The relay rides
TCP, so a lost segment is retransmitted and shows as delay, not as a gap.

The speaker is an aiortc peer whose microphone is silence with a 1 kHz burst (100 ms) once a
second; its track notes the moment it hands each burst's first frame to the encoder (mouth).
Each listener decodes every frame it receives with libopus (PyAV), as a browser's WebCodecs
would, and notes when a burst first shows in the decoded audio (ear). Mouth and ear are on this
process's clock. The browser then holds 150-300 ms in its jitter buffer (listen-worklet.js:
150 ms to start, growing by 20 ms per underrun) and the sound card's latency on top; those are
not in these figures.

Prints p50/p99 per loss and writes bench/results/fallback_latency.json. Removes the namespace
and stops the server (by PID) on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import websockets  # noqa: E402
from aiortc import MediaStreamTrack  # noqa: E402
from aiortc.mediastreams import MediaStreamError  # noqa: E402

from audio_rooms.sfu.testing import AudioClient  # noqa: E402
from audio_rooms.signalling.listen_frames import AudioFrame  # noqa: E402

RATE = 48_000
FRAME = 960  # 20 ms
BURST_EVERY = 50  # frames: one burst a second
BURST_FRAMES = 5  # 100 ms of 1 kHz
LOUD = 0.05  # decoded peak (full scale 1.0) that counts as the burst; silence decodes to ~0
WARMUP = 2.0  # seconds of bursts not counted (connections settling)
HERE, THERE = "10.201.0.1", "10.201.0.2"  # this namespace's end of the link, the server's
LIMITS = {  # every listener comes from one address: lift the per-address limits
    "AUDIO_ROOMS_MAX_WEBSOCKETS_PER_ADDRESS": "100000",
    "AUDIO_ROOMS_MAX_CONNECTIONS_PER_ADDRESS": "100000",
    "AUDIO_ROOMS_GUEST_TOKENS_PER_ADDRESS_PER_HOUR": "100000",
    "AUDIO_ROOMS_MEDIA_TRANSPORTS_PER_ADDRESS": "10000",
}

# A tc classifier in direct-action mode: TC_ACT_SHOT (2) for a packet whose random draw
# (bpf_get_prandom_u32, helper 7) modulo 10,000 is under the loss in hundredths of a percent.
DROP_IR = """
target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
target triple = "bpf"
@_license = global [4 x i8] c"GPL\\00", section "license", align 1
@llvm.used = appending global [2 x i8*] [i8* getelementptr ([4 x i8], [4 x i8]* @_license,
  i32 0, i32 0), i8* bitcast (i32 (i8*)* @drop to i8*)], section "llvm.metadata"
define i32 @drop(i8* %skb) section "classifier" {{
  %f = inttoptr i64 7 to i32 ()*
  %r = call i32 %f()
  %m = urem i32 %r, 10000
  %c = icmp ult i32 %m, {threshold}
  %v = select i1 %c, i32 2, i32 0
  ret i32 %v
}}
"""


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)


class Link:
    """A network namespace for the server and a veth pair to it, with loss on its side."""

    def __init__(self, workdir: Path) -> None:
        tag = os.getpid() % 100_000
        self.ns = f"arbench{tag}"
        self.here, self.there = f"arh{tag}", f"ars{tag}"
        self.workdir = workdir

    def __enter__(self) -> Link:
        run("ip", "netns", "add", self.ns)
        try:
            run("ip", "link", "add", self.here, "type", "veth", "peer", "name", self.there,
                "netns", self.ns)
            run("ip", "addr", "add", f"{HERE}/24", "dev", self.here)
            run("ip", "link", "set", self.here, "up")
            self.inside("ip", "addr", "add", f"{THERE}/24", "dev", self.there)
            self.inside("ip", "link", "set", self.there, "up")
            self.inside("ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.here], capture_output=True, timeout=30)

    def inside(self, *args: str) -> None:
        run("ip", "netns", "exec", self.ns, *args)

    def set_loss(self, percent: float) -> str:
        """Drop ``percent`` of what the server sends; returns how."""
        for qdisc in ("root", "clsact"):
            subprocess.run(["ip", "netns", "exec", self.ns, "tc", "qdisc", "del", "dev",
                            self.there, qdisc], capture_output=True, timeout=30)
        if percent <= 0:
            return "none"
        try:
            self.inside("tc", "qdisc", "add", "dev", self.there, "root", "netem", "loss",
                        f"{percent}%")
            return "tc netem"
        except subprocess.CalledProcessError:
            pass
        ir = self.workdir / "drop.ll"
        obj = self.workdir / "drop.o"
        ir.write_text(DROP_IR.format(threshold=round(percent * 100)))
        run("llc", "-march=bpf", "-filetype=obj", "-o", str(obj), str(ir))
        self.inside("tc", "qdisc", "add", "dev", self.there, "clsact")
        self.inside("tc", "filter", "add", "dev", self.there, "egress", "bpf", "da", "obj",
                    str(obj), "sec", "classifier")
        return "tc bpf (direct action)"


class BurstTrack(MediaStreamTrack):
    """Silence with a 1 kHz burst once a second, paced in real time; notes each burst's
    first frame's hand-over to the encoder (the mouth)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.mouths: dict[int, float] = {}  # a burst's first frame's pts -> when it was spoken
        self._frame = 0
        self._start: float | None = None
        t = np.arange(FRAME * BURST_FRAMES) / RATE
        self._burst = (0.5 * 32767 * np.sin(2 * math.pi * 1000 * t)).astype(np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._frame * FRAME / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        phase = self._frame % BURST_EVERY
        if phase < BURST_FRAMES:
            samples = self._burst[phase * FRAME:(phase + 1) * FRAME]
        else:
            samples = np.zeros(FRAME, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._frame * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self._frame += 1
        if phase == 0:
            self.mouths[frame.pts] = time.monotonic()
        return frame


class Ear:
    """A listen-socket listener that decodes what it gets and notes when each burst arrives."""

    def __init__(self) -> None:
        self.ears: list[tuple[int, float]] = []  # (RTP timestamp, arrival) of each burst heard
        self._codec: Any = av.CodecContext.create("opus", "r")
        self._codec.sample_rate = RATE
        # As if loud: a socket opened in the middle of a burst waits for the next one's start.
        self._loud = True

    async def run(self, url: str, token: str) -> None:
        async with websockets.connect(url, max_size=2**16) as ws:
            await ws.send(json.dumps({"type": "listen", "token": token}))
            async for message in ws:
                if isinstance(message, bytes):
                    frame = AudioFrame.parse(message)
                    self.heard(frame.timestamp, frame.payload, time.monotonic())

    def heard(self, timestamp: int, payload: bytes, arrived: float) -> None:
        peak = 0.0
        for decoded in self._codec.decode(av.Packet(payload)):
            samples = decoded.to_ndarray()
            scale = 32768.0 if samples.dtype == np.int16 else 1.0
            peak = max(peak, float(np.abs(samples).max()) / scale)
        loud = peak > LOUD
        if loud and not self._loud:
            self.ears.append((timestamp, arrived))
        self._loud = loud


def latencies(mouths: dict[int, float], ears: list[tuple[int, float]],
              since: float) -> list[float]:
    """Each burst heard less the moment it was spoken, matched by RTP timestamp (the relay
    keeps the speaker's), so a burst however late is never taken for the next one.

    The RTP timestamps are the track's pts plus an offset of the sender's; the first burst
    heard, in the warm-up, is matched by time (the latest spoken before it) to learn it.
    """
    if not ears:
        return []
    period = BURST_EVERY * FRAME
    first_ts, first_at = ears[0]
    spoken = [pts for pts, at in mouths.items() if at <= first_at]
    if not spoken:
        return []
    offset = (first_ts - max(spoken)) & 0xFFFFFFFF
    out = []
    for timestamp, arrived in ears:
        pts = (timestamp - offset) & 0xFFFFFFFF
        mouth = mouths.get(pts - pts % period)
        if mouth is not None and mouth >= since:
            out.append(arrived - mouth)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def session(base: str, listeners: int, seconds: float, port: int,
                  name: str) -> dict[str, Any]:
    """A speaker and ``listeners`` relay listeners for ``seconds``; their latencies."""
    track = BurstTrack()
    speaker = AudioClient(mic=track, decode=False, host_addresses=(HERE,))
    sockets: list[Any] = []
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            r = await http.post("/api/auth/signup", json={
                "handle": name, "display_name": "Speaker",
                "password": "correct horse battery"})
            r.raise_for_status()
            token = r.json()["token"]
            r = await http.post("/api/rooms", json={"title": "Latency", "visibility": "open"},
                                headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
            room_id = r.json()["room"]["id"]
            ws_base = f"ws://{THERE}:{port}/ws/rooms/{room_id}"
            host = await websockets.connect(ws_base)
            sockets.append(host)
            await host.send(json.dumps({"type": "join", "token": token}))
            await host.send(json.dumps({"type": "media_offer", "sdp": await speaker.offer()}))
            while (answer := json.loads(await host.recv()))["type"] != "media_answer":
                pass
            await speaker.accept(answer["sdp"])
            tasks.append(asyncio.create_task(drain(host)))
            ears = []
            for n in range(listeners):
                r = await http.post("/api/auth/guest", json={"display_name": f"Ear {n}"})
                r.raise_for_status()
                guest = r.json()["token"]
                room = await websockets.connect(ws_base)
                sockets.append(room)
                await room.send(json.dumps({"type": "join", "token": guest}))
                while json.loads(await room.recv())["type"] != "welcome":
                    pass
                tasks.append(asyncio.create_task(drain(room)))
                ear = Ear()
                ears.append(ear)
                tasks.append(asyncio.create_task(ear.run(f"{ws_base}/listen", guest)))
        since = time.monotonic() + WARMUP
        await asyncio.sleep(WARMUP + seconds)
        samples = [x for ear in ears for x in latencies(track.mouths, ear.ears, since)]
        heard = sum(1 for ear in ears if ear.ears)
        bursts = sum(1 for m in track.mouths.values() if m >= since) * listeners
    finally:
        for task in tasks:
            task.cancel()
        for ws in sockets:
            await ws.close()
        await speaker.close()
    return {"samples": samples, "listeners_hearing": heard, "bursts_expected": bursts}


async def drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def measure(listeners: int, seconds: float, losses: list[float]) -> dict[str, Any]:
    results: dict[str, Any] = {"listeners": listeners, "seconds": seconds, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-fallback-latency-") as tmp, \
            Link(Path(tmp)) as link:
        port = 8765
        server = start_server(link, Path(tmp), port)
        base = f"http://{THERE}:{port}"
        try:
            async with httpx.AsyncClient(base_url=base) as http:
                for _ in range(300):
                    if server.poll() is not None:
                        raise RuntimeError("server exited: " + (Path(tmp) / "server.log")
                                           .read_text()[-2000:])
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
            for loss in losses:
                how = link.set_loss(loss)
                dropped = await frames_dropped(base)
                name = f"speaker{len(results['runs'])}"
                got = await session(base, listeners, seconds, port, name)
                samples = got["samples"]
                run_result = {
                    "loss_percent": loss, "loss_by": how,
                    "bursts_heard": len(samples), "bursts_expected": got["bursts_expected"],
                    "listeners_hearing": got["listeners_hearing"],
                    "frames_skipped": await frames_dropped(base) - dropped,
                    "p50_ms": 1000 * percentile(samples, 0.5) if samples else None,
                    "p99_ms": 1000 * percentile(samples, 0.99) if samples else None,
                    "max_ms": 1000 * max(samples) if samples else None,
                }
                results["runs"].append(run_result)
                label = f"loss {loss}% ({how})"
                print(f"{label:32} " + "  ".join(
                    f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in run_result.items() if k not in ("loss_percent", "loss_by")))
        finally:
            link.set_loss(0)
            stop_server(server)
    return results


async def frames_dropped(base: str) -> int:
    """Frames the server skipped for listen sockets too far behind (its /metrics)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("audio_rooms_listen_frames_dropped_total "):
            return int(float(line.split()[1]))
    return 0


def start_server(link: Link, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """The server in the link's namespace, one process, media on the namespace's address."""
    env = {**os.environ, **LIMITS, "AUDIO_ROOMS_DATA_DIR": str(tmp / "data"),
           "AUDIO_ROOMS_WORKERS": "1", "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": THERE,
           "AUDIO_ROOMS_STUN_URLS": ""}
    with (tmp / "server.log").open("wb") as log:
        return subprocess.Popen(
            ["ip", "netns", "exec", link.ns, sys.executable, "-m", "audio_rooms", "serve",
             "--host", THERE, "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)  # `ip netns exec` execs the server: this is its PID
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 2.0])
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root, for ip netns")
    results = asyncio.run(measure(args.listeners, args.seconds, args.loss))
    out = ROOT / "bench" / "results" / "fallback_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
