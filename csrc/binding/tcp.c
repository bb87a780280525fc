/* TCPBase: the flow tracer type. pcapflow.TCP (Python) derives from it and
 * adds pcapkit's class-level registries; everything per packet is here. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"

/* ---- flows' Python objects: the carried data is the label str (it becomes
 * the closed flow's Index label), the open data the flow's dumper ---- */

/* A label as a str: labels are ASCII (addresses, digits and [A-Za-z.+-]). */
static PyObject *label_str(const char *label, uint32_t length)
{
    PyObject *text = PyUnicode_New(length, 127);
    if (text)
        memcpy(PyUnicode_DATA(text), label, length);
    return text;
}

/* Where an open flow keeps its label str and its dumper (the caller's data). */
static PyObject **flow_label_slot(TCPObject *self, uint32_t slot)
{
    return (PyObject **)tracer_carried(self->tracer, slot);
}
static PyObject **flow_dumper_slot(TCPObject *self, uint32_t slot)
{
    return (PyObject **)tracer_open_data(self->tracer, slot);
}

/* The flow's label as a str (borrowed), made on first use: flows opened by
 * the native capture loop have none until Python asks. */
static PyObject *flow_label(TCPObject *self, uint32_t slot)
{
    PyObject **label = flow_label_slot(self, slot);
    if (!*label) {
        struct flow_view view = tracer_open_view(self->tracer, slot);
        *label = label_str(view.label, view.label_length);
    }
    return *label;
}

static void forget_flow_objects(TCPObject *self, uint32_t slot)
{
    Py_CLEAR(*flow_label_slot(self, slot));
    Py_CLEAR(*flow_dumper_slot(self, slot));
}

/* "{fout}/{label}[_{n}]{ext}", or None when the tracer writes no files. */
static PyObject *output_path(TCPObject *self, const char *label, uint32_t use_number)
{
    if (self->mode == OUTPUT_NONE)
        Py_RETURN_NONE;
    if (use_number > 1)
        return PyUnicode_FromFormat("%U/%s_%u%U", self->root, label, use_number, self->extension);
    return PyUnicode_FromFormat("%U/%s%U", self->root, label, self->extension);
}

/* The Index of a flow; text is its label str if there is one already (a
 * new reference, which is consumed), or NULL. */
static PyObject *make_index(TCPObject *self, PyObject *text, const struct flow_view *flow)
{
    PyObject *fpout = output_path(self, flow->label, flow->use_number);
    PyObject *index = fpout ? frame_numbers_new(flow) : NULL; /* a tuple when first read */
    if (!text && index)
        text = label_str(flow->label, flow->label_length);
    /* untracked: it holds only strings, None and a tuple of ints */
    PyObject *result = index && text ? index_new(self->state, fpout, index, text) : NULL;
    Py_XDECREF(fpout);
    Py_XDECREF(index);
    Py_XDECREF(text);
    return result;
}

/* Builds the Index objects of closed flows that have none yet. */
static int build_closed_indexes(TCPObject *self)
{
    for (size_t i = (size_t)PyList_GET_SIZE(self->closed_indexes); i < tracer_closed_count(self->tracer); i++) {
        PyObject **carried = (PyObject **)tracer_closed_carried(self->tracer, i);
        PyObject *text = *carried; /* the str the flow had, handed to its Index */
        *carried = NULL;
        struct flow_view view = tracer_closed_view(self->tracer, i);
        PyObject *index = make_index(self, text, &view);
        if (!index || PyList_Append(self->closed_indexes, index) < 0) {
            Py_XDECREF(index);
            return -1;
        }
        Py_DECREF(index);
    }
    return 0;
}

/* ---- one packet ---- */

/* This process's id, kept current across fork() (getpid() is a system call,
 * too slow for every method call). */
static pid_t this_process;
static void forked_child(void) { this_process = getpid(); }

/* Another thread owns the tracer: wait (without the GIL) until it is free.
 * Two threads sharing a tracer is rare, so a sleep that grows to 5 ms is
 * enough; a signal (KeyboardInterrupt) ends the wait. A capture is not
 * waited for: it may be read from a pipe that this very thread feeds. */
static int wait_for_turn(TCPObject *self)
{
    struct timespec pause = {0, 100 * 1000};
    while (self->owner) {
        if (self->owner_process != this_process) {
            /* forked while a thread of the parent used it: that thread is not here */
            self->owner = NULL;
            break;
        }
        if (self->busy) {
            PyErr_SetString(PyExc_RuntimeError, "this TCP is tracing a capture in another thread");
            return -1;
        }
        Py_BEGIN_ALLOW_THREADS
        nanosleep(&pause, NULL);
        Py_END_ALLOW_THREADS
        if (PyErr_CheckSignals() < 0)
            return -1;
        if (pause.tv_nsec < 5 * 1000 * 1000)
            pause.tv_nsec *= 2;
    }
    return 0;
}

/* Takes the tracer for the calling thread, whether or not __init__ ran. */
static int claim(TCPObject *self, const char *what)
{
    PyThreadState *me = PyThreadState_Get(); /* cheaper than the thread's ident, as unique */
    if (self->owner == me) {
        if (self->callback_depth != self->depth) {
            PyErr_Format(PyExc_RuntimeError,
                         "TCP.%s() called from code this tracer is running (a dumper's constructor, a packet "
                         "field's conversion, a finalizer); only FIN callbacks may use the tracer", what);
            return 0;
        }
        self->depth++;
    } else {
        if (self->owner && wait_for_turn(self) < 0)
            return 0;
        self->owner = me;
        self->owner_process = this_process;
        self->depth = 1;
    }
    return 1;
}

int tcp_enter(TCPObject *self, const char *what)
{
    if (!claim(self, what))
        return 0;
    if (!self->ready) {
        tcp_leave(self);
        PyErr_SetString(PyExc_RuntimeError, "TCP.__init__() was not called");
        return 0;
    }
    return 1;
}

void tcp_leave(TCPObject *self)
{
    if (--self->depth == 0)
        self->owner = NULL;
}

/* The fields trace() reads from every packet. A complete pcapflow Packet
 * lends its slots; anything else (pcapkit's Packet, a mapping) is read
 * field by field into new references. */
enum { TRACED_FIELDS = 8 };
static const int traced_positions[TRACED_FIELDS] = {
    PACKET_SRC, PACKET_DST, PACKET_SRCPORT, PACKET_DSTPORT, PACKET_INDEX, PACKET_FIN,
    PACKET_SYN, PACKET_FRAME, /* unread by pcapkit while tracing, but a packet without them is not a packet */
};

