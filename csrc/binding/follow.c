/* FollowReader: Follow TCP Stream over a whole capture (csrc/core/follow.c),
 * read in batches without the GIL; pcapflow/follow.py builds the
 * conversations from what each batch gives. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "binding.h"

/* A batch ends after this many frames, or once its records hold this many
 * bytes: the streaming form's memory stays near it. */
enum { BATCH_FRAMES = 65536, STEP_FRAMES = 256 };
#define BATCH_BYTES ((size_t)4 << 20)

struct pending_record {
    uint64_t stream;
    int64_t frame, seconds;
    uint32_t nanoseconds, missing;
    size_t offset, length;
    int node;
};

struct pending_stream {
    uint64_t stream;
    struct flow_key key;
    int is_nodes; /* 0: the stream took its number; 1: its node 0 is key's sender */
};

/* What a stream's frames were, kept when asked (follow(); not the streaming form). */
struct stream_frames {
    struct frame_list frames;
    int64_t first_seconds, last_seconds;
    uint32_t first_nanoseconds, last_nanoseconds;
};

typedef struct {
    PyObject_HEAD
    struct capture *capture;
    struct follow *follow;
    struct input input;
    uint64_t frame_number;
    int open, busy, keep_frames, failed_memory;
    PyThreadState *released;
    /* this batch */
    struct pending_record *records;
    size_t record_count, record_capacity;
    uint8_t *bytes;
    size_t byte_count, byte_capacity;
    struct pending_stream *streams;
    size_t stream_count, stream_capacity;
    /* the whole run, when keep_frames */
    struct stream_frames *frames;
    size_t frames_count, frames_capacity;
    struct capture_stats stats;
    /* payload files instead of batches (split=DIR) */
    struct payload_split *split;
    PyObject *split_path; /* bytes: outlives the splitter, which keeps the pointer */
    struct tracer_error split_error;
} FollowReaderObject;


static int on_stream(void *context, uint64_t stream, const struct flow_key *key, int is_nodes)
{
    FollowReaderObject *self = context;
    if (array_reserve(&self->streams, &self->stream_capacity, self->stream_count + 1, sizeof *self->streams, 64) < 0)
        return -1;
    self->streams[self->stream_count++] = (struct pending_stream){stream, *key, is_nodes};
    return 0;
}

static int on_new_stream(void *context, uint64_t stream, const struct flow_key *key)
{
    FollowReaderObject *self = context;
    if (self->keep_frames) {
        if (array_reserve(&self->frames, &self->frames_capacity, stream + 1, sizeof *self->frames, 64) < 0)
            return -1;
        memset(&self->frames[stream], 0, sizeof self->frames[stream]);
        frame_list_init(&self->frames[stream].frames);
        self->frames_count = stream + 1;
    }
    return on_stream(context, stream, key, 0);
}

static int on_nodes(void *context, uint64_t stream, const struct flow_key *key)
{
    return on_stream(context, stream, key, 1);
}

static int on_frame(void *context, uint64_t stream, int64_t frame, int64_t seconds, uint32_t nanoseconds)
{
    FollowReaderObject *self = context;
    if (!self->keep_frames)
        return 0;
    struct stream_frames *s = &self->frames[stream];
    if (s->frames.count == 0) {
        s->first_seconds = seconds;
        s->first_nanoseconds = nanoseconds;
    }
    s->last_seconds = seconds;
    s->last_nanoseconds = nanoseconds;
    return frame_list_add(&s->frames, frame);
}

static int on_record(void *context, const struct follow_record *r)
{
    FollowReaderObject *self = context;
    if (array_reserve(&self->records, &self->record_capacity, self->record_count + 1, sizeof *self->records, 64) < 0 ||
        array_reserve(&self->bytes, &self->byte_capacity, self->byte_count + r->length, 1, 64) < 0)
        return -1;
    memcpy(self->bytes + self->byte_count, r->data, r->length);
    self->records[self->record_count++] = (struct pending_record){
        r->stream, r->frame, r->seconds, r->nanoseconds, r->missing, self->byte_count, r->length, r->node};
    self->byte_count += r->length;
    return 0;
}

