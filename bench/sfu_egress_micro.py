"""Micro-benchmark of the SFU's per-packet egress work, without peers: CPU per forwarded packet.

    python bench/sfu_egress_micro.py [--slots 200] [--packets 500] [--repeat 5]

Pinned to core 0 (a sink process on core 1 drains the datagrams). ``--slots`` slots, each with
its own SRTP session (AES-CM-128 + HMAC-SHA1-80, like a browser's) and its own UDP socket
(asyncio datagram endpoint, like aioice's), all sending to the sink on 127.0.0.1. Each
"ingress packet" (a ~80-byte Opus payload with its audio level) is forwarded to every slot by:

* ``before``: the forwarder as it was (per slot: header rewrite, bytes concatenation,
  pylibsrtp ``Session.protect``, asyncio ``DatagramTransport.sendto``);
* ``python``: ``egress.py_fanout`` over ``PySlot``s (protect in place, socket ``sendto``);
* ``compiled``: the C fan-out loop (``audio_rooms/sfu/_fastpath``), if built, with libsrtp
  (AES-CM-128 + HMAC-SHA1-80);
* ``compiled, AES-GCM ...``: the same loop on AEAD_AES_128_GCM sessions, sealed by libsrtp,
  or by the slot itself (``srtp_gcm.c``) with its own AES-NI code or a prepared OpenSSL EVP
  context.

Prints CPU microseconds per forwarded packet (process CPU time, best of --repeat) and packets
per CPU-second. Kernel time of the loopback send (which also delivers into the sink's socket)
is included, as in the real SFU. Only the per-packet cost: no RTCP, no consent, no ingress.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from struct import pack_into
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sink(port_file: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))
    Path(port_file).write_text(str(s.getsockname()[1]))
    while True:
        s.recv(2048)


async def measure(
    slots: int, packets: int, repeat: int, sink_addr: tuple[str, int]
) -> dict[str, Any]:
    from pylibsrtp import Policy, Session

    from audio_rooms.sfu import egress, hooks
    from audio_rooms.sfu.rtp import header_template

    loop = asyncio.get_running_loop()
    key = os.urandom(30)
    gcm_key = os.urandom(28)
    transports = []
    for _ in range(slots):
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)

    def fresh_paths(gcm: bool = False) -> list[Any]:
        # Fresh SRTP sessions per variant: libsrtp refuses to protect an index it already used.
        # With gcm, AEAD_AES_128_GCM and its master key: the compiled slot seals it itself.
        paths = []
        for transport in transports:
            policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
            if gcm:
                policy = Policy(
                    key=gcm_key,
                    ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
                )
            session = Session(policy=policy)
            sock = transport.get_extra_info("socket")._sock
            paths.append(
                hooks.EgressPath(
                    session.protect,
                    transport.sendto,
                    sink_addr,
                    session,
                    sock,
                    gcm_key if gcm else None,
                )
            )
        return paths

    def templates(i: int) -> tuple[bytes, bytes, int]:
        header, level_pos = header_template(1000 + i, 1, 3, "0")
        plain, _ = header_template(1000 + i, None, 3, "0")
        return bytes(header), bytes(plain), level_pos

    payload = os.urandom(80)
    results: dict[str, Any] = {}

    # --- before: the forwarder of the previous commit, inlined
    headers = [bytearray(templates(i)[0]) for i in range(slots)]
    level_pos = templates(0)[2]
    paths = fresh_paths()

    def before(seq: int, ts: int) -> None:
        for header, path in zip(headers, paths, strict=True):
            header[level_pos] = 0x85
            pack_into("!BHI", header, 1, 111, (seq + 7) & 0xFFFF, (ts + 9) & 0xFFFFFFFF)
            data = path.protect(bytes(header) + payload)
            path.sendto(data, path.addr)

    variants: dict[str, Any] = {"before": before}

    def make_fanout(kind: Any, fan: Any, gcm: bool = False, mode: int | None = None) -> Any:
        objs = []
        paths = fresh_paths(gcm)
        if mode is not None:  # how compiled slots seal AES-GCM, fixed when the path is set
            egress.compiled.set_own_srtp(mode)
        for i in range(slots):
            h, p, lp = templates(i)
            slot = kind(h, p, lp, 111, 100, 1000)
            slot.set_path(paths[i])
            objs.append(slot)

        def run(seq: int, ts: int) -> None:
            n, _, failed = fan(objs, payload, seq, ts, 0, 0x85, time.perf_counter_ns(), None)
            if n != slots or failed:
                raise RuntimeError(f"sent {n} of {slots}, {failed} failed")

        return run

    variants["python"] = make_fanout(egress.PySlot, egress.py_fanout)
    if egress.compiled is not None:
        variants["compiled"] = make_fanout(egress.compiled.Slot, egress.compiled.fanout)
        compiled = egress.compiled
        gcm_modes = {"libsrtp": compiled.SRTP_GCM_OFF, "own AES-NI": compiled.SRTP_GCM_OWN}
        gcm_modes["OpenSSL EVP"] = compiled.SRTP_GCM_EVP
        for label, mode in gcm_modes.items():
            variants[f"compiled, AES-GCM {label}"] = make_fanout(
                compiled.Slot, compiled.fanout, gcm=True, mode=mode
            )
        compiled.set_own_srtp(compiled.SRTP_GCM_EVP if egress.own_srtp_enabled() else 0)

    # Round-robin over the variants, so that a change of load on the machine hits them alike.
    seq = ts = 0
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeat):
        for name, fn in variants.items():
            cpu0 = time.process_time()
            for _ in range(packets):
                seq += 1
                ts += 960
                fn(seq, ts)
                # Let the event loop run (a fallback send may have buffered).
                if seq % 50 == 0:
                    await asyncio.sleep(0)
            cpu = time.process_time() - cpu0
            best[name] = min(best[name], cpu / (packets * slots))
    for name, cpu in best.items():
        results[name] = {
            "us_per_packet": round(cpu * 1e6, 3),
            "packets_per_cpu_second": round(1 / cpu),
        }
    for t in transports:
        t.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slots", type=int, default=200)
    ap.add_argument("--packets", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--role", default="bench", choices=["bench", "sink"])
    ap.add_argument("--port-file", default="")
    args = ap.parse_args()
    if args.role == "sink":
        sink(args.port_file)
        return
    if os.environ.get("SFU_MICRO_PINNED") != "1":
        env = dict(os.environ, SFU_MICRO_PINNED="1")
        cmd = ["taskset", "-c", "0", sys.executable, __file__, *sys.argv[1:]]
        raise SystemExit(subprocess.call(cmd, env=env))
    port_file = f"/tmp/sfu_egress_micro.{os.getpid()}"
    proc = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, __file__, "--role", "sink", "--port-file", port_file]
    )
    try:
        for _ in range(100):
            if Path(port_file).exists() and Path(port_file).read_text():
                break
            time.sleep(0.05)
        port = int(Path(port_file).read_text())
        results = asyncio.run(measure(args.slots, args.packets, args.repeat, ("127.0.0.1", port)))
    finally:
        proc.kill()
        proc.wait()
        Path(port_file).unlink(missing_ok=True)
    load = os.getloadavg()
    print(json.dumps({"slots": args.slots, "load": [round(x, 2) for x in load], **results}))
    for name, r in results.items():
        us, pps = r["us_per_packet"], r["packets_per_cpu_second"]
        print(f"{name:>22}: {us:6.2f} us/packet  {pps:>8} pkts/CPU-s")


if __name__ == "__main__":
    main()