struct traced_fields {
    PyObject *const *value; /* by Packet position: a pcapflow Packet's own slots, or owned */
    PyObject *owned[INFO_MAX_FIELDS];
    int is_owned;
};

/* pcapkit's Packet class, recognised by name on first sight (and kept in
 * the module state): its fields live in the instance __dict__ and are read
 * from there directly. */
static int is_pcapkit_packet(struct module_state *state, PyObject *packet)
{
    PyTypeObject *type = Py_TYPE(packet);
    if ((PyObject *)type == state->pcapkit_packet_type)
        return 1;
    if (state->pcapkit_packet_type || strcmp(type->tp_name, "Packet") != 0 || !(type->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return 0;
    PyObject *module = PyObject_GetAttrString((PyObject *)type, "__module__");
    int match = module && PyUnicode_Check(module) &&
                PyUnicode_CompareWithASCIIString(module, "pcapkit.foundation.traceflow.data.tcp") == 0;
    Py_XDECREF(module);
    PyErr_Clear();
    if (match)
        state->pcapkit_packet_type = Py_NewRef((PyObject *)type);
    return match;
}

static int fetch_fields(TCPObject *self, PyObject *packet, struct traced_fields *fields)
{
    if (Py_IS_TYPE(packet, self->packet_type)) {
        PyObject *const *v = ((InfoObject *)packet)->values;
        /* the TRACED_FIELDS, spelled out: this runs for every packet */
        if (v[PACKET_SRC] && v[PACKET_DST] && v[PACKET_SRCPORT] && v[PACKET_DSTPORT] && v[PACKET_INDEX] &&
            v[PACKET_FIN] && v[PACKET_SYN] && v[PACKET_FRAME]) {
            fields->value = v;
            fields->is_owned = 0;
            return 0;
        }
    }
    memset(fields->owned, 0, sizeof fields->owned);
    fields->value = fields->owned;
    fields->is_owned = 1;
    int pcapkit_packet = is_pcapkit_packet(self->state, packet);
    PyObject *dict = pcapkit_packet ? PyObject_GenericGetDict(packet, NULL) : NULL;
    /* pcapkit's Packet() cannot be made without syn and frame: only the
     * fields the tracer reads are looked up */
    int wanted = pcapkit_packet ? TRACED_FIELDS - 2 : TRACED_FIELDS;
    for (int i = 0; i < wanted; i++) {
        int position = traced_positions[i];
        PyObject *value = dict ? PyDict_GetItemWithError(dict, packet_field_name(position)) : NULL;
        fields->owned[position] = value ? Py_NewRef(value) : PyErr_Occurred() ? NULL : packet_field(packet, position);
        if (!fields->owned[position]) {
            Py_XDECREF(dict);
            return -1;
        }
    }
    Py_XDECREF(dict);
    return 0;
}

static void release_fields(struct traced_fields *fields)
{
    if (fields->is_owned)
        for (int i = 0; i < INFO_MAX_FIELDS; i++)
            Py_CLEAR(fields->owned[i]);
}

/* Converts an address field and remembers the object (read_address's slow path). */
static int convert_and_remember(TCPObject *self, PyObject *value, const char *field, uint8_t *family,
                                uint8_t out[16])
{
    if (convert_address(self->state, value, field, family, out) < 0)
        return -1;
    if (Py_IS_TYPE(value, (PyTypeObject *)self->state->ipv4_type) ||
        Py_IS_TYPE(value, (PyTypeObject *)self->state->ipv6_type) ||
        PyUnicode_CheckExact(value)) {
        struct address_memo *memo = &self->memo[self->memo_next];
        self->memo_next ^= 1;
        Py_XSETREF(memo->object, Py_NewRef(value));
        memo->family = *family;
        memcpy(memo->bytes, out, 16);
    }
    return 0;
}

/* An address field as bytes. Packets from one decoder usually share their
 * address objects (a decoder interns them; a connection's packets carry the
 * same two), and converting an IPv4Address costs more than the rest of the
 * flow lookup, so the last two objects converted are remembered. Only
 * immutable types (ipaddress's own and str) are; the strong reference keeps
 * the object, and so its identity, alive. */
static inline int read_address(TCPObject *self, PyObject *value, const char *field, uint8_t *family, uint8_t out[16])
{
    struct address_memo *memo = self->memo[0].object == value ? &self->memo[0]
                                : self->memo[1].object == value ? &self->memo[1]
                                                                : NULL;
    if (!memo)
        return convert_and_remember(self, value, field, family, out);
    *family = memo->family;
    memcpy(out, memo->bytes, 16);
    return 0;
}

static void forget_addresses(TCPObject *self)
{
    Py_CLEAR(self->memo[0].object);
    Py_CLEAR(self->memo[1].object);
}

static int read_key(TCPObject *self, PyObject *const *value, struct flow_key *key)
{
    flow_key_clear(key);
    if (read_address(self, value[PACKET_SRC], "src", &key->src_family, key->src) < 0 ||
        read_address(self, value[PACKET_DST], "dst", &key->dst_family, key->dst) < 0 ||
        convert_port(value[PACKET_SRCPORT], "srcport", &key->src_port) < 0 ||
        convert_port(value[PACKET_DSTPORT], "dstport", &key->dst_port) < 0)
        return -1;
    return 0;
}

/* dictdumper opens its files with open(), which follows a symbolic link
 * planted at the flow's path and writes into a file planted by another user:
 * create the file here first, as the C writer does (flow_file_create_at:
 * no links, no FIFOs, no one else's file). Returns 0, or -1 with OSError
 * naming the path. */
static int refuse_symlink(PyObject *path)
{
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(path, &encoded))
        return -1;
    int fd = flow_file_create_at(AT_FDCWD, PyBytes_AS_STRING(encoded));
    int code = errno;
    Py_DECREF(encoded);
    if (fd < 0) {
        PyObject *args = Py_BuildValue("(iNO)", code,
                                       PyUnicode_FromFormat("%s: %s", flow_file_open_failure(code), strerror(code)),
                                       path);
        if (args)
            PyErr_SetObject(PyExc_OSError, args);
        Py_XDECREF(args);
        return -1;
    }
    close(fd);
    return 0;
}

/* Whether path is still a regular file and not a symbolic link: 0 (and its
 * size), or -1 with OSError naming the path. */
static int still_regular(PyObject *path, off_t *size)
{
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(path, &encoded))
        return -1;
    struct stat info;
    int status = lstat(PyBytes_AS_STRING(encoded), &info);
    Py_DECREF(encoded);
    *size = status == 0 ? info.st_size : 0;
    if (status == 0 && !S_ISREG(info.st_mode)) {
        errno = S_ISLNK(info.st_mode) ? ELOOP : EINVAL;
        status = -1;
    }
    if (status < 0)
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    return status;
}

