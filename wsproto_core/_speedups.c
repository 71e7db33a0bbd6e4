/* Optional compiled masking and frame codec for wsproto_core (RFC 6455 sections 5.2, 5.3).
 *
 * Built when a C compiler is present; wsproto_core.masking falls back to its
 * pure-Python routine otherwise. Uses only the stable ABI (Python 3.11+), so one
 * wheel serves every later CPython. XORs eight bytes at a time: the 4-byte key,
 * rotated to the payload offset, is repeated into a 64-bit word. Loads and
 * stores go through memcpy, so they may be unaligned and the compiler is free
 * to vectorise the loop (CPython builds extensions with -O3, where GCC and
 * Clang turn it into 16-byte SSE2 XORs). On x86-64 with GCC or Clang a second
 * copy of the loop is compiled for AVX2 and chosen at import when the CPU has
 * it: 32 bytes per instruction, which is what keeps unmasking of payloads that
 * sit in cache close to memcpy's speed.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* None, returned as a new reference. Not Py_RETURN_NONE: CPython 3.13.0's
 * headers define it as a bare "return Py_None" whatever the limited API
 * version, which loses a reference to None at each call on 3.11, where None is
 * not immortal (a wheel built by 3.13.0 then ends in "deallocating None"). */
#define RETURN_NONE \
    do { \
        Py_INCREF(Py_None); \
        return Py_None; \
    } while (0)

#if defined(__GNUC__) && defined(__x86_64__)
#define XOR_INLINE static inline __attribute__((always_inline))
#define HAVE_AVX2_COPY 1
#else
#define XOR_INLINE static inline
#endif

XOR_INLINE void
xor_loop(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *key, int shift)
{
    unsigned char rotated[8];
    uint64_t word_key, word;
    Py_ssize_t i = 0;

    for (int k = 0; k < 8; k++) {
        rotated[k] = key[(k + shift) & 3];
    }
    memcpy(&word_key, rotated, 8);
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, src + i, 8);
        word ^= word_key;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ rotated[i & 3];
    }
}

static void
xor_into_portable(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *key, int shift)
{
    xor_loop(dst, src, n, key, shift);
}

#ifdef HAVE_AVX2_COPY
__attribute__((target("avx2"))) static void
xor_into_avx2(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *key, int shift)
{
    xor_loop(dst, src, n, key, shift);
}
#endif

/* Chosen once, in PyInit__speedups. */
static void (*xor_into)(unsigned char *, const unsigned char *, Py_ssize_t, const unsigned char *,
                        int) = xor_into_portable;

/* masked_frame(prefix, data, mask) -> prefix + (data XOR mask), in one allocation,
 * so that sending a large client frame copies its payload once. */
