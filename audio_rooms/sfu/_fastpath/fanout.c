/*
 * The SFU's fan-out loop in C: for one ingress RTP packet and the slots mapped to its speaker,
 * rewrite each slot's header template, protect header + payload with the slot's libsrtp
 * context and sendto() the slot's UDP socket. The pure-Python reference is
 * audio_rooms/sfu/egress.py (PySlot, py_fanout); this file must do exactly the same.
 *
 * libsrtp is not linked: pylibsrtp (the copy aiortc uses) hands us srtp_protect's address and
 * each session's srtp_t pointer as integers (see audio_rooms/sfu/hooks/). For the AES-GCM
 * profiles the slot seals with its own context instead (srtp_gcm.c: its own AES-NI code, or a
 * prepared OpenSSL EVP context where the CPU lacks AES-NI), when the egress path carries the
 * session's master key. Constants shared with egress.py are exported and checked at import.
 *
 * Runs with the GIL held, on the event loop's thread: one static buffer is enough.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "srtp_gcm.h"

#define HEADER_MAX 64
#define BUFFER_SIZE 2048
#define SRTP_MAX_TRAILER 144
#define MAX_PACKET (BUFFER_SIZE - SRTP_MAX_TRAILER)
#define CLOCK_RATE 48000
#define FRAME_SAMPLES 960

typedef int (*srtp_protect_fn)(void *ctx, void *rtp, int *len);

static srtp_protect_fn protect_fn = NULL;
static int srtp_ok = 0;
static int gcm_mode = SRTP_GCM_OFF; /* set_own_srtp(): how slots protect AES-GCM sessions */

/* The start of CPython's socket object (Modules/socketmodule.h, PySocketSockObject): the
 * descriptor, -1 once closed, is what fileno() returns. Reading it directly spares a method
 * call per packet; set_path() checks it against fileno() before a slot relies on it. */
typedef struct {
    PyObject_HEAD
    int sock_fd;
} SocketHead;
static PyTypeObject *socket_type = NULL; /* _socket.socket */

static inline int
socket_fd(PyObject *sock, int direct)
{
    return direct ? ((SocketHead *)sock)->sock_fd : PyObject_AsFileDescriptor(sock);
}
static uint32_t buffer[BUFFER_SIZE / 4]; /* 32-bit aligned for libsrtp */

typedef struct {
    PyObject_HEAD
    unsigned char header[HEADER_MAX];
    unsigned char plain[HEADER_MAX];
    Py_ssize_t header_len;
    Py_ssize_t plain_len;
    int level_pos;
    int payload_type;
    int resync;
    unsigned long long last_seq;
    unsigned long long last_ts;
    long long last_ns;
    unsigned long long seq_offset;
    unsigned long long ts_offset;
    unsigned long long packets;
    unsigned long long octets;
    unsigned long long last_rtp_timestamp;
    long long last_send_ns;
    /* egress */
    PyObject *path;     /* EgressPath or None (keeps the SRTP session alive) */
    void *srtp;         /* srtp_t */
    PyObject *sock;     /* socket.socket or NULL (then always `fallback`) */
    int sock_direct;    /* its descriptor can be read from the object (SocketHead) */
    PyObject *fallback; /* the asyncio transport's sendto(data, addr) */
    PyObject *addr;     /* (host, port) */
    struct sockaddr_storage sa;
    socklen_t sa_len;
    /* AES-GCM sessions: protected here, not by libsrtp (see srtp_gcm.c) */
    int use_gcm;
    srtp_gcm_ctx gcm; /* kept without a path: the same keys again keep its packet indices */
} Slot;

