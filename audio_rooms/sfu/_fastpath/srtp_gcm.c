/*
 * SRTP with AEAD_AES_128_GCM and AEAD_AES_256_GCM (RFC 7714), sender side only: what browsers
 * and aiortc negotiate for DTLS-SRTP.
 *
 * Why not libsrtp: for every packet srtp_protect() looks the stream up by SSRC, walks from the
 * session to the stream to the cipher to OpenSSL's EVP context and re-initialises that context
 * with the IV. Audio is sent in bursts every 20 ms, so each of those steps misses the cache. Here
 * each slot holds its own OpenSSL EVP context, keyed once: a packet is one IV and the AEAD. The
 * AES-GCM itself is OpenSSL's (AES-NI, ARMv8 crypto extensions or its portable code, whichever
 * the CPU has). An AES-NI implementation of our own was measured against it side by side
 * (docs/benchmarks.md) and was not more than 10% cheaper per forwarded packet: it was removed.
 *
 * The output is byte for byte what libsrtp produces for the same master key, SSRC and index
 * (tests/sfu/test_srtp_gcm.py compares them). Key derivation is RFC 3711 section 4.3 with the
 * AES-CM PRF (AES-256-CM for the 256-bit profile, RFC 6188), as libsrtp does it: the 96-bit
 * master salt is padded with two zero bytes to the 112 bits the PRF takes.
 *
 * Nonce safety: GCM must never see the same IV twice under one key. The IV is made of the SSRC
 * and the packet index (ROC and sequence number); srtp_gcm_index() estimates the index as
 * libsrtp does and hands it out only if it was not sent before and is within the window below
 * the highest one sent: a late packet is protected once, as libsrtp's sending replay database
 * allows, a repeated one is refused (aiortc sets allow_repeat_tx, which would repeat a nonce).
 * Each slot has its own SSRC within a session.
 *
 * Keys: the master key is read once and not kept (a SHA-256 fingerprint recognises it again);
 * every copy of a key is wiped with OPENSSL_cleanse, which the compiler may not remove.
 */
#include "srtp_gcm.h"

#include <string.h>

#include <openssl/crypto.h>

/* RFC 3711 4.3.3: AES in counter mode over the master salt with the label in byte 7. */
static int
kdf(const EVP_CIPHER *ctr, const uint8_t *master_key, const uint8_t salt14[14], uint8_t label,
    uint8_t *out, int out_len)
{
    uint8_t iv[16] = {0};
    memcpy(iv, salt14, 14);
    iv[7] ^= label;
    memset(out, 0, (size_t)out_len);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = c && EVP_EncryptInit_ex(c, ctr, NULL, master_key, iv) == 1 &&
                    EVP_EncryptUpdate(c, out, &n, out, out_len) == 1 && n == out_len;
    EVP_CIPHER_CTX_free(c); /* cleanses the key schedule */
    return ok ? 0 : -1;
}

void
srtp_gcm_free(srtp_gcm_ctx *ctx)
{
    EVP_CIPHER_CTX_free(ctx->evp);
    OPENSSL_cleanse(ctx, sizeof(*ctx));
}

int
srtp_gcm_init(srtp_gcm_ctx *ctx, const uint8_t *master, size_t master_len)
{
    /* master = key (16 or 32 bytes) || salt (12 bytes), as DTLS-SRTP exports it. */
    int key_len;
    if (master_len == 16 + 12)
        key_len = 16;
    else if (master_len == 32 + 12)
        key_len = 32;
    else
        return -1;
    uint8_t fingerprint[32];
    if (EVP_Digest(master, master_len, fingerprint, NULL, EVP_sha256(), NULL) != 1)
        return -1;
    if (ctx->evp && memcmp(fingerprint, ctx->fingerprint, sizeof(fingerprint)) == 0)
        return 0; /* the same session: keep its packet indices */
    uint8_t salt14[14] = {0}, session_key[32];
    memcpy(salt14, master + key_len, 12);
    const EVP_CIPHER *ctr = key_len == 16 ? EVP_aes_128_ctr() : EVP_aes_256_ctr();
    uint8_t salt[12];
    int ok = kdf(ctr, master, salt14, 0x00, session_key, key_len) == 0 && /* encryption */
             kdf(ctr, master, salt14, 0x02, salt, 12) == 0 &&              /* salt */
             srtp_gcm_init_session(ctx, session_key, (size_t)key_len, salt) == 0;
    OPENSSL_cleanse(session_key, sizeof(session_key));
    OPENSSL_cleanse(salt14, sizeof(salt14));
    OPENSSL_cleanse(salt, sizeof(salt));
    if (!ok)
        return -1;
    memcpy(ctx->fingerprint, fingerprint, sizeof(fingerprint));
    return 0;
}