static PyObject *
masked_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer prefix, data, mask;
    PyObject *result = NULL;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "masked_frame(prefix, data, mask)");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &prefix, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&prefix);
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&prefix);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, prefix.len + data.len);
    if (result != NULL) {
        unsigned char *out = (unsigned char *)PyBytes_AsString(result);
        memcpy(out, prefix.buf, prefix.len);
        xor_into(out + prefix.len, (const unsigned char *)data.buf, data.len, (const unsigned char *)mask.buf, 0);
    }
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    PyBuffer_Release(&prefix);
    return result;
}

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    Py_ssize_t offset = 0;
    PyObject *result = NULL;

    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "apply_mask(data, mask, offset=0)");
        return NULL;
    }
    if (nargs == 3) {
        offset = PyLong_AsSsize_t(args[2]);
        if (offset == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    xor_into((unsigned char *)PyBytes_AsString(result), (const unsigned char *)data.buf, data.len,
             (const unsigned char *)mask.buf, (int)(offset & 3));
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

/* unmask_utf8(data, start, end, mask) -> str: data[start:end] XOR the mask,
 * decoded as UTF-8 (strict), without the two intermediate bytes objects that
 * slicing, unmasking and decoding make in Python. A server receives every
 * whole text message through it. Raises UnicodeDecodeError as bytes.decode
 * does, with the same positions (relative to the payload). */
static PyObject *
unmask_utf8(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    Py_ssize_t start, end, length;
    unsigned char small[4096];
    unsigned char *plain = small;
    PyObject *result = NULL;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "unmask_utf8(data, start, end, mask)");
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    end = PyLong_AsSsize_t(args[2]);
    if (end == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[3], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        goto done;
    }
    if (start < 0 || end < start || end > data.len) {
        PyErr_SetString(PyExc_ValueError, "start and end must delimit a part of data");
        goto done;
    }
    length = end - start;
    if (length > (Py_ssize_t)sizeof(small)) {
        plain = PyMem_Malloc(length);
        if (plain == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    xor_into(plain, (const unsigned char *)data.buf + start, length, (const unsigned char *)mask.buf, 0);
    result = PyUnicode_DecodeUTF8((const char *)plain, length, NULL);
    if (plain != small) {
        PyMem_Free(plain);
    }
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

/* PayloadBuffer(length, mask, offset): one frame's payload, gathered as it
 * arrives and unmasked on the way in (masking.PythonPayloadBuffer is its
 * pure-Python twin and says what each method means). The payload is a bytes
 * object made at its final size and filled before anyone else can see it, as
 * CPython fills any new bytes object, only over several calls: take() then hands
 * it over without a copy. Reads may go straight into it through unfilled(), a
 * writable view of the part not yet received; whoever reads into that view
 * must be done with it before calling received(), and take() makes later
 * views and writes fail. */
typedef struct {
    PyObject_HEAD
    PyObject *payload;
    Py_ssize_t length;
    Py_ssize_t filled;
    Py_ssize_t offset;
    int masked;
    int taken;
    unsigned char mask[4];
} PayloadBufferObject;

static PyObject *
payload_buffer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t length, offset = 0;
    PyObject *mask_object;
    PayloadBufferObject *self;
    static char *keywords[] = {"length", "mask", "offset", NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nO|n:PayloadBuffer", keywords, &length, &mask_object, &offset)) {
        return NULL;
    }
    if (length < 1 || offset < 0) {
        PyErr_SetString(PyExc_ValueError, "PayloadBuffer needs a length of at least 1 and an offset of at least 0");
        return NULL;
    }
    self = (PayloadBufferObject *)((allocfunc)PyType_GetSlot(type, Py_tp_alloc))(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->length = length;
    self->filled = 0;
    self->offset = offset;
    self->taken = 0;
    self->masked = mask_object != Py_None;
    if (self->masked) {
        Py_buffer mask;
        if (PyObject_GetBuffer(mask_object, &mask, PyBUF_SIMPLE) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        if (mask.len != 4) {
            PyBuffer_Release(&mask);
            PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
            Py_DECREF(self);
            return NULL;
        }
        memcpy(self->mask, mask.buf, 4);
        PyBuffer_Release(&mask);
    }
    self->payload = PyBytes_FromStringAndSize(NULL, length);
    if (self->payload == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
payload_buffer_dealloc(PayloadBufferObject *self)
{
    PyTypeObject *type = Py_TYPE((PyObject *)self);
    Py_XDECREF(self->payload);
    ((freefunc)PyType_GetSlot(type, Py_tp_free))(self);
    Py_DECREF(type);
}

static int
payload_buffer_check(PayloadBufferObject *self)
{
    if (self->taken) {
        PyErr_SetString(PyExc_ValueError, "the payload was taken");
        return -1;
    }
    return 0;
}

static unsigned char *
payload_buffer_end(PayloadBufferObject *self)
{
    return (unsigned char *)PyBytes_AsString(self->payload) + self->filled;
}

/* Unmask the n bytes at the end of what is filled, where they already are. */
static void
payload_buffer_unmask(PayloadBufferObject *self, unsigned char *at, const unsigned char *from, Py_ssize_t n)
{
    if (self->masked) {
        xor_into(at, from, n, self->mask, (int)((self->offset + self->filled) & 3));
    }
    else if (at != from) {
        memcpy(at, from, n);
    }
}

static PyObject *
payload_buffer_write(PayloadBufferObject *self, PyObject *data_object)
{
    Py_buffer data;
    Py_ssize_t n;

    if (payload_buffer_check(self) < 0 || PyObject_GetBuffer(data_object, &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    n = self->length - self->filled;
    if (data.len < n) {
        n = data.len;
    }
    payload_buffer_unmask(self, payload_buffer_end(self), (const unsigned char *)data.buf, n);
    self->filled += n;
    PyBuffer_Release(&data);
    return PyLong_FromSsize_t(n);
}

static PyObject *
payload_buffer_received(PayloadBufferObject *self, PyObject *count)
{
    Py_ssize_t n = PyLong_AsSsize_t(count);
    unsigned char *at;

    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (payload_buffer_check(self) < 0) {
        return NULL;
    }
    if (n < 0 || n > self->length - self->filled) {
        PyErr_SetString(PyExc_ValueError, "received() takes at most the size of the unfilled view");
        return NULL;
    }
    at = payload_buffer_end(self);
    payload_buffer_unmask(self, at, at, n);
    self->filled += n;
    RETURN_NONE;
}

static PyObject *
payload_buffer_unfilled(PayloadBufferObject *self, PyObject *unused)
{
    if (payload_buffer_check(self) < 0) {
        return NULL;
    }
    return PyMemoryView_FromObject((PyObject *)self);
}

static PyObject *
payload_buffer_take(PayloadBufferObject *self, PyObject *unused)
{
    if (payload_buffer_check(self) < 0) {
        return NULL;
    }
    self->taken = 1;
    if (self->filled == self->length) {
        Py_INCREF(self->payload);
        return self->payload;
    }
    return PyBytes_FromStringAndSize(PyBytes_AsString(self->payload), self->filled);
}

static PyObject *
payload_buffer_missing(PayloadBufferObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->length - self->filled);
}

static PyObject *
payload_buffer_filled(PayloadBufferObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->filled);
}

static int
payload_buffer_getbuffer(PayloadBufferObject *self, Py_buffer *view, int flags)
{
    if (payload_buffer_check(self) < 0) {
        view->obj = NULL;
        return -1;
    }
    return PyBuffer_FillInfo(view, (PyObject *)self, payload_buffer_end(self), self->length - self->filled, 0, flags);
}

static PyMethodDef payload_buffer_methods[] = {
    {"write", (PyCFunction)payload_buffer_write, METH_O,
     "write(data) -> int: copy (unmasking) as much of data as the payload still misses; return how much."},
    {"received", (PyCFunction)payload_buffer_received, METH_O,
     "received(nbytes): nbytes were read into the view unfilled() returned; unmask them in place."},
    {"unfilled", (PyCFunction)payload_buffer_unfilled, METH_NOARGS,
     "unfilled() -> memoryview: a writable view of the part of the payload not yet received."},
    {"take", (PyCFunction)payload_buffer_take, METH_NOARGS,
     "take() -> bytes: the payload (without a copy once whole; what was received otherwise)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef payload_buffer_getset[] = {
    {"missing", (getter)payload_buffer_missing, NULL, "How many bytes of the payload have not been received.", NULL},
    {"filled", (getter)payload_buffer_filled, NULL, "How many bytes of the payload have been received.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot payload_buffer_slots[] = {
    {Py_tp_new, payload_buffer_new},
    {Py_tp_dealloc, payload_buffer_dealloc},
    {Py_tp_methods, payload_buffer_methods},
    {Py_tp_getset, payload_buffer_getset},
    {Py_bf_getbuffer, payload_buffer_getbuffer},
    {Py_tp_doc, "PayloadBuffer(length, mask, offset=0): a frame payload gathered as it arrives, unmasked on the way in."},
    {0, NULL},
};

static PyType_Spec payload_buffer_spec = {
    "wsproto_core._speedups.PayloadBuffer", sizeof(PayloadBufferObject), 0, Py_TPFLAGS_DEFAULT, payload_buffer_slots,
};

/* The frame codec of wsproto_core.frames (RFC 6455 section 5.2), compiled: the
 * Python versions there define what these return, and the tests hold both to
 * the same properties. Each runs once per frame sent or received. */

static PyObject *
read_frame_header(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    Py_ssize_t position = 0, available, size;
    const unsigned char *p;
    unsigned long long length;
    PyObject *mask, *result = NULL;

    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "read_frame_header(data, position=0)");
        return NULL;
    }
    if (nargs == 2) {
        position = PyLong_AsSsize_t(args[1]);
        if (position == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (position < 0) {
            PyErr_SetString(PyExc_ValueError, "position must not be negative");
            return NULL;
        }
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    available = data.len - position;
    p = (const unsigned char *)data.buf + position;
    if (available < 2) {
        goto need_more;
    }
    length = p[1] & 0x7F;
    if (length < 126) {
        size = 2;
    }
    else if (length == 126) {
        if (available < 4) {
            goto need_more;
        }
        length = ((unsigned long long)p[2] << 8) | p[3];
        size = 4;
    }
    else {
        if (available < 10) {
            goto need_more;
        }
        length = 0;
        for (int i = 2; i < 10; i++) {
            length = (length << 8) | p[i];
        }
        size = 10;
    }
    if (p[1] & 0x80) {
        if (available < size + 4) {
            goto need_more;
        }
        mask = PyBytes_FromStringAndSize((const char *)p + size, 4);
        if (mask == NULL) {
            goto done;
        }
        size += 4;
    }
    else {
        mask = Py_None;
        Py_INCREF(mask);
    }
    result = Py_BuildValue("(iKNn)", (int)p[0], length, mask, size);
    goto done;
need_more:
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&data);
    return result;
}

static PyObject *
write_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer payload, mask;
    unsigned char header[14];
    Py_ssize_t size, first;
    int masked;
    PyObject *result = NULL;

    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "write_frame(first, payload, mask=None)");
        return NULL;
    }
    first = PyLong_AsSsize_t(args[0]);
    if (first == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (first < 0 || first > 255) {
        PyErr_SetString(PyExc_ValueError, "first must be a byte (0 to 255)");
        return NULL;
    }
    masked = nargs == 3 && args[2] != Py_None;
    if (PyObject_GetBuffer(args[1], &payload, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (masked) {
        if (PyObject_GetBuffer(args[2], &mask, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&payload);
            return NULL;
        }
        if (mask.len != 4) {
            PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
            goto done;
        }
    }
    header[0] = (unsigned char)first;
    if (payload.len < 126) {
        header[1] = (unsigned char)payload.len;
        size = 2;
    }
    else if (payload.len < 0x10000) {
        header[1] = 126;
        header[2] = (unsigned char)(payload.len >> 8);
        header[3] = (unsigned char)payload.len;
        size = 4;
    }
    else {
        unsigned long long length = (unsigned long long)payload.len;
        header[1] = 127;
        for (int i = 9; i >= 2; i--) {
            header[i] = (unsigned char)length;
            length >>= 8;
        }
        size = 10;
    }
    if (masked) {
        header[1] |= 0x80;
        memcpy(header + size, mask.buf, 4);
        size += 4;
    }
    result = PyBytes_FromStringAndSize(NULL, size + payload.len);
    if (result != NULL) {
        unsigned char *out = (unsigned char *)PyBytes_AsString(result);
        memcpy(out, header, size);
        if (masked) {
            xor_into(out + size, (const unsigned char *)payload.buf, payload.len, (const unsigned char *)mask.buf, 0);
        }
        else {
            memcpy(out + size, payload.buf, payload.len);
        }
    }
done:
    if (masked) {
        PyBuffer_Release(&mask);
    }
    PyBuffer_Release(&payload);
    return result;
}

/* The message at p, if the `available` bytes there start with one whole
 * message: a final text or binary frame without RSV bits, masked if and only
 * if `masked`, of at most `limit` payload bytes, text in valid UTF-8. Returns
 * 1 and sets *message (a new reference: bytes, or str for text) and *used
 * (the frame's size); 0 when the bytes do not start with one; -1 on error. */
static int
take_whole_message(const unsigned char *p, Py_ssize_t available, int masked, Py_ssize_t limit, PyObject **message,
                   Py_ssize_t *used)
{
    Py_ssize_t size = 2;
    const unsigned char *key = NULL;
    unsigned long long length;
    unsigned char small[4096];
    unsigned char *plain = small;

    if (available < 2 || (p[0] != 0x81 && p[0] != 0x82) || ((p[1] & 0x80) != 0) != masked) {
        return 0;
    }
    length = p[1] & 0x7F;
    if (length == 126) {
        if (available < 4) {
            return 0;
        }
        length = ((unsigned long long)p[2] << 8) | p[3];
        size = 4;
    }
    else if (length == 127) {
        if (available < 10) {
            return 0;
        }
        length = 0;
        for (int i = 2; i < 10; i++) {
            length = (length << 8) | p[i];
        }
        size = 10;
    }
    if (masked) {
        key = p + size;
        size += 4;
    }
    if (available < size || length > (unsigned long long)(available - size) || length > (unsigned long long)limit) {
        return 0;
    }
    *used = size + (Py_ssize_t)length;
    if (p[0] == 0x82) {
        if (key == NULL) {
            *message = PyBytes_FromStringAndSize((const char *)p + size, (Py_ssize_t)length);
        }
        else {
            *message = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
            if (*message != NULL) {
                xor_into((unsigned char *)PyBytes_AsString(*message), p + size, (Py_ssize_t)length, key, 0);
            }
        }
        return *message == NULL ? -1 : 1;
    }
    if (key == NULL) {
        plain = (unsigned char *)p + size;
    }
    else {
        if (length > sizeof(small)) {
            plain = PyMem_Malloc((size_t)length);
            if (plain == NULL) {
                PyErr_NoMemory();
                return -1;
            }
        }
        xor_into(plain, p + size, (Py_ssize_t)length, key, 0);
    }
    *message = PyUnicode_DecodeUTF8((const char *)plain, (Py_ssize_t)length, NULL);
    if (key != NULL && plain != small) {
        PyMem_Free(plain);
    }
    if (*message != NULL) {
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        /* Bad UTF-8: not a whole message; the caller's parser says what is wrong. */
        PyErr_Clear();
        return 0;
    }
    return -1;
}

/* The arguments (data, masked, limit) of both functions below. */
static int
whole_message_arguments(const char *name, PyObject *const *args, Py_ssize_t nargs, Py_buffer *data, int *masked,
                        Py_ssize_t *limit)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "%s(data, masked, limit)", name);
        return -1;
    }
    *masked = PyObject_IsTrue(args[1]);
    if (*masked < 0) {
        return -1;
    }
    *limit = PyLong_AsSsize_t(args[2]);
    if (*limit == -1 && PyErr_Occurred()) {
        return -1;
    }
    return PyObject_GetBuffer(args[0], data, PyBUF_SIMPLE);
}

/* read_whole_message(data, masked, limit) -> bytes, str or None: the payload of
 * data when data is exactly one whole message (as take_whole_message says),
 * else None. One call per message that a driver reads alone. */
static PyObject *
read_whole_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    Py_ssize_t limit, used = 0;
    int masked, taken;
    PyObject *message = NULL;

    if (whole_message_arguments("read_whole_message", args, nargs, &data, &masked, &limit) < 0) {
        return NULL;
    }
    taken = take_whole_message((const unsigned char *)data.buf, data.len, masked, limit, &message, &used);
    if (taken == 1 && used != data.len) {
        /* A whole message with more behind it: not "exactly one". */
        taken = 0;
    }
    PyBuffer_Release(&data);
    if (taken < 0) {
        return NULL;
    }
    if (taken == 1) {
        return message;
    }
    Py_XDECREF(message);
    RETURN_NONE;
}

/* read_whole_messages(data, masked, limit) -> (messages, end): the whole
 * messages that follow each other from the start of data, and where the first
 * thing that is not one begins (len(data) when all of it was). A pipelining
 * peer's read becomes one call. */
static PyObject *
read_whole_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    Py_ssize_t position = 0, limit, used;
    int masked, taken;
    PyObject *messages, *message, *result = NULL;

    if (whole_message_arguments("read_whole_messages", args, nargs, &data, &masked, &limit) < 0) {
        return NULL;
    }
    messages = PyList_New(0);
    if (messages == NULL) {
        goto done;
    }
    for (;;) {
        message = NULL;
        taken = take_whole_message((const unsigned char *)data.buf + position, data.len - position, masked, limit,
                                   &message, &used);
        if (taken == 0) {
            break;
        }
        if (taken < 0 || PyList_Append(messages, message) < 0) {
            Py_XDECREF(message);
            Py_DECREF(messages);
            goto done;
        }
        Py_DECREF(message);
        position += used;
    }
    result = Py_BuildValue("(Nn)", messages, position);
done:
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"read_frame_header", (PyCFunction)(void (*)(void))read_frame_header, METH_FASTCALL,
     "read_frame_header(data, position=0) -> (first, length, mask, header_size) or None."},
    {"write_frame", (PyCFunction)(void (*)(void))write_frame, METH_FASTCALL,
     "write_frame(first, payload, mask=None) -> bytes: one frame, header and (masked) payload."},
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask, offset=0) -> bytes: XOR data with the repeated 4-byte mask."},
    {"masked_frame", (PyCFunction)(void (*)(void))masked_frame, METH_FASTCALL,
     "masked_frame(prefix, data, mask) -> bytes: prefix followed by data XOR the repeated mask."},
    {"read_whole_message", (PyCFunction)(void (*)(void))read_whole_message, METH_FASTCALL,
     "read_whole_message(data, masked, limit) -> bytes, str or None: data's payload if it is one whole message."},
    {"read_whole_messages", (PyCFunction)(void (*)(void))read_whole_messages, METH_FASTCALL,
     "read_whole_messages(data, masked, limit) -> (messages, end): the whole messages at data's start."},
    {"unmask_utf8", (PyCFunction)(void (*)(void))unmask_utf8, METH_FASTCALL,
     "unmask_utf8(data, start, end, mask) -> str: data[start:end] unmasked and decoded as UTF-8."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "wsproto_core._speedups", NULL, 0, speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
#ifdef HAVE_AVX2_COPY
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        xor_into = xor_into_avx2;
    }
#endif
    PyObject *module = PyModule_Create(&speedups_module);
    PyObject *payload_buffer_type;
    if (module == NULL) {
        return NULL;
    }
    payload_buffer_type = PyType_FromSpec(&payload_buffer_spec);
    if (payload_buffer_type == NULL || PyModule_AddObject(module, "PayloadBuffer", payload_buffer_type) < 0) {
        Py_XDECREF(payload_buffer_type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