static uint64_t size_argument(PyObject *value, const char *name, int *failed)
{
    if (value == Py_None)
        return 0;
    unsigned long long n = PyLong_AsUnsignedLongLong(value);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s must be a positive int (bytes) or None", name);
        *failed = 1;
        return 0;
    }
    return n;
}

static PyObject *follow_new_object(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"fin", "filter", "keep_frames", "max_held_per_stream", "max_held", "split", NULL};
    PyObject *fin, *filter = Py_None, *keep = Py_True, *per_stream = Py_None, *total = Py_None, *split = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOOOO:follow", kwlist, &fin, &filter, &keep, &per_stream,
                                     &total, &split))
        return NULL;
    int failed = 0;
    struct follow_config config = {
        .max_held_per_stream = size_argument(per_stream, "max_held_per_stream", &failed),
        .max_held = failed ? 0 : size_argument(total, "max_held", &failed),
    };
    int keep_frames = PyObject_IsTrue(keep);
    if (failed || keep_frames < 0)
        return NULL;
    const struct module_state *state = PyType_GetModuleState(type);
    if (!state)
        return NULL;
    FollowReaderObject *self = (FollowReaderObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->keep_frames = keep_frames;
    config.callbacks = (struct follow_callbacks){self, on_new_stream, on_nodes, on_frame, on_record};
    if (split != Py_None) {
        if (!PyUnicode_FSConverter(split, &self->split_path))
            goto fail;
        self->split = payload_split_new(PyBytes_AS_STRING(self->split_path), 0, &self->split_error);
        if (!self->split) {
            raise_error(&self->split_error);
            goto fail;
        }
        self->keep_frames = 0;
        config.callbacks = (struct follow_callbacks){self->split, payload_split_stream, payload_split_nodes,
                                                     payload_split_frame, payload_split_record};
    }
    if (!(self->capture = capture_new()) || !(self->follow = follow_new(&config))) {
        PyErr_NoMemory();
        goto fail;
    }
    if (open_capture_input(state, self->capture, fin, filter, &self->input, &self->released) < 0)
        goto fail;
    self->open = 1;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* "addr" as glibc's inet_ntop writes it (tshark's text), and the port. */
static PyObject *endpoint(const uint8_t *address, int family, uint16_t port)
{
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(family == FLOW_FAMILY_IPV4 ? AF_INET : AF_INET6, address, text, sizeof text))
        text[0] = '\0';
    return Py_BuildValue("(sH)", text, port);
}

static PyObject *stream_tuple(const struct pending_stream *s)
{
    PyObject *src = endpoint(s->key.src, s->key.src_family, s->key.src_port);
    PyObject *dst = src ? endpoint(s->key.dst, s->key.dst_family, s->key.dst_port) : NULL;
    PyObject *t = dst ? Py_BuildValue("(KiOO)", (unsigned long long)s->stream, s->is_nodes, src, dst) : NULL;
    Py_XDECREF(src);
    Py_XDECREF(dst);
    return t;
}

static PyObject *batch_lists(FollowReaderObject *self)
{
    PyObject *streams = PyList_New((Py_ssize_t)self->stream_count);
    PyObject *records = streams ? PyList_New((Py_ssize_t)self->record_count) : NULL;
    if (!records)
        goto fail;
    for (size_t i = 0; i < self->stream_count; i++) {
        PyObject *t = stream_tuple(&self->streams[i]);
        if (!t)
            goto fail;
        PyList_SET_ITEM(streams, (Py_ssize_t)i, t);
    }
    for (size_t i = 0; i < self->record_count; i++) {
        const struct pending_record *r = &self->records[i];
        PyObject *t = Py_BuildValue("(KiLLIy#I)", (unsigned long long)r->stream, r->node, (long long)r->frame,
                                    (long long)r->seconds, r->nanoseconds, (const char *)self->bytes + r->offset,
                                    (Py_ssize_t)r->length, r->missing);
        if (!t)
            goto fail;
        PyList_SET_ITEM(records, (Py_ssize_t)i, t);
    }
    self->stream_count = self->record_count = self->byte_count = 0;
    PyObject *pair = PyTuple_Pack(2, streams, records);
    Py_DECREF(streams);
    Py_DECREF(records);
    return pair;
fail:
    Py_XDECREF(streams);
    Py_XDECREF(records);
    return NULL;
}

