"""The address a client is counted under by every per-address limit.

An IPv4 client is its address. An IPv6 client usually holds a whole /64 (one subscriber's
block), so the /64 is counted as one address; otherwise each new address of the block would be
a fresh allowance. IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress


def client_key(host: str | None) -> str:
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