/* The last bytes of a file (before a dumper appends to it), so that a
 * failed append can be undone; returns how many were read. */
static ssize_t read_tail(PyObject *path, off_t size, char *tail, size_t capacity)
{
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(path, &encoded))
        return PyErr_Clear(), 0;
    ssize_t length = 0;
    int fd = open(PyBytes_AS_STRING(encoded), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    Py_DECREF(encoded);
    if (fd >= 0) {
        size_t wanted = (size_t)size < capacity ? (size_t)size : capacity;
        length = pread(fd, tail, wanted, size - (off_t)wanted);
        close(fd);
    }
    return length < 0 ? 0 : length;
}

/* Puts a file back as it was before a failed append: its old size and its
 * old last bytes. Best effort: the error being raised names the file. */
static void restore_tail(PyObject *path, off_t size, const char *tail, ssize_t length)
{
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(path, &encoded))
        return;
    int fd = open(PyBytes_AS_STRING(encoded), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    Py_DECREF(encoded);
    if (fd < 0)
        return;
    if (ftruncate(fd, size) == 0 && length > 0 && pwrite(fd, tail, (size_t)length, size - length) != length) {
        /* nothing more to do */
    }
    close(fd);
}

/* What a packet's new flow is opened with: asked for by tracer_trace() only
 * when the packet opens one. */
struct packet_origin {
    TCPObject *self;
    PyObject *packet;
    PyObject *timestamp, *protocol; /* owned once asked for */
};

static int describe_packet_flow(void *context, char *text, size_t *length, uint32_t *linktype)
{
    struct packet_origin *origin = context;
    origin->timestamp = packet_field(origin->packet, PACKET_TIMESTAMP);
    Py_ssize_t written = origin->timestamp ? timestamp_text(origin->self->state, origin->timestamp, text) : -1;
    origin->protocol = written >= 0 ? packet_field(origin->packet, PACKET_PROTOCOL) : NULL;
    *length = (size_t)written;
    *linktype = 0;
    if (!origin->protocol)
        return -1;
    return origin->self->mode == OUTPUT_PCAP ? convert_linktype(origin->protocol, linktype) : 0;
}

/* Raises what tracer_trace() failed on, naming the timestamp where the
 * label is at fault (the flow could not be opened). */
static void raise_trace_failure(TCPObject *self, const struct packet_origin *origin, int opened)
{
    const struct tracer_error *error = tracer_last_error(self->tracer);
    int label_failed = origin->timestamp && !opened;
    if (error->code == ENAMETOOLONG && label_failed) {
        PyErr_Format(PyExc_ValueError,
                     "flow label %s is too long for a file name (%d bytes at most, extension %R included); "
                     "field 'timestamp' is %R",
                     error->path, NAME_MAX, self->extension, origin->timestamp);
        return;
    }
    raise_error(error);
    if (!error->code && label_failed && PyErr_ExceptionMatches(PyExc_ValueError))
        PyErr_Format(PyExc_ValueError, "field 'timestamp': str(%R) cannot be part of a flow label", origin->timestamp);
}

/* A flow the packet opened gets its Python objects: its label str and, for
 * the dictdumper formats, its dumper. Returns 0, or -1 after forgetting the
 * flow again (it cannot be used). */
static int attach_flow_objects(TCPObject *self, uint32_t slot, PyObject *protocol)
{
    struct flow_view view = tracer_open_view(self->tracer, slot);
    PyObject *label = label_str(view.label, view.label_length);
    *flow_label_slot(self, slot) = label;
    if (label && self->mode == OUTPUT_DUMPER) {
        PyObject *path = output_path(self, view.label, view.use_number);
        if (path && refuse_symlink(path) < 0)
            Py_CLEAR(path);
        PyObject *kwargs = path ? Py_BuildValue("{sOsOsO}", "protocol", protocol, "byteorder", self->byteorder,
                                                "nanosecond", self->nanosecond ? Py_True : Py_False)
                                : NULL;
        PyObject *args = kwargs ? PyTuple_Pack(1, path) : NULL;
        /* Python code runs here: the tracer is owned (tcp_enter), so the
         * slot stays this flow's, and nothing of the table is held across */
        PyObject *dumper = args ? PyObject_Call(self->dumper_class, args, kwargs) : NULL;
        *flow_dumper_slot(self, slot) = dumper;
        Py_XDECREF(args);
        Py_XDECREF(kwargs);
        Py_XDECREF(path);
        label = dumper;
    }
    if (!label) {
        forget_flow_objects(self, slot);
        tracer_discard_flow(self->tracer, slot);
        return -1;
    }
    return 0;
}

/* Forgets what trace_packet() did for a packet whose frame could not be
 * written: its frame number, and the flow if the packet opened it, so that
 * the index lists exactly the frames the files hold. */
static void untrace(TCPObject *self, uint32_t slot, int opened)
{
    if (opened) {
        forget_flow_objects(self, slot);
        tracer_discard_flow(self->tracer, slot);
    } else {
        tracer_forget_last_frame(self->tracer, slot);
    }
}

/* A packet's RST, for a bidirectional tracer: pcapkit's Packet has no field
 * for it (its tracer closes flows on FIN alone), so a packet tells it with an
 * optional field 'rst' (an attribute or a key, as Packet.from_dict() keeps
 * it); without one it carries no RST. Returns 0 or 1, or -1 with an
 * exception. */
static int packet_rst(TCPObject *self, PyObject *packet)
{
    PyObject *value = get_optional_field(packet, self->state->str_rst);
    if (!value)
        return PyErr_Occurred() ? -1 : 0;
    int rst = PyObject_IsTrue(value);
    Py_DECREF(value);
    return rst;
}

/* Hands a packet to the core's per-frame entry point: finds or opens its
 * flow, records its frame number and, given a record, writes it and closes
 * the flow when the packet ends it (without a record the caller writes, and
 * closes when outcome->ends). *outcome says what happened. Returns 0; 1
 * when the core closed the flow but its file's last write failed
 * (tr->error); or -1 with an exception and nothing of the packet left. */