static int
slot_init(Slot *self, PyObject *args, PyObject *kwds)
{
    Py_buffer header, plain;
    int level_pos, payload_type;
    unsigned long long last_seq, last_ts;
    static char *kwlist[] = {"header", "plain", "level_pos", "payload_type", "last_seq",
                             "last_ts", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*iiKK", kwlist, &header, &plain,
                                     &level_pos, &payload_type, &last_seq, &last_ts))
        return -1;
    if (header.len < 12 || header.len > HEADER_MAX || plain.len < 12 || plain.len > HEADER_MAX ||
        level_pos >= header.len) {
        PyBuffer_Release(&header);
        PyBuffer_Release(&plain);
        PyErr_SetString(PyExc_ValueError, "bad header template");
        return -1;
    }
    memcpy(self->header, header.buf, header.len);
    memcpy(self->plain, plain.buf, plain.len);
    self->header_len = header.len;
    self->plain_len = plain.len;
    PyBuffer_Release(&header);
    PyBuffer_Release(&plain);
    self->level_pos = level_pos;
    self->payload_type = payload_type & 0x7F;
    self->last_seq = last_seq & 0xFFFF;
    self->last_ts = last_ts & 0xFFFFFFFFULL;
    self->last_ns = 0;
    self->seq_offset = self->ts_offset = 0;
    self->resync = 1;
    self->packets = self->octets = self->last_rtp_timestamp = 0;
    self->last_send_ns = 0;
    Py_INCREF(Py_None);
    Py_XSETREF(self->path, Py_None);
    return 0;
}

static void
slot_clear_egress(Slot *self)
{
    self->srtp = NULL;
    self->use_gcm = 0;
    Py_CLEAR(self->sock);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->addr);
    self->sa_len = 0;
}

static int
slot_traverse(Slot *self, visitproc visit, void *arg)
{
    Py_VISIT(self->path);
    Py_VISIT(self->sock);
    Py_VISIT(self->fallback);
    Py_VISIT(self->addr);
    return 0;
}

static int
slot_clear(Slot *self)
{
    slot_clear_egress(self);
    Py_CLEAR(self->path);
    return 0;
}

static void
slot_dealloc(Slot *self)
{
    PyObject_GC_UnTrack(self);
    slot_clear(self);
    srtp_gcm_free(&self->gcm);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
slot_set_path(Slot *self, PyObject *path)
{
    PyObject *srtp_address = NULL, *sock = NULL, *fallback = NULL, *addr = NULL, *master = NULL;
    unsigned long long srtp = 0;

    if (path == Py_None) {
        slot_clear_egress(self);
        Py_INCREF(Py_None);
        Py_XSETREF(self->path, Py_None);
        Py_RETURN_NONE;
    }
    if (!(srtp_address = PyObject_GetAttrString(path, "srtp_address")) ||
        !(sock = PyObject_GetAttrString(path, "sock")) ||
        !(fallback = PyObject_GetAttrString(path, "sendto")) ||
        !(addr = PyObject_GetAttrString(path, "addr")) ||
        !(master = PyObject_GetAttrString(path, "srtp_master")))
        goto error;
    if (master != Py_None && !PyBytes_Check(master)) {
        PyErr_SetString(PyExc_TypeError, "srtp_master must be bytes or None");
        goto error;
    }
    srtp = PyLong_AsUnsignedLongLong(srtp_address);
    if (PyErr_Occurred())
        goto error;
    if (!srtp) {
        PyErr_SetString(PyExc_ValueError, "egress path without an SRTP context");
        goto error;
    }
    {
        /* The same keys again keep the context, and with it the highest index sent: a nonce
         * is never re-used. New keys (a new DTLS session) start a new context. */
        const char *mk = master != Py_None ? PyBytes_AS_STRING(master) : NULL;
        Py_ssize_t mk_len = mk ? PyBytes_GET_SIZE(master) : 0;
        slot_clear_egress(self);
        if (mk && gcm_mode != SRTP_GCM_OFF &&
            srtp_gcm_init(&self->gcm, gcm_mode, (const uint8_t *)mk, (size_t)mk_len) == 0)
            self->use_gcm = 1;
    }
    self->srtp = (void *)(uintptr_t)srtp;
    self->fallback = fallback;
    self->addr = addr;
    if (sock != Py_None) {
        /* Resolve the destination once; a non-numeric host keeps the fallback. */
        const char *host = NULL;
        long port = -1;
        if (PyTuple_Check(addr) && PyTuple_GET_SIZE(addr) >= 2 &&
            PyUnicode_Check(PyTuple_GET_ITEM(addr, 0))) {
            host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(addr, 0));
            port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
            if (PyErr_Occurred()) {
                PyErr_Clear();
                host = NULL;
            }
        }
        memset(&self->sa, 0, sizeof(self->sa));
        if (host && port >= 0 && port <= 65535) {
            struct sockaddr_in *v4 = (struct sockaddr_in *)&self->sa;
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&self->sa;
            if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
                v4->sin_family = AF_INET;
                v4->sin_port = htons((uint16_t)port);
                self->sa_len = sizeof(*v4);
            } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
                v6->sin6_family = AF_INET6;
                v6->sin6_port = htons((uint16_t)port);
                self->sa_len = sizeof(*v6);
            }
        }
        if (self->sa_len) {
            self->sock = sock;
            self->sock_direct = 0;
            if (socket_type && PyObject_TypeCheck(sock, socket_type)) {
                int fd = PyObject_AsFileDescriptor(sock);
                if (fd < 0)
                    PyErr_Clear();
                self->sock_direct = fd >= 0 && fd == ((SocketHead *)sock)->sock_fd;
            }
            sock = NULL;
        }
    }
    Py_XDECREF(sock);
    Py_DECREF(srtp_address);
    Py_DECREF(master);
    Py_INCREF(path);
    Py_XSETREF(self->path, path);
    Py_RETURN_NONE;
