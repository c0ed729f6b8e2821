/* SRTP AEAD_AES_128_GCM / AEAD_AES_256_GCM protection for the fan-out loop (see srtp_gcm.c). */
#ifndef AUDIO_ROOMS_SRTP_GCM_H
#define AUDIO_ROOMS_SRTP_GCM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SRTP_GCM_AVAILABLE 1
#else
#define SRTP_GCM_AVAILABLE 0
#endif

#define SRTP_GCM_TAG_LEN 16

typedef struct {
    /* Index bookkeeping first: srtp_gcm_init() clears everything before `salt`. */
    int64_t highest; /* highest packet index sent (ROC << 16 | SEQ) */
    int started;     /* whether any packet was sent */
    int rounds;      /* 10 (AES-128) or 14 (AES-256) */
    uint8_t salt[12];                   /* session salt */
    uint8_t h[16];       /* GHASH key, byte-reflected */
    uint8_t rk[15 * 16]; /* expanded session key */
} srtp_gcm_ctx;

/* Whether this CPU has AES-NI, PCLMULQDQ, SSSE3 and SSE4.1 (else leave it to libsrtp). */
int srtp_gcm_supported(void);

/* Derive the session keys from a DTLS-SRTP master key || master salt (16+12 or 32+12 bytes).
 * Returns 0, or -1 for another length. */
int srtp_gcm_init(srtp_gcm_ctx *ctx, const uint8_t *master, size_t master_len);

/* The packet index for sequence number `seq`, or -1 if it was sent already or is late. */
int64_t srtp_gcm_index(srtp_gcm_ctx *ctx, uint16_t seq);

/* Encrypt the payload in place and append the tag; returns the SRTP packet's length. The
 * buffer must have SRTP_GCM_TAG_LEN bytes of room after the payload. */
size_t srtp_gcm_seal(const srtp_gcm_ctx *ctx, uint8_t *packet, size_t header_len,
                     size_t payload_len, uint64_t index);

#endif
