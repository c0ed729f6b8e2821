"""Federation: the relay's added latency, and the origin's CPU per remote listener.

Two deployments on loopback (a.bench and b.bench, each with its own embedded Redis and SQLite).
On A a host speaks 100 ms tone bursts every 500 ms into an interconnected room. Listeners are:

* ``local``: N listeners on A itself (the reference);
* ``remote``: N users of B who consented, listening through B's relay (one pipe A -> B).

Latency: every burst's onset is found in each listener's packets by its RFC 6464 audio level
(silence is 127, the tone about 10), which the SFU and the pipe carry unchanged. The relay's
added latency is a B listener's onset time minus an A listener's, burst by burst: p50/p99.
CPU: A's CPU seconds over the measuring window, with no listener, N local, and N remote.

    python bench/federation.py [--listeners 20] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from av import AudioFrame
from processes import cpu_seconds, free_port, stop_process

from audio_rooms.sfu.testing import FRAME_SAMPLES, SAMPLE_RATE, AudioClient, ToneTrack

LOUD = 60  # an RFC 6464 level (-dBov) below this is the tone; silence is 127


class BurstTrack(ToneTrack):
    """100 ms of tone every 500 ms, silence between."""

    async def recv(self) -> AudioFrame:
        frame = await super().recv()
        position = (self._sample - FRAME_SAMPLES) % (SAMPLE_RATE // 2)
        if position >= SAMPLE_RATE // 10:
            silent = np.zeros((1, FRAME_SAMPLES), dtype=np.int16)
            quiet = AudioFrame.from_ndarray(silent, format="s16", layout="mono")
            quiet.sample_rate, quiet.pts, quiet.time_base = (
                frame.sample_rate, frame.pts, frame.time_base)
            return quiet
        return frame


def start(name: str, port: int, media_base: int, urls: str, root: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AUDIO_ROOMS_SERVER_NAME": name,
        "AUDIO_ROOMS_DATA_DIR": str(root / name),
        "AUDIO_ROOMS_SECRET_KEY": secrets.token_hex(32),
        "AUDIO_ROOMS_WORKERS": "1",
        "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
        "AUDIO_ROOMS_MEDIA_PORT_MIN": str(media_base),
        "AUDIO_ROOMS_MEDIA_PORT_MAX": str(media_base + 499),
        "AUDIO_ROOMS_MEDIA_TRANSPORTS_PER_ADDRESS": "10000",
        "AUDIO_ROOMS_MAX_WEBSOCKETS_PER_ADDRESS": "10000",
        "AUDIO_ROOMS_GUEST_TOKENS_PER_ADDRESS_PER_HOUR": "100000",
        "AUDIO_ROOMS_SIGNUPS_PER_ADDRESS_PER_HOUR": "100000",
        "AUDIO_ROOMS_FEDERATION_ENABLED": "true",
        "AUDIO_ROOMS_FEDERATION_ALLOW": "a.bench,b.bench",
        "AUDIO_ROOMS_FEDERATION_PEER_URLS": urls,
        "AUDIO_ROOMS_LOG_LEVEL": "WARNING",
    }
    for key in ("AUDIO_ROOMS_REDIS_URL", "AUDIO_ROOMS_DATABASE_URL"):
        env.pop(key, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "audio_rooms", "serve", "--port", str(port)], env=env,
        stdout=(root / f"{name}.log").open("wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not start")


async def signup(http: httpx.AsyncClient, handle: str) -> dict[str, Any]:
    response = await http.post("/api/auth/signup", json={
        "handle": handle, "display_name": handle, "password": "correct horse battery",
        "locale": "en"})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def ws_join(port: int, room_id: str, token: str) -> Any:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/rooms/{room_id}",
                                  max_size=2**22)
    await ws.send(json.dumps({"type": "join", "token": token}))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass
    return ws


DRAINS: set[asyncio.Task[None]] = set()


def drain(ws: Any) -> None:
    """Read what the server sends from now on: a socket nobody reads is closed as too slow
    (4008), and its participant's media with it."""

    async def read() -> None:
        try:
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass

    task = asyncio.create_task(read())
    DRAINS.add(task)
    task.add_done_callback(DRAINS.discard)


async def offer_ws(ws: Any, peer: AudioClient) -> None:
    await ws.send(json.dumps({"type": "media_offer", "sdp": await peer.offer(), "ref": "o"}))
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "media_answer":
            break
        if message["type"] == "error":
            raise RuntimeError(message)
    await peer.accept(message["sdp"])
    await peer.connected()
    drain(ws)