int
srtp_gcm_init_session(srtp_gcm_ctx *ctx, const uint8_t *session_key, size_t key_len,
                      const uint8_t salt[12])
{
    if (key_len != 16 && key_len != 32)
        return -1;
    srtp_gcm_free(ctx);
    memcpy(ctx->salt, salt, 12);
    const EVP_CIPHER *gcm = key_len == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
    ctx->evp = EVP_CIPHER_CTX_new();
    if (!ctx->evp || EVP_EncryptInit_ex(ctx->evp, gcm, NULL, session_key, NULL) != 1) {
        srtp_gcm_free(ctx);
        return -1;
    }
    return 0;
}

size_t
srtp_gcm_seal(const srtp_gcm_ctx *ctx, uint8_t *packet, size_t header_len, size_t payload_len,
              uint64_t index)
{
    /* RFC 7714 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt. */
    uint8_t iv[12];
    iv[0] = ctx->salt[0];
    iv[1] = ctx->salt[1];
    memcpy(iv + 2, packet + 8, 4);
    iv[6] = (uint8_t)(index >> 40);
    iv[7] = (uint8_t)(index >> 32);
    iv[8] = (uint8_t)(index >> 24);
    iv[9] = (uint8_t)(index >> 16);
    iv[10] = (uint8_t)(index >> 8);
    iv[11] = (uint8_t)index;
    for (int i = 2; i < 12; i++)
        iv[i] ^= ctx->salt[i];
    /* As libsrtp drives it: EVP_Cipher() goes straight to the cipher, without the
     * bookkeeping of EVP_EncryptUpdate() (a GCM context streams by itself). */
    EVP_CIPHER_CTX *c = ctx->evp;
    uint8_t *text = packet + header_len;
    if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, 1) != 1 ||
        EVP_Cipher(c, NULL, packet, (unsigned int)header_len) < 0 ||
        EVP_Cipher(c, text, text, (unsigned int)payload_len) < 0 ||
        EVP_Cipher(c, NULL, NULL, 0) < 0 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SRTP_GCM_TAG_LEN, text + payload_len) != 1)
        return 0;
    return header_len + payload_len + SRTP_GCM_TAG_LEN;
}

int64_t
srtp_gcm_index(srtp_gcm_ctx *ctx, uint16_t seq)
{
    /* libsrtp's srtp_rdbx_estimate_index: below 2^15 the rollover counter is taken to be 0,
     * above it srtp_index_guess() picks the ROC that puts `seq` nearest the highest index. */
    const int64_t highest = ctx->highest;
    int64_t index;
    if (highest > 0x8000) {
        int64_t roc = highest >> 16;
        int local = (int)(highest & 0xFFFF);
        if (local < 0x8000) {
            if ((int)seq - local > 0x8000)
                roc--;
        } else if (local - 0x8000 > (int)seq) {
            roc++;
        }
        index = roc * 65536 + seq;
    } else {
        index = seq;
    }
    if (index >= ((int64_t)1 << 48))
        return -1;
    /* libsrtp's srtp_rdbx_check and srtp_rdbx_add_index, minus allow_repeat_tx. */
    const int64_t delta = index - highest;
    uint64_t *sent = ctx->sent;
    if (delta > 0) {
        int64_t clear = delta < SRTP_GCM_WINDOW ? delta : SRTP_GCM_WINDOW;
        for (int64_t i = index - clear + 1; i <= index; i++)
            sent[(i % SRTP_GCM_WINDOW) / 64] &= ~((uint64_t)1 << (i % 64));
        ctx->highest = index;
    } else if (-delta >= SRTP_GCM_WINDOW) {
        return -1; /* older than the window */
    }
    uint64_t bit = (uint64_t)1 << (index % 64);
    uint64_t *word = &sent[(index % SRTP_GCM_WINDOW) / 64];
    if (*word & bit)
        return -1; /* sent already */
    *word |= bit;
    return index;
}
