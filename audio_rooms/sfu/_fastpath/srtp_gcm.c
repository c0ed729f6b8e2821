/*
 * SRTP with AEAD_AES_128_GCM and AEAD_AES_256_GCM (RFC 7714), sender side only: what browsers
 * and aiortc negotiate for DTLS-SRTP.
 *
 * Why not libsrtp: for every packet srtp_protect() looks the stream up by SSRC, walks from the
 * session to the stream to the cipher to OpenSSL's EVP context and re-initialises that context
 * with the IV. Audio is sent in bursts every 20 ms, so each of those steps misses the cache. Here
 * each slot holds its own prepared context inline, and a packet is one IV and the AEAD.
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

#if SRTP_GCM_AESNI

#include <immintrin.h>

#define TARGET __attribute__((target("aes,pclmul,ssse3,sse4.1")))

static inline TARGET __m128i
bswap128(__m128i x)
{
    const __m128i mask = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm_shuffle_epi8(x, mask);
}

static inline TARGET __m128i
expand_step128(__m128i key, __m128i assist)
{
    assist = _mm_shuffle_epi32(assist, 0xff);
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, assist);
}

/* The second half-step of AES-256's schedule: SubWord without RotWord, no round constant. */
static inline TARGET __m128i
expand_step256b(__m128i key, __m128i prev)
{
    __m128i assist = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(prev, 0x00), 0xaa);
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, assist);
}

#define STEP128(i, rcon) \
    rk[i] = expand_step128(rk[i - 1], _mm_aeskeygenassist_si128(rk[i - 1], rcon))

static TARGET void
aes_expand(__m128i *rk, const uint8_t *key, int key_len)
{
    if (key_len == 16) {
        rk[0] = _mm_loadu_si128((const __m128i *)key);
        STEP128(1, 0x01);
        STEP128(2, 0x02);
        STEP128(3, 0x04);
        STEP128(4, 0x08);
        STEP128(5, 0x10);
        STEP128(6, 0x20);
        STEP128(7, 0x40);
        STEP128(8, 0x80);
        STEP128(9, 0x1b);
        STEP128(10, 0x36);
        return;
    }
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    rk[1] = _mm_loadu_si128((const __m128i *)(key + 16));
#define STEP256(i, rcon)                                                                \
    rk[i] = expand_step128(rk[i - 2], _mm_aeskeygenassist_si128(rk[i - 1], rcon));     \
    if (i + 1 < 15)                                                                     \
        rk[i + 1] = expand_step256b(rk[i - 1], rk[i]);
    STEP256(2, 0x01);
    STEP256(4, 0x02);
    STEP256(6, 0x04);
    STEP256(8, 0x08);
    STEP256(10, 0x10);
    STEP256(12, 0x20);
    STEP256(14, 0x40);
#undef STEP256
}

static inline TARGET __m128i
aes_encrypt(const __m128i *rk, int rounds, __m128i block)
{
    /* Unaligned loads: a context inside a Python object is not promised 16-byte alignment. */
    block = _mm_xor_si128(block, _mm_loadu_si128(rk));
    for (int i = 1; i < rounds; i++)
        block = _mm_aesenc_si128(block, _mm_loadu_si128(rk + i));
    return _mm_aesenclast_si128(block, _mm_loadu_si128(rk + rounds));
}

/* Multiplication in GF(2^128) on byte-reflected operands (Gueron and Kounavis, "Intel
 * Carry-Less Multiplication Instruction and its Usage for Computing the GCM Mode", fig. 5). */
static inline TARGET __m128i
gfmul(__m128i a, __m128i b)
{
    __m128i t2, t3, t4, t5, t6, t7, t8, t9;
    t3 = _mm_clmulepi64_si128(a, b, 0x00);
    t4 = _mm_clmulepi64_si128(a, b, 0x10);
    t5 = _mm_clmulepi64_si128(a, b, 0x01);
    t6 = _mm_clmulepi64_si128(a, b, 0x11);
    t4 = _mm_xor_si128(t4, t5);
    t5 = _mm_slli_si128(t4, 8);
    t4 = _mm_srli_si128(t4, 8);
    t3 = _mm_xor_si128(t3, t5);
    t6 = _mm_xor_si128(t6, t4);
    t7 = _mm_srli_epi32(t3, 31);
    t8 = _mm_srli_epi32(t6, 31);
    t3 = _mm_slli_epi32(t3, 1);
    t6 = _mm_slli_epi32(t6, 1);
    t9 = _mm_srli_si128(t7, 12);
    t8 = _mm_slli_si128(t8, 4);
    t7 = _mm_slli_si128(t7, 4);
    t3 = _mm_or_si128(t3, t7);
    t6 = _mm_or_si128(t6, t8);
    t6 = _mm_or_si128(t6, t9);
    t7 = _mm_slli_epi32(t3, 31);
    t8 = _mm_slli_epi32(t3, 30);
    t9 = _mm_slli_epi32(t3, 25);
    t7 = _mm_xor_si128(t7, t8);
    t7 = _mm_xor_si128(t7, t9);
    t8 = _mm_srli_si128(t7, 4);
    t7 = _mm_slli_si128(t7, 12);
    t3 = _mm_xor_si128(t3, t7);
    t2 = _mm_srli_epi32(t3, 1);
    t4 = _mm_srli_epi32(t3, 2);
    t5 = _mm_srli_epi32(t3, 7);
    t2 = _mm_xor_si128(t2, t4);
    t2 = _mm_xor_si128(t2, t5);
    t2 = _mm_xor_si128(t2, t8);
    t3 = _mm_xor_si128(t3, t2);
    return _mm_xor_si128(t6, t3);
}

