/* TCPBase._trace_capture() and _trace_live(): a whole capture file, or an
 * interface until it is stopped, traced in C with the GIL released between
 * progress reports. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "binding.h"

/* How often a capture being traced comes back to Python (signals, the
 * progress callback), waiting on a pipe or not: a Ctrl-C is acted on within
 * this, and a progress callback is called every PROGRESS_INTERVAL. */
#define CHECK_INTERVAL_NS 50000000u
#define PROGRESS_INTERVAL 0.2

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The counters trace_file() and trace_live() report; an interface's
 * kernel counters too. */
static PyObject *stats_dict(const struct capture_stats *stats, uint64_t frame_number, uint64_t bytes,
                            struct tracer *tracer, uint64_t idle_closed_before, struct capture *capture)
{
    PyObject *dict = Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsKsK}", "frames", stats->frames, "tcp_frames", stats->tcp_frames, "filtered_out",
        stats->filtered_out, "not_tcp", stats->not_tcp, "fragments", stats->fragments, "truncated", stats->truncated,
        "unsupported_link", stats->unsupported_link, "flows_opened", stats->flows_opened, "last_frame", frame_number,
        "bytes", bytes, "idle_closed", (unsigned long long)(tracer_idle_closed(tracer) - idle_closed_before),
        "tracer_bytes", (unsigned long long)tracer_memory_bytes(tracer));
    struct live_counts counts;
    if (dict && capture_live_counts(capture, &counts) == 0) {
        PyObject *live = Py_BuildValue("{sKsKsK}", "received", counts.received, "dropped", counts.dropped,
                                       "interface_dropped", counts.interface_dropped);
        if (!live || PyDict_Update(dict, live) < 0)
            Py_CLEAR(dict);
        Py_XDECREF(live);
    }
    return dict;
}

/* Raises pcapflow.CaptureError naming the file, the frame and the offset. */
void raise_damaged(const struct module_state *state, PyObject *name, const char *why, uint64_t frame,
                   uint64_t offset)
{
    PyObject *error = state->capture_error;
    PyObject *exc = PyObject_CallFunction(error, "s", why);
    if (!exc)
        return;
    PyObject *frame_obj = PyLong_FromUnsignedLongLong(frame);
    PyObject *offset_obj = PyLong_FromUnsignedLongLong(offset);
    if (frame_obj && offset_obj && PyObject_SetAttrString(exc, "filename", name) == 0 &&
        PyObject_SetAttrString(exc, "frame", frame_obj) == 0 && PyObject_SetAttrString(exc, "offset", offset_obj) == 0)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_XDECREF(frame_obj);
    Py_XDECREF(offset_obj);
    Py_DECREF(exc);
}

/* Background threads creating the files of finished flows (see
 * write_behind.h): two, measured best on a two-core machine (one gained
 * nothing, three no more than two; creation in one directory serialises on
 * its lock); none on one core. PCAPFLOW_WRITERS overrides it. */
static int writer_threads(void)
{
    const char *setting = getenv("PCAPFLOW_WRITERS");
    if (setting)
        return atoi(setting);
    return sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 0;
}

/* The state tcp_trace_capture's check function works on; the loop runs
 * without the GIL, which the check takes back for the time it runs Python. */
struct trace_loop {
    TCPObject *self;
    PyThreadState *thread; /* saved while the GIL is released */
    struct capture *capture;
    PyObject *progress; /* None or the callable */
    const struct capture_stats *stats; /* NULL before the loop */
    uint64_t total;
    double last_report;
};

static int report_progress(struct trace_loop *loop, uint64_t bytes)
{
    PyObject *r = PyObject_CallFunction(loop->progress, "KKKI", (unsigned long long)bytes,
                                        (unsigned long long)loop->total, (unsigned long long)loop->stats->frames,
                                        tracer_open_count(loop->self->tracer));
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* Called by the core without the GIL, every CHECK_INTERVAL_NS and when a
 * read is interrupted: runs Python's signal handlers (a KeyboardInterrupt
 * stops the capture) and the progress callback. Nonzero: stop, with the
 * exception set. */
static int check_python(void *arg)
{
    struct trace_loop *loop = arg;
    PyEval_RestoreThread(loop->thread);
    int stop = PyErr_CheckSignals() < 0;
    if (!stop && loop->stats && loop->progress != Py_None && now() - loop->last_report >= PROGRESS_INTERVAL) {
        loop->last_report = now();
        stop = report_progress(loop, capture_offset(loop->capture)) < 0;
    }
    loop->thread = PyEval_SaveThread();
    return stop;
}

