"""Egress: the per-packet work of forwarding, one ingress packet to every slot mapped to it.

For each slot the header template is rewritten in place (marker, payload type, sequence
number, timestamp, audio level), header and payload are copied into one buffer, protected in
place with the subscriber's libsrtp context and written to the subscriber's UDP socket; the
slot's counters (for its RTCP sender reports) are updated.

Two implementations of the same thing:

* the compiled fast path (``audio_rooms.sfu._fastpath._fanout``, C), built by ``pip install``
  when a C compiler is available: :class:`Slot` and :func:`fanout` come from it;
* this module's pure-Python :class:`PySlot` and :func:`py_fanout`, used when the extension is
  not built or does not import, or when ``AUDIO_ROOMS_SFU_FASTPATH=0`` is set.

Both keep the same state under the same names, so the rest of the SFU cannot tell them apart;
``tests/sfu/test_fastpath.py`` runs the same forwarding through both. The hot path allocates
nothing per slot but the datagram a fallback send needs, and logs nothing.
"""

from __future__ import annotations

import logging
import os
import time
from array import array
from collections.abc import Callable
from struct import pack_into
from typing import Any, Protocol

from audio_rooms.sfu import hooks
from audio_rooms.sfu.hooks import EgressPath

logger = logging.getLogger(__name__)

CLOCK_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz: the least a resynchronised timeline moves on
# One protect buffer for the whole process (one event loop, no concurrency): the largest RTP
# packet the SFU accepts plus a header template plus libsrtp's trailer fits with room to spare.
BUFFER_SIZE = 2048
MAX_PACKET = BUFFER_SIZE - hooks.SRTP_MAX_TRAILER
HEADER_MAX = 64  # the longest header template a slot takes

_BUF, _LEN = hooks.srtp_buffer(BUFFER_SIZE)
_VIEW = hooks.srtp_buffer_view(_BUF)
_PROTECT = hooks.SRTP_PROTECT
_SRTP_OK = hooks.SRTP_OK


class Slot(Protocol):
    """One slot's forwarding state, as the rest of the SFU sees it: a compiled ``_fanout.Slot``
    or a :class:`PySlot`. Its counters are what the slot's RTCP sender reports describe
    (it is a :class:`hooks.SenderCounters` too)."""

    packets: int
    octets: int
    last_rtp_timestamp: int
    last_send_ns: int
    last_seq: int
    last_ts: int
    resync: bool

    @property
    def path(self) -> EgressPath | None: ...

    def set_path(self, path: EgressPath | None) -> None: ...

    def forward(
        self, payload: bytes, seq: int, ts: int, marker: int, level: int, now_ns: int
    ) -> int: ...


Fanout = Callable[
    [list[Slot], bytes, int, int, int, int, int, "array[int] | None"], tuple[int, int, int]
]
"""``fanout(slots, payload, seq, ts, marker, level, now_ns, latency) -> (sent, bytes, failed)``:
one packet to every slot, compiled (``_fanout.fanout``) or :func:`py_fanout`."""


