"""Name-mangled private attributes of aiortc and aioice, spelled once."""

from __future__ import annotations

_RECEIVER_STREAMS = "_RTCRtpReceiver__remote_streams"
_RECEIVER_STOP_DECODER = "_RTCRtpReceiver__stop_decoder"
_SENDER_LSR = "_RTCRtpSender__lsr"
_SENDER_PACKETS = "_RTCRtpSender__packet_count"
_SENDER_OCTETS = "_RTCRtpSender__octet_count"
_SENDER_NTP = "_RTCRtpSender__ntp_timestamp"
_SENDER_RTP_TS = "_RTCRtpSender__rtp_timestamp"
# Set by the SFU on a receiver (not aiortc's): the event that starts its RTCP timer.
_RECEIVER_WAKE = "_audio_rooms_rtcp_wake"
_RECEIVER_RTCP_STARTED = "_RTCRtpReceiver__rtcp_started"
_RECEIVER_RTCP_EXITED = "_RTCRtpReceiver__rtcp_exited"
_CONN_LOG_INFO = "_Connection__log_info"
_SENDER_LSR_TIME = "_RTCRtpSender__lsr_time"
_SENDER_CNAME = "_RTCRtpSender__cname"
_SENDER_RTCP_STARTED = "_RTCRtpSender__rtcp_started"
_SENDER_RTCP_EXITED = "_RTCRtpSender__rtcp_exited"
