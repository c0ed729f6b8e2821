"""Cascade benchmark: one room's listeners over one or two SFU workers joined by a pipe.

    python bench/sfu_cascade.py [--listeners 100,500] [--speakers 1,3] [--seconds 8]
                                [--configs 1w,2w,2w-edge] [--janus | --no-janus]

Issue 13's benchmark, built on bench/sfu_fanout.py (its speakers, light listeners, Janus run and
network namespace are reused as they are; read its docstring first). A *worker* is a process
with its own MediaServer (this script, ``--role worker``), driven over the same line protocol
as sfu_fanout's SFU plus the pipe's set-up. Configurations, each started afresh per listener
count:

* ``1w``: one worker, pinned to core 0, terminates the 3 speakers and serves every listener
  (what sfu_fanout measures);
* ``2w``: the origin (core 0) terminates the speakers and serves half the listeners; an edge
  (core 1) is fed over a pipe from the origin (``Router.open_pipe`` / ``open_inlet`` /
  ``Inlet.accept``, SRTP AES-GCM over UDP on loopback) and serves the other half;
* ``2w-edge``: as ``2w`` but the origin keeps ``--origin-listeners`` (50) and every other
  listener is on the edge: the origin's CPU should not grow with the room.

Load clients as in sfu_fanout: speakers and light listeners on core 1 (processes of at most 125
peers). This machine has 2 cores, so the edge shares core 1 with the clients: it runs at nice
-10 (as the speakers do) so that they do not delay it; its CPU time is its own either way.

Per row: each worker's CPU share, delivered packets per CPU-second summed over the workers,
loss (every packet the enabled speakers sent times the listener count must arrive; also split
into the origin's and the edge's listeners), and latencies, all from CLOCK_MONOTONIC, which
the processes share:

* per worker, the ForwardingStats histogram (``measure_latency``): a copy's send time minus
  the arrival of the packet it copies *at that worker* (at the edge: at its inlet);
* ``pipe``: per packet, the edge's inlet arrival minus the origin's arrival of the same packet
  (matched by a CRC of the Opus payload, which no hop changes): the pipe's added latency, with
  whatever the origin sends before the pipe's lane;
* ``last copy``: per packet, the time the last worker finished its fan-out minus the arrival at
  the origin: no listener's copy is later, so its p99 bounds the room's per-copy p99;
* ``room``: the per-copy distribution over every listener of the room, from the speaker's
  arrival at the origin: the origin's histogram, plus the edge's histogram convolved with the
  pipe's per-packet delays (independence assumed; the origin's few pipe-lane sends included).

Then: ours / Janus per configuration (Janus from sfu_fanout's own code path, one server on core
0), and the listeners each configuration would serve at zero loss with each worker allowed
``--core-budget`` of a core: per worker, its CPU share is fitted as fixed + per-listener cost
over the listener counts run (valid rows only), and the worker is filled to the budget. This
machine cannot run two saturated workers plus the clients, so that figure is computed, not
found by search. JSON to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sfu_fanout as fanout  # noqa: E402 (bench/, first on sys.path when run as a script)
from processes import cpu_seconds  # noqa: E402

ROOM = "bench"
CONFIGS = ("1w", "2w", "2w-edge")


# --- a worker ----------------------------------------------------------------------------------


class PacketTiming:
    """Per forwarded speaker packet: (payload CRC, arrival ns, fan-out done ns) at this worker.

    Wraps ``Producer.handle_rtp`` (the whole fan-out of a packet is that one call) in this
    process only; a CRC and a list append per incoming packet (50-150 a second).
    """

    def __init__(self) -> None:
        self.records: list[tuple[int, int, int]] = []

    def install(self) -> None:
        from audio_rooms.sfu import rtp
        from audio_rooms.sfu.producer import Producer

        original = Producer.handle_rtp
        records = self.records
        clock = time.perf_counter_ns

        def handle_rtp(producer: Producer, data: bytes, arrival_ns: int) -> None:
            original(producer, data, arrival_ns)
            done = clock()
            try:
                payload = rtp.parse(data, None).payload
            except ValueError:
                return
            records.append((zlib.crc32(payload), arrival_ns, done))

        Producer.handle_rtp = handle_rtp  # type: ignore[method-assign]

    def take(self) -> list[tuple[int, int, int]]:
        records = list(self.records)
        self.records.clear()
        return records


async def run_worker(port: int, nice: int) -> None:
    from audio_rooms.sfu import MediaConfig, MediaServer
    from audio_rooms.sfu.pipe import PipeKeys

    if nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    timing = PacketTiming()
    timing.install()
    media = MediaServer(MediaConfig(host_addresses=("127.0.0.1",), measure_latency=True))
    router = media.router(ROOM)

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
            if op == "answer":  # sfu_fanout's clients
                reply["sdp"] = await router.answer(msg["pid"], msg["sdp"])
            elif op == "allow":
                router.set_may_produce(msg["pid"], msg["allowed"])
            elif op == "stats":
                s = media.stats()
                latency = media.forwarding.latency
                reply = {
                    "forwarded": s.forwarded_packets,
                    "drops": s.drops,
                    "pipes": s.pipes,
                    "inlets": s.inlets,
                    "remote_speakers": router.remote_speakers,
                    # {bucket (us): copies}, the non-empty buckets of the latency histogram
                    "histogram": {i: n for i, n in enumerate(latency or []) if n},
                }
            elif op == "reset":
                media.forwarding.reset_latency()
                timing.take()
            elif op == "timing":
                reply["records"] = timing.take()
            elif op == "inlet":  # edge
                inlet = await router.open_inlet(msg["origin"], "127.0.0.1")
                reply["address"] = inlet.address
            elif op == "pipe":  # origin
                keys = router.open_pipe(msg["edge"], tuple(msg["address"]), media.pipe_socket())
                reply = {"key": keys.key.hex(), "source": keys.source}
            elif op == "accept":  # edge
                assert router.inlet is not None
                router.inlet.accept(PipeKeys(bytes.fromhex(msg["key"]), tuple(msg["source"])))
            writer.write((json.dumps(reply) + "\n").encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 24)
    print("READY", flush=True)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await media.close()


# --- statistics --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def histogram_percentile(hist: dict[int, float], q: float) -> float | None:
    """``q`` quantile of {bucket us: weight}, in ms (a bucket's upper edge, as stats.py)."""
    total = sum(hist.values())
    if not total:
        return None
    seen = 0.0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= q * total:
            return (bucket + 1) / 1e3
    return (max(hist) + 1) / 1e3


def room_histogram(
    origin: dict[int, int], edge: dict[int, int], pipe_us: list[int]
) -> dict[int, float]:
    """Per-copy latency from arrival at the origin, over the listeners of both workers."""
    room: dict[int, float] = {b: float(n) for b, n in origin.items()}
    if edge and pipe_us:
        # Convolve on a coarser 10 us grid: the pipe's delays are hundreds of samples.
        delays: dict[int, int] = {}
        for d in pipe_us:
            delays[d // 10] = delays.get(d // 10, 0) + 1
        coarse: dict[int, int] = {}
        for b, n in edge.items():
            coarse[b // 10] = coarse.get(b // 10, 0) + n
        for d, dn in delays.items():
            share = dn / len(pipe_us)
            for b, n in coarse.items():
                key = (b + d) * 10 + 5
                room[key] = room.get(key, 0.0) + n * share
    return room


def match(
    origin: list[list[int]], edge: list[list[int]]
) -> list[tuple[list[int], list[int] | None]]:
    """Pair each origin record with the edge's record of the same packet.

    A steady tone's Opus frames repeat (300 Hz fits a 20 ms frame exactly), so a payload's CRC
    is not unique: an edge record is the packet of the latest origin record with its CRC that
    arrived before it, less than a frame (20 ms) earlier.
    """
    by_crc: dict[int, list[list[int]]] = {}
    for rec in sorted(origin, key=lambda r: r[1]):
        by_crc.setdefault(rec[0], []).append(rec)
    found: dict[int, list[int]] = {}  # id(origin record) -> edge record
    for rec in edge:
        candidates = by_crc.get(rec[0], [])
        i = bisect.bisect_right([c[1] for c in candidates], rec[1]) - 1
        if i >= 0 and rec[1] - candidates[i][1] < 20_000_000:
            found.setdefault(id(candidates[i]), rec)
    return [(rec, found.get(id(rec))) for rec in origin]


def ms(ns: float | None) -> float | None:
    return round(ns / 1e6, 3) if ns is not None else None


# --- orchestration -----------------------------------------------------------------------------


class Worker:
    def __init__(self, name: str, core: int, port: int, nice: int) -> None:
        self.name = name
        self.port = port
        self.proc = fanout.Proc(
            core, "--role", "worker", "--port", str(port), "--nice", str(nice), script=__file__
        )
        self.proc.wait_ready()
        self.pid = self.proc.p.pid  # taskset execs the interpreter: same PID
        self.ctl = fanout.Control(port)

    def call(self, **msg: Any) -> dict[str, Any]:
        return self.ctl.call(**msg)

    def stop(self) -> None:
        self.ctl.file.close()
        self.ctl.sock.close()
        self.proc.stop()


def split(config: str, listeners: int, origin_listeners: int) -> tuple[int, int]:
    if config == "1w":
        return listeners, 0
    if config == "2w":
        return listeners - listeners // 2, listeners // 2
    kept = min(origin_listeners, listeners)
    return kept, listeners - kept


def scenario(
    config: str,
    listeners: int,
    speaker_counts: list[int],
    seconds: float,
    port: int,
    origin_listeners: int,
) -> list[dict[str, Any]]:
    n_origin, n_edge = split(config, listeners, origin_listeners)
    workers: list[Worker] = []
    groups: dict[str, list[fanout.Proc]] = {"origin": [], "edge": []}
    speakers: fanout.Proc | None = None
    try:
        origin = Worker("origin", 0, port, 0)
        workers.append(origin)
        edge: Worker | None = None
        if config != "1w":
            edge = Worker("edge", 1, port + 1, -10)
            workers.append(edge)
            address = edge.call(op="inlet", origin="origin")["address"]
            keys = origin.call(op="pipe", edge="edge", address=address)
            edge.call(op="accept", **keys)
        speakers = fanout.Proc(
            1, "--role", "speakers", "--port", str(port), "--count", str(fanout.SPEAKERS)
        )
        speakers.wait_ready()
        speakers.ask("pause")
        groups["origin"] = fanout.listener_groups(n_origin, "listeners", ["--port", str(port)])
        if edge is not None and n_edge:
            groups["edge"] = fanout.listener_groups(
                n_edge, "listeners", ["--port", str(edge.port)]
            )
        time.sleep(1.0)
        return measure(
            config, workers, speakers, groups, (n_origin, n_edge), speaker_counts, seconds
        )
    finally:
        for proc in [*groups["origin"], *groups["edge"], *([speakers] if speakers else [])]:
            proc.stop()
        for worker in workers:
            worker.stop()


def measure(
    config: str,
    workers: list[Worker],
    speakers: fanout.Proc,
    groups: dict[str, list[fanout.Proc]],
    split_: tuple[int, int],
    speaker_counts: list[int],
    seconds: float,
) -> list[dict[str, Any]]:
    rows = []
    origin = workers[0]
    edge = workers[1] if len(workers) > 1 else None
    listeners = sum(split_)

    def received(side: str) -> int:
        return sum(int(p.ask("count")["received"]) for p in groups[side])

    def forwarded() -> list[int]:
        return [int(w.call(op="stats")["forwarded"]) for w in workers]

    for active in speaker_counts:
        speakers.ask("pause")
        for i in range(fanout.SPEAKERS):
            origin.call(op="allow", pid=f"s{i}", allowed=i < active)
        time.sleep(1.0)  # drained
        sent_start = int(speakers.ask("count")["sent"])
        recv_start = {side: received(side) for side in groups}
        speakers.ask(f"resume {active}")
        resumed = time.monotonic()
        time.sleep(2.0)  # slots mapped (at the edge too), streams and the encoder steady
        for w in workers:
            w.call(op="reset")
        load = os.getloadavg()[0]
        f0 = forwarded()
        r0 = received("origin") + received("edge")
        cpu0 = [cpu_seconds(w.pid) for w in workers]
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu1 = [cpu_seconds(w.pid) for w in workers]
        t1 = time.monotonic()
        r1 = received("origin") + received("edge")
        load = max(load, os.getloadavg()[0])
        stats = [w.call(op="stats") for w in workers]
        timing = [w.call(op="timing")["records"] for w in workers]
        speakers.ask("pause")
        resumed = time.monotonic() - resumed
        time.sleep(1.0)  # the last packets drain
        sent_total = int(speakers.ask("count")["sent"]) - sent_start
        recv = {side: received(side) - recv_start[side] for side in groups}
        counts = [p.ask("count") for side in groups for p in groups[side]]
        sampled = sum(c["sampled"] for c in counts)
        verified = sum(c["verified"] for c in counts)
        expected = sent_total * listeners
        loss = 1 - sum(recv.values()) / expected if expected else None
        side_loss = {
            side: round(1 - recv[side] / (sent_total * n), 5) if sent_total and n else None
            for side, n in zip(("origin", "edge"), split_, strict=True)
        }
        cpu = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
        window = t1 - t0
        speaker_rate = sent_total / active / resumed
        valid = loss is not None and loss == 0 and speaker_rate > 45 and sampled == verified
        hists = [{int(b): int(n) for b, n in s["histogram"].items()} for s in stats]

        # Latencies across the pipe, per packet (ns, CLOCK_MONOTONIC shared by the processes).
        pipe_ns: list[float] = []
        last_ns: list[float] = []
        unmatched = 0
        if edge is not None:
            for o, e in match(timing[0], timing[1]):
                if e is None:
                    unmatched += 1
                    continue
                pipe_ns.append(e[1] - o[1])
                last_ns.append(max(o[2], e[2]) - o[1])
        else:
            last_ns = [o[2] - o[1] for o in timing[0]]
        room = room_histogram(
            hists[0], hists[1] if edge is not None else {}, [int(d // 1000) for d in pipe_ns]
        )
        row: dict[str, Any] = {
            "server": f"ours {config}",
            "config": config,
            "speakers": active,
            "listeners": listeners,
            "origin_listeners": split_[0],
            "edge_listeners": split_[1],
            "seconds": round(window, 2),
            "cpu_share": [round(c / window, 3) for c in cpu],
            "delivered_in_window": r1 - r0,
            # Delivered to the listeners per CPU-second of all the workers together.
            "packets_per_cpu_second": round((r1 - r0) / sum(cpu)) if sum(cpu) > 0 else None,
            # What the workers sent (the origin's pipe lanes included), per CPU-second.
            "forwarded_per_cpu_second": (
                round(sum(s["forwarded"] - f for s, f in zip(stats, f0, strict=True)) / sum(cpu))
                if sum(cpu) > 0
                else None
            ),
            "expected_packets": expected,
            "delivered_packets": sum(recv.values()),
            "loss": round(loss, 5) if loss is not None else None,
            "loss_origin_listeners": side_loss["origin"],
            "loss_edge_listeners": side_loss["edge"],
            "srtp_sampled_verified": [sampled, verified],
            "speaker_packets_per_second": round(speaker_rate, 1),
            "worker_p50_ms": [histogram_percentile(dict(h), 0.5) for h in hists],
            "worker_p99_ms": [histogram_percentile(dict(h), 0.99) for h in hists],
            "pipe_p50_ms": ms(percentile(pipe_ns, 0.5)),
            "pipe_p99_ms": ms(percentile(pipe_ns, 0.99)),
            "pipe_packets_matched": len(pipe_ns),
            "pipe_packets_unmatched": unmatched,
            "last_copy_p50_ms": ms(percentile(last_ns, 0.5)),
            "last_copy_p99_ms": ms(percentile(last_ns, 0.99)),
            "room_p50_ms": histogram_percentile(room, 0.5),
            "room_p99_ms": histogram_percentile(room, 0.99),
            "drops": [s["drops"] for s in stats],
            "load_average_1min": round(load, 2),
            "valid": valid,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def fit(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """Least squares ``share = fixed + per_listener * n`` (None with fewer than 2 counts)."""
    if len({n for n, _ in points}) < 2:
        return None
    mean_n = sum(n for n, _ in points) / len(points)
    mean_c = sum(c for _, c in points) / len(points)
    slope = sum((n - mean_n) * (c - mean_c) for n, c in points) / sum(
        (n - mean_n) ** 2 for n, _ in points
    )
    return mean_c - slope * mean_n, slope


def capacity(results: list[dict[str, Any]], budget: float) -> list[dict[str, Any]]:
    """Listeners per configuration and speaker count with each worker at ``budget`` of a core."""
    out = []
    ours = [r for r in results if r["server"].startswith("ours") and r["valid"]]
    for config in ("1w", "2w"):
        for spk in sorted({r["speakers"] for r in ours}):
            rows = [r for r in ours if r["config"] == config and r["speakers"] == spk]
            total = 0.0
            models = []
            sides = ("origin_listeners", "edge_listeners")[: 1 if config == "1w" else 2]
            for w, side in enumerate(sides):
                model = fit([(r[side], r["cpu_share"][w]) for r in rows])
                if model is None or model[1] <= 0:
                    total = float("nan")
                    break
                models.append([round(model[0], 4), round(model[1] * 1e3, 4)])
                total += (budget - model[0]) / model[1]
            out.append(
                {
                    "config": config,
                    "speakers": spk,
                    # [fixed share, share per 1000 listeners] per worker
                    "models": models,
                    "listeners_at_budget": None if total != total else round(total),
                }
            )
    return out


def print_table(results: list[dict[str, Any]], budget: float) -> None:
    print(
        f"{'server':<12} {'spk':>3} {'lis':>4} {'o/e':>8} {'pkts/CPU-s':>11} {'cpu o/e':>11} "
        f"{'loss':>7} {'loss o/e':>13} {'o p50/p99':>11} {'e p50/p99':>11} {'pipe p50/p99':>13} "
        f"{'last p50/p99':>13} {'room p50/p99':>13} {'load':>5} valid"
    )

    def pair(a: Any, b: Any) -> str:
        return f"{a}/{b}" if b is not None else f"{a}"

    for r in results:
        pps = r["packets_per_cpu_second"]
        shown = f"{pps}" if r["valid"] else f"({pps})"
        if r["server"] == "janus":
            print(
                f"{'janus':<12} {r['speakers']:>3} {r['listeners']:>4} {'':>8} {shown:>11} "
                f"{r['server_cpu_share']:>11} {r['loss']!s:>7} {'':>13} "
                f"{'':>11} {'':>11} {'':>13} {'':>13} {'':>13} "
                f"{r['load_average_1min']:>5} {'yes' if r['valid'] else 'NO'}"
            )
            continue
        cpu = r["cpu_share"]
        p50, p99 = r["worker_p50_ms"], r["worker_p99_ms"]
        print(
            f"{r['server']:<12} {r['speakers']:>3} {r['listeners']:>4} "
            f"{pair(r['origin_listeners'], r['edge_listeners'] or None):>8} {shown:>11} "
            f"{pair(cpu[0], cpu[1] if len(cpu) > 1 else None):>11} {r['loss']!s:>7} "
            f"{pair(r['loss_origin_listeners'], r['loss_edge_listeners']):>13} "
            f"{pair(p50[0], p99[0]):>11} "
            f"{pair(p50[1], p99[1]) if len(p50) > 1 else '':>11} "
            f"{pair(r['pipe_p50_ms'], r['pipe_p99_ms']) if r['pipe_p50_ms'] else '':>13} "
            f"{pair(r['last_copy_p50_ms'], r['last_copy_p99_ms']):>13} "
            f"{pair(r['room_p50_ms'], r['room_p99_ms']):>13} "
            f"{r['load_average_1min']:>5} {'yes' if r['valid'] else 'NO'}"
        )
    fanout.print_janus_ratios(results)
    edge_rows = [r for r in results if r.get("config") == "2w-edge"]
    for spk in sorted({r["speakers"] for r in edge_rows}):
        series = ", ".join(
            f"{r['edge_listeners']} on the edge: {r['cpu_share'][0]:.3f}"
            + ("" if r["valid"] else " (not valid)")
            for r in edge_rows
            if r["speakers"] == spk
        )
        print(f"origin CPU share, {spk} speaker(s), origin keeping its listeners: {series}")
    caps = capacity(results, budget)
    one = {c["speakers"]: c["listeners_at_budget"] for c in caps if c["config"] == "1w"}
    for c in caps:
        line = (
            f"capacity {c['config']} {c['speakers']} speaker(s) at {budget} of a core per worker:"
            f" {c['listeners_at_budget']} listeners (per worker [fixed share, share per 1000"
            f" listeners]: {c['models']})"
        )
        base = one.get(c["speakers"])
        if c["config"] == "2w" and base and c["listeners_at_budget"]:
            line += f"; {c['listeners_at_budget'] / base:.2f}x one worker (target >= 1.8x)"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="bench", choices=["bench", "worker"])
    ap.add_argument("--port", type=int, default=47821)
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--listeners", default="100,500")
    ap.add_argument("--speakers", default="1,3")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--origin-listeners", type=int, default=50, help="kept by 2w-edge's origin")
    ap.add_argument("--core-budget", type=float, default=0.9)
    ap.add_argument("--janus", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--label", default="sfu_cascade")
    args = ap.parse_args()

    if args.role == "worker":
        asyncio.run(run_worker(args.port, args.nice))
        return

    janus = args.janus if args.janus is not None else shutil.which("janus") is not None
    if janus and os.environ.get("SFU_BENCH_NETNS") != "1":
        # As sfu_fanout: everything in a private network namespace (libnice and 127.0.0.2).
        env = dict(os.environ, SFU_BENCH_NETNS="1")
        cmd = ["unshare", "-n", sys.executable, __file__, *sys.argv[1:]]
        raise SystemExit(subprocess.call(cmd, env=env))
    if os.environ.get("SFU_BENCH_NETNS") == "1":
        fanout.setup_namespace()

    configs = [c for c in args.configs.split(",") if c]
    if unknown := set(configs) - set(CONFIGS):
        raise SystemExit(f"unknown configurations: {sorted(unknown)}")
    speaker_counts = [int(x) for x in args.speakers.split(",")]
    results: list[dict[str, Any]] = []
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for listeners in (int(x) for x in args.listeners.split(",")):
        for config in configs:
            results += scenario(
                config, listeners, speaker_counts, args.seconds, args.port, args.origin_listeners
            )
        if janus:
            results += fanout.scenario_janus(listeners, speaker_counts, args.seconds)
    out = ROOT / "bench" / "results" / args.label
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print_table(results, args.core_budget)
    print(f"wrote {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