class PySlot:
    """Forwarding state of one slot: header templates, offsets, counters, egress path.

    ``packets``, ``octets``, ``last_rtp_timestamp`` and ``last_send_ns`` are what the slot's
    RTCP sender reports describe (see :func:`hooks.sender_report`).
    """

    __slots__ = (
        "header",
        "last_ns",
        "last_rtp_timestamp",
        "last_send_ns",
        "last_seq",
        "last_ts",
        "level_pos",
        "octets",
        "packets",
        "path",
        "payload_type",
        "plain",
        "resync",
        "seq_offset",
        "ts_offset",
    )

    def __init__(
        self,
        header: bytes,
        plain: bytes,
        level_pos: int,
        payload_type: int,
        last_seq: int,
        last_ts: int,
    ) -> None:
        if not 12 <= len(header) <= HEADER_MAX or not 12 <= len(plain) <= HEADER_MAX:
            raise ValueError("bad header template")
        if level_pos >= len(header):
            raise ValueError("bad header template")
        self.header = bytearray(header)
        self.plain = bytearray(plain)
        self.level_pos = level_pos
        self.payload_type = payload_type
        self.last_seq = last_seq
        self.last_ts = last_ts
        self.last_ns = 0
        self.seq_offset = 0
        self.ts_offset = 0
        self.resync = True
        self.packets = 0
        self.octets = 0
        self.last_rtp_timestamp = 0
        self.last_send_ns = 0
        self.path: EgressPath | None = None

    def set_path(self, path: EgressPath | None) -> None:
        self.path = path

    def forward(
        self, payload: bytes, seq: int, ts: int, marker: int, level: int, now_ns: int
    ) -> int:
        """Send one packet; returns the datagram's size, 0 if not connected, -1 on failure."""
        path = self.path
        if path is None:
            return 0
        if self.resync:
            # Continue this slot's own sequence and timeline across a change of speaker, so
            # the subscriber sees one stream with a pause, not a jump that looks like loss.
            elapsed = 0
            if self.last_ns:
                elapsed = (now_ns - self.last_ns) * CLOCK_RATE // 1_000_000_000
            self.seq_offset = (self.last_seq + 1 - seq) & 0xFFFF
            self.ts_offset = (self.last_ts + max(elapsed, FRAME_SAMPLES) - ts) & 0xFFFFFFFF
            self.resync = False
            marker = 1
        out_seq = (seq + self.seq_offset) & 0xFFFF
        out_ts = (ts + self.ts_offset) & 0xFFFFFFFF
        level_pos = self.level_pos
        if level >= 0 and level_pos >= 0:
            header = self.header
            header[level_pos] = level
        else:
            header = self.plain
        pack_into("!BHI", header, 1, (marker << 7) | self.payload_type, out_seq, out_ts)
        hl = len(header)
        n = hl + len(payload)
        if n > MAX_PACKET:
            return -1
        view = _VIEW
        view[:hl] = header
        view[hl:n] = payload
        _LEN[0] = n
        if _PROTECT(path.srtp, _BUF, _LEN) != _SRTP_OK:
            return -1
        size: int = _LEN[0]
        sock = path.sock
        try:
            if sock is None:
                raise BlockingIOError
            sock.sendto(view[:size], path.addr)
        except OSError:
            if sock is not None and sock.fileno() < 0:
                # The pair's socket is closed (the peer is gone, e.g. consent expired): so is
                # its asyncio transport. Dropped; the transport's own close follows.
                return -1
            # Would block, or relayed through TURN: the asyncio transport buffers, wraps or
            # reports it as it would for any datagram.
            path.sendto(bytes(view[:size]), path.addr)
        self.last_seq = out_seq
        self.last_ts = out_ts
        self.last_ns = now_ns
        self.packets += 1
        self.octets += len(payload)
        self.last_rtp_timestamp = out_ts
        self.last_send_ns = now_ns
        return size


