/* TCPBase._trace_capture(): a whole capture file traced in C, with the GIL
 * released between progress reports. */
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

static PyObject *stats_dict(const struct capture_stats *stats, uint64_t frame_number, uint64_t bytes)
{
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsK}", "frames", stats->frames, "tcp_frames", stats->tcp_frames,
                         "filtered_out", stats->filtered_out, "not_tcp", stats->not_tcp, "fragments",
                         stats->fragments, "truncated", stats->truncated, "unsupported_link",
                         stats->unsupported_link, "flows_opened", stats->flows_opened, "last_frame", frame_number,
                         "bytes", bytes);
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

PyObject *tcp_trace_capture(PyObject *op, PyObject *args, PyObject *kwargs)
{
    TCPObject *self = (TCPObject *)op;
    static char *kwlist[] = {"fin", "filter", "progress", "first_frame", NULL};
    PyObject *fin, *filter = Py_None, *progress = Py_None;
    unsigned long long first_frame = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOK:_trace_capture", kwlist, &fin, &filter, &progress,
                                     &first_frame))
        return NULL;
    if (self->mode == OUTPUT_DUMPER) {
        PyErr_SetString(PyExc_ValueError, "captures are traced natively to pcap files (format 'pcap' or 'cap') or "
                                          "to no files; pcapflow.trace_file() writes the text formats");
        return NULL;
    }
    if (filter != Py_None && !PyUnicode_Check(filter)) {
        PyErr_Format(PyExc_TypeError, "filter must be a str (a BPF expression), not %.100s", Py_TYPE(filter)->tp_name);
        return NULL;
    }
    if (progress != Py_None && !PyCallable_Check(progress)) {
        PyErr_Format(PyExc_TypeError, "progress must be callable, not %.100s", Py_TYPE(progress)->tp_name);
        return NULL;
    }
    if (!tcp_enter(self, "_trace_capture"))
        return NULL;
    /* other threads are refused from here on, not made to wait: the
     * capture may come from a pipe one of them writes. A collection in
     * another thread leaves the flows alone while the loop changes them. */
    self->busy = 1;

    /* the loop runs without the GIL and cannot keep flows' str labels
     * current: drop them, they are made again when Python asks */
    TRACER_FOR_EACH_OPEN(self->tracer, slot)
        Py_CLEAR(*(PyObject **)tracer_carried(self->tracer, slot));

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
    capture_set_decode_options(capture, self->tunnels ? DECODE_TUNNELS : 0);
    if (filter != Py_None) {
        const char *expression = PyUnicode_AsUTF8(filter);
        if (!expression || capture_set_filter(capture, expression) < 0) {
            if (expression) {
                PyObject *error = self->state->filter_error;
                PyErr_Format(error, "BPF filter %R does not compile: %s", filter, capture_error(capture));
            }
            goto done;
        }
    }

    if (tracer_start_write_behind(self->tracer, writer_threads()) < 0) {
        raise_tracer_error(self->tracer);
        goto done;
    }
    struct capture_stats stats = {0};
    uint64_t frame_number = first_frame;
    enum capture_status status;
    loop.stats = &stats;
    loop.last_report = now();
    /* Python run by check_python (signal handlers, progress) finds the
     * tracer owned and busy (set above) and leaves its flows alone */
    loop.thread = PyEval_SaveThread();
    status = capture_trace(capture, self->tracer, &frame_number, UINT64_MAX, &stats);
    PyEval_RestoreThread(loop.thread);
    loop.thread = NULL; /* the GIL is held */
    Py_CLEAR(self->submitted);
    int writes_failed;
    Py_BEGIN_ALLOW_THREADS
    writes_failed = tracer_finish_write_behind(self->tracer) < 0;
    Py_END_ALLOW_THREADS
    if (writes_failed && !PyErr_Occurred())
        raise_tracer_error(self->tracer); /* it stopped the loop early if it could */
    uint64_t offset = capture_offset(capture);
    if (!PyErr_Occurred()) {
        if (status == CAPTURE_DAMAGED || in.read_error)
            raise_input_error(self->state, &in, capture_error(capture), frame_number + 1, offset);
        else if (status == CAPTURE_TRACER_ERROR)
            raise_tracer_error(self->tracer);
        else if (status == CAPTURE_INTERRUPTED) /* check_python stops only with an exception */
            PyErr_SetString(PyExc_SystemError, "the capture stopped without an exception");
        else if (progress != Py_None)
            report_progress(&loop, total ? total : offset);
    }
    capture_close(capture);
    if (!PyErr_Occurred())
        result = stats_dict(&stats, frame_number, offset);
    else {
        /* the caller still wants to know how far the capture got */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        PyObject *partial = stats_dict(&stats, frame_number, offset);
        if (partial && value)
            PyObject_SetAttrString(value, "stats", partial) < 0 ? PyErr_Clear() : (void)0;
        Py_XDECREF(partial);
        PyErr_Restore(type, value, traceback);
    }
done:
    capture_delete(capture);
    self->busy = 0;
    tcp_leave(self);
    input_clear(&in);
    return result;
}
