"""The fast path's own AES-GCM protection (srtp_gcm.c) sends exactly what libsrtp would.

Browsers and aiortc negotiate AEAD_AES_128_GCM or AEAD_AES_256_GCM for DTLS-SRTP; for those the
compiled slot protects with a context derived from the session's master key instead of calling
libsrtp. Every datagram must be the one libsrtp makes from the same key, SSRC and index (the
pure-Python slot always uses libsrtp), across a sequence-number wrap, and a packet index must
never be used twice (a repeated GCM nonce would give the key away).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from pylibsrtp import Policy, Session

from audio_rooms.sfu import egress, hooks
from audio_rooms.sfu.consumer import _header_template

own = pytest.mark.skipif(
    not egress.own_srtp_enabled(), reason="no fast path, no AES-NI, or disabled by environment"
)
PROFILES = {
    "aes128gcm": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16),
    "aes256gcm": (Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 32),
}


def _key(name: str) -> tuple[int, bytes]:
    """The libsrtp profile of ``name`` and a fresh master key || salt for it."""
    profile, key_len = PROFILES[name]
    return profile, os.urandom(key_len + 12)


def _slot(kind: type, profile: int, master: bytes, start_seq: int) -> tuple[Any, list[bytes]]:
    header, level_pos = _header_template(0x5EED1234, 1, 3, "0")
    plain, _ = _header_template(0x5EED1234, None, 3, "0")
    slot = kind(bytes(header), bytes(plain), level_pos, 111, start_seq, 7777)
    sent: list[bytes] = []
    session = Session(
        policy=Policy(key=master, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    )
    path = hooks.EgressPath(
        session.protect, lambda data, addr: sent.append(data), ("127.0.0.1", 9), session, None,
        master if kind is not egress.PySlot else None,
    )
    slot.set_path(path)
    return slot, sent


@own
@pytest.mark.parametrize("name", PROFILES)
def test_own_gcm_sends_what_libsrtp_sends_across_a_wrap(name: str) -> None:
    profile, master = _key(name)
    c_slot, c_sent = _slot(egress.compiled.Slot, profile, master, 30_000)
    py_slot, py_sent = _slot(egress.PySlot, profile, master, 30_000)
    assert c_slot.own_srtp and not getattr(py_slot, "own_srtp", False)
    # 36,000 packets from sequence number 30,001: the index rolls over (ROC 0 -> 1).
    for i in range(36_000):
        payload = os.urandom(1 + i % 120)
        level = -1 if i % 7 == 0 else 0x80 | (i % 127)
        args = (payload, 100 + i, 960 * i, i % 2, level, 1_000_000 * i)
        assert c_slot.forward(*args) == py_slot.forward(*args) > 0
    assert c_sent == py_sent
    assert c_slot.last_seq < 30_000  # wrapped
    receiver = Session(
        policy=Policy(key=master, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
    )
    # A receiver that follows the stream from its start decrypts every packet.
    plain = [receiver.unprotect(data) for data in c_sent]
    assert all(p[8:12] == bytes.fromhex("5EED1234") for p in plain)


@own
@pytest.mark.parametrize("name", PROFILES)
def test_a_packet_index_is_never_protected_twice(name: str) -> None:
    profile, master = _key(name)
    slot, sent = _slot(egress.compiled.Slot, profile, master, 1000)
    assert slot.forward(b"a" * 40, 50, 0, 0, -1, 1) > 0
    assert slot.forward(b"b" * 40, 51, 960, 0, -1, 2) > 0
    # The same upstream packet again, and a late one: refused, as libsrtp refuses a replay.
    assert slot.forward(b"c" * 40, 51, 960, 0, -1, 3) == -1
    assert slot.forward(b"d" * 40, 49, 0, 0, -1, 4) == -1
    # Handing the slot the same session again does not start its index over.
    slot.set_path(slot.path)
    assert slot.own_srtp
    assert slot.forward(b"e" * 40, 51, 960, 0, -1, 5) == -1
    assert slot.forward(b"f" * 40, 52, 1920, 0, -1, 6) > 0
    assert len(sent) == 3 and slot.packets == 3


@own
def test_other_profiles_and_no_key_stay_with_libsrtp() -> None:
    master = os.urandom(30)
    slot, _ = _slot(egress.compiled.Slot, Policy.SRTP_PROFILE_AES128_CM_SHA1_80, master, 10)
    # 30 bytes is no GCM master key: the slot keeps libsrtp's context.
    assert not slot.own_srtp
    header, _ = _header_template(0x5EED1234, None, 3, "0")
    assert slot.forward(b"x" * 40, 1, 2, 0, -1, 1) == len(header) + 40 + 10  # HMAC-SHA1-80
    gcm, _ = _slot(egress.PySlot, Policy.SRTP_PROFILE_AEAD_AES_128_GCM, os.urandom(28), 10)
    assert not hasattr(gcm, "own_srtp")