error:
    Py_XDECREF(srtp_address);
    Py_XDECREF(sock);
    Py_XDECREF(fallback);
    Py_XDECREF(addr);
    Py_XDECREF(master);
    return NULL;
}

/* Forward one packet on one slot: datagram size, 0 if not connected, -1 on failure. */
static Py_ssize_t
slot_send(Slot *self, const unsigned char *payload, Py_ssize_t payload_len, unsigned long seq,
          unsigned long ts, int marker, int level, long long now_ns)
{
    unsigned char *hdr;
    Py_ssize_t hl, n;
    unsigned long out_seq, out_ts;
    int len;

    if (self->srtp == NULL)
        return 0;
    if (self->resync) {
        long long elapsed = 0;
        if (self->last_ns) {
            /* (d * CLOCK_RATE) // 1e9 without a 64-bit overflow after ~53 hours (and without
             * __int128, which 32-bit targets lack). */
            long long d = now_ns - self->last_ns;
            elapsed = (d / 1000000000) * CLOCK_RATE + ((d % 1000000000) * CLOCK_RATE) / 1000000000;
        }
        /* Python's // floors; the difference only matters for a clock going backwards. */
        if (elapsed < FRAME_SAMPLES)
            elapsed = FRAME_SAMPLES;
        self->seq_offset = (self->last_seq + 1 - seq) & 0xFFFF;
        self->ts_offset = (self->last_ts + (unsigned long long)elapsed - ts) & 0xFFFFFFFFULL;
        self->resync = 0;
        marker = 1;
    }
    out_seq = (seq + self->seq_offset) & 0xFFFF;
    out_ts = (ts + self->ts_offset) & 0xFFFFFFFFULL;
    if (level >= 0 && self->level_pos >= 0) {
        hdr = self->header;
        hl = self->header_len;
        hdr[self->level_pos] = (unsigned char)level;
    } else {
        hdr = self->plain;
        hl = self->plain_len;
    }
    hdr[1] = (unsigned char)(((marker ? 1 : 0) << 7) | self->payload_type);
    hdr[2] = (unsigned char)(out_seq >> 8);
    hdr[3] = (unsigned char)out_seq;
    hdr[4] = (unsigned char)(out_ts >> 24);
    hdr[5] = (unsigned char)(out_ts >> 16);
    hdr[6] = (unsigned char)(out_ts >> 8);
    hdr[7] = (unsigned char)out_ts;
    n = hl + payload_len;
    if (n > MAX_PACKET)
        return -1;
    memcpy(buffer, hdr, hl);
    memcpy((unsigned char *)buffer + hl, payload, payload_len);
    len = (int)n;
    if (self->use_gcm) {
        int64_t index = srtp_gcm_index(&self->gcm, (uint16_t)out_seq);
        if (index < 0)
            return -1;
        len = (int)srtp_gcm_seal(&self->gcm, (uint8_t *)buffer, (size_t)hl, (size_t)payload_len,
                                 (uint64_t)index);
        if (len == 0)
            return -1;
    } else if (protect_fn(self->srtp, buffer, &len) != srtp_ok) {
        return -1;
    }

    int sent = 0;
    if (self->sock) {
        int fd = socket_fd(self->sock, self->sock_direct); /* -1 once the socket is closed */
        if (fd < 0) {
            /* The pair's socket is closed (the peer is gone, e.g. consent expired): so is its
             * asyncio transport. Dropped; the transport's own close follows. */
            PyErr_Clear();
            return -1;
        }
        if (sendto(fd, buffer, (size_t)len, 0, (struct sockaddr *)&self->sa, self->sa_len) == len)
            sent = 1;
    }
    if (!sent) {
        /* Would block, relayed, or the socket is gone: the asyncio transport buffers, wraps
         * or reports it, as for any datagram. */
        PyObject *data = PyBytes_FromStringAndSize((const char *)buffer, len);
        PyObject *r = NULL;
        if (data && self->fallback)
            r = PyObject_CallFunctionObjArgs(self->fallback, data, self->addr, NULL);
        Py_XDECREF(data);
        if (r == NULL) {
            PyErr_WriteUnraisable((PyObject *)self);
            return -1;
        }
        Py_DECREF(r);
    }
    self->last_seq = out_seq;
    self->last_ts = out_ts;
    self->last_ns = now_ns;
    self->packets += 1;
    self->octets += (unsigned long long)payload_len;
    self->last_rtp_timestamp = out_ts;
    self->last_send_ns = now_ns;
    return len;
}

