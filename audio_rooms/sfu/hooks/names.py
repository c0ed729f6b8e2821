"""Name-mangled private attributes of aiortc and aioice, spelled once (public within hooks/)."""

from __future__ import annotations

RECEIVER_STREAMS = "_RTCRtpReceiver__remote_streams"
RECEIVER_STOP_DECODER = "_RTCRtpReceiver__stop_decoder"
SENDER_LSR = "_RTCRtpSender__lsr"
SENDER_PACKETS = "_RTCRtpSender__packet_count"
SENDER_OCTETS = "_RTCRtpSender__octet_count"
SENDER_NTP = "_RTCRtpSender__ntp_timestamp"
SENDER_RTP_TS = "_RTCRtpSender__rtp_timestamp"
# Set by the SFU on a receiver (not aiortc's): the event that starts its RTCP timer.
RECEIVER_WAKE = "_audio_rooms_rtcp_wake"
RECEIVER_RTCP_STARTED = "_RTCRtpReceiver__rtcp_started"
RECEIVER_RTCP_EXITED = "_RTCRtpReceiver__rtcp_exited"
CONN_LOG_INFO = "_Connection__log_info"
SENDER_LSR_TIME = "_RTCRtpSender__lsr_time"
SENDER_CNAME = "_RTCRtpSender__cname"
SENDER_RTCP_STARTED = "_RTCRtpSender__rtcp_started"
SENDER_RTCP_EXITED = "_RTCRtpSender__rtcp_exited"