def py_fanout(
    slots: list[Slot],
    payload: bytes,
    seq: int,
    ts: int,
    marker: int,
    level: int,
    now_ns: int,
    latency: array[int] | None,
) -> tuple[int, int, int]:
    """Forward one packet to every slot: (packets sent, bytes sent, failures).

    With a ``latency`` histogram (1 us buckets), each send's delay since ``now_ns`` is counted.
    """
    sent = n = failed = 0
    if latency is None:
        for slot in slots:
            size = slot.forward(payload, seq, ts, marker, level, now_ns)
            if size > 0:
                sent += size
                n += 1
            elif size < 0:
                failed += 1
    else:
        last = len(latency) - 1
        clock = time.perf_counter_ns
        for slot in slots:
            size = slot.forward(payload, seq, ts, marker, level, now_ns)
            if size > 0:
                sent += size
                n += 1
                latency[min(last, (clock() - now_ns) // 1000)] += 1
            elif size < 0:
                failed += 1
    return n, sent, failed


class FastPathMismatch(RuntimeError):
    """The compiled fast path was built from sources whose constants differ from this module's."""


def check_constants(module: Any) -> None:
    """Raise :class:`FastPathMismatch` unless ``module`` (``_fanout``) agrees with Python.

    ``fanout.c`` and this module must frame, time and protect packets alike; a stale build
    (sources changed, extension not rebuilt) would otherwise forward subtly different packets.
    """
    expected = {
        "BUFFER_SIZE": BUFFER_SIZE,
        "HEADER_MAX": HEADER_MAX,
        "SRTP_MAX_TRAILER": hooks.SRTP_MAX_TRAILER,
        "CLOCK_RATE": CLOCK_RATE,
        "FRAME_SAMPLES": FRAME_SAMPLES,
    }
    wrong = [
        f"{name} is {getattr(module, name, 'missing')} in C, {value} in Python"
        for name, value in expected.items()
        if getattr(module, name, None) != value
    ]
    if wrong:
        raise FastPathMismatch(
            f"the SFU fast path ({getattr(module, '__file__', module)}) does not match "
            f"audio_rooms/sfu/egress.py: {'; '.join(wrong)}. Rebuild it (pip install -e .) "
            "or start with AUDIO_ROOMS_SFU_FASTPATH=0."
        )


def _load_compiled() -> Any:
    try:
        from audio_rooms.sfu._fastpath import _fanout  # type: ignore[attr-defined]
    except ImportError as exc:
        logger.info("SFU fast path not built (%s): forwarding in Python", exc)
        return None
    check_constants(_fanout)
    _fanout.set_protect(hooks.srtp_protect_address(), _SRTP_OK)
    global _own_srtp
    _own_srtp = choose_gcm_sealer(_fanout, os.environ.get("AUDIO_ROOMS_SFU_OWN_SRTP", "1"))
    logger.debug("SFU fast path: AES-GCM sealed %s", _own_srtp or "by libsrtp")
    return _fanout


def choose_gcm_sealer(module: Any, choice: str) -> str:
    """Tell ``module`` how its slots seal AES-GCM sessions; returns how ("" for libsrtp).

    Measured side by side (docs/benchmarks.md), the slot's own AES-NI code costs less per
    forwarded packet than a prepared OpenSSL EVP context, so it is used where the CPU has
    AES-NI and PCLMULQDQ; elsewhere (another architecture, an old CPU) the EVP context seals.
    ``AUDIO_ROOMS_SFU_OWN_SRTP=0`` leaves it to libsrtp, ``=evp`` asks for EVP everywhere.
    """
    if choice == "0":
        module.set_own_srtp(module.SRTP_GCM_OFF)
        return ""
    if choice != "evp" and module.set_own_srtp(module.SRTP_GCM_OWN):
        return "by the slot's own AES-NI code"
    if module.set_own_srtp(module.SRTP_GCM_EVP):
        return "by a prepared OpenSSL EVP context"
    return ""


_own_srtp = ""
compiled: Any = _load_compiled()


def fast_path_enabled() -> bool:
    """Whether new slots use the compiled fast path (built, and not disabled by env)."""
    return compiled is not None and os.environ.get("AUDIO_ROOMS_SFU_FASTPATH", "1") != "0"


def own_srtp_enabled() -> bool:
    """Whether compiled slots seal AES-GCM sessions themselves (``srtp_gcm.c``).

    Needs the fast path and ``AUDIO_ROOMS_SFU_OWN_SRTP`` not set to ``0`` when the module
    loads; otherwise libsrtp protects every packet. :func:`own_srtp_sealer` tells how.
    """
    return fast_path_enabled() and bool(_own_srtp)


def own_srtp_sealer() -> str:
    """How compiled slots seal AES-GCM sessions, in words ("" when libsrtp does)."""
    return _own_srtp if fast_path_enabled() else ""


def new_slot(
    header: bytes, plain: bytes, level_pos: int, payload_type: int, last_seq: int, last_ts: int
) -> Slot:
    """A slot of the compiled fast path if enabled, else a :class:`PySlot`."""
    if fast_path_enabled():
        slot: Slot = compiled.Slot(header, plain, level_pos, payload_type, last_seq, last_ts)
        return slot
    return PySlot(header, plain, level_pos, payload_type, last_seq, last_ts)


def fanout_function() -> Fanout:
    """The fan-out loop new producers use: compiled if enabled, else :func:`py_fanout`."""
    if fast_path_enabled():
        fanout: Fanout = compiled.fanout
        return fanout
    return py_fanout