static int trace_packet(TCPObject *self, PyObject *packet, const struct pcap_record *record, const uint8_t *data,
                        struct trace_outcome *outcome)
{
    Py_CLEAR(self->submitted);
    struct traced_fields fields;
    struct traced_frame frame; /* its key is cleared by read_key(); no second clearing per packet */
    struct packet_origin origin = {self, packet, NULL, NULL};
    int status = -1, fin, rst = 0;
    if (fetch_fields(self, packet, &fields) < 0 || read_key(self, fields.value, &frame.key) < 0 ||
        convert_frame_number(fields.value[PACKET_INDEX], &frame.number) < 0 ||
        (fin = PyObject_IsTrue(fields.value[PACKET_FIN])) < 0 ||
        (self->bidirectional && (rst = packet_rst(self, packet)) < 0))
        goto done;
    frame.tcp_flags = (uint8_t)((fin ? TCP_FLAG_FIN : 0) | (rst ? TCP_FLAG_RST : 0));
    frame.record = record;
    frame.data = data;
    frame.linktype = 0; /* each packet's protocol is its flow's: nothing to check */
    enum trace_status traced = tracer_trace(self->tracer, &frame, describe_packet_flow, &origin, outcome);
    if (traced == TRACE_OK || traced == TRACE_CLOSE_WRITE_FAILED) {
        status = traced == TRACE_CLOSE_WRITE_FAILED;
        if (outcome->opened && outcome->slot != TRACER_NO_SLOT &&
            attach_flow_objects(self, outcome->slot, origin.protocol) < 0)
            status = -1;
    } else if (traced != TRACE_DESCRIBE_FAILED) {
        /* TRACE_WRITE_PENDING: the frame stays queued, and in the index */
        raise_trace_failure(self, &origin, outcome->opened);
    }
done:
    Py_XDECREF(origin.timestamp);
    Py_XDECREF(origin.protocol);
    release_fields(&fields);
    return status;
}

/* The class's __callback_fn__ (a new reference, or NULL when it has none),
 * looked up at every FIN: a class attribute lookup is served from CPython's
 * type cache, and registering or replacing the list is seen at once. */
static PyObject *class_callbacks(TCPObject *self)
{
    PyObject *callbacks = PyObject_GetAttr((PyObject *)Py_TYPE(self), self->state->str_callback_fn);
    if (!callbacks)
        PyErr_Clear();
    return callbacks;
}

/* FIN: the flow's file is complete; record it and tell the callbacks. */
static int after_close(TCPObject *self, long position, int write_failed);

static int close_flow(TCPObject *self, uint32_t slot)
{
    /* the label str goes with the flow to the closed list, for its Index */
    Py_CLEAR(*flow_dumper_slot(self, slot));
    int write_failed;
    long position = tracer_close_flow(self->tracer, slot, &write_failed);
    if (position < 0) {
        raise_tracer_error(self->tracer);
        return -1;
    }
    return after_close(self, position, write_failed);
}

/* A flow was closed (closed flow `position`): tell the callbacks, then
 * raise the write error of its file, if any. */
static int after_close(TCPObject *self, long position, int write_failed)
{
    /* callbacks may trace and overwrite the error; it is 4 KiB, so copied only when there is one */
    struct tracer_error *write_error = NULL;
    if (write_failed && !(write_error = PyMem_Malloc(sizeof *write_error))) {
        PyErr_NoMemory();
        return -1;
    }
    if (write_error)
        *write_error = *tracer_last_error(self->tracer);

    PyObject *callbacks = class_callbacks(self);
    int status = 0;
    if (callbacks && PyList_Check(callbacks) && PyList_GET_SIZE(callbacks) > 0) {
        status = build_closed_indexes(self);
        /* owned: a callback may call __init__ again, which drops the list */
        PyObject *index = status == 0 ? Py_NewRef(PyList_GET_ITEM(self->closed_indexes, position)) : NULL;
        /* a copy of the list, so a callback may register or remove callbacks */
        PyObject *snapshot = index ? PyList_GetSlice(callbacks, 0, PyList_GET_SIZE(callbacks)) : NULL;
        /* the flow is closed and nothing is held: callbacks may use the tracer */
        int outer_callback_depth = self->callback_depth;
        self->callback_depth = self->depth;
        for (Py_ssize_t i = 0; snapshot && status == 0 && i < PyList_GET_SIZE(snapshot); i++) {
            PyObject *result = PyObject_CallOneArg(PyList_GET_ITEM(snapshot, i), index);
            status = result ? 0 : -1;
            Py_XDECREF(result);
        }
        self->callback_depth = outer_callback_depth;
        if (index && !snapshot)
            status = -1;
        Py_XDECREF(snapshot);
        Py_XDECREF(index);
    }
    Py_XDECREF(callbacks);
    if (status == 0 && write_error) {
        raise_error(write_error);
        status = -1;
    }
    PyMem_Free(write_error);
    return status;
}

/* Hands the frame to the flow's dumper (json, plist, tree and registered formats). */
static int write_frame(TCPObject *self, uint32_t slot, PyObject *packet)
{
    if (self->mode != OUTPUT_DUMPER)
        return 0;
    PyObject *frame = packet_field(packet, PACKET_FRAME);
    PyObject *number = frame ? packet_field(packet, PACKET_INDEX) : NULL;
    PyObject *name = number ? PyUnicode_FromFormat("Frame %S", number) : NULL;
    PyObject *args[] = {NULL, frame, name};
    PyObject *kwnames = name ? Py_BuildValue("(s)", "name") : NULL;
    struct flow_view view = tracer_open_view(self->tracer, slot);
    PyObject *path = kwnames ? output_path(self, view.label, view.use_number) : NULL;
    /* dictdumper reopens the file for every frame: make sure it is still
     * the regular file made for the flow, not a link swapped in since */
    off_t size = 0;
    int regular = path && still_regular(path, &size) == 0;
    /* the text dumpers rewrite the document's closing bytes with each frame */
    char tail[256];
    ssize_t tail_length = regular ? read_tail(path, size, tail, sizeof tail) : 0;
    PyObject *result = regular ? PyObject_Vectorcall(*flow_dumper_slot(self, slot), args + 1,
                                                     1 | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames)
                               : NULL;
    if (!result && regular && PyErr_ExceptionMatches(PyExc_OSError)) {
        /* a write failed half-way (a full disk): cut the file back to what it
         * was, a complete document, and name the file in the error, which
         * dictdumper's errors do not */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        restore_tail(path, size, tail, tail_length);
        PyErr_Clear();
        PyErr_NormalizeException(&type, &value, &traceback);
        PyObject *filename = value ? PyObject_GetAttrString(value, "filename") : NULL;
        if (filename == Py_None && PyObject_SetAttrString(value, "filename", path) < 0)
            PyErr_Clear();
        Py_XDECREF(filename);
        PyErr_Clear();
        PyErr_Restore(type, value, traceback);
    }
    Py_XDECREF(path);
    Py_XDECREF(result);
    Py_XDECREF(kwnames);
    Py_XDECREF(name);
    Py_XDECREF(number);
    Py_XDECREF(frame);
    return result ? 0 : -1;
}

