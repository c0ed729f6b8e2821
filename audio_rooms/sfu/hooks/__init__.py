"""Every place where the SFU reaches into aiortc's (and aioice's, and asyncio's) private internals.

aiortc has no packet-forwarding API: its receiver always decodes and its sender always encodes.
To forward Opus packets untouched we take the decrypted RTP before the receiver's jitter buffer,
and send rewritten packets through the subscriber's SRTP context and UDP socket directly. Those
points are private and can move in any release, so they are all in this package, aiortc is
pinned exactly (``aiortc==1.16.0``), :func:`check_compatibility` runs when a
:class:`MediaServer` starts, and ``tests/sfu/test_hooks.py`` exercises each hook against real
peers.

Nothing outside this package may touch a name that starts with an underscore on an aiortc,
aioice or asyncio object. The package is split by what is hooked: ``srtp`` (libsrtp through
pylibsrtp), ``ice`` (gathering, who is probed, consent), ``stun`` (cheaper encoding),
``receiver`` (what enters: the ingress filter, decryption, receiver reports, RTCP thinning),
``sender`` (what leaves: egress path, sender reports), ``loop`` (asyncio's selector), ``peer``
(where a whole peer connection's datagrams can be watched or dropped, guards on its start),
``compat`` (the start-up check), ``names`` (mangled attribute names). Callers use the names
re-exported here. Pure packet code is in :mod:`audio_rooms.sfu.rtp`, taps for tests in
:mod:`audio_rooms.sfu.testing`; ``tests/sfu/test_private_access.py`` fails if a module outside
this package touches a private attribute of aiortc, aioice or pylibsrtp.
"""

from audio_rooms.sfu.hooks.compat import check_compatibility, compatibility_problems
from audio_rooms.sfu.hooks.ice import (
    align_consent,
    default_host_addresses,
    ice_connections,
    probe_only_requesters,
    restrict_gathering,
    selected_remote_candidate,
    set_consent_timing,
)
from audio_rooms.sfu.hooks.loop import deferrable_readers, loop_add_reader, loop_remove_reader
from audio_rooms.sfu.hooks.peer import (
    RtcpData,
    RtpData,
    Send,
    guard_late_start,
    udp_transports,
    wrap_rtcp_data,
    wrap_rtp_data,
    wrap_send,
)
from audio_rooms.sfu.hooks.receiver import (
    RtcpThinner,
    RtpHandler,
    feed_receiver_report,
    install_ingress,
    silence_receiver,
)
from audio_rooms.sfu.hooks.sender import (
    EgressPath,
    SenderCounters,
    egress_path,
    send_rtcp,
    sender_report,
    take_over_sender_reports,
)
from audio_rooms.sfu.hooks.srtp import (
    SRTP_MAX_TRAILER,
    SRTP_OK,
    SRTP_PROTECT,
    gcm_master_key,
    srtp_buffer,
    srtp_buffer_view,
    srtp_protect_address,
)
from audio_rooms.sfu.hooks.stun import speed_up_stun

__all__ = [
    "SRTP_MAX_TRAILER",
    "SRTP_OK",
    "SRTP_PROTECT",
    "EgressPath",
    "RtcpData",
    "RtcpThinner",
    "RtpData",
    "RtpHandler",
    "Send",
    "SenderCounters",
    "align_consent",
    "check_compatibility",
    "compatibility_problems",
    "default_host_addresses",
    "deferrable_readers",
    "egress_path",
    "feed_receiver_report",
    "gcm_master_key",
    "guard_late_start",
    "ice_connections",
    "install_ingress",
    "loop_add_reader",
    "loop_remove_reader",
    "probe_only_requesters",
    "restrict_gathering",
    "selected_remote_candidate",
    "send_rtcp",
    "sender_report",
    "set_consent_timing",
    "silence_receiver",
    "speed_up_stun",
    "srtp_buffer",
    "srtp_buffer_view",
    "srtp_protect_address",
    "take_over_sender_reports",
    "udp_transports",
    "wrap_rtcp_data",
    "wrap_rtp_data",
    "wrap_send",
]
