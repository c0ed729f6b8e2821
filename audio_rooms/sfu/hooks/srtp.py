"""libsrtp through pylibsrtp's cffi binding: protect and unprotect on our own buffers, and the
DTLS-SRTP master key of an AES-GCM session (for the fast path's own sealing)."""

from __future__ import annotations

from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

# libsrtp's srtp_protect(srtp_t ctx, void *rtp, int *len): protects in place, appending the
# authentication tag. Taken from pylibsrtp's cffi binding (the same libsrtp aiortc uses), so
# the forwarder can call it with its own buffer, and the compiled fast path by address.
SRTP_PROTECT: Any = _srtp_lib.srtp_protect
SRTP_OK: int = _srtp_lib.srtp_err_status_ok
# Room libsrtp may append to a packet (tag + MKI, SRTP_MAX_TRAILER_LEN in libsrtp 2).
SRTP_MAX_TRAILER = 144


def srtp_buffer(size: int) -> tuple[Any, Any]:
    """A C buffer of ``size`` bytes for :data:`SRTP_PROTECT` and an ``int *`` for its length."""
    return _srtp_ffi.new("unsigned char[]", size), _srtp_ffi.new("int *")


def srtp_buffer_view(buf: Any) -> memoryview:
    return memoryview(_srtp_ffi.buffer(buf))


def srtp_protect_address() -> int:
    """The address of libsrtp's ``srtp_protect`` (for the compiled fast path)."""
    return int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_protect")))


# Decrypting ingress in place: one buffer for the whole process (one event loop, no
# concurrency). A datagram larger than this is no RTP the SFU accepts.
RX_BUFFER_SIZE = 2048
_RX_BUF, _RX_LEN = srtp_buffer(RX_BUFFER_SIZE)
_RX_VIEW = srtp_buffer_view(_RX_BUF)
UNPROTECT: Any = _srtp_lib.srtp_unprotect
UNPROTECT_RTCP: Any = _srtp_lib.srtp_unprotect_rtcp


def unprotect(fn: Any, ctx: Any, data: bytes) -> bytes | None:
    """``data`` authenticated and decrypted by libsrtp's ``fn`` with ``ctx``, or None."""
    n = len(data)
    _RX_VIEW[:n] = data
    _RX_LEN[0] = n
    if fn(ctx, _RX_BUF, _RX_LEN) != SRTP_OK:
        return None
    return bytes(_RX_VIEW[: _RX_LEN[0]])


def is_srtp(data: bytes) -> bool:
    """RTP or RTCP by its first byte (RFC 7983: 128-191), as aiortc tells them apart."""
    return len(data) >= 12 and 127 < data[0] < 192


_GCM_PROFILES = {b"SRTP_AEAD_AES_128_GCM": 16, b"SRTP_AEAD_AES_256_GCM": 32}
_GCM_SALT = 12


def gcm_master_key(dtls: RTCDtlsTransport) -> bytes | None:
    """The sending master key || salt of ``dtls``'s SRTP session if it is AES-GCM, else None.

    Exported again from the DTLS session exactly as aiortc's ``_setup_srtp`` does (RFC 5764
    4.2: client key, server key, client salt, server salt; a client sends with the client's).
    """
    ssl = dtls._ssl
    if ssl is None:
        return None
    key_len = _GCM_PROFILES.get(ssl.get_selected_srtp_profile())
    if key_len is None:
        return None
    view = ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (key_len + _GCM_SALT))
    idx = 1 if dtls._role == "server" else 0
    key = view[idx * key_len : (idx + 1) * key_len]
    salt = view[2 * key_len + idx * _GCM_SALT : 2 * key_len + (idx + 1) * _GCM_SALT]
    return bytes(key + salt)
