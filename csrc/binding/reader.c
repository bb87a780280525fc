/* CaptureReader: the TCP frames of a capture as pcapflow Packets, for users
 * who keep their own per-packet logic in Python (pcapflow.packets()). */
#include <stdio.h>
#include <string.h>

#include "binding.h"

typedef struct {
    PyObject_HEAD
    struct capture *capture;
    int open;
    uint64_t frame_number;
    struct input input;
    PyObject *addresses; /* dict: family byte + address bytes -> the one ipaddress object for it */
    PyThreadState *released; /* while the GIL is released (opening, reading), else NULL */
    int busy; /* a thread is reading: others are refused, not let in while the GIL is released */
} CaptureReaderObject;

static PyObject *reader_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"fin", "filter", "tunnels", NULL};
    PyObject *fin, *filter = Py_None, *tunnels_arg = Py_False;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:packets", kwlist, &fin, &filter, &tunnels_arg))
        return NULL;
    int tunnels = PyObject_IsTrue(tunnels_arg);
    if (tunnels < 0)
        return NULL;
    /* the type cannot be subclassed: it is the module's own */
    const struct module_state *state = PyType_GetModuleState(type);
    if (!state)
        return NULL;
    CaptureReaderObject *self = (CaptureReaderObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    if (!(self->addresses = PyDict_New()))
        goto fail;
    if (!(self->capture = capture_new())) {
        PyErr_NoMemory();
        goto fail;
    }
    /* the core runs check_signals_released while it waits for input (a pipe)
     * and when a read is interrupted: Python's signal handlers run, and a
     * KeyboardInterrupt stops the reading */
    if (open_capture_input(state, self->capture, fin, filter, &self->input, &self->released) < 0)
        goto fail;
    self->open = 1;
    capture_set_decode_options(self->capture, tunnels ? DECODE_TUNNELS : 0);
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static PyObject *new_address(const struct module_state *state, const uint8_t *bytes, int family)
{
    if (family == FLOW_FAMILY_IPV4) {
        unsigned long value = (unsigned long)bytes[0] << 24 | (unsigned long)bytes[1] << 16 |
                              (unsigned long)bytes[2] << 8 | bytes[3];
        PyObject *number = PyLong_FromUnsignedLong(value);
        PyObject *address = number ? PyObject_CallOneArg(state->ipv4_type, number) : NULL;
        Py_XDECREF(number);
        return address;
    }
    PyObject *packed = PyBytes_FromStringAndSize((const char *)bytes, 16);
    PyObject *address = packed ? PyObject_CallOneArg(state->ipv6_type, packed) : NULL;
    Py_XDECREF(packed);
    return address;
}

/* The address as an ipaddress object, one object per address: making one
 * costs several times what the rest of a packet does, and a tracer converts a
 * shared object once. A few thousand are kept (a scan must not fill memory). */
static PyObject *address_object(const struct module_state *state, CaptureReaderObject *self, const uint8_t *bytes,
                                int family)
{
    char key[17];
    size_t size = family == FLOW_FAMILY_IPV4 ? 4 : 16;
    key[0] = (char)family;
    memcpy(key + 1, bytes, size);
    PyObject *name = PyBytes_FromStringAndSize(key, (Py_ssize_t)size + 1);
    if (!name)
        return NULL;
    PyObject *address = PyDict_GetItemWithError(self->addresses, name);
    if (address || PyErr_Occurred()) {
        Py_DECREF(name);
        return Py_XNewRef(address);
    }
    if (PyDict_GET_SIZE(self->addresses) >= 4096)
        PyDict_Clear(self->addresses);
    address = new_address(state, bytes, family);
    if (address && PyDict_SetItem(self->addresses, name, address) < 0)
        Py_CLEAR(address);
    Py_DECREF(name);
    return address;
}

/* A Packet with pcapkit's fields; the frame is a dict shaped like pcapkit's
 * frame info: packet bytes, frame_info and the exact time_epoch (a Decimal,
 * from which the writer knows that ts_usec counts nanoseconds). */
static PyObject *make_packet(const struct module_state *state, CaptureReaderObject *self,
                             const struct capture_frame *captured)
{
    int64_t seconds = captured->seconds;
    uint64_t nanoseconds = captured->nanoseconds;
    const struct decoded_frame *decoded = &captured->decoded;
    /* a sub-second field past a second (a damaged capture) carries, as the
     * decimal sum would; a pcapng time may lie before 1970 (if_tsoffset) */
    __int128 total = (__int128)seconds * 1000000000 + (__int128)nanoseconds;
    unsigned __int128 magnitude = (unsigned __int128)(total < 0 ? -total : total);
    char epoch_text[48];
    snprintf(epoch_text, sizeof epoch_text, "%s%llu.%09llu", total < 0 ? "-" : "",
             (unsigned long long)(magnitude / 1000000000u), (unsigned long long)(magnitude % 1000000000u));
    PyObject *epoch_str = PyUnicode_FromString(epoch_text);
    PyObject *epoch = epoch_str ? PyObject_CallOneArg(state->decimal_type, epoch_str) : NULL;
    PyObject *timestamp = epoch ? PyFloat_FromString(epoch_str) : NULL;
    PyObject *frame = timestamp ? Py_BuildValue("{sy#s{sLsKsIsI}sO}", "packet", (const char *)captured->data,
                                                (Py_ssize_t)captured->caplen, "frame_info", "ts_sec", (long long)seconds,
                                                "ts_usec", (unsigned long long)nanoseconds, "incl_len", captured->caplen, "orig_len",
                                                captured->len, "time_epoch", epoch)
                                : NULL;
    PyObject *src = frame ? address_object(state, self, decoded->key.src, decoded->key.src_family) : NULL;
    PyObject *dst = src ? address_object(state, self, decoded->key.dst, decoded->key.dst_family) : NULL;
    PyObject *packet = NULL;
    if (dst) {
        PyObject *args = Py_BuildValue("(IKOOOOOHHO)", captured->linktype, (unsigned long long)self->frame_number,
                                       frame, (decoded->tcp_flags & TCP_FLAG_SYN) ? Py_True : Py_False,
                                       (decoded->tcp_flags & TCP_FLAG_FIN) ? Py_True : Py_False, src, dst,
                                       decoded->key.src_port, decoded->key.dst_port, timestamp);
        packet = args ? PyObject_Call((PyObject *)state->packet_type, args, NULL) : NULL;
        Py_XDECREF(args);
    }
    Py_XDECREF(epoch_str);
    Py_XDECREF(epoch);
    Py_XDECREF(timestamp);
    Py_XDECREF(frame);
    Py_XDECREF(src);
    Py_XDECREF(dst);
    return packet;
}

static int refuse_busy(CaptureReaderObject *self)
{
    if (!self->busy)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "the capture is being read by another thread");
    return -1;
}