/* GHASH over `len` bytes, the last block zero-padded; `y` and `h` byte-reflected. */
static inline TARGET __m128i
ghash(__m128i y, __m128i h, const uint8_t *data, size_t len)
{
    while (len >= 16) {
        y = gfmul(_mm_xor_si128(y, bswap128(_mm_loadu_si128((const __m128i *)data))), h);
        data += 16;
        len -= 16;
    }
    if (len) {
        uint8_t last[16] = {0};
        memcpy(last, data, len);
        y = gfmul(_mm_xor_si128(y, bswap128(_mm_loadu_si128((const __m128i *)last))), h);
    }
    return y;
}

static TARGET void
own_prepare(srtp_gcm_ctx *ctx, const uint8_t *session_key, int key_len)
{
    __m128i session_rk[15];
    ctx->rounds = key_len == 16 ? 10 : 14;
    aes_expand(session_rk, session_key, key_len);
    memcpy(ctx->rk, session_rk, sizeof(ctx->rk));
    OPENSSL_cleanse(session_rk, sizeof(session_rk));
    __m128i h = aes_encrypt((const __m128i *)ctx->rk, ctx->rounds, _mm_setzero_si128());
    _mm_storeu_si128((__m128i *)ctx->h, bswap128(h));
}

static TARGET size_t
own_seal(const srtp_gcm_ctx *ctx, const uint8_t j0[16], uint8_t *packet, size_t header_len,
         size_t payload_len)
{
    const __m128i *rk = (const __m128i *)ctx->rk;
    const int rounds = ctx->rounds;
    uint8_t *text = packet + header_len;
    /* Counter blocks J0 + 2, J0 + 3, ...: four encrypted side by side, so that the AES rounds
     * of independent blocks overlap instead of waiting for each other. */
    const __m128i iv = _mm_loadu_si128((const __m128i *)j0);
    const __m128i one = _mm_set_epi32(0, 0, 0, 1);
    __m128i ctr = bswap128(iv); /* counter in the low 32 bits, little-endian: add to it */
    size_t off = 0;
    while (off < payload_len) {
        __m128i ks[4];
        int lanes = 0;
        for (; lanes < 4 && off + 16 * (size_t)lanes < payload_len; lanes++) {
            ctr = _mm_add_epi32(ctr, one);
            ks[lanes] = _mm_xor_si128(bswap128(ctr), _mm_loadu_si128(rk));
        }
        for (int r = 1; r < rounds; r++) {
            __m128i key = _mm_loadu_si128(rk + r);
            for (int l = 0; l < lanes; l++)
                ks[l] = _mm_aesenc_si128(ks[l], key);
        }
        __m128i last = _mm_loadu_si128(rk + rounds);
        for (int l = 0; l < lanes; l++, off += 16) {
            __m128i stream = _mm_aesenclast_si128(ks[l], last);
            if (payload_len - off >= 16) {
                __m128i *p = (__m128i *)(text + off);
                _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), stream));
            } else {
                uint8_t block[16];
                size_t n = payload_len - off;
                _mm_storeu_si128((__m128i *)block, stream);
                for (size_t i = 0; i < n; i++)
                    text[off + i] ^= block[i];
            }
        }
    }

    __m128i h = _mm_loadu_si128((const __m128i *)ctx->h);
    __m128i y = ghash(_mm_setzero_si128(), h, packet, header_len);
    y = ghash(y, h, text, payload_len);
    __m128i lengths = _mm_set_epi64x((long long)header_len * 8, (long long)payload_len * 8);
    /* _mm_set_epi64x puts its first argument in the high half: after bswap128 that is the
     * big-endian len(A) || len(C) block GHASH expects, already reflected. */
    y = gfmul(_mm_xor_si128(y, lengths), h);
    __m128i tag = _mm_xor_si128(bswap128(y),
                                aes_encrypt(rk, rounds, _mm_loadu_si128((const __m128i *)j0)));
    _mm_storeu_si128((__m128i *)(text + payload_len), tag);
    return header_len + payload_len + SRTP_GCM_TAG_LEN;
}

