"""Join to audio: time from the join click to the first decoded audio at a browser listener.

    python bench/join_to_audio.py [--joins 10] [--port 0]

Starts the server as its own process (`python -m audio_rooms serve`, a fresh data directory
under /tmp, media on 127.0.0.1, no STUN) and a host speaking a 440 Hz tone from an aiortc peer
over the room WebSocket (audio_rooms.sfu.testing). Then, --joins times, a fresh headless
Chromium context opens the room page, types a guest name and clicks "Listen as a guest"; the
page (tests/web/audio_probe.js) runs an AnalyserNode (2048-point FFT, 20 ms ticks) on every
remote track and records when a 440 Hz peak first shows. The join-to-audio time is that moment
minus the click, both on the page's clock. Each guest leaves (the "Leave quietly" button)
before the next one joins. One untimed join first warms up the server and Chromium.

Also printed for each join, from the page's own events: the `welcome` message, the
`media_offer` sent (after ICE gathering), the `media_answer`, and the peer connection
reaching "connected", each since the click.

Prints p50/p90 and every sample; writes bench/results/join_to_audio.json. Stops what it
started by PID. Target: p50 < 500 ms on loopback; the product goal is < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import websockets  # noqa: E402

from audio_rooms.sfu.testing import AudioClient, ToneTrack  # noqa: E402
from tests.web.browser import CHROMIUM, PROBE_JS, chromium_args, tid  # noqa: E402

TONE_HZ = 440
TOLERANCE_HZ = 15  # a 2048-point FFT has 23 Hz bins; the peak is interpolated
TIMEOUT_S = 15

# Page-side timestamps of the signalling and transport milestones, for the breakdown. The
# client is not changed for this: the constructors are wrapped before its scripts run.
MILESTONES_JS = """
(() => {
  const marks = globalThis.__marks = {};
  const NativeWebSocket = WebSocket;
  globalThis.WebSocket = class extends NativeWebSocket {
    send(data) {
      if (!("offer" in marks) && String(data).includes('"media_offer"')) {
        marks.offer = performance.now();
      }
      super.send(data);
    }
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        try {
          const type = JSON.parse(event.data).type;
          if ((type === "welcome" || type === "media_answer") && !(type in marks)) {
            marks[type] = performance.now();
          }
        } catch {}
      });
    }
  };
  const NativePC = RTCPeerConnection;
  globalThis.RTCPeerConnection = class extends NativePC {
    constructor(...args) {
      super(...args);
      this.addEventListener("connectionstatechange", () => {
        if (this.connectionState === "connected" && !("connected" in marks)) {
          marks.connected = performance.now();
        }
      });
    }
  };
})();
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Server:
    """`python -m audio_rooms serve` in its own process group, stopped by its PID."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        env = {
            **os.environ,
            "AUDIO_ROOMS_DATA_DIR": str(self.data_dir),
            # One server process: its CPU and memory are what this measures.
            "AUDIO_ROOMS_WORKERS": "1",
            "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
            "AUDIO_ROOMS_STUN_URLS": "",
        }
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "audio_rooms", "serve", "--port", str(self.port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self) -> None:
        assert self.proc is not None
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            for _ in range(300):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited; see {self.log}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"server not ready after 30 s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Host:
    """A signed-up host who opens a room and speaks 440 Hz from an aiortc peer."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.ws: Any = None
        self.peer: AudioClient | None = None
        self.room_id = ""
        self._reader: asyncio.Task[None] | None = None
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.base_url) as http:
            r = await http.post("/api/auth/signup", json={
                "handle": "benchhost", "display_name": "Bench host",
                "password": "correct horse battery"})
            r.raise_for_status()
            token = r.json()["token"]
            r = await http.post("/api/rooms", json={"title": "Join to audio", "visibility": "open"},
                                headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
            self.room_id = r.json()["room"]["id"]
        url = f"ws://127.0.0.1:{self.server.port}/ws/rooms/{self.room_id}"
        self.ws = await websockets.connect(url)
        await self.ws.send(json.dumps({"type": "join", "token": token}))
        self._reader = asyncio.create_task(self._read())
        self.peer = AudioClient(mic=ToneTrack(TONE_HZ), decode=False)
        await self.ws.send(json.dumps({"type": "media_offer", "sdp": await self.peer.offer()}))
        answer = await asyncio.wait_for(self._answers.get(), TIMEOUT_S)
        await self.peer.accept(answer["sdp"])
        async with asyncio.timeout(TIMEOUT_S):
            await self.peer.connected()

    async def _read(self) -> None:
        # Keep reading (deltas, active speakers) so the server never sees a slow reader.
        async for raw in self.ws:
            message = json.loads(raw)
            if message.get("type") == "media_answer":
                await self._answers.put(message)
            elif message.get("type") == "error":
                print(f"host: server error {message.get('code')}", file=sys.stderr)

    async def stop(self) -> None:
        if self.peer is not None:
            await self.peer.close()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()


async def one_join(browser: Any, server: Server, room_id: str, n: int) -> dict[str, float]:
    ctx = await browser.new_context(locale="en-US", base_url=server.base_url)
    await ctx.add_init_script(script="globalThis.__audioProbeFftSize = 2048;")
    await ctx.add_init_script(script=PROBE_JS)
    await ctx.add_init_script(script=MILESTONES_JS)
    try:
        page = await ctx.new_page()
        await page.goto(f"/r/{room_id}")
        await page.fill(tid("guest-name"), f"Listener {n}")
        await page.click(tid("join-button"))
        await page.wait_for_function(
            "([f, tol]) => __audioProbe.firstTone(f, tol) !== null",
            arg=[TONE_HZ, TOLERANCE_HZ], timeout=TIMEOUT_S * 1000)
        sample: dict[str, float] = await page.evaluate(
            """([f, tol]) => {
              const p = __audioProbe, t0 = p.joinClickAt, m = __marks;
              return {tone: p.firstTone(f, tol) - t0, audio: p.firstAudioAt - t0,
                      welcome: m.welcome - t0, offer: m.offer - t0, answer: m.media_answer - t0,
                      connected: m.connected - t0};
            }""", [TONE_HZ, TOLERANCE_HZ])
        await page.click(tid("leave-room"))
        await page.wait_for_selector(tid("live-rooms"))
        return sample
    finally:
        await ctx.close()


async def run(joins: int, port: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing (Debian package: chromium)")
    data_dir = Path(tempfile.mkdtemp(prefix="join-to-audio-", dir="/tmp"))
    server = Server(port or free_port(), data_dir)
    host = Host(server)
    samples: list[dict[str, float]] = []
    try:
        server.launch()
        await server.wait_ready()
        await host.start()
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM),
                                              args=chromium_args(None))
            try:
                warm = await one_join(browser, server, host.room_id, 0)
                print(f"warm-up (not counted): {warm['tone']:.0f} ms")
                for n in range(1, joins + 1):
                    sample = await one_join(browser, server, host.room_id, n)
                    samples.append(sample)
                    print(f"join {n:2d}: {sample['tone']:6.0f} ms to 440 Hz "
                          f"(welcome {sample['welcome']:.0f}, offer sent {sample['offer']:.0f}, "
                          f"answer {sample['answer']:.0f}, connected {sample['connected']:.0f}, "
                          f"first audio {sample['audio']:.0f})")
            finally:
                await browser.close()
    finally:
        await host.stop()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    tones = [s["tone"] for s in samples]
    result = {
        "joins": joins,
        "p50_ms": round(statistics.median(tones), 1),
        "p90_ms": round(percentile(tones, 0.9), 1),
        "samples_ms": [round(t, 1) for t in tones],
        "breakdown_p50_ms": {k: round(statistics.median(s[k] for s in samples), 1)
                             for k in ("welcome", "offer", "answer", "connected", "audio", "tone")},
        "chromium": CHROMIUM.name,
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    args = parser.parse_args()
    result = asyncio.run(run(args.joins, args.port))
    print(f"\njoin to audio over {result['joins']} joins: p50 {result['p50_ms']:.0f} ms, "
          f"p90 {result['p90_ms']:.0f} ms (target p50 < 500 ms; goal < 300 ms)")
    print("p50 since the click: " + ", ".join(
        f"{k} {v:.0f} ms" for k, v in result["breakdown_p50_ms"].items()))
    out = ROOT / "bench" / "results" / "join_to_audio.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
