"""The compiled fan-out loop is used when built, and it forwards exactly what Python does.

``audio_rooms.sfu.egress`` has two implementations of the per-packet egress work: the compiled
one (``audio_rooms/sfu/_fastpath/fanout.c``, built by ``pip install -e .``) and the pure-Python
fallback (``AUDIO_ROOMS_SFU_FASTPATH=0``, or no compiler). Both must produce the same datagrams
and keep the same counters.
"""

from __future__ import annotations

import os
import socket
import time
from array import array
from typing import Any

import pytest
from pylibsrtp import Policy, Session

from audio_rooms.sfu import MediaServer, egress, hooks
from audio_rooms.sfu.rtp import header_template
from audio_rooms.sfu.testing import ToneTrack, dominant_frequency
from tests.conftest import eventually

from .conftest import LOOPBACK, Join, hears_for

KEY = bytes(range(30))
built = pytest.mark.skipif(egress.compiled is None, reason="the fast path is not built")


def _session(direction: int) -> Session:
    return Session(policy=Policy(key=KEY, ssrc_type=direction))


class _Recorder:
    """Stands in for the asyncio transport's sendto (the fallback)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def __call__(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))


def _slot(kind: type, sock: socket.socket | None, addr: tuple[str, int]) -> tuple[Any, Any]:
    header, level_pos = header_template(0x11223344, 1, 3, "1")
    plain, _ = header_template(0x11223344, None, 3, "1")
    slot = kind(bytes(header), bytes(plain), level_pos, 111, 1000, 5000)
    recorder = _Recorder()
    session = _session(Policy.SSRC_ANY_OUTBOUND)
    path = hooks.EgressPath(session.protect, recorder, addr, session, sock)
    slot.set_path(path)
    return slot, recorder


# (payload, seq, ts, marker, level, now_ns, resync before)
PACKETS = [
    (b"\x01" * 80, 40000, 123456, 0, 0x85, 1_000_000_000, False),
    (b"\x02" * 81, 40001, 124416, 0, -1, 1_020_000_000, False),
    (b"\x03" * 60, 40002, 125376, 1, 0x10, 1_040_000_000, False),
    (b"\x04" * 90, 7, 999, 0, 0x20, 1_500_000_000, True),  # another speaker
    (b"\x05" * 90, 8, 1959, 0, 0x21, 1_520_000_000, False),
    (b"\x06" * 90, 65535, 0xFFFFFF00, 0, 0x21, 1_540_000_000, True),  # wraps
    (b"\x07" * 90, 0, 0x000002C0, 0, 0x21, 1_560_000_000, False),
]


def _run(kind: type, fallback: bool) -> tuple[list[bytes], Any]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setblocking(False)
    try:
        slot, recorder = _slot(kind, None if fallback else tx, rx.getsockname())
        out = []
        for payload, seq, ts, marker, level, now_ns, resync in PACKETS:
            if resync:
                slot.resync = True
            size = slot.forward(payload, seq, ts, marker, level, now_ns)
            assert size > 0
            if fallback:
                data, addr = recorder.sent[-1]
                assert addr == rx.getsockname()
            else:
                data = rx.recv(2048)
                assert recorder.sent == []
            assert len(data) == size
            out.append(data)
        return out, slot
    finally:
        rx.close()
        tx.close()


def _unprotect(datagrams: list[bytes]) -> list[bytes]:
    session = _session(Policy.SSRC_ANY_INBOUND)
    return [session.unprotect(d) for d in datagrams]


@built
@pytest.mark.parametrize("fallback", [False, True], ids=["socket", "transport-fallback"])
def test_compiled_slot_sends_what_the_python_slot_sends(fallback: bool) -> None:
    py_out, py_slot = _run(egress.PySlot, fallback)
    c_out, c_slot = _run(egress.compiled.Slot, fallback)
    assert _unprotect(c_out) == _unprotect(py_out)
    # Same keystream and counters on both sides: identical ciphertext too.
    assert c_out == py_out
    for name in ("packets", "octets", "last_rtp_timestamp", "last_send_ns", "last_seq", "last_ts"):
        assert getattr(c_slot, name) == getattr(py_slot, name), name
    plain = _unprotect(py_out)
    assert plain[0][1] == 0x80 | 111  # first packet of a stream carries the marker
    assert plain[3][1] & 0x80  # so does the first after a change of speaker
    assert all(p[8:12] == bytes.fromhex("11223344") for p in plain)


@built
def test_compiled_fanout_counts_and_measures_latency() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setblocking(False)
    try:
        connected = [_slot(egress.compiled.Slot, tx, rx.getsockname())[0] for _ in range(3)]
        idle = egress.compiled.Slot(*[bytes(12), bytes(12), -1, 111, 0, 0])
        python = _slot(egress.PySlot, tx, rx.getsockname())[0]
        hist = array("Q", bytes(8 * 100))
        now = time.perf_counter_ns()
        n, sent, failed = egress.compiled.fanout(
            [*connected, idle, python], b"x" * 50, 1, 2, 0, 0x80, now, hist
        )
        assert (n, failed) == (4, 0)
        # Header template + payload + the 80-bit authentication tag.
        assert sent == 4 * (len(python.header) + 50 + 10)
        assert sum(hist) == 4
        assert python.packets == 1 and all(s.packets == 1 for s in connected)
    finally:
        rx.close()
        tx.close()


async def _hear_440(media: MediaServer, join: Join) -> Any:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1)
    listener = await join(router, "listener", slots=3)
    await eventually(hears_for(listener, 1.25))
    heard = [s for s in listener.slots if s.frames]
    assert len(heard) == 1
    assert abs(dominant_frequency(heard[0].samples(last_seconds=1.0), 48_000) - 440) <= 5
    consumers = router.transports["listener"].consumers
    assert sum(c.counters.packets for c in consumers) >= 50
    return consumers[0].slot


@built
async def test_a_listener_hears_440_hz_through_the_compiled_path(join: Join) -> None:
    assert os.environ.get("AUDIO_ROOMS_SFU_FASTPATH", "1") != "0"
    media = MediaServer(LOOPBACK)
    try:
        slot = await _hear_440(media, join)
        assert type(slot) is egress.compiled.Slot
        # aiortc negotiates AES-GCM: the listener decrypted what srtp_gcm.c protected.
        assert slot.own_srtp == egress.own_srtp_enabled()
    finally:
        await media.close()
        hooks.set_consent_timing(5, 6)


async def test_a_listener_hears_440_hz_through_the_python_fallback(
    join: Join, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIO_ROOMS_SFU_FASTPATH", "0")
    assert not egress.fast_path_enabled()
    media = MediaServer(LOOPBACK)
    try:
        slot = await _hear_440(media, join)
        assert type(slot) is egress.PySlot
    finally:
        await media.close()
        hooks.set_consent_timing(5, 6)


@pytest.mark.parametrize("kind", ["python", "compiled"])
def test_a_closed_socket_drops_the_packet_without_the_fallback(kind: str) -> None:
    if kind == "compiled" and egress.compiled is None:
        pytest.skip("the fast path is not built")
    cls = egress.PySlot if kind == "python" else egress.compiled.Slot
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setblocking(False)
    slot, recorder = _slot(cls, tx, ("127.0.0.1", 9))
    tx.close()  # the peer went away: aioice closed the pair's socket and transport
    assert slot.forward(b"x" * 40, 1, 2, 0, 0x80, 1) == -1
    assert recorder.sent == []
    assert slot.packets == 0


@built
def test_constants_shared_with_the_extension_are_checked_when_it_loads() -> None:
    egress.check_constants(egress.compiled)  # the built extension agrees

    class Stale:
        __file__ = "stale/_fanout.so"

    stale = Stale()
    for name in ("BUFFER_SIZE", "HEADER_MAX", "SRTP_MAX_TRAILER", "CLOCK_RATE", "FRAME_SAMPLES"):
        setattr(stale, name, getattr(egress.compiled, name))
    stale.FRAME_SAMPLES = 480  # type: ignore[attr-defined]
    with pytest.raises(egress.FastPathMismatch, match="FRAME_SAMPLES is 480 in C, 960"):
        egress.check_constants(stale)