/* read() -> (streams, records), or None at the end of the capture.
 * streams: (stream, is_nodes, (addr, port), (addr, port)); records: (stream,
 * node, frame, seconds, nanoseconds, data, missing). */
static PyObject *follow_read(PyObject *op, PyObject *unused)
{
    (void)unused;
    FollowReaderObject *self = (FollowReaderObject *)op;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the capture is being read by another thread");
        return NULL;
    }
    if (!self->open)
        Py_RETURN_NONE;
    const struct module_state *state = PyType_GetModuleState(Py_TYPE(op));
    if (!state)
        return NULL;
    enum capture_status status = CAPTURE_MORE;
    self->busy = 1;
    self->released = PyEval_SaveThread();
    /* payload files: the whole capture in one call (the check still runs) */
    uint64_t batch = self->split ? UINT64_MAX : BATCH_FRAMES;
    for (uint64_t read = 0; status == CAPTURE_MORE && read < batch && self->byte_count < BATCH_BYTES;
         read += STEP_FRAMES)
        status = follow_capture(self->capture, self->follow, &self->frame_number, STEP_FRAMES, &self->stats);
    int finished = 0;
    if (self->split && status != CAPTURE_MORE && status != CAPTURE_TRACER_ERROR)
        finished = payload_split_finish(self->split); /* what was read before damage or a stop is written too */
    PyEval_RestoreThread(self->released);
    self->released = NULL;
    self->busy = 0;
    if (status == CAPTURE_TRACER_ERROR || finished < 0) {
        if (self->split && (self->split_error.code || self->split_error.message[0]))
            raise_error(&self->split_error);
        else
            PyErr_NoMemory();
        return NULL;
    }
    if (status == CAPTURE_INTERRUPTED)
        return NULL; /* check_signals_released's exception */
    if (status == CAPTURE_DAMAGED || (status == CAPTURE_DONE && self->input.read_error)) {
        /* what was read before the damage is given first; the error comes next time */
        if (self->record_count || self->stream_count)
            return batch_lists(self);
        raise_input_error(state, &self->input, capture_error(self->capture), self->frame_number + 1,
                          capture_offset(self->capture));
        capture_close(self->capture);
        self->open = 0;
        return NULL;
    }
    if (status == CAPTURE_DONE) {
        capture_close(self->capture);
        self->open = 0;
        if (!self->record_count && !self->stream_count)
            Py_RETURN_NONE;
    }
    return batch_lists(self);
}

static PyObject *follow_frames(PyObject *op, PyObject *arg)
{
    FollowReaderObject *self = (FollowReaderObject *)op;
    unsigned long long stream = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred())
        return NULL;
    if (!self->keep_frames || stream >= self->frames_count) {
        PyErr_SetString(PyExc_IndexError, "no frames kept for that stream");
        return NULL;
    }
    const struct stream_frames *s = &self->frames[stream];
    struct flow_view view = {NULL, 0, 0, s->frames.count, s->frames.first, frame_list_bytes(&s->frames)};
    struct frame_reader reader = frame_reader_start(&view);
    PyObject *numbers = PyTuple_New(s->frames.count);
    for (uint32_t i = 0; numbers && i < s->frames.count; i++) {
        PyObject *n = PyLong_FromLongLong(frame_reader_next(&reader));
        if (!n) {
            Py_CLEAR(numbers);
            break;
        }
        PyTuple_SET_ITEM(numbers, i, n);
    }
    if (!numbers)
        return NULL;
    PyObject *result = Py_BuildValue("(OLILI)", numbers, (long long)s->first_seconds, s->first_nanoseconds,
                                     (long long)s->last_seconds, s->last_nanoseconds);
    Py_DECREF(numbers);
    return result;
}