def onsets(peer: AudioClient) -> list[float]:
    packets = sorted((p for s in peer.slots for p in s.packets), key=lambda p: p.arrival)
    found, quiet = [], True
    for p in packets:
        level = p.audio_level if p.audio_level is not None else 127
        if level < LOUD and quiet:
            found.append(p.arrival)
        quiet = level >= LOUD
    return found


def pair(reference: list[float], other: list[float]) -> list[float]:
    """Per burst: other's onset minus the reference's nearest onset (within 250 ms; either
    may come first, as both are measured at the same client)."""
    deltas = []
    for t in other:
        near = [r for r in reference if abs(t - r) < 0.25]
        if near:
            deltas.append((t - min(near, key=lambda r: abs(t - r))) * 1000)
    return deltas


async def window(pid: int, seconds: float) -> float:
    start = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - start) / seconds


async def main(listeners: int, seconds: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-federation-"))
    ports = {"a.bench": free_port(), "b.bench": free_port()}
    urls = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in ports.items())
    a = start("a.bench", ports["a.bench"], 46000, urls, root)
    b = start("b.bench", ports["b.bench"], 46500, urls, root)
    peers: list[AudioClient] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['a.bench']}",
                                     timeout=30) as http_a, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['b.bench']}",
                                  timeout=30) as http_b:
            host = await signup(http_a, "host")
            auth = {"Authorization": f"Bearer {host['token']}"}
            room = (await http_a.post("/api/rooms", json={"title": "Bench", "visibility": "open"},
                                      headers=auth)).json()["room"]["id"]
            host_ws = await ws_join(ports["a.bench"], room, host["token"])
            await host_ws.send(json.dumps({"type": "set_interconnected", "enabled": True}))
            speaker = AudioClient(mic=BurstTrack(440))
            peers.append(speaker)
            await offer_ws(host_ws, speaker)
            idle = await window(a.pid, seconds)

            # The reference listener on A, and one measured listener on B.
            local_ws, local_peers = [], []
            for i in range(listeners):
                guest = (await http_a.post("/api/auth/guest",
                                           json={"display_name": f"L{i}"})).json()
                ws = await ws_join(ports["a.bench"], room, guest["token"])
                peer = AudioClient(decode=False)
                peers.append(peer)
                await offer_ws(ws, peer)
                local_ws.append(ws)
                local_peers.append(peer)
            with_local = await window(a.pid, seconds)
            # All but the reference leave, so the next window counts remote listeners only.
            for ws in local_ws[1:]:
                await ws.close()
            for peer in local_peers[1:]:
                await peer.close()

            remote_peers = []
            ref = f"{room}@a.bench"
            for i in range(listeners):
                user = await signup(http_b, f"remote{i}")
                headers = {"Authorization": f"Bearer {user['token']}"}
                await http_b.put("/api/federation/consents/a.bench", headers=headers)
                (await http_b.post(f"/api/federation/rooms/{ref}/join",
                                   headers=headers)).raise_for_status()
                peer = AudioClient(decode=False)
                peers.append(peer)
                answer = await http_b.post(f"/api/federation/rooms/{ref}/media",
                                           json={"sdp": await peer.offer()}, headers=headers)
                answer.raise_for_status()
                await peer.accept(answer.json()["sdp"])
                await peer.connected()
                remote_peers.append(peer)
            await asyncio.sleep(2)
            with_remote = await window(a.pid, seconds)
            with_remote -= (with_local - idle) / listeners  # the reference listener still on A
            b_cpu = cpu_seconds(b.pid)

            reference, measured = onsets(local_peers[0]), onsets(remote_peers[0])
            deltas = pair(reference, measured)
            await host_ws.close()
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        stop_process(a, 15, 20)
        stop_process(b, 15, 20)

    print(f"logs in {root}")
    print(f"federation bench: {listeners} listeners, {seconds:.0f} s windows, 1 speaker")
    print(f"  A CPU, speaker only:            {idle * 1000:7.1f} ms/s")
    print(f"  A CPU, {listeners} local listeners:     {with_local * 1000:7.1f} ms/s"
          f"  ({(with_local - idle) * 1000 / listeners:.2f} ms/s per listener)")
    print(f"  A CPU, {listeners} remote listeners:    {with_remote * 1000:7.1f} ms/s"
          f"  ({(with_remote - idle) * 1000 / listeners:.2f} ms/s per listener; one pipe)")
    print(f"  B CPU seconds in all:           {b_cpu:7.1f}")
    if deltas:
        q = statistics.quantiles(deltas, n=100) if len(deltas) > 1 else deltas * 99
        print(f"  relay added latency (B - A), {len(deltas)} bursts: "
              f"p50 {statistics.median(deltas):.1f} ms, p99 {q[98]:.1f} ms")
    else:
        print("  relay added latency: no bursts matched")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listeners", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    asyncio.run(main(args.listeners, args.seconds))
