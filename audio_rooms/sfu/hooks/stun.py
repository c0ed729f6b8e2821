"""Cheaper STUN encoding for aioice (same bytes), installed process-wide."""

from __future__ import annotations

import hmac
import ipaddress
import struct
from collections.abc import Callable

import aioice.ice
import aioice.stun
import aioice.turn

ORIGINAL_XOR_DATA = aioice.stun.xor_data
ORIGINAL_PACK_ADDRESS = aioice.stun.pack_address
ORIGINAL_MESSAGE_INTEGRITY = aioice.stun.message_integrity
_XOR_PAD = struct.pack("!HI", aioice.stun.COOKIE >> 16, aioice.stun.COOKIE)
_ADDRESSES: dict[str, tuple[int, bytes]] = {}


def _xor_data(data: bytes, transaction_id: bytes) -> bytes:
    """aioice's ``xor_data`` without its byte-by-byte loop (same result, same errors)."""
    n = len(data)
    pad = _XOR_PAD + transaction_id
    if n > len(pad):
        return ORIGINAL_XOR_DATA(data, transaction_id)
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad[:n], "big")).to_bytes(n, "big")


def _pack_address(value: tuple[str, int], xor: Callable[[bytes], bytes] = lambda x: x) -> bytes:
    """aioice's ``pack_address`` with the parsed address remembered per host string."""
    host = value[0]
    known = _ADDRESSES.get(host)
    if known is None:
        address = ipaddress.ip_address(host)  # raises exactly as aioice would
        protocol = (
            aioice.stun.IPV4_PROTOCOL
            if isinstance(address, ipaddress.IPv4Address)
            else aioice.stun.IPV6_PROTOCOL
        )
        if len(_ADDRESSES) > 10_000:
            _ADDRESSES.clear()
        known = _ADDRESSES[host] = (protocol, address.packed)
    protocol, packed = known
    return struct.pack("!BB", 0, protocol) + xor(struct.pack("!H", value[1]) + packed)


def speed_up_stun() -> None:
    """Make aioice's STUN encoding cheaper, process-wide (idempotent).

    Every consent check (RFC 7675, each peer every ~5 s both ways) builds a STUN message with an
    XOR-MAPPED-ADDRESS: aioice XORs it byte by byte in Python and parses the IP address string
    each time. The replacements compute the same bytes (``tests/sfu/test_rtcp.py`` compares
    them); aioice's ``pack_xor_address`` looks both names up in its module at each call. Each
    message's HMAC-SHA1 (MESSAGE-INTEGRITY, made or checked for every STUN message) is computed
    by the one-shot ``hmac.digest`` rather than through an ``hmac.HMAC`` object.
    """
    aioice.stun.xor_data = _xor_data
    aioice.stun.pack_address = _pack_address
    aioice.stun.message_integrity = _message_integrity


def _message_integrity(data: bytes, key: bytes) -> bytes:
    """aioice's ``message_integrity``: HMAC-SHA1 over the message with its length adjusted."""
    length = len(data) - aioice.stun.HEADER_LENGTH + aioice.stun.INTEGRITY_LENGTH
    return hmac.digest(key, data[:2] + length.to_bytes(2, "big") + data[4:], "sha1")