static PyObject *direction_tuple(FollowReaderObject *self, uint64_t stream, int node,
                                 const struct payload_direction *d)
{
    char name[256];
    PyObject *file = Py_None;
    Py_INCREF(file);
    if (d->records) {
        Py_DECREF(file);
        if (payload_split_file_name(self->split, stream, node, name, sizeof name) < 0 ||
            !(file = PyUnicode_DecodeFSDefault(name)))
            return NULL;
    }
    PyObject *gaps = PyList_New(d->gap_count);
    for (size_t i = 0; gaps && i < d->gap_count; i++) {
        PyObject *gap = Py_BuildValue("(KIL)", (unsigned long long)d->gaps[i].offset, d->gaps[i].length,
                                      (long long)d->gaps[i].frame);
        if (!gap)
            Py_CLEAR(gaps);
        else
            PyList_SET_ITEM(gaps, i, gap);
    }
    PyObject *t = gaps ? Py_BuildValue("(OKKLILIO)", file, (unsigned long long)d->bytes,
                                       (unsigned long long)d->records, (long long)d->first_seconds,
                                       d->first_nanoseconds, (long long)d->last_seconds, d->last_nanoseconds, gaps)
                       : NULL;
    Py_DECREF(file);
    Py_XDECREF(gaps);
    return t;
}

/* split_index() -> [(stream, node 0, node 1, frames, first s, ns, last s, ns, (direction 0, direction 1))],
 * a direction being (file or None, bytes, records, first s, ns, last s, ns, [(offset, length, frame)]). */
static PyObject *follow_split_index(PyObject *op, PyObject *unused)
{
    (void)unused;
    FollowReaderObject *self = (FollowReaderObject *)op;
    if (!self->split) {
        PyErr_SetString(PyExc_ValueError, "not a payload split");
        return NULL;
    }
    uint64_t count = payload_split_count(self->split);
    PyObject *list = PyList_New((Py_ssize_t)count);
    for (uint64_t i = 0; list && i < count; i++) {
        const struct payload_stream *s = &payload_split_streams(self->split)[i];
        struct pending_stream ends = {i, s->key, 1};
        PyObject *nodes = stream_tuple(&ends);
        PyObject *d0 = nodes ? direction_tuple(self, i, 0, &s->directions[0]) : NULL;
        PyObject *d1 = d0 ? direction_tuple(self, i, 1, &s->directions[1]) : NULL;
        PyObject *t = d1 ? Py_BuildValue("(KOOKLILI(OO))", (unsigned long long)i, PyTuple_GET_ITEM(nodes, 2),
                                         PyTuple_GET_ITEM(nodes, 3), (unsigned long long)s->frames,
                                         (long long)s->first_seconds, s->first_nanoseconds,
                                         (long long)s->last_seconds, s->last_nanoseconds, d0, d1)
                         : NULL;
        Py_XDECREF(nodes);
        Py_XDECREF(d0);
        Py_XDECREF(d1);
        if (!t)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

static PyObject *follow_statistics(PyObject *op, PyObject *unused)
{
    (void)unused;
    FollowReaderObject *self = (FollowReaderObject *)op;
    struct follow_stats f = follow_stats(self->follow);
    const struct capture_stats *c = &self->stats;
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsK}", "frames", c->frames, "tcp_frames", c->tcp_frames,
                         "truncated", c->truncated, "filtered_out", c->filtered_out, "streams", f.streams,
                         "records", f.records, "gap_records", f.gap_records, "bytes", f.bytes, "held_bytes",
                         f.held_bytes, "peak_held_bytes", f.peak_held_bytes, "dropped_segments", f.dropped_segments,
                         "dropped_bytes", f.dropped_bytes, "fragments", f.fragments, "reassembled", f.reassembled,
                         "fragments_dropped", f.fragments_dropped, "conversation_bytes",
                         (unsigned long long)follow_conversation_bytes(), "held_segment_cost",
                         (unsigned long long)FOLLOW_HELD_SEGMENT_COST);
}