static PyObject *
slot_forward(Slot *self, PyObject *args)
{
    Py_buffer payload;
    unsigned long seq, ts;
    int marker, level;
    long long now_ns;
    if (!PyArg_ParseTuple(args, "y*kkiiL", &payload, &seq, &ts, &marker, &level, &now_ns))
        return NULL;
    Py_ssize_t r = slot_send(self, payload.buf, payload.len, seq & 0xFFFF, ts & 0xFFFFFFFFUL,
                             marker, level, now_ns);
    PyBuffer_Release(&payload);
    return PyLong_FromSsize_t(r);
}

static PyObject *
slot_get_path(Slot *self, void *closure)
{
    PyObject *p = self->path ? self->path : Py_None;
    Py_INCREF(p);
    return p;
}

static PyObject *
slot_get_resync(Slot *self, void *closure)
{
    return PyBool_FromLong(self->resync);
}

static int
slot_set_resync(Slot *self, PyObject *value, void *closure)
{
    int v = value ? PyObject_IsTrue(value) : -1;
    if (v < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "cannot delete resync");
        return -1;
    }
    self->resync = v;
    return 0;
}

static PyObject *
slot_get_own_srtp(Slot *self, void *closure)
{
    return PyBool_FromLong(self->use_gcm);
}

static PyGetSetDef slot_getset[] = {
    {"own_srtp", (getter)slot_get_own_srtp, NULL, "protected by srtp_gcm.c, not libsrtp", NULL},
    {"path", (getter)slot_get_path, NULL, "the EgressPath, or None", NULL},
    {"resync", (getter)slot_get_resync, (setter)slot_set_resync, "recompute offsets", NULL},
    {NULL},
};

