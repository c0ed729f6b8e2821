"""ICE (aioice): gathering on chosen addresses and ports, who is probed, consent timing."""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import asyncio.trsock
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import aioice.ice
import aioice.stun
import aioice.turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCPeerConnection

from audio_rooms.sfu.hooks.names import CONN_LOG_INFO

logger = logging.getLogger(__name__)


def ice_connections(pc: RTCPeerConnection) -> list[aioice.ice.Connection]:
    """The aioice connections behind a peer connection's transceivers (bundled ones once)."""
    seen: dict[int, aioice.ice.Connection] = {}
    for transceiver in pc.getTransceivers():
        conn = transceiver.receiver.transport.transport.iceGatherer._connection
        seen[id(conn)] = conn
    return list(seen.values())



def selected_remote_candidate(pc: RTCPeerConnection) -> Candidate | None:
    """The remote candidate of ``pc``'s selected pair (component 1), if one is selected.

    Its ``type`` is ``relay`` when the peer signalled it as its TURN relay, ``prflx`` when
    aioice learned the address from a check instead (a candidate it was not given), and its
    ``host``/``port`` are the address the peer's packets come from. aiortc exposes no getStats
    candidate-pair entry, so this reads aioice's nominated pairs.
    """
    for conn in ice_connections(pc):
        pair = conn._nominated.get(1)
        if pair is not None:
            return pair.remote_candidate
    return None

async def _bind_udp(
    conn: aioice.ice.Connection, address: str, port_min: int | None, port_max: int | None
) -> aioice.ice.StunProtocol | None:
    loop = asyncio.get_running_loop()
    if port_min is None or port_max is None:
        ports = [0]
    else:
        ports = list(range(port_min, port_max + 1))
        random.shuffle(ports)
    for port in ports:
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: aioice.ice.StunProtocol(conn), local_addr=(address, port)
            )
        except OSError:
            continue
        sock = protocol.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
        return protocol
    logger.warning("no free UDP port on %s in %s-%s", address, port_min, port_max)
    return None


def restrict_gathering(
    pc: RTCPeerConnection,
    addresses: Iterable[str],
    port_min: int | None = None,
    port_max: int | None = None,
    announced_address: str | None = None,
) -> None:
    """Make ``pc`` gather host candidates on exactly ``addresses`` (loopback allowed).

    aioice's gathering asks every interface except 127.0.0.1 and binds ephemeral ports; a server
    needs configured addresses, a port range and an announced (public) address instead. This
    replaces ``gather_candidates`` on each of ``pc``'s aioice connections (not process-wide).
    STUN and TURN candidates still come from the connection's configured servers. Call it after
    the transceivers exist and before ``setLocalDescription``.
    """
    wanted = tuple(addresses)
    for conn in ice_connections(pc):
        conn.gather_candidates = _make_gather(  # type: ignore[method-assign]
            conn, wanted, port_min, port_max, announced_address
        )


def _make_gather(
    conn: aioice.ice.Connection,
    addresses: tuple[str, ...],
    port_min: int | None,
    port_max: int | None,
    announced_address: str | None,
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def gather_candidates() -> None:
        if conn._local_candidates_start:
            return
        conn._local_candidates_start = True
        for component in sorted(conn._components):
            host_protocols = []
            for address in addresses:
                protocol = await _bind_udp(conn, address, port_min, port_max)
                if protocol is None:
                    continue
                bound = protocol.transport.get_extra_info("sockname")
                shown = announced_address or bound[0]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", shown),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=shown,
                    port=bound[1],
                    type="host",
                )
                host_protocols.append(protocol)
                conn._local_candidates.append(protocol.local_candidate)
            conn._protocols += host_protocols
            if conn.stun_server or conn.turn_server:
                # Reuse aioice's own STUN/TURN gathering with no extra host addresses: it only
                # queries servers from the sockets it is handed, so hand it ours.
                await _gather_server_candidates(conn, component, host_protocols)
        conn._local_candidates_end = True

    return gather_candidates


async def _gather_server_candidates(
    conn: aioice.ice.Connection, component: int, host_protocols: list[aioice.ice.StunProtocol]
) -> None:
    tasks: list[asyncio.Task[Any]] = []
    if conn.stun_server:
        for protocol in host_protocols:
            if ":" not in protocol.transport.get_extra_info("sockname")[0]:
                tasks.append(
                    asyncio.create_task(
                        aioice.ice.server_reflexive_candidate(protocol, conn.stun_server)
                    )
                )
    if conn.turn_server:
        tasks.append(
            asyncio.create_task(
                aioice.ice.relayed_candidate(
                    component=component,
                    hide_related_address=False,
                    protocol_factory=lambda: aioice.ice.StunProtocol(conn),
                    turn_server=conn.turn_server,
                    turn_username=conn.turn_username,
                    turn_password=conn.turn_password,
                    turn_ssl=conn.turn_ssl,
                    turn_transport=conn.turn_transport,
                )
            )
        )
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=5)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is None:
            candidate, relay_protocol = task.result()
            conn._local_candidates.append(candidate)
            if relay_protocol is not None:
                conn._protocols.append(relay_protocol)


