"""The UDP-blocked fallback's cost: server CPU per listener on the listen WebSocket next to a
WebRTC listener's, bytes a second per listener, and how unevenly frames arrive (relay delay
spread) on loopback.

    python bench/fallback.py [--listeners 50] [--seconds 10]

A real server (``python -m audio_rooms serve``, its own process, measured by PID) and a host
speaking 440 Hz from an aiortc peer. Then, in turn, N guests listening over
``/ws/rooms/{id}/listen`` and N guests with aiortc WebRTC listeners (no decoding); the server's
CPU seconds over the window, less the host-only baseline, divided by N, is each path's cost per
listener. Delay spread: each frame's arrival less the time its RTP timestamp says it was
spoken, relative to the earliest frame, p50/p99 (the browser's jitter buffer adds 150-300 ms on
top). Mouth-to-ear latency, with loss, is bench/fallback_latency.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from join_to_audio import ROOT, Host, Server, free_port, percentile
from processes import cpu_seconds

sys.path.insert(0, str(ROOT))

import httpx
import websockets

from audio_rooms.sfu.testing import AudioClient
from audio_rooms.signalling.listen_frames import AudioFrame

RATE = 48_000
# Every listener comes from 127.0.0.1: lift the per-address limits for the server started here.
LIMITS = {
    "AUDIO_ROOMS_MAX_WEBSOCKETS_PER_ADDRESS": "100000",
    "AUDIO_ROOMS_MAX_CONNECTIONS_PER_ADDRESS": "100000",
    "AUDIO_ROOMS_GUEST_TOKENS_PER_ADDRESS_PER_HOUR": "100000",
    "AUDIO_ROOMS_MEDIA_TRANSPORTS_PER_ADDRESS": "10000",
}


async def guest(http: httpx.AsyncClient, server: Server, room_id: str, n: int) -> Any:
    r = await http.post("/api/auth/guest", json={"display_name": f"Listener {n}"})
    r.raise_for_status()
    token = r.json()["token"]
    ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/ws/rooms/{room_id}")
    await ws.send(json.dumps({"type": "join", "token": token}))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass
    return ws, token


class RelayListener:
    def __init__(self) -> None:
        self.bytes = 0
        self.frames = 0
        self.delays: list[float] = []  # arrival - spoken, seconds, from an arbitrary origin
        self.task: asyncio.Task[None] | None = None

    async def run(self, url: str, token: str) -> None:
        async with websockets.connect(url, max_size=2**16) as ws:
            await ws.send(json.dumps({"type": "listen", "token": token}))
            origin: tuple[float, int] | None = None
            async for message in ws:
                if not isinstance(message, bytes):
                    continue
                now = time.monotonic()
                frame = AudioFrame.parse(message)
                self.bytes += len(message) + 2  # and the WebSocket frame header
                self.frames += 1
                if origin is None:
                    origin = (now, frame.timestamp)
                spoken = ((frame.timestamp - origin[1]) & 0xFFFFFFFF) / RATE
                self.delays.append(now - origin[0] - spoken)


async def drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def measure(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return cpu_seconds(pid) - before


async def run(listeners: int, seconds: float, port: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-fallback-") as tmp:
        server = Server(port, Path(tmp))
        server.launch()
        host = Host(server)
        sockets: list[Any] = []
        tasks: list[asyncio.Task[None]] = []
        peers: list[AudioClient] = []
        try:
            await server.wait_ready()
            assert server.proc is not None
            pid = server.proc.pid
            await host.start()
            await asyncio.sleep(2)
            baseline = await measure(pid, seconds)

            relay: list[RelayListener] = []
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                for n in range(listeners):
                    ws, token = await guest(http, server, host.room_id, n)
                    sockets.append(ws)
                    tasks.append(asyncio.create_task(drain(ws)))
                    listener = RelayListener()
                    relay.append(listener)
                    url = f"ws://127.0.0.1:{port}/ws/rooms/{host.room_id}/listen"
                    tasks.append(asyncio.create_task(listener.run(url, token)))
            await asyncio.sleep(2)
            counted = [(r.bytes, r.frames) for r in relay]
            with_relay = await measure(pid, seconds)
            per_second = [(r.bytes - b) / seconds for r, (b, _) in zip(relay, counted, strict=True)]
            delays = [d - min(r.delays) for r in relay for d in r.delays if r.delays]
            for task in tasks:
                task.cancel()
            for ws in sockets:
                await ws.close()
            sockets.clear()
            tasks.clear()
            await asyncio.sleep(3)

            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                for n in range(listeners):
                    ws, _ = await guest(http, server, host.room_id, 10_000 + n)
                    sockets.append(ws)
                    peer = AudioClient(decode=False)
                    peers.append(peer)
                    await ws.send(json.dumps({"type": "media_offer", "sdp": await peer.offer()}))
                    while (answer := json.loads(await ws.recv()))["type"] != "media_answer":
                        pass
                    await peer.accept(answer["sdp"])
                    tasks.append(asyncio.create_task(drain(ws)))
            await asyncio.sleep(3)
            with_webrtc = await measure(pid, seconds)
        finally:
            for task in tasks:
                task.cancel()
            for peer in peers:
                await peer.close()
            for ws in sockets:
                await ws.close()
            await host.stop()
            server.stop()
    return {
        "listeners": listeners,
        "seconds": seconds,
        "server_cpu_percent_baseline": 100 * baseline / seconds,
        "relay_cpu_ms_per_listener_per_s": 1000 * (with_relay - baseline) / seconds / listeners,
        "webrtc_cpu_ms_per_listener_per_s": 1000 * (with_webrtc - baseline) / seconds / listeners,
        "relay_bytes_per_listener_per_s": statistics.mean(per_second) if per_second else 0.0,
        "relay_delay_spread_ms_p50": 1000 * percentile(delays, 0.5) if delays else None,
        "relay_delay_spread_ms_p99": 1000 * percentile(delays, 0.99) if delays else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    os.environ.update(LIMITS)
    result = asyncio.run(run(args.listeners, args.seconds, free_port()))
    for key, value in result.items():
        print(f"{key:40} {value:.2f}" if isinstance(value, float) else f"{key:40} {value}")


if __name__ == "__main__":
    main()