/* Checks the arguments both methods share; 0 or -1 (TypeError). */
static int check_common_arguments(PyObject *filter, PyObject *progress)
{
    if (filter != Py_None && !PyUnicode_Check(filter)) {
        PyErr_Format(PyExc_TypeError, "filter must be a str (a BPF expression), not %.100s", Py_TYPE(filter)->tp_name);
        return -1;
    }
    if (progress != Py_None && !PyCallable_Check(progress)) {
        PyErr_Format(PyExc_TypeError, "progress must be callable, not %.100s", Py_TYPE(progress)->tp_name);
        return -1;
    }
    return 0;
}

/* What a traced capture is read from, for the messages of its errors. */
struct capture_source {
    struct input *file;  /* a capture file (input.c), or NULL: */
    PyObject *interface; /* an interface's name */
};

static void raise_read_error(TCPObject *self, struct capture_source *source, struct capture *capture,
                             uint64_t frame, uint64_t offset)
{
    if (source->file)
        raise_input_error(self->state, source->file, capture_error(capture), frame, offset);
    else
        raise_damaged(self->state, source->interface, capture_error(capture), frame, offset);
}

/* The owned tracer's flows may be traced by C alone from here. */
static int begin_native_tracing(TCPObject *self, const char *what)
{
    if (self->mode == OUTPUT_DUMPER) {
        PyErr_SetString(PyExc_ValueError, "captures are traced natively to pcap files (format 'pcap' or 'cap') or "
                                          "to no files; pcapflow.trace_file() writes the text formats");
        return -1;
    }
    if (!tcp_enter(self, what))
        return -1;
    /* other threads are refused from here on, not made to wait: the
     * capture may come from a pipe one of them writes. A collection in
     * another thread leaves the flows alone while the loop changes them. */
    self->busy = 1;
    /* the loop runs without the GIL and cannot keep flows' str labels
     * current: drop them, they are made again when Python asks */
    TRACER_FOR_EACH_OPEN(self->tracer, slot)
        Py_CLEAR(*(PyObject **)tracer_carried(self->tracer, slot));
    return 0;
}

static void end_native_tracing(TCPObject *self)
{
    self->busy = 0;
    tcp_leave(self);
}

/* Traces an opened capture to its end (or a stop): the filter, the
 * background writers, the loop without the GIL, and what it came to.
 * Returns the counters, or NULL with the exception (which carries them as
 * .stats once the loop ran). The caller deletes the capture. */
static PyObject *trace_opened(struct trace_loop *loop, struct capture_source *source, PyObject *filter,
                              uint64_t first_frame, double idle_timeout, int keep_closed, int clock_stamped)
{
    TCPObject *self = loop->self;
    struct capture *capture = loop->capture;
    capture_set_decode_options(capture, self->tunnels ? DECODE_TUNNELS : 0);
    if (filter != Py_None) {
        const char *expression = PyUnicode_AsUTF8(filter);
        if (!expression || capture_set_filter(capture, expression) < 0) {
            if (expression)
                PyErr_Format(self->state->filter_error, "BPF filter %R does not compile: %s", filter,
                             capture_error(capture));
            return NULL;
        }
    }
    if (tracer_set_idle_timeout(self->tracer, idle_timeout > 0 ? (uint64_t)(idle_timeout * 1e9) : 0) < 0 ||
        tracer_start_write_behind(self->tracer, writer_threads()) < 0) {
        raise_tracer_error(self->tracer);
        return NULL;
    }
    uint64_t idle_closed_before = tracer_idle_closed(self->tracer);
    struct capture_stats stats = {0};
    uint64_t frame_number = first_frame;
    enum capture_status status;
    loop->stats = &stats;
    loop->last_report = now();
    /* Python run by check_python (signal handlers, progress) finds the
     * tracer owned and busy and leaves its flows alone */
    /* no index wanted: closed flows are forgotten, so that a capture that
     * runs for days holds its open flows only (and their labels too when
     * its times come from a clock, as an interface's do) */
    tracer_forget_closed(self->tracer, !keep_closed, clock_stamped);
    loop->thread = PyEval_SaveThread();
    status = capture_trace(capture, self->tracer, &frame_number, UINT64_MAX, &stats);
    PyEval_RestoreThread(loop->thread);
    loop->thread = NULL; /* the GIL is held */
    tracer_forget_closed(self->tracer, 0, 0);
    Py_CLEAR(self->submitted);
    int writes_failed;
    Py_BEGIN_ALLOW_THREADS
    writes_failed = tracer_finish_write_behind(self->tracer) < 0;
    Py_END_ALLOW_THREADS
    if (writes_failed && !PyErr_Occurred())
        raise_tracer_error(self->tracer); /* it stopped the loop early if it could */
    uint64_t offset = capture_offset(capture);
    if (!PyErr_Occurred()) {
        if (status == CAPTURE_DAMAGED || (source->file && source->file->read_error))
            raise_read_error(self, source, capture, frame_number + 1, offset);
        else if (status == CAPTURE_TRACER_ERROR)
            raise_tracer_error(self->tracer);
        else if (status == CAPTURE_INTERRUPTED) /* check_python stops only with an exception */
            PyErr_SetString(PyExc_SystemError, "the capture stopped without an exception");
        else if (loop->progress != Py_None)
            report_progress(loop, loop->total ? loop->total : offset);
    }
    PyObject *counters = stats_dict(&stats, frame_number, offset, self->tracer, idle_closed_before, capture);
    capture_close(capture);
    if (!PyErr_Occurred())
        return counters;
    /* the caller still wants to know how far the capture got */
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (counters && value && PyObject_SetAttrString(value, "stats", counters) < 0)
        PyErr_Clear();
    Py_XDECREF(counters);
    PyErr_Restore(type, value, traceback);
    return NULL;
}

