/* SRTP AEAD_AES_128_GCM / AEAD_AES_256_GCM protection for the fan-out loop (see srtp_gcm.c). */
#ifndef AUDIO_ROOMS_SRTP_GCM_H
#define AUDIO_ROOMS_SRTP_GCM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define SRTP_GCM_TAG_LEN 16
/* Packet indices below the highest one sent that may still be protected once: aiortc's sending
 * policy (window_size = 1024), and with it libsrtp's replay database on the sending side. */
#define SRTP_GCM_WINDOW 1024

typedef struct {
    int64_t highest;                     /* highest packet index sent (ROC << 16 | SEQ) */
    uint64_t sent[SRTP_GCM_WINDOW / 64]; /* index i of the window sent: bit i % WINDOW */
    uint8_t fingerprint[32];             /* SHA-256 of the master key: the same keys again */
    uint8_t salt[12];                    /* session salt */
    EVP_CIPHER_CTX *evp;                 /* prepared with the session key; NULL before */
} srtp_gcm_ctx;

/* Derive the session keys from a DTLS-SRTP master key || master salt (16+12 or 32+12 bytes)
 * into `ctx` (all zeros, or initialised before). The same master key again keeps the context
 * and its packet indices; another one starts afresh. The master key is not kept. Returns 0, or
 * -1 for another length or when OpenSSL fails. */
int srtp_gcm_init(srtp_gcm_ctx *ctx, const uint8_t *master, size_t master_len);

/* Set `ctx` up from session keys directly (known-answer tests); indices start afresh. */
int srtp_gcm_init_session(srtp_gcm_ctx *ctx, const uint8_t *session_key, size_t key_len,
                          const uint8_t salt[12]);

/* Wipe the keys and free what srtp_gcm_init() allocated; `ctx` is all zeros after. */
void srtp_gcm_free(srtp_gcm_ctx *ctx);

/* The packet index for sequence number `seq`, as libsrtp estimates it, or -1 if that index was
 * sent already or is older than the window: a nonce must never be used twice. */
int64_t srtp_gcm_index(srtp_gcm_ctx *ctx, uint16_t seq);

/* Encrypt the payload in place and append the tag; returns the SRTP packet's length, or 0 on
 * failure. The buffer must have SRTP_GCM_TAG_LEN bytes of room after the payload. */
size_t srtp_gcm_seal(const srtp_gcm_ctx *ctx, uint8_t *packet, size_t header_len,
                     size_t payload_len, uint64_t index);

#endif