static PyMemberDef slot_members[] = {
    {"packets", T_ULONGLONG, offsetof(Slot, packets), 0, "packets sent"},
    {"octets", T_ULONGLONG, offsetof(Slot, octets), 0, "payload octets sent"},
    {"last_rtp_timestamp", T_ULONGLONG, offsetof(Slot, last_rtp_timestamp), 0, NULL},
    {"last_send_ns", T_LONGLONG, offsetof(Slot, last_send_ns), 0, NULL},
    {"last_seq", T_ULONGLONG, offsetof(Slot, last_seq), 0, NULL},
    {"last_ts", T_ULONGLONG, offsetof(Slot, last_ts), 0, NULL},
    {"last_ns", T_LONGLONG, offsetof(Slot, last_ns), 0, NULL},
    {"seq_offset", T_ULONGLONG, offsetof(Slot, seq_offset), 0, NULL},
    {"ts_offset", T_ULONGLONG, offsetof(Slot, ts_offset), 0, NULL},
    {"level_pos", T_INT, offsetof(Slot, level_pos), READONLY, NULL},
    {"payload_type", T_INT, offsetof(Slot, payload_type), READONLY, NULL},
    {NULL},
};

static PyMethodDef slot_methods[] = {
    {"set_path", (PyCFunction)slot_set_path, METH_O, "set_path(EgressPath | None)"},
    {"forward", (PyCFunction)slot_forward, METH_VARARGS,
     "forward(payload, seq, ts, marker, level, now_ns) -> size, 0 or -1"},
    {NULL},
};

static PyTypeObject SlotType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "audio_rooms.sfu._fastpath._fanout.Slot",
    .tp_basicsize = sizeof(Slot),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)slot_traverse,
    .tp_clear = (inquiry)slot_clear,
    .tp_doc = "Forwarding state of one slot (see audio_rooms.sfu.egress.PySlot).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)slot_init,
    .tp_dealloc = (destructor)slot_dealloc,
    .tp_methods = slot_methods,
    .tp_members = slot_members,
    .tp_getset = slot_getset,
};

static inline long long
monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* what time.perf_counter_ns() reads on Linux */
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

#define PREFETCH_AHEAD 2

static inline void
prefetch_slot(PyObject *item)
{
    if (Py_TYPE(item) != &SlotType)
        return;
    const char *p = (const char *)item;
    for (size_t off = 0; off < sizeof(Slot); off += 64)
        __builtin_prefetch(p + off);
}

