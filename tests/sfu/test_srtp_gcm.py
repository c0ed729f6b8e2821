"""The fast path's own AES-GCM protection (srtp_gcm.c) sends exactly what libsrtp would.

Browsers and aiortc negotiate AEAD_AES_128_GCM or AEAD_AES_256_GCM for DTLS-SRTP; for those the
compiled slot protects with a context derived from the session's master key instead of calling
libsrtp. Every datagram must be the one libsrtp makes from the same key, SSRC and index (the
pure-Python slot always uses libsrtp), across a sequence-number wrap; a late packet is sent
when libsrtp would send it, and a packet index is never used twice (a repeated GCM nonce would
give the key away). Known-answer vectors pin the AEAD itself: RFC 7714 section 16 and the GCM
specification's test cases 4 and 16 (McGrew and Viega, as NIST's GCM validation uses them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pylibsrtp import Policy, Session

from audio_rooms.sfu import egress, hooks
from audio_rooms.sfu.rtp import header_template

own = pytest.mark.skipif(
    not egress.own_srtp_enabled(), reason="no fast path, or disabled by environment"
)


def _modes() -> list[str]:
    """The ways this machine's fast path can seal: its own AES-NI code where the CPU has it,
    an OpenSSL EVP context everywhere."""
    if egress.compiled is None:
        return []
    modes = ["evp"]
    if egress.compiled.set_own_srtp(egress.compiled.SRTP_GCM_OWN):
        modes.insert(0, "own")
    egress.choose_gcm_sealer(egress.compiled, os.environ.get("AUDIO_ROOMS_SFU_OWN_SRTP", "1"))
    return modes


MODES = _modes()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Iterator[int]:
    """Slots whose path is set while this fixture is active seal with the mode it names."""
    compiled = egress.compiled
    number = compiled.SRTP_GCM_OWN if request.param == "own" else compiled.SRTP_GCM_EVP
    assert compiled.set_own_srtp(number)
    yield number
    egress.choose_gcm_sealer(compiled, os.environ.get("AUDIO_ROOMS_SFU_OWN_SRTP", "1"))
PROFILES = {
    "aes128gcm": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16),
    "aes256gcm": (Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 32),
}


def _key(name: str) -> tuple[int, bytes]:
    """The libsrtp profile of ``name`` and a fresh master key || salt for it."""
    profile, key_len = PROFILES[name]
    return profile, os.urandom(key_len + 12)


def _slot(
    kind: type, profile: int, master: bytes, start_seq: int, repeat: bool = True
) -> tuple[Any, list[bytes]]:
    header, level_pos = header_template(0x5EED1234, 1, 3, "0")
    plain, _ = header_template(0x5EED1234, None, 3, "0")
    slot = kind(bytes(header), bytes(plain), level_pos, 111, start_seq, 7777)
    sent: list[bytes] = []
    # aiortc's sending policy (RTCDtlsTransport._setup_srtp); ``repeat=False`` makes libsrtp
    # refuse a repeated index as the slot does.
    policy = Policy(key=master, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    policy.allow_repeat_tx = repeat
    policy.window_size = 1024
    session = Session(policy=policy)
    path = hooks.EgressPath(
        session.protect, lambda data, addr: sent.append(data), ("127.0.0.1", 9), session, None,
        master if kind is not egress.PySlot else None,
    )
    slot.set_path(path)
    return slot, sent


@own
@pytest.mark.parametrize("name", PROFILES)
def test_own_gcm_sends_what_libsrtp_sends_across_a_wrap(name: str, mode: int) -> None:
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
def test_a_packet_index_is_never_protected_twice(name: str, mode: int) -> None:
    profile, master = _key(name)
    slot, sent = _slot(egress.compiled.Slot, profile, master, 1000)
    assert slot.forward(b"a" * 40, 50, 0, 0, -1, 1) > 0
    assert slot.forward(b"b" * 40, 52, 1920, 0, -1, 2) > 0
    # The same upstream packet again: refused (aiortc lets libsrtp repeat it, which would
    # repeat a nonce). A late one that was not sent yet goes out once, as libsrtp sends it.
    assert slot.forward(b"c" * 40, 52, 1920, 0, -1, 3) == -1
    assert slot.forward(b"d" * 40, 51, 960, 0, -1, 4) > 0
    assert slot.forward(b"d" * 40, 51, 960, 0, -1, 4) == -1
    # Handing the slot the same session again does not start its index over.
    slot.set_path(slot.path)
    assert slot.own_srtp
    assert slot.forward(b"e" * 40, 52, 1920, 0, -1, 5) == -1
    assert slot.forward(b"f" * 40, 53, 2880, 0, -1, 6) > 0
    assert len(sent) == 4 and slot.packets == 4


@own
@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("start", [1000, 40_000, 65_530])
def test_late_and_repeated_packets_are_sent_when_libsrtp_sends_them(
    name: str, start: int, mode: int
) -> None:
    """Against libsrtp with aiortc's window (1,024) and repeats refused: same verdicts, same bytes.

    Starting above 32,768 and near the wrap exercises libsrtp's rollover guesses.
    """
    profile, master = _key(name)
    c_slot, c_sent = _slot(egress.compiled.Slot, profile, master, start, repeat=False)
    py_slot, py_sent = _slot(egress.PySlot, profile, master, start, repeat=False)
    upstream = 0
    steps = [1, 1, 1, -2, 0, 3, -1, -1, 1, 40, -30, 1500, -1100, -1023, -1024, 1, 2, 30_000]
    steps += [-20, 10, 40_000, 1, -5, 1]
    verdicts = []
    for i, step in enumerate(steps):
        upstream = (upstream + step) & 0xFFFF
        args = (os.urandom(1 + i), upstream, 960 * i, 0, -1, 1_000_000 * i)
        c, py = c_slot.forward(*args), py_slot.forward(*args)
        assert (c > 0) == (py > 0), (i, step)
        verdicts.append(c > 0)
    assert c_sent == py_sent
    assert True in verdicts and False in verdicts


# RFC 7714 section 16: key 00..0f (16.1) or 00..1f (16.2), salt "Quid pro quo", SSRC 0x5501a0b2,
# ROC 0, SEQ 0xf17b, payload "Gallia est omnis divisa in partes tres".
RFC7714_SALT = bytes.fromhex("517569642070726f2071756f")
RFC7714_RTP = bytes.fromhex(
    "8040f17b8041f8d35501a0b2"
    "47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573"
)
RFC7714_SRTP = {
    16: "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27"
    "beb16a9152cf765ee4390cce",
    32: "32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b7aa3db36df"
    "ffd6b0f9bb7878d7a76c13",
}
# GCM test cases 4 (AES-128) and 16 (AES-256): the 20-byte AAD is the "header", so its bytes
# 8-11 are the "SSRC", and the salt is chosen so that the SRTP IV is the test case's IV.
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
GCM_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_PLAIN = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
    "49a6b525b16aedf5aa0de657ba637b39"
)
GCM_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308")
GCM_SEALED = {
    16: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5a"
    "ac84aa051ba30b396a0aac973d58e091" + "5bc94fbc3221a5db94fae95ae7121a47",
    32: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
    "56828838c5f61e6393ba7a0abcc9f662" + "76fc6ece0f4e1768cddf8853bb2d551b",
}


@pytest.mark.parametrize("key_len", [16, 32])
def test_known_answers(key_len: int, mode: int) -> None:
    key = bytes(range(key_len))
    sealed = egress.compiled.seal_vector(mode, key, RFC7714_SALT, RFC7714_RTP, 12, 0xF17B)
    assert sealed == RFC7714_RTP[:12] + bytes.fromhex(RFC7714_SRTP[key_len])

    ssrc_block = bytes(2) + GCM_AAD[8:12] + bytes(6)
    salt = bytes(a ^ b for a, b in zip(GCM_IV, ssrc_block, strict=True))
    key = GCM_KEY * (key_len // 16)
    sealed = egress.compiled.seal_vector(mode, key, salt, GCM_AAD + GCM_PLAIN, len(GCM_AAD), 0)
    assert sealed == GCM_AAD + bytes.fromhex(GCM_SEALED[key_len])


@own
def test_other_profiles_and_no_key_stay_with_libsrtp() -> None:
    master = os.urandom(30)
    slot, _ = _slot(egress.compiled.Slot, Policy.SRTP_PROFILE_AES128_CM_SHA1_80, master, 10)
    # 30 bytes is no GCM master key: the slot keeps libsrtp's context.
    assert not slot.own_srtp
    header, _ = header_template(0x5EED1234, None, 3, "0")
    assert slot.forward(b"x" * 40, 1, 2, 0, -1, 1) == len(header) + 40 + 10  # HMAC-SHA1-80
    gcm, _ = _slot(egress.PySlot, Policy.SRTP_PROFILE_AEAD_AES_128_GCM, os.urandom(28), 10)
    assert not hasattr(gcm, "own_srtp")


@own
@pytest.mark.skipif(len(MODES) < 2, reason="only one sealer runs on this machine")
def test_the_same_session_under_another_sealer_keeps_its_indices() -> None:
    compiled = egress.compiled
    profile, master = _key("aes128gcm")
    try:
        compiled.set_own_srtp(compiled.SRTP_GCM_OWN)
        slot, sent = _slot(compiled.Slot, profile, master, 1000)
        assert slot.forward(b"a" * 40, 50, 0, 0, -1, 1) > 0
        compiled.set_own_srtp(compiled.SRTP_GCM_EVP)
        slot.set_path(slot.path)
        assert slot.own_srtp
        assert slot.forward(b"b" * 40, 50, 0, 0, -1, 2) == -1  # that nonce was used
        assert slot.forward(b"c" * 40, 51, 960, 0, -1, 3) > 0
    finally:
        egress.choose_gcm_sealer(compiled, os.environ.get("AUDIO_ROOMS_SFU_OWN_SRTP", "1"))
    policy = Policy(key=master, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
    receiver = Session(policy=policy)
    assert [receiver.unprotect(data)[-40:] for data in sent] == [b"a" * 40, b"c" * 40]