/* A time in seconds (idle_timeout, duration): None (0.0), or a number above
 * 0 and below 3e9 (about 95 years; its nanoseconds fit in 64 bits). */
static int parse_seconds(PyObject *value, const char *name, double *seconds)
{
    *seconds = 0;
    if (value == Py_None)
        return 0;
    if (!PyFloat_Check(value) && !PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be a number of seconds, not %.100s", name, Py_TYPE(value)->tp_name);
        return -1;
    }
    *seconds = PyFloat_AsDouble(value);
    if (*seconds == -1 && PyErr_Occurred())
        return -1;
    if (!(*seconds > 0 && *seconds < 3e9)) {
        PyErr_Format(PyExc_ValueError, "%s must be more than 0 seconds (and under 3e9), not %R", name, value);
        return -1;
    }
    return 0;
}

PyObject *tcp_trace_capture(PyObject *op, PyObject *args, PyObject *kwargs)
{
    TCPObject *self = (TCPObject *)op;
    static char *kwlist[] = {"fin", "filter", "progress", "first_frame", "idle_timeout", "keep_closed",
                             "clock_stamped", NULL};
    PyObject *fin, *filter = Py_None, *progress = Py_None, *idle = Py_None;
    unsigned long long first_frame = 0;
    double idle_timeout;
    int keep_closed = 1, clock_stamped = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOKOpp:_trace_capture", kwlist, &fin, &filter, &progress,
                                     &first_frame, &idle, &keep_closed, &clock_stamped))
        return NULL;
    if (check_common_arguments(filter, progress) < 0 || parse_seconds(idle, "idle_timeout", &idle_timeout) < 0 ||
        begin_native_tracing(self, "_trace_capture") < 0)
        return NULL;

    PyObject *result = NULL;
    struct capture *capture = NULL;
    struct input in;
    FILE *file = open_input(fin, &in);
    if (!file)
        goto done;
    if (!(capture = capture_new())) {
        fclose(file);
        PyErr_NoMemory();
        goto done;
    }
    struct stat info; /* a stream read through read() has no descriptor: its size is unknown */
    uint64_t total = fileno(file) >= 0 && fstat(fileno(file), &info) == 0 && S_ISREG(info.st_mode)
                         ? (uint64_t)info.st_size
                         : 0;
    struct trace_loop loop = {.self = self, .capture = capture, .progress = progress, .total = total};
    const struct capture_check check = {.function = check_python, .arg = &loop, .interval_ns = CHECK_INTERVAL_NS};
    int opened;
    in.released = &loop.thread; /* read() takes the GIL back from there */
    loop.thread = PyEval_SaveThread(); /* reading the file header may wait on a pipe */
    opened = capture_open_after(capture, in.head ? PyBytes_AS_STRING(in.head) : NULL,
                                in.head ? (size_t)PyBytes_GET_SIZE(in.head) : 0, file, &check);
    PyEval_RestoreThread(loop.thread);
    loop.thread = NULL; /* the GIL is held */
    if (opened < 0) {
        if (!capture_interrupted(capture)) /* else check_python's exception stands */
            raise_input_error(self->state, &in, capture_error(capture), first_frame + 1, 0);
        goto done;
    }
    struct capture_source source = {.file = &in};
    result = trace_opened(&loop, &source, filter, first_frame, idle_timeout, keep_closed, clock_stamped);
done:
    capture_delete(capture);
    end_native_tracing(self);
    input_clear(&in);
    return result;
}

/* An errno for each way an interface cannot be opened, so that Python
 * makes the OSError subclass a user expects (PermissionError, ...). */
