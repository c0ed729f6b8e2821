"""Fan-out benchmark of the audio-rooms SFU: forwarded packets per CPU-second, loss, latency.

    python bench/sfu_fanout.py [--listeners 50,200,500] [--speakers 1,3] [--seconds 5]

The SFU runs in its own process pinned to core 0 (taskset). Load clients run in other
processes of at most 125 peers each, pinned to core 1: "light" subscribers, real aiortc peers
(ICE, DTLS, SRTP unprotect, RTCP) whose received RTP is only counted, never decoded. Speakers
are aiortc peers sending a real Opus tone. For each listener count the SFU is started afresh;
then 1 and then 3 speakers are allowed to produce, and for a window of --seconds it measures:

* forwarded packets per CPU-second of the SFU process (utime+stime from /proc/PID/stat);
* loss: packets the listeners should have received (forwarded slots x 50/s) but did not;
* p50/p99 forwarding latency, datagram arrival to egress send, measured inside the SFU;
* RSS per listener (SFU RSS with listeners minus before them, divided by listeners).

Prints a table, writes bench/results/sfu_fanout.json and .png. Comparing with Janus (see
BENCHMARKS.md) is not part of this script yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENTS_PER_PROCESS = 125
SPEAKERS = 3
HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- the SFU process ---------------------------------------------------------------------------


async def run_sfu(port: int) -> None:
    from audio_rooms.sfu import MediaConfig, MediaServer

    if os.environ.get("SFU_BENCH_NOGC"):
        import gc

        gc.disable()
    media = MediaServer(MediaConfig(host_addresses=("127.0.0.1",), measure_latency=True))
    router = media.router("bench")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
                }
            elif op == "reset":
                media.forwarding.reset_latency()
            writer.write((json.dumps(reply) + "\n").encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 20)
    print("READY", flush=True)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await media.close()


# --- a load-client process ---------------------------------------------------------------------


async def run_clients(port: int, prefix: str, count: int, speakers: bool) -> None:
    from audio_rooms.sfu.testing import AudioClient, ToneTrack

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
    for i in range(count):
        if speakers:
            client = AudioClient(mic=ToneTrack(300 + 110 * i), slots=1, decode=False)
        else:
            client = AudioClient(slots=3, decode=False, record_packets=False)
        answer = await call(op="answer", pid=f"{prefix}{i}", sdp=await client.offer())
        await client.accept(answer["sdp"])
        clients.append(client)
    for client in clients:
        async with asyncio.timeout(30):
            await client.connected()
    print("READY", flush=True)
    writer.close()
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        if line == "count":
            print(json.dumps(sum(c.packet_count for c in clients)), flush=True)
    for client in clients:
        await client.close()


# --- orchestration -----------------------------------------------------------------------------


class Proc:
    def __init__(self, core: int, *args: str) -> None:
        self.p = subprocess.Popen(
            ["taskset", "-c", str(core), sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def wait_ready(self) -> None:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"process {self.p.pid} failed to start: {line!r}")

    def ask(self, line: str) -> str:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline()

    def stop(self) -> None:
        assert self.p.stdin is not None
        try:
            self.p.stdin.write("\n")
            self.p.stdin.flush()
            self.p.wait(timeout=60)
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


def scenario(
    listeners: int, speaker_counts: list[int], seconds: float, port: int
) -> list[dict[str, Any]]:
    sfu = Proc(0, "--role", "sfu", "--port", str(port))
    sfu.wait_ready()
    sfu_pid = sfu.p.pid  # taskset execs the interpreter: same PID
    ctl = Control(port)
    speakers = Proc(1, "--role", "speakers", "--port", str(port), "--count", str(SPEAKERS))
    speakers.wait_ready()
    time.sleep(1.0)
    rss_before = rss_bytes(sfu_pid)
    groups = []
    left = listeners
    g = 0
    while left > 0:
        n = min(CLIENTS_PER_PROCESS, left)
        groups.append(
            Proc(
                1,
                "--role",
                "listeners",
                "--port",
                str(port),
                "--count",
                str(n),
                "--prefix",
                f"g{g}-",
            )
        )
        left -= n
        g += 1
    for proc in groups:
        proc.wait_ready()
    time.sleep(1.0)
    rss_after = rss_bytes(sfu_pid)
    results = []
    for active in speaker_counts:
        for i in range(SPEAKERS):
            ctl.call(op="allow", pid=f"s{i}", allowed=i < active)
        time.sleep(2.0)  # slots remapped, streams flowing
        ctl.call(op="reset")
        received0 = sum(int(p.ask("count")) for p in groups)
        fwd0 = ctl.call(op="stats")["forwarded"]
        cpu0 = cpu_seconds(sfu_pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu1 = cpu_seconds(sfu_pid)
        t1 = time.monotonic()
        stats = ctl.call(op="stats")
        time.sleep(0.3)  # let packets in flight at the end of the window arrive
        received1 = sum(int(p.ask("count")) for p in groups)
        forwarded = stats["forwarded"] - fwd0
        received = received1 - received0
        expected = active * listeners * 50 * (t1 - t0)
        row = {
            "speakers": active,
            "listeners": listeners,
            "seconds": round(t1 - t0, 2),
            "forwarded_packets": forwarded,
            "sfu_cpu_seconds": round(cpu1 - cpu0, 3),
            "sfu_cpu_share": round((cpu1 - cpu0) / (t1 - t0), 3),
            "packets_per_cpu_second": round(forwarded / max(1e-9, cpu1 - cpu0)),
            "expected_packets": round(expected),
            "received_packets": received,
            "loss": round(max(0.0, 1 - received / forwarded), 4) if forwarded else None,
            "forwarded_vs_expected": round(forwarded / expected, 4) if expected else None,
            "latency_p50_ms": round(stats["p50"] * 1e3, 3) if stats["p50"] else None,
            "latency_p99_ms": round(stats["p99"] * 1e3, 3) if stats["p99"] else None,
            "rss_per_listener_kib": round((rss_after - rss_before) / listeners / 1024, 1),
            "drops": stats["drops"],
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    ctl.sock.close()
    for proc in [*groups, speakers, sfu]:
        proc.stop()
    return results


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for s in sorted({r["speakers"] for r in results}):
        rows = [r for r in results if r["speakers"] == s]
        xs = [r["listeners"] for r in rows]
        ax1.plot(xs, [r["packets_per_cpu_second"] for r in rows], "o-", label=f"{s} speaker(s)")
        ax2.plot(xs, [r["latency_p99_ms"] or 0 for r in rows], "o-", label=f"{s} speaker(s) p99")
        ax2.plot(xs, [r["latency_p50_ms"] or 0 for r in rows], "x--", label=f"{s} speaker(s) p50")
    ax1.axhline(60_000, color="grey", linestyle=":", label="target 60k")
    ax1.set(xlabel="listeners", ylabel="forwarded packets / CPU-second", title="SFU efficiency")
    ax2.set(xlabel="listeners", ylabel="ms", title="forwarding latency (in process)")
    ax1.legend()
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="bench", choices=["bench", "sfu", "speakers", "listeners"])
    ap.add_argument("--port", type=int, default=47811)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--prefix", default="l")
    ap.add_argument("--listeners", default="50,200,500")
    ap.add_argument("--speakers", default="1,3")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sfu_fanout"))
    args = ap.parse_args()

    if args.role == "sfu":
        asyncio.run(run_sfu(args.port))
        return
    if args.role in ("speakers", "listeners"):
        prefix = "s" if args.role == "speakers" else args.prefix
        asyncio.run(run_clients(args.port, prefix, args.count, args.role == "speakers"))
        return

    speaker_counts = [int(x) for x in args.speakers.split(",")]
    results: list[dict[str, Any]] = []
    for listeners in (int(x) for x in args.listeners.split(",")):
        results += scenario(listeners, speaker_counts, args.seconds, args.port)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    header = (
        f"{'spk':>3} {'lis':>4} {'pkts/CPU-s':>10} {'cpu':>5} {'loss':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'RSS/lis KiB':>11}"
    )
    print(header)
    for r in results:
        print(
            f"{r['speakers']:>3} {r['listeners']:>4} {r['packets_per_cpu_second']:>10} "
            f"{r['sfu_cpu_share']:>5} {r['loss']!s:>7} {r['latency_p50_ms']!s:>7} "
            f"{r['latency_p99_ms']!s:>7} {r['rss_per_listener_kib']:>11}"
        )
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