/* ---- methods ---- */

static int parse_packet_and_output(const char *method, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                                   PyObject **packet, int *output)
{
    *output = 0;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs != 1 || nkw > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes one packet argument (and the keyword 'output')", method);
        return -1;
    }
    *packet = args[0];
    if (nkw == 1) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "output") != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", method,
                         PyTuple_GET_ITEM(kwnames, 0));
            return -1;
        }
        if ((*output = PyObject_IsTrue(args[1])) < 0)
            return -1;
    }
    return 0;
}

static PyObject *trace_owned(TCPObject *self, PyObject *packet, int output)
{
    struct trace_outcome traced;
    if (trace_packet(self, packet, NULL, NULL, &traced) < 0)
        return NULL;
    uint32_t slot = traced.slot;
    PyObject *label = flow_label(self, slot);
    if (!label)
        return NULL;
    PyObject *result = !output                    ? Py_NewRef(label)
                       : self->mode == OUTPUT_DUMPER ? Py_NewRef(*flow_dumper_slot(self, slot))
                                                     : flow_writer_new(self, slot);
    if (result && traced.ends && close_flow(self, slot) < 0)
        Py_CLEAR(result);
    return result;
}

static PyObject *tcp_trace(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    TCPObject *self = (TCPObject *)op;
    PyObject *packet;
    int output;
    if (parse_packet_and_output("trace", args, nargs, kwnames, &packet, &output) < 0 || !tcp_enter(self, "trace"))
        return NULL;
    PyObject *result = trace_owned(self, packet, output);
    tcp_leave(self);
    return result;
}

/* Whether the object's class replaces one of TCPBase's methods (a new
 * reference to its attribute is looked up and compared). */
static int overrides(PyObject *op, PyObject *name, PyObject *base_method)
{
    PyObject *method = PyObject_GetAttr((PyObject *)Py_TYPE(op), name);
    if (!method)
        return -1;
    Py_DECREF(method); /* only its identity is compared; the class keeps it alive */
    return method != base_method;
}

static PyObject *dump_owned(TCPObject *self, PyObject *packet);

/* pcapkit's dump(): trace, then write the frame; here the FIN frame is
 * written before the flow closes, so callbacks see a complete file. */