static int
own_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") &&
           __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.1");
}

#else

static int
own_supported(void)
{
    return 0;
}

#endif

int
srtp_gcm_supported(int mode)
{
    return mode == SRTP_GCM_EVP || (mode == SRTP_GCM_OWN && own_supported());
}

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
srtp_gcm_init(srtp_gcm_ctx *ctx, int mode, const uint8_t *master, size_t master_len)
{
    /* master = key (16 or 32 bytes) || salt (12 bytes), as DTLS-SRTP exports it. */
    int key_len;
    if (master_len == 16 + 12)
        key_len = 16;
    else if (master_len == 32 + 12)
        key_len = 32;
    else
        return -1;
    if (!srtp_gcm_supported(mode))
        return -1;
    uint8_t fingerprint[32];
    if (EVP_Digest(master, master_len, fingerprint, NULL, EVP_sha256(), NULL) != 1)
        return -1;
    srtp_gcm_ctx kept; /* the same session (another sealer, say) keeps its packet indices */
    int same = ctx->mode != SRTP_GCM_OFF &&
               memcmp(fingerprint, ctx->fingerprint, sizeof(fingerprint)) == 0;
    if (same && ctx->mode == mode)
        return 0;
    if (same) {
        kept.highest = ctx->highest;
        memcpy(kept.sent, ctx->sent, sizeof(kept.sent));
    }
    uint8_t salt14[14] = {0}, session_key[32];
    memcpy(salt14, master + key_len, 12);
    const EVP_CIPHER *ctr = key_len == 16 ? EVP_aes_128_ctr() : EVP_aes_256_ctr();
    uint8_t salt[12];
    int ok = kdf(ctr, master, salt14, 0x00, session_key, key_len) == 0 && /* encryption */
             kdf(ctr, master, salt14, 0x02, salt, 12) == 0 &&              /* salt */
             srtp_gcm_init_session(ctx, mode, session_key, (size_t)key_len, salt) == 0;
    OPENSSL_cleanse(session_key, sizeof(session_key));
    OPENSSL_cleanse(salt14, sizeof(salt14));
    OPENSSL_cleanse(salt, sizeof(salt));
    if (!ok)
        return -1;
    memcpy(ctx->fingerprint, fingerprint, sizeof(fingerprint));
    if (same) {
        ctx->highest = kept.highest;
        memcpy(ctx->sent, kept.sent, sizeof(ctx->sent));
    }
    return 0;
}

int
srtp_gcm_init_session(srtp_gcm_ctx *ctx, int mode, const uint8_t *session_key, size_t key_len,
                      const uint8_t salt[12])
{
    if ((key_len != 16 && key_len != 32) || !srtp_gcm_supported(mode))
        return -1;
    srtp_gcm_free(ctx);
    memcpy(ctx->salt, salt, 12);
    int ok = 1;
    if (mode == SRTP_GCM_EVP) {
        const EVP_CIPHER *gcm = key_len == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
        ctx->evp = EVP_CIPHER_CTX_new();
        ok = ctx->evp && EVP_EncryptInit_ex(ctx->evp, gcm, NULL, session_key, NULL) == 1;
    }
#if SRTP_GCM_AESNI
    else
        own_prepare(ctx, session_key, (int)key_len);
#endif
    if (!ok) {
        srtp_gcm_free(ctx);
        return -1;
    }
    ctx->mode = mode;
    return 0;
}

static size_t
evp_seal(const srtp_gcm_ctx *ctx, const uint8_t iv[12], uint8_t *packet, size_t header_len,
         size_t payload_len)
{
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

size_t
srtp_gcm_seal(const srtp_gcm_ctx *ctx, uint8_t *packet, size_t header_len, size_t payload_len,
              uint64_t index)
{
    /* RFC 7714 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt; J0 = IV || 00 00 00 01. */
    uint8_t j0[16];
    j0[0] = ctx->salt[0];
    j0[1] = ctx->salt[1];
    memcpy(j0 + 2, packet + 8, 4);
    j0[6] = (uint8_t)(index >> 40);
    j0[7] = (uint8_t)(index >> 32);
    j0[8] = (uint8_t)(index >> 24);
    j0[9] = (uint8_t)(index >> 16);
    j0[10] = (uint8_t)(index >> 8);
    j0[11] = (uint8_t)index;
    for (int i = 2; i < 12; i++)
        j0[i] ^= ctx->salt[i];
    j0[12] = j0[13] = j0[14] = 0;
    j0[15] = 1;
    if (ctx->mode == SRTP_GCM_EVP)
        return evp_seal(ctx, j0, packet, header_len, payload_len);
#if SRTP_GCM_AESNI
    if (ctx->mode == SRTP_GCM_OWN)
        return own_seal(ctx, j0, packet, header_len, payload_len);
#endif
    return 0;
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