static PyObject *follow_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    FollowReaderObject *self = (FollowReaderObject *)op;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the capture is being read by another thread");
        return NULL;
    }
    if (self->open)
        capture_close(self->capture);
    self->open = 0;
    Py_RETURN_NONE;
}

static void follow_dealloc(PyObject *op)
{
    FollowReaderObject *self = (FollowReaderObject *)op;
    capture_delete(self->capture);
    follow_delete(self->follow);
    payload_split_delete(self->split);
    Py_XDECREF(self->split_path);
    input_clear(&self->input);
    for (size_t i = 0; i < self->frames_count; i++)
        frame_list_free(&self->frames[i].frames);
    free(self->frames);
    free(self->records);
    free(self->bytes);
    free(self->streams);
    PyTypeObject *type = Py_TYPE(op);
    type->tp_free(op);
    Py_DECREF(type);
}

/* nodes(stream) -> ((addr, port) of node 0, (addr, port) of node 1) as
 * they stand now, or None while the stream has none. */
static PyObject *follow_nodes(PyObject *op, PyObject *arg)
{
    FollowReaderObject *self = (FollowReaderObject *)op;
    unsigned long long stream = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred())
        return NULL;
    struct flow_key key;
    int found = follow_stream_nodes(self->follow, stream, &key);
    if (found < 0) {
        PyErr_SetString(PyExc_IndexError, "no such stream");
        return NULL;
    }
    if (!found)
        Py_RETURN_NONE;
    PyObject *src = endpoint(key.src, key.src_family, key.src_port);
    PyObject *dst = src ? endpoint(key.dst, key.dst_family, key.dst_port) : NULL;
    PyObject *pair = dst ? PyTuple_Pack(2, src, dst) : NULL;
    Py_XDECREF(src);
    Py_XDECREF(dst);
    return pair;
}

static PyMethodDef follow_methods[] = {
    {"read", follow_read, METH_NOARGS, "The next batch: (streams, records), or None at the end."},
    {"frames", follow_frames, METH_O,
     "frames(stream) -> (frame numbers, first seconds, first nanoseconds, last seconds, last nanoseconds)."},
    {"stats", follow_statistics, METH_NOARGS, "Counters of the run so far."},
    {"nodes", follow_nodes, METH_O, "nodes(stream) -> ((addr, port), (addr, port)) of node 0 and node 1, or None."},
    {"split_index", follow_split_index, METH_NOARGS, "What the payload split wrote, stream by stream."},
    {"close", follow_close, METH_NOARGS, "Close the capture."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot follow_slots[] = {
    {Py_tp_doc, "FollowReader(fin, filter=None, keep_frames=True, max_held_per_stream=None, max_held=None): "
                "Follow TCP Stream over a capture, batch by batch (see pcapflow.follow)."},
    {Py_tp_new, follow_new_object},
    {Py_tp_dealloc, follow_dealloc},
    {Py_tp_methods, follow_methods},
    {0, NULL},
};

static PyType_Spec follow_spec = {
    .name = "pcapflow._core.FollowReader",
    .basicsize = sizeof(FollowReaderObject),
    .flags = TYPE_FLAGS,
    .slots = follow_slots,
};

int follow_reader_type_add(PyObject *module)
{
    PyTypeObject *type = add_type(module, &follow_spec, NULL);
    Py_XDECREF(type);
    return type ? 0 : -1;
}
