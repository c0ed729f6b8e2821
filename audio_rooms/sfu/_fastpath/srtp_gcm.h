/* SRTP AEAD_AES_128_GCM / AEAD_AES_256_GCM protection for the fan-out loop (see srtp_gcm.c). */
#ifndef AUDIO_ROOMS_SRTP_GCM_H
#define AUDIO_ROOMS_SRTP_GCM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SRTP_GCM_AESNI 1
#else
#define SRTP_GCM_AESNI 0
#endif

#define SRTP_GCM_TAG_LEN 16
/* Packet indices below the highest one sent that may still be protected once: aiortc's sending
 * policy (window_size = 1024), and with it libsrtp's replay database on the sending side. */
#define SRTP_GCM_WINDOW 1024

enum { SRTP_GCM_OFF = 0, SRTP_GCM_OWN = 1, SRTP_GCM_EVP = 2 };

typedef struct {
    int64_t highest;                     /* highest packet index sent (ROC << 16 | SEQ) */
    uint64_t sent[SRTP_GCM_WINDOW / 64]; /* index i of the window sent: bit i % WINDOW */
    uint8_t fingerprint[32];             /* SHA-256 of the master key: the same keys again */
    uint8_t salt[12];                    /* session salt */
    int mode;                            /* SRTP_GCM_OWN or SRTP_GCM_EVP once initialised */
    EVP_CIPHER_CTX *evp;                 /* SRTP_GCM_EVP: prepared with the session key */
    int rounds;                          /* SRTP_GCM_OWN: 10 (AES-128) or 14 (AES-256) */
    uint8_t h[16];                       /* SRTP_GCM_OWN: GHASH key, byte-reflected */
    uint8_t rk[15 * 16];                 /* SRTP_GCM_OWN: expanded session key */
} srtp_gcm_ctx;

/* Whether `mode` can run here (SRTP_GCM_OWN needs AES-NI, PCLMULQDQ, SSSE3 and SSE4.1). */
int srtp_gcm_supported(int mode);

/* Derive the session keys from a DTLS-SRTP master key || master salt (16+12 or 32+12 bytes)
 * into `ctx` (all zeros, or initialised before). The same master key again keeps the context
 * and its packet indices; another one starts afresh. The master key is not kept. Returns 0, or
 * -1 for another length or when OpenSSL fails. */
int srtp_gcm_init(srtp_gcm_ctx *ctx, int mode, const uint8_t *master, size_t master_len);

/* Set `ctx` up from session keys directly (known-answer tests); indices start afresh. */
int srtp_gcm_init_session(srtp_gcm_ctx *ctx, int mode, const uint8_t *session_key, size_t key_len,
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