static PyObject *reader_next(PyObject *op)
{
    CaptureReaderObject *self = (CaptureReaderObject *)op;
    if (!self->open)
        return NULL;
    if (refuse_busy(self) < 0)
        return NULL;
    const struct module_state *state = PyType_GetModuleState(Py_TYPE(op));
    if (!state)
        return NULL;
    struct capture_frame frame;
    struct capture_stats uncounted = {0}; /* packets() reports no counters */
    /* without the GIL: a pipe may be fed by another Python thread, which
     * needs it to write (check_signals_released takes it back to run signal handlers) */
    self->busy = 1;
    self->released = PyEval_SaveThread();
    enum capture_status status = capture_next(self->capture, &frame, &self->frame_number, &uncounted);
    PyEval_RestoreThread(self->released);
    self->released = NULL;
    self->busy = 0;
    if (status == CAPTURE_FRAME)
        return make_packet(state, self, &frame);
    /* CAPTURE_INTERRUPTED: check_signals_released's exception stands; a frame begun is
     * lost, so no more are read */
    if (status == CAPTURE_DAMAGED || (status == CAPTURE_DONE && self->input.read_error))
        raise_input_error(state, &self->input, capture_error(self->capture), self->frame_number + 1,
                          capture_offset(self->capture));
    capture_close(self->capture);
    self->open = 0;
    return NULL;
}

static PyObject *reader_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    CaptureReaderObject *self = (CaptureReaderObject *)op;
    if (refuse_busy(self) < 0)
        return NULL;
    if (self->open)
        capture_close(self->capture);
    self->open = 0;
    Py_RETURN_NONE;
}

static PyObject *reader_linktype(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(capture_linktype(((CaptureReaderObject *)op)->capture));
}

static void reader_dealloc(PyObject *op)
{
    CaptureReaderObject *self = (CaptureReaderObject *)op;
    capture_delete(self->capture); /* closes it if open */
    input_clear(&self->input);
    Py_XDECREF(self->addresses);
    PyTypeObject *type = Py_TYPE(op);
    type->tp_free(op);
    Py_DECREF(type);
}

static PyObject *reader_enter(PyObject *op, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(op);
}

static PyObject *reader_exit(PyObject *op, PyObject *args)
{
    (void)args;
    PyObject *closed = reader_close(op, NULL);
    if (!closed)
        return NULL;
    Py_DECREF(closed);
    Py_RETURN_FALSE;
}

static PyMethodDef reader_methods[] = {
    {"close", reader_close, METH_NOARGS, "Close the capture."},
    {"__enter__", reader_enter, METH_NOARGS, NULL},
    {"__exit__", reader_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef reader_getset[] = {
    {"linktype", reader_linktype, NULL, "The capture's link type (the LINKTYPE_ number files carry; pcapng: the first interface's, each Packet's protocol is its own).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot reader_slots[] = {
    {Py_tp_doc, "CaptureReader(fin, filter=None): iterates over the TCP frames of a capture as Packets."},
    {Py_tp_new, reader_new},
    {Py_tp_dealloc, reader_dealloc},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, reader_next},
    {Py_tp_methods, reader_methods},
    {Py_tp_getset, reader_getset},
    {0, NULL},
};

static PyType_Spec reader_spec = {
    .name = "pcapflow._core.CaptureReader",
    .basicsize = sizeof(CaptureReaderObject),
    .flags = TYPE_FLAGS,
    .slots = reader_slots,
};

int capture_reader_type_add(PyObject *module, struct module_state *state)
{
    state->capture_reader_type = add_type(module, &reader_spec, NULL);
    return state->capture_reader_type ? 0 : -1;
}