static PyObject *tcp_dump(PyObject *op, PyObject *packet)
{
    TCPObject *self = (TCPObject *)op;
    const struct module_state *state = self->state;
    int overridden = overrides(op, state->str_trace, state->base_trace_method);
    if (overridden < 0)
        return NULL;
    if (overridden) {
        /* a subclass traces its own way: do what pcapkit's dump() does,
         * through the public methods (each takes the tracer itself) */
        PyObject *kwargs = Py_BuildValue("{sO}", "output", Py_True);
        PyObject *trace = kwargs ? PyObject_GetAttr(op, state->str_trace) : NULL;
        PyObject *call_args = trace ? PyTuple_Pack(1, packet) : NULL;
        PyObject *writer = call_args ? PyObject_Call(trace, call_args, kwargs) : NULL;
        Py_XDECREF(kwargs);
        Py_XDECREF(trace);
        Py_XDECREF(call_args);
        if (!writer)
            return NULL;
        PyObject *frame = packet_field(packet, PACKET_FRAME);
        PyObject *number = frame ? packet_field(packet, PACKET_INDEX) : NULL;
        PyObject *frame_args = number ? PyTuple_Pack(1, frame) : NULL;
        PyObject *name = frame_args ? Py_BuildValue("{sN}", "name", PyUnicode_FromFormat("Frame %S", number)) : NULL;
        PyObject *result = name ? PyObject_Call(writer, frame_args, name) : NULL;
        Py_XDECREF(frame);
        Py_XDECREF(number);
        Py_XDECREF(frame_args);
        Py_XDECREF(name);
        Py_DECREF(writer);
        if (!result)
            return NULL;
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    if (!tcp_enter(self, "dump"))
        return NULL;
    PyObject *result = dump_owned(self, packet);
    tcp_leave(self);
    return result;
}

static PyObject *dump_owned(TCPObject *self, PyObject *packet)
{
    struct trace_outcome traced;
    if (self->mode != OUTPUT_PCAP) {
        if (trace_packet(self, packet, NULL, NULL, &traced) < 0)
            return NULL;
        if (write_frame(self, traced.slot, packet) < 0) {
            untrace(self, traced.slot, traced.opened);
            return NULL;
        }
        if (traced.ends && close_flow(self, traced.slot) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    /* read the frame first, so a frame that cannot be written leaves no trace */
    PyObject *frame = packet_field(packet, PACKET_FRAME);
    struct pcap_record record;
    Py_buffer data;
    int status = frame ? convert_frame(self->state, frame, &record, &data) : -1;
    Py_XDECREF(frame);
    if (status < 0)
        return NULL;
    /* the core writes the record and closes the flow on FIN */
    status = trace_packet(self, packet, &record, data.buf, &traced);
    PyBuffer_Release(&data);
    if (status < 0)
        return NULL;
    if (traced.closed >= 0 && traced.closed != TRACER_CLOSED_FORGOTTEN && after_close(self, traced.closed, status) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tcp_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    PyObject *packet;
    static char *kwlist[] = {"packet", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:__call__", kwlist, &packet))
        return NULL;
    const struct module_state *state = ((TCPObject *)op)->state;
    int overridden = overrides(op, state->str_dump, state->base_dump_method);
    if (overridden < 0)
        return NULL;
    return overridden ? PyObject_CallMethodOneArg(op, state->str_dump, packet) : tcp_dump(op, packet);
}

static int flush(TCPObject *self)
{
    if (tracer_flush_all(self->tracer) < 0) {
        raise_tracer_error(self->tracer);
        return -1;
    }
    return 0;
}

/* The Index objects of the open flows (first seen first), then those of
 * the closed flows (closed first first), as a tuple. */
static PyObject *build_index(TCPObject *self)
{
    if (build_closed_indexes(self) < 0)
        return NULL;
    Py_ssize_t closed = PyList_GET_SIZE(self->closed_indexes);
    PyObject *all = PyTuple_New((Py_ssize_t)tracer_open_count(self->tracer) + closed);
    Py_ssize_t n = 0;
    for (uint32_t slot = tracer_first_open(self->tracer); all && slot != TRACER_NO_SLOT;
         slot = tracer_next_open(self->tracer, slot)) {
        struct flow_view view = tracer_open_view(self->tracer, slot);
        PyObject *index = make_index(self, Py_XNewRef(*flow_label_slot(self, slot)), &view);
        if (!index)
            Py_CLEAR(all);
        else
            PyTuple_SET_ITEM(all, n++, index);
    }
    for (Py_ssize_t i = 0; all && i < closed; i++)
        PyTuple_SET_ITEM(all, n++, Py_NewRef(PyList_GET_ITEM(self->closed_indexes, i)));
    return all;
}

/* Building the index makes two objects per flow that the cyclic collector
 * never needs to see (they are untracked as soon as they are made), yet
 * their allocation would start a collection every 700 of them. No Python
 * code runs while it is paused. Returns whether it was enabled. */
static int pause_collector(void)
{
#if PY_VERSION_HEX >= 0x030A0000
    return PyGC_Disable();
#else
    return 0;
#endif
}

static void resume_collector(int was_enabled)
{
#if PY_VERSION_HEX >= 0x030A0000
    if (was_enabled)
        PyGC_Enable();
#else
    (void)was_enabled;
#endif
}

static PyObject *submit_owned(TCPObject *self)
{
    /* written out even when the answer is cached: a flow writer may have
     * added frames since, without changing any flow */
    if (flush(self) < 0)
        return NULL;
    if (self->submitted)
        return Py_NewRef(self->submitted);
    int collector = pause_collector();
    self->submitted = build_index(self);
    resume_collector(collector);
    /* Index objects only (untracked, see make_index): nothing for the
     * collector to find in it, and tens of thousands of items to visit */
    if (self->submitted)
        PyObject_GC_UnTrack(self->submitted);
    return self->submitted ? Py_NewRef(self->submitted) : NULL;
}

static PyObject *tcp_submit(PyObject *op, PyObject *unused)
{
    (void)unused;
    TCPObject *self = (TCPObject *)op;
    if (!tcp_enter(self, "submit"))
        return NULL;
    PyObject *result = submit_owned(self);
    tcp_leave(self);
    return result;
}

static PyObject *tcp_index(PyObject *op, void *closure)
{
    (void)closure;
    TCPObject *self = (TCPObject *)op;
    if (!tcp_enter(self, "index"))
        return NULL;
    PyObject *result = tracer_open_count(self->tracer) > 0 ? submit_owned(self)
                       : build_closed_indexes(self) == 0 ? PyList_AsTuple(self->closed_indexes)
                                                          : NULL;
    tcp_leave(self);
    return result;
}

static PyObject *tcp_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    TCPObject *self = (TCPObject *)op;
    if (!self->ready && !self->owner)
        Py_RETURN_NONE;
    if (!tcp_enter(self, "close"))
        return NULL;
    int status = flush(self);
    tracer_close_files(self->tracer);
    tcp_leave(self);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Drops whatever could not be written and closes the files, so that a tracer
 * given up after an error does not retry (and report again) when collected. */
static PyObject *tcp_abandon(PyObject *op, PyObject *unused)
{
    (void)unused;
    TCPObject *self = (TCPObject *)op;
    if (!self->ready && !self->owner)
        Py_RETURN_NONE;
    if (!tcp_enter(self, "_abandon"))
        return NULL;
    tracer_close_files(self->tracer);
    TRACER_FOR_EACH_OPEN(self->tracer, slot)
        tracer_drop_pending(self->tracer, slot);
    tcp_leave(self);
    Py_RETURN_NONE;
}

/* _claim(fallback, journal): claim mode (see sink_claim), for pcapflow.dask's
 * tasks sharing one output directory; before the first flow. */
static PyObject *tcp_claim(PyObject *op, PyObject *args)
{
    TCPObject *self = (TCPObject *)op;
    PyObject *fallback, *journal;
    if (!PyArg_ParseTuple(args, "O&O&:_claim", PyUnicode_FSConverter, &fallback, PyUnicode_FSConverter, &journal))
        return NULL;
    PyObject *result = NULL;
    if (tcp_enter(self, "_claim")) {
        if (tracer_claim(self->tracer, PyBytes_AS_STRING(fallback), PyBytes_AS_STRING(journal)) == 0)
            result = Py_NewRef(Py_None);
        else
            raise_error(tracer_last_error(self->tracer));
        tcp_leave(self);
    }
    Py_DECREF(fallback);
    Py_DECREF(journal);
    return result;
}

static PyObject *tcp_context_enter(PyObject *op, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(op);
}

static PyObject *tcp_context_exit(PyObject *op, PyObject *args)
{
    (void)args;
    PyObject *result = tcp_close(op, NULL);
    if (!result)
        return NULL;
    Py_DECREF(result);
    Py_RETURN_FALSE;
}

/* ---- construction and lifetime ---- */

static void release(TCPObject *self)
{
    if (self->ready) {
        TRACER_FOR_EACH_OPEN(self->tracer, slot)
            forget_flow_objects(self, slot);
        for (size_t i = 0; i < tracer_closed_count(self->tracer); i++)
            Py_CLEAR(*(PyObject **)tracer_closed_carried(self->tracer, i));
        tracer_delete(self->tracer);
        self->tracer = NULL;
        self->ready = 0;
    }
    Py_CLEAR(self->dumper_class);
    Py_CLEAR(self->root);
    Py_CLEAR(self->extension);
    Py_CLEAR(self->byteorder);
    Py_CLEAR(self->closed_indexes);
    Py_CLEAR(self->submitted);
    forget_addresses(self);
}

/* What pcapflow.TCP.__init__ decided (the output root, make_fout()'s dumper
 * class and extension, whether the dumper is the C pcap writer), checked. */
struct tracer_options {
    PyObject *root, *byteorder, *dumper, *extension;
    int big_endian, nanosecond, native, tunnels, frame_numbers, bidirectional;
    Py_ssize_t buffer_bytes;
};

static int init_owned(TCPObject *self, const struct tracer_options *options);

static int tcp_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    TCPObject *self = (TCPObject *)op;
    static char *kwlist[] = {"root", "byteorder", "nanosecond", "buffer_bytes", "dumper", "extension", "native",
                             "tunnels", "frame_numbers", "bidirectional", NULL};
    struct tracer_options options = {.buffer_bytes = 32 * 1024 * 1024, .extension = Py_None};
    PyObject *nanosecond = Py_False, *native = Py_False, *tunnels = Py_False, *frame_numbers = Py_True,
             *bidirectional = Py_False;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UUO|$nOOOOOO:TCPBase", kwlist, &options.root, &options.byteorder,
                                     &nanosecond, &options.buffer_bytes, &options.dumper, &options.extension, &native,
                                     &tunnels, &frame_numbers, &bidirectional))
        return -1;
    if (!PyBool_Check(bidirectional)) {
        PyErr_Format(PyExc_TypeError, "bidirectional must be True or False, not %.100s", Py_TYPE(bidirectional)->tp_name);
        return -1;
    }
    options.bidirectional = bidirectional == Py_True;
    if (options.buffer_bytes < 4096) {
        PyErr_Format(PyExc_ValueError, "buffer_bytes must be at least 4096, not %zd", options.buffer_bytes);
        return -1;
    }
    if (PyUnicode_CompareWithASCIIString(options.byteorder, "big") == 0)
        options.big_endian = 1;
    else if (PyUnicode_CompareWithASCIIString(options.byteorder, "little") != 0) {
        PyErr_Format(PyExc_ValueError, "byteorder must be 'little' or 'big', not %R", options.byteorder);
        return -1;
    }
    if (options.extension != Py_None && !PyUnicode_Check(options.extension)) {
        PyErr_SetString(PyExc_TypeError, "a dumper's extension must be a str or None");
        return -1;
    }
    if ((options.nanosecond = PyObject_IsTrue(nanosecond)) < 0 || (options.native = PyObject_IsTrue(native)) < 0 ||
        (options.tunnels = PyObject_IsTrue(tunnels)) < 0 ||
        (options.frame_numbers = PyObject_IsTrue(frame_numbers)) < 0)
        return -1;
    if (!options.dumper)
        options.dumper = Py_None;
    if (!claim(self, "__init__"))
        return -1;
    int status = init_owned(self, &options);
    tcp_leave(self);
    return status;
}

static int init_owned(TCPObject *self, const struct tracer_options *options)
{
    if (self->ready) {
        /* __init__ again: finish the old output first, as a new tracer would */
        int status = flush(self);
        tracer_close_files(self->tracer);
        if (status < 0)
            return -1;
    }
    release(self);
    self->epoch++;
    self->root = Py_NewRef(options->root);
    self->byteorder = Py_NewRef(options->byteorder);
    self->nanosecond = options->nanosecond;
    self->tunnels = options->tunnels;
    self->bidirectional = options->bidirectional;
    self->dumper_class = Py_NewRef(options->dumper);
    self->extension = Py_NewRef(options->extension);
    self->mode = options->extension == Py_None ? OUTPUT_NONE : options->native ? OUTPUT_PCAP : OUTPUT_DUMPER;
    PyObject *root = options->root;
    Py_ssize_t buffer_bytes = options->buffer_bytes;
    int big = options->big_endian;

    /* file names in the file system's encoding, undecodable bytes included
     * (os.fsdecode gives them as surrogates) */
    PyObject *directory = PyUnicode_EncodeFSDefault(root);
    PyObject *extension = directory && self->extension != Py_None ? PyUnicode_EncodeFSDefault(self->extension) : NULL;
    if (!directory || (self->extension != Py_None && !extension)) {
        Py_XDECREF(directory);
        return -1;
    }
    struct tracer_config config = {
        .directory = PyBytes_AS_STRING(directory),
        .extension = extension ? PyBytes_AS_STRING(extension) : NULL,
        .write_pcap = self->mode == OUTPUT_PCAP,
        .layout = {.big_endian = big, .nanosecond = self->nanosecond},
        .mapped_as_dotted = self->state->mapped_as_dotted,
        .no_frame_numbers = !options->frame_numbers,
        .bidirectional = options->bidirectional,
        .max_pending_bytes = (uint64_t)buffer_bytes,
        .flush_bytes = buffer_bytes < 64 * 1024 ? (uint32_t)buffer_bytes : 64 * 1024,
    };
    int status = -1;
    if ((self->closed_indexes = PyList_New(0))) {
        /* it only ever holds Index objects made by make_index (untracked):
         * the collector need not visit its items on every collection */
        PyObject_GC_UnTrack(self->closed_indexes);
        /* the tracer keeps copies of the names */
        struct tracer_error error;
        self->tracer = tracer_new(&config, &error);
        if (self->tracer)
            status = 0;
        else
            raise_error(&error);
    }
    Py_DECREF(directory);
    Py_XDECREF(extension);
    self->ready = status == 0;
    return status;
}

static int tcp_traverse(PyObject *op, visitproc visit, void *arg)
{
    TCPObject *self = (TCPObject *)op;
    Py_VISIT(Py_TYPE(op)); /* an instance holds its heap type */
    Py_VISIT(self->module);
    Py_VISIT(self->dumper_class);
    Py_VISIT(self->closed_indexes);
    Py_VISIT(self->submitted);
    Py_VISIT(self->memo[0].object);
    Py_VISIT(self->memo[1].object);
    /* while a capture loop runs without the GIL the flows change under us;
     * they hold no Python objects then (see tcp_trace_capture). Only
     * dumpers (user[1]) can be part of a cycle: the labels are str. */
    if (self->ready && !self->busy && self->mode == OUTPUT_DUMPER)
        TRACER_FOR_EACH_OPEN(self->tracer, slot)
            Py_VISIT(*flow_dumper_slot(self, slot));
    return 0;
}

/* The module stays: its state must outlive every use of the object, and
 * breaking a cycle through it is the module's own clear's work. */
static int tcp_clear(PyObject *op)
{
    TCPObject *self = (TCPObject *)op;
    Py_CLEAR(self->dumper_class);
    Py_CLEAR(self->closed_indexes);
    Py_CLEAR(self->submitted);
    forget_addresses(self);
    if (self->ready && !self->busy)
        TRACER_FOR_EACH_OPEN(self->tracer, slot)
            Py_CLEAR(*flow_dumper_slot(self, slot));
    return 0;
}

/* Garbage collection still writes every frame: a tracer dropped without
 * close() leaves complete files (errors are reported as unraisable). */
static void tcp_finalize(PyObject *op)
{
    TCPObject *self = (TCPObject *)op;
    if (!self->ready)
        return;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (tracer_flush_all(self->tracer) < 0) {
        raise_tracer_error(self->tracer);
        PyErr_WriteUnraisable(op);
    }
    tracer_close_files(self->tracer);
    PyErr_Restore(type, value, traceback);
}

static void tcp_dealloc(PyObject *op)
{
    if (PyObject_CallFinalizerFromDealloc(op) < 0)
        return;
    PyObject_GC_UnTrack(op);
    TCPObject *self = (TCPObject *)op;
    if (self->weakrefs)
        PyObject_ClearWeakRefs(op);
    release(self);
    PyObject *module = self->module;
    PyTypeObject *type = Py_TYPE(op);
    type->tp_free(op);
    /* a Python subclass's deallocator leaves its type to us, as our base is a heap type */
    Py_DECREF(type);
    Py_XDECREF(module);
}

/* Finds, once, the module whose TCPBase type is (or is a base of), and
 * keeps it: the per-packet code reads its state from the object. */
static PyObject *tcp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    PyObject *module = module_of_type(type);
    TCPObject *self = module ? (TCPObject *)type->tp_alloc(type, 0) : NULL;
    if (!self)
        return NULL;
    self->module = Py_NewRef(module);
    self->state = PyModule_GetState(module);
    self->packet_type = self->state->packet_type;
    return (PyObject *)self;
}

static PyObject *tcp_open_flows(PyObject *op, void *closure)
{
    (void)closure;
    TCPObject *self = (TCPObject *)op;
    return PyLong_FromUnsignedLong(self->ready ? tracer_open_count(self->tracer) : 0);
}

static PyObject *tcp_tunnels(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((TCPObject *)op)->tunnels);
}