Address = tuple[str, int]


def probe_only_requesters(
    conn: aioice.ice.Connection, dropped: Callable[[str], None]
) -> set[Address]:
    """Make ``conn`` send connectivity checks only to addresses that sent it a valid request.

    aioice pairs every candidate of the remote description and probes each, so an offer naming
    someone else's host and port would make the SFU send STUN there (a reflector, and a port
    scanner of its own network). An ICE-lite server probes nobody; this keeps aioice's full
    agent (the client keeps the controlling role and nominates) but holds each pair until its
    remote address has sent a request that passed USERNAME and MESSAGE-INTEGRITY checks (aioice
    calls ``check_incoming`` only for those). A held pair sits "in progress" with no task, so
    it neither fails the check list nor costs anything while it waits; the connect timeout ends
    a transport none of whose addresses ever speaks.

    Nor is an unauthenticated request answered (aioice's 400 or 401) unless its address has
    been validated: a request with a forged source would otherwise make the SFU send an error
    to the victim. ``dropped`` is told (``unauthenticated_stun``); a client with the right
    credentials never sees the difference, and one without has no use for the error.

    Returns the live set of those validated addresses: the ingress filter admits non-STUN
    datagrams from them only.
    """
    validated: set[Address] = set()
    held: dict[Address, list[aioice.ice.CandidatePair]] = {}
    in_progress = aioice.ice.CandidatePair.State.IN_PROGRESS
    original_start_task = conn.check_start_task
    original_incoming = conn.check_incoming
    original_respond_error = conn.respond_error

    def check_start_task(pair: aioice.ice.CandidatePair) -> None:
        addr = pair.remote_addr
        if addr in validated:
            original_start_task(pair)
        elif pair.state is not in_progress:
            # Out of the pacing loop's way (it starts only waiting and frozen pairs).
            pair.state = in_progress
            held.setdefault(addr, []).append(pair)

    def check_incoming(
        message: aioice.stun.Message, addr: Address, protocol: aioice.ice.StunProtocol
    ) -> None:
        validated.add(addr)
        for pair in held.pop(addr, ()):
            pair.state = aioice.ice.CandidatePair.State.WAITING
        original_incoming(message, addr, protocol)

    def respond_error(
        request: aioice.stun.Message,
        addr: Address,
        protocol: aioice.ice.StunProtocol,
        error_code: tuple[int, str],
    ) -> None:
        if error_code[0] in (400, 401) and addr not in validated:
            dropped("unauthenticated_stun")
        else:
            original_respond_error(request, addr, protocol, error_code)

    conn.check_start_task = check_start_task  # type: ignore[method-assign]
    conn.check_incoming = check_incoming  # type: ignore[method-assign]
    conn.respond_error = respond_error  # type: ignore[method-assign]
    return validated


def set_consent_timing(interval: float, failures: int) -> None:
    """Set RFC 7675 consent-freshness timing for every aioice connection in this process.

    aioice reads these module constants on every check, so this is process-wide by nature: a
    peer is declared gone after about ``interval * failures`` seconds without answers (aioice's
    default 5 s x 6).
    """
    # Declared int, but only ever multiplied into an asyncio.sleep() delay.
    aioice.ice.CONSENT_INTERVAL = interval  # type: ignore[assignment]
    aioice.ice.CONSENT_FAILURES = failures


def align_consent(conn: aioice.ice.Connection, sleep: Callable[[float], Awaitable[None]]) -> None:
    """Make ``conn``'s RFC 7675 consent checks wait with ``sleep`` (a beat-aligned sleep).

    The same loop as aioice's ``Connection.query_consent``; only its timer differs, so that
    every connection's check shares a wake-up with the others due on the same beat.
    """

    async def query_consent() -> None:
        assert conn.remote_password is not None
        failures = 0
        while True:
            await sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
            for pair in conn._nominated.values():
                request = conn.build_request(pair, nominate=False)
                try:
                    await pair.protocol.request(
                        request,
                        pair.remote_addr,
                        integrity_key=conn.remote_password.encode("utf8"),
                        retransmissions=0,
                    )
                    failures = 0
                except aioice.stun.TransactionError:
                    failures += 1
                if failures >= aioice.ice.CONSENT_FAILURES:
                    getattr(conn, CONN_LOG_INFO)("Consent to send expired")
                    conn._query_consent_task = None
                    return await conn.close()

    conn.query_consent = query_consent  # type: ignore[method-assign]


def default_host_addresses() -> list[str]:
    """aioice's own choice: every interface's addresses except loopback."""
    return aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