/* fanout(slots, payload, seq, ts, marker, level, now_ns, latency) -> (n, bytes, failed) */
static PyObject *
fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *slots, *latency_obj;
    Py_buffer payload, hist = {0};
    unsigned long seq, ts;
    int marker, level;
    long long now_ns;
    Py_ssize_t n = 0, sent = 0, failed = 0, nbuckets = 0;
    unsigned long long *buckets = NULL;

    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "fanout takes 8 arguments");
        return NULL;
    }
    if (protect_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_protect() was not called");
        return NULL;
    }
    slots = args[0];
    if (!PyList_Check(slots)) {
        PyErr_SetString(PyExc_TypeError, "slots must be a list");
        return NULL;
    }
    seq = PyLong_AsUnsignedLongMask(args[2]) & 0xFFFF;
    ts = PyLong_AsUnsignedLongMask(args[3]) & 0xFFFFFFFFUL;
    marker = PyObject_IsTrue(args[4]);
    level = PyLong_AsLong(args[5]);
    now_ns = PyLong_AsLongLong(args[6]);
    if (PyErr_Occurred())
        return NULL;
    latency_obj = args[7];
    if (PyObject_GetBuffer(args[1], &payload, PyBUF_SIMPLE) < 0)
        return NULL;
    if (latency_obj != Py_None) {
        if (PyObject_GetBuffer(latency_obj, &hist, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
            PyBuffer_Release(&payload);
            return NULL;
        }
        if (hist.itemsize != 8 || hist.len < 8) {
            PyBuffer_Release(&hist);
            PyBuffer_Release(&payload);
            PyErr_SetString(PyExc_TypeError, "latency must be an array('Q')");
            return NULL;
        }
        buckets = hist.buf;
        nbuckets = hist.len / 8;
    }

    const Py_ssize_t count = PyList_GET_SIZE(slots);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(slots, i);
        Py_ssize_t size;
        /* Audio comes in bursts every 20 ms, so every slot starts cold: fetch the slots ahead
         * (and the socket object and cipher context of the next one) while this one is
         * protected and sent. */
        if (i + PREFETCH_AHEAD < count)
            prefetch_slot(PyList_GET_ITEM(slots, i + PREFETCH_AHEAD));
        if (i + 1 < count && Py_TYPE(PyList_GET_ITEM(slots, i + 1)) == &SlotType) {
            Slot *next = (Slot *)PyList_GET_ITEM(slots, i + 1);
            if (next->sock)
                __builtin_prefetch(next->sock);
            if (next->use_gcm && next->gcm.evp) /* an EVP context lives outside the slot */
                __builtin_prefetch(next->gcm.evp);
        }
        if (Py_TYPE(item) == &SlotType) {
            size = slot_send((Slot *)item, payload.buf, payload.len, seq, ts, marker, level,
                             now_ns);
        } else {
            /* Any other slot (a PySlot) through its forward() method. */
            Py_INCREF(item);
            PyObject *r = PyObject_CallMethod(item, "forward", "OkkiiL", args[1], seq, ts,
                                              marker, level, now_ns);
            Py_DECREF(item);
            if (r == NULL) {
                PyErr_WriteUnraisable(item);
                size = -1;
            } else {
                size = PyLong_AsSsize_t(r);
                Py_DECREF(r);
                if (size == -1 && PyErr_Occurred())
                    PyErr_Clear();
            }
        }
        if (size > 0) {
            n++;
            sent += size;
            if (buckets) {
                long long b = (monotonic_ns() - now_ns) / 1000;
                if (b < 0)
                    b = 0;
                if (b > nbuckets - 1)
                    b = nbuckets - 1;
                buckets[b]++;
            }
        } else if (size < 0) {
            failed++;
        }
    }
    if (buckets)
        PyBuffer_Release(&hist);
    PyBuffer_Release(&payload);
    return Py_BuildValue("nnn", n, sent, failed);
}

static PyObject *
set_protect(PyObject *module, PyObject *args)
{
    unsigned long long address;
    int ok;
    if (!PyArg_ParseTuple(args, "Ki", &address, &ok))
        return NULL;
    protect_fn = (srtp_protect_fn)(uintptr_t)address;
    srtp_ok = ok;
    Py_RETURN_NONE;
}

static PyObject *
set_own_srtp(PyObject *module, PyObject *arg)
{
    long mode = PyLong_AsLong(arg);
    if (mode == -1 && PyErr_Occurred())
        return NULL;
    gcm_mode = srtp_gcm_supported((int)mode) ? (int)mode : SRTP_GCM_OFF;
    return PyBool_FromLong(gcm_mode != SRTP_GCM_OFF);
}

/* seal_vector(mode, session_key, session_salt, packet, header_len, index) -> SRTP packet:
 * one packet sealed with the given session keys, for known-answer tests (RFC 7714, NIST). */