static PyObject *tcp_bidirectional(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((TCPObject *)op)->bidirectional);
}

static PyMethodDef tcp_methods[] = {
    {"trace", (PyCFunction)(void (*)(void))tcp_trace, METH_FASTCALL | METH_KEYWORDS,
     "trace($self, packet, *, output=False)\n--\n\nTrace one packet. Returns the flow label, or with output=True the\n"
     "flow's writer (call it with a frame to write that frame to the flow's file)."},
    {"dump", tcp_dump, METH_O, "dump($self, packet)\n--\n\nTrace one packet and write its frame to its flow's file."},
    {"submit", tcp_submit, METH_NOARGS,
     "submit($self)\n--\n\nEvery flow as an Index: open flows first (in the order first seen), then the flows\n"
     "closed by FIN (in closing order). Writes all buffered frames first. Cached until the next packet."},
    {"_trace_capture", (PyCFunction)(void (*)(void))tcp_trace_capture, METH_VARARGS | METH_KEYWORDS,
     "_trace_capture($self, fin, filter=None, progress=None, first_frame=0, idle_timeout=None, keep_closed=True, "
     "clock_stamped=False)\n--\n\nTrace every frame of a capture in C; returns counters. keep_closed=False: "
     "flows that close are written and forgotten (no index wanted); clock_stamped: the capture's times never go "
     "back (one live capture), so the labels of flows long closed are forgotten too."},
    {"_trace_live", (PyCFunction)(void (*)(void))tcp_trace_live, METH_VARARGS | METH_KEYWORDS,
     "_trace_live($self, interface, filter=None, progress=None, count=None, duration=None, snaplen=None, promisc=False, "
     "buffer_bytes=None, idle_timeout=None, started=None, keep_closed=True)\n--\n\nTrace the frames captured on "
     "an interface in C until count, "
     "duration or a signal handler's exception stops it; returns counters."},
    {"_abandon", tcp_abandon, METH_NOARGS, "Drop unwritten frames and close the files (after a write error)."},
    {"_claim", tcp_claim, METH_VARARGS,
     "_claim($self, fallback, journal, /)\n--\n\nClaim mode: a file is made only where its name is free, else in "
     "fallback; the names made are written to journal (pcapflow.dask)."},
    {"close", tcp_close, METH_NOARGS, "close($self)\n--\n\nWrite every buffered frame and close all output files."},
    {"__enter__", tcp_context_enter, METH_NOARGS, NULL},
    {"__exit__", tcp_context_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tcp_getset[] = {
    {"index", tcp_index, NULL, "submit() while any flow is open, else the closed flows.", NULL},
    {"open_flows", tcp_open_flows, NULL, "How many flows are open now.", NULL},
    {"tunnels", tcp_tunnels, NULL, "Whether captures this tracer reads (trace_file) have their tunnels opened.", NULL},
    {"bidirectional", tcp_bidirectional, NULL,
     "Whether a flow is a whole connection (both directions, closed by FINs from both sides or an RST).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#if PY_VERSION_HEX >= 0x030C0000
#define WEAKLIST_MEMBER {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(TCPObject, weakrefs), Py_READONLY, NULL}
#else
#include <structmember.h>
#define WEAKLIST_MEMBER {"__weaklistoffset__", T_PYSSIZET, offsetof(TCPObject, weakrefs), READONLY, NULL}
#endif

static PyMemberDef tcp_members[] = {
    WEAKLIST_MEMBER, /* how a type made from a spec gets weak references */
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot tcp_slots[] = {
    {Py_tp_doc, "The C flow tracer under pcapflow.TCP."},
    {Py_tp_new, tcp_new},
    {Py_tp_init, tcp_init},
    {Py_tp_dealloc, tcp_dealloc},
    {Py_tp_finalize, tcp_finalize},
    {Py_tp_traverse, tcp_traverse},
    {Py_tp_clear, tcp_clear},
    {Py_tp_call, tcp_call},
    {Py_tp_methods, tcp_methods},
    {Py_tp_getset, tcp_getset},
    {Py_tp_members, tcp_members},
    {0, NULL},
};

static PyType_Spec tcp_spec = {
    .name = "pcapflow._core.TCPBase",
    .basicsize = sizeof(TCPObject),
    .flags = TYPE_FLAGS | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = tcp_slots,
};

static void register_fork_handler(void)
{
    this_process = getpid();
    if (pthread_atfork(NULL, NULL, forked_child) != 0)
        this_process = 0; /* reported by tcp_type_add */
}

int tcp_type_add(PyObject *module, struct module_state *state)
{
    /* the process id is the process's, whichever module instance asks */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (pthread_once(&once, register_fork_handler) != 0 || this_process == 0) {
        PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
        return -1;
    }
    if (!(state->tcpbase_type = add_type(module, &tcp_spec, NULL)))
        return -1;
    PyObject *type = (PyObject *)state->tcpbase_type;
    state->base_trace_method = PyObject_GetAttr(type, state->str_trace);
    state->base_dump_method = state->base_trace_method ? PyObject_GetAttr(type, state->str_dump) : NULL;
    return state->base_dump_method ? 0 : -1;
}