static int live_errno(enum live_failure failure)
{
    switch (failure) {
    case LIVE_NO_SUCH_INTERFACE: return ENODEV;
    case LIVE_NO_PERMISSION: return EPERM;
    case LIVE_INTERFACE_DOWN: return ENETDOWN;
    default: return EIO;
    }
}

/* A whole number argument >= 0 (0 or None: no limit) that fits in the C type's max. */
static int parse_limit(PyObject *value, const char *name, unsigned long long max, unsigned long long *out)
{
    *out = 0;
    if (value == Py_None)
        return 0;
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name, Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (overflow || n < 0 || (unsigned long long)n > max) {
        PyErr_Format(PyExc_ValueError, "%s must be between 0 and %llu, not %R", name, max, value);
        return -1;
    }
    *out = (unsigned long long)n;
    return 0;
}

/* Calls started(info) once the interface is open, as tcpdump says
 * "listening on": what is captured and how. Returns 0 or -1. */
static int announce_capture(struct capture *capture, PyObject *interface, PyObject *started)
{
    struct capture_description about;
    capture_describe(capture, &about);
    PyObject *r = PyObject_CallFunction(started, "{sOsssssisO}", "interface", interface, "linktype", about.linktype_name,
                                        "linktype_description", about.linktype_description, "snaplen", about.snaplen,
                                        "nanosecond", about.nanosecond ? Py_True : Py_False);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

PyObject *tcp_trace_live(PyObject *op, PyObject *args, PyObject *kwargs)
{
    TCPObject *self = (TCPObject *)op;
    static char *kwlist[] = {"interface", "filter", "progress", "count", "duration", "snaplen", "promisc",
                             "buffer_bytes", "idle_timeout", "started", "keep_closed", NULL};
    PyObject *interface, *filter = Py_None, *progress = Py_None, *count_obj = Py_None, *duration_obj = Py_None;
    PyObject *snaplen_obj = Py_None, *buffer_obj = Py_None, *idle = Py_None, *started = Py_None;
    int promisc = 0, keep_closed = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|OOOOOpOOOp:_trace_live", kwlist, &interface, &filter,
                                     &progress, &count_obj, &duration_obj, &snaplen_obj, &promisc, &buffer_obj,
                                     &idle, &started, &keep_closed))
        return NULL;
    if (started != Py_None && !PyCallable_Check(started)) {
        PyErr_Format(PyExc_TypeError, "started must be callable, not %.100s", Py_TYPE(started)->tp_name);
        return NULL;
    }
    unsigned long long count, snaplen, buffer_bytes;
    double idle_timeout, duration;
    if (check_common_arguments(filter, progress) < 0 || parse_seconds(idle, "idle_timeout", &idle_timeout) < 0 ||
        parse_limit(count_obj, "count", UINT64_MAX >> 1, &count) < 0 ||
        parse_limit(snaplen_obj, "snaplen", 262144, &snaplen) < 0 ||
        parse_limit(buffer_obj, "buffer_bytes", INT32_MAX, &buffer_bytes) < 0 ||
        parse_seconds(duration_obj, "duration", &duration) < 0)
        return NULL;
    Py_ssize_t name_length;
    const char *name = PyUnicode_AsUTF8AndSize(interface, &name_length);
    if (!name)
        return NULL;
    if (!*name || strlen(name) != (size_t)name_length) {
        PyErr_Format(PyExc_ValueError, "interface must be an interface's name, not %R", interface);
        return NULL;
    }
    if (begin_native_tracing(self, "_trace_live") < 0)
        return NULL;
    PyObject *result = NULL;
    struct capture *capture = capture_new();
    if (!capture) {
        PyErr_NoMemory();
        goto done;
    }
    struct trace_loop loop = {.self = self, .capture = capture, .progress = progress};
    const struct capture_check check = {.function = check_python, .arg = &loop, .interval_ns = CHECK_INTERVAL_NS};
    const struct live_options options = {
        .snaplen = snaplen ? (int)snaplen : 262144,
        .promisc = promisc,
        .buffer_bytes = (int)buffer_bytes,
        .count = count,
        .duration_ns = (uint64_t)(duration * 1e9),
    };
    enum live_failure failure;
    Py_BEGIN_ALLOW_THREADS
    failure = capture_open_live(capture, name, &options, &check);
    Py_END_ALLOW_THREADS
    if (failure != LIVE_OK) {
        PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", live_errno(failure), capture_error(capture));
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        goto done;
    }
    if (started != Py_None && announce_capture(capture, interface, started) < 0)
        goto done;
    struct capture_source source = {.interface = interface};
    result = trace_opened(&loop, &source, filter, 0, idle_timeout, keep_closed, 1);
done:
    capture_delete(capture);
    end_native_tracing(self);
    return result;
}