static PyObject *
seal_vector(PyObject *module, PyObject *args)
{
    int mode;
    Py_buffer key, salt, packet;
    Py_ssize_t header_len;
    unsigned long long index;
    if (!PyArg_ParseTuple(args, "iy*y*y*nK", &mode, &key, &salt, &packet, &header_len, &index))
        return NULL;
    PyObject *result = NULL;
    srtp_gcm_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    uint8_t out[BUFFER_SIZE];
    if (salt.len != 12 || header_len < 12 || header_len > packet.len ||
        packet.len > BUFFER_SIZE - SRTP_GCM_TAG_LEN || index >= (1ULL << 48)) {
        PyErr_SetString(PyExc_ValueError, "bad salt, header length, packet or index");
    } else if (srtp_gcm_init_session(&ctx, mode, key.buf, (size_t)key.len, salt.buf) != 0) {
        PyErr_SetString(PyExc_ValueError, "mode not available here, or bad key length");
    } else {
        memcpy(out, packet.buf, (size_t)packet.len);
        size_t n = srtp_gcm_seal(&ctx, out, (size_t)header_len,
                                 (size_t)(packet.len - header_len), index);
        if (n)
            result = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)n);
        else
            PyErr_SetString(PyExc_RuntimeError, "sealing failed");
    }
    srtp_gcm_free(&ctx);
    PyBuffer_Release(&key);
    PyBuffer_Release(&salt);
    PyBuffer_Release(&packet);
    return result;
}

static PyMethodDef module_methods[] = {
    {"seal_vector", seal_vector, METH_VARARGS,
     "seal_vector(mode, session_key, session_salt, packet, header_len, index) -> bytes"},
    {"set_own_srtp", set_own_srtp, METH_O,
     "set_own_srtp(SRTP_GCM_OFF | SRTP_GCM_OWN | SRTP_GCM_EVP) -> whether slots whose path is "
     "set from now on seal AES-GCM themselves (False: that mode cannot run here)"},
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(slots, payload, seq, ts, marker, level, now_ns, latency) -> (n, bytes, failed)"},
    {"set_protect", set_protect, METH_VARARGS,
     "set_protect(address of srtp_protect, srtp_err_status_ok)"},
    {NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_fanout", "The SFU's compiled fan-out loop.", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__fanout(void)
{
    if (PyType_Ready(&SlotType) < 0)
        return NULL;
    PyObject *sockmod = PyImport_ImportModule("_socket");
    if (sockmod) {
        PyObject *t = PyObject_GetAttrString(sockmod, "socket");
        if (t && PyType_Check(t))
            socket_type = (PyTypeObject *)t; /* kept for the module's life */
        else
            Py_XDECREF(t);
        Py_DECREF(sockmod);
    }
    PyErr_Clear();
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    /* What audio_rooms/sfu/egress.py checks against its own values when it loads this. */
    if (PyModule_AddIntConstant(m, "HEADER_MAX", HEADER_MAX) < 0 ||
        PyModule_AddIntConstant(m, "BUFFER_SIZE", BUFFER_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "SRTP_MAX_TRAILER", SRTP_MAX_TRAILER) < 0 ||
        PyModule_AddIntConstant(m, "CLOCK_RATE", CLOCK_RATE) < 0 ||
        PyModule_AddIntConstant(m, "FRAME_SAMPLES", FRAME_SAMPLES) < 0 ||
        PyModule_AddIntConstant(m, "SRTP_GCM_TAG_LEN", SRTP_GCM_TAG_LEN) < 0 ||
        PyModule_AddIntConstant(m, "SRTP_GCM_WINDOW", SRTP_GCM_WINDOW) < 0 ||
        PyModule_AddIntConstant(m, "SRTP_GCM_OFF", SRTP_GCM_OFF) < 0 ||
        PyModule_AddIntConstant(m, "SRTP_GCM_OWN", SRTP_GCM_OWN) < 0 ||
        PyModule_AddIntConstant(m, "SRTP_GCM_EVP", SRTP_GCM_EVP) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SlotType);
    if (PyModule_AddObject(m, "Slot", (PyObject *)&SlotType) < 0) {
        Py_DECREF(&SlotType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
