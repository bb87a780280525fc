/* Where a capture is read from: pcapflow/_inputs.py's prepare() decides
 * (a path, a descriptor, or an object's read()), this opens it as a stdio
 * stream for the core. */
#define _GNU_SOURCE 1 /* fopencookie() */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"

/* A stream over read(size) of a Python object (gzip.GzipFile, BytesIO, ...),
 * read by libpcap in the capture loop, which runs without the GIL: each read
 * takes it back from the thread state the loop saved (input.released), as
 * the loop's check function does; not PyGILState_Ensure, which does not
 * know subinterpreters. An exception read() raises is kept in the input,
 * not left set: the loop runs Python (signal handlers, progress) between
 * reads. */
struct read_stream {
    PyObject *read, *close; /* close: None or what ends the reading */
    PyObject *pending;      /* a chunk longer than was asked for, from pending_offset on */
    Py_ssize_t pending_offset;
    struct input *owner; /* outlives the stream: it takes read()'s exception */
    int failed;          /* no more reads once one failed */
};

/* Takes the GIL if the reading thread runs without it; returns what
 * give_back_gil() needs. */
static PyThreadState **take_gil(struct read_stream *s)
{
    PyThreadState **slot = s->owner->released;
    if (!slot || !*slot)
        return NULL;
    PyEval_RestoreThread(*slot);
    return slot;
}

static void give_back_gil(PyThreadState **slot)
{
    if (slot)
        *slot = PyEval_SaveThread();
}

static void keep_read_error(struct read_stream *s, int usage)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value && traceback)
        PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    Py_XSETREF(s->owner->read_error, value);
    s->owner->read_error_is_usage = usage;
    s->failed = 1;
}

/* Fills buffer from the pending chunk; returns how much. */
static ssize_t take_pending(struct read_stream *s, char *buffer, size_t size)
{
    Py_buffer view;
    if (PyObject_GetBuffer(s->pending, &view, PyBUF_SIMPLE) < 0)
        return -1;
    size_t left = (size_t)(view.len - s->pending_offset);
    size_t n = size < left ? size : left;
    memcpy(buffer, (const char *)view.buf + s->pending_offset, n);
    s->pending_offset += (Py_ssize_t)n;
    if (s->pending_offset >= view.len) {
        PyBuffer_Release(&view);
        Py_CLEAR(s->pending);
        s->pending_offset = 0;
    } else {
        PyBuffer_Release(&view);
    }
    return (ssize_t)n;
}

static ssize_t read_stream_read(void *cookie, char *buffer, size_t size)
{
    struct read_stream *s = cookie;
    if (s->failed) {
        errno = EIO;
        return -1;
    }
    PyThreadState **gil = take_gil(s);
    PyObject *type, *value, *traceback; /* none is expected; kept as they are */
    PyErr_Fetch(&type, &value, &traceback);
    ssize_t n = -1;
    int usage = 0;
    if (!s->pending) {
        Py_ssize_t ask = size > (size_t)PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)size;
        PyObject *chunk = PyObject_CallFunction(s->read, "n", ask);
        if (chunk && !PyObject_CheckBuffer(chunk)) {
            usage = 1;
            PyErr_Format(PyExc_TypeError, "fin must be a path or a binary file object, not one whose read() gives %.100s",
                         Py_TYPE(chunk)->tp_name);
            Py_CLEAR(chunk);
        }
        s->pending = chunk;
    }
    if (s->pending)
        n = take_pending(s, buffer, size);
    if (n < 0)
        keep_read_error(s, usage);
    PyErr_Restore(type, value, traceback);
    give_back_gil(gil);
    if (n < 0)
        errno = EIO;
    return n;
}

static int read_stream_close(void *cookie)
{
    struct read_stream *s = cookie;
    PyThreadState **gil = take_gil(s);
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (s->close != Py_None) {
        PyObject *r = PyObject_CallNoArgs(s->close);
        if (!r) /* closing a file that was only read: nothing is lost */
            PyErr_Clear();
        Py_XDECREF(r);
    }
    Py_DECREF(s->read);
    Py_DECREF(s->close);
    Py_XDECREF(s->pending);
    PyErr_Restore(type, value, traceback);
    give_back_gil(gil);
    PyMem_RawFree(s);
    return 0;
}

static FILE *open_read_stream(PyObject *read, PyObject *close, struct input *in)
{
    struct read_stream *s = PyMem_RawCalloc(1, sizeof *s);
    if (!s)
        return (FILE *)PyErr_NoMemory();
    cookie_io_functions_t functions = {.read = read_stream_read, .close = read_stream_close};
    FILE *file = fopencookie(s, "rb", functions);
    if (!file) {
        PyMem_RawFree(s);
        return (FILE *)PyErr_SetFromErrno(PyExc_OSError);
    }
    s->read = Py_NewRef(read);
    s->close = Py_NewRef(close);
    s->owner = in;
    return file;
}

/* Our own descriptor for fd (at offset, when not -1), closed with the stream. */
static FILE *open_descriptor(int fd, long long offset, PyObject *name)
{
    int copy = dup(fd);
    if (copy < 0 || (offset >= 0 && lseek(copy, (off_t)offset, SEEK_SET) < 0)) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
        if (copy >= 0)
            close(copy);
        return NULL;
    }
    FILE *file = fdopen(copy, "rb");
    if (!file) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
        close(copy);
    }
    return file;
}

static FILE *open_path(PyObject *path)
{
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(path, &encoded))
        return NULL;
    FILE *file;
    Py_BEGIN_ALLOW_THREADS /* a FIFO blocks here until a writer comes */
    file = fopen(PyBytes_AS_STRING(encoded), "rb");
    Py_END_ALLOW_THREADS
    Py_DECREF(encoded);
    if (!file)
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    return file;
}

static FILE *open_prepared(PyObject *prepared, struct input *in)
{
    PyObject *fd_obj = PyObject_GetAttrString(prepared, "fd");
    PyObject *offset_obj = PyObject_GetAttrString(prepared, "offset");
    PyObject *head = PyObject_GetAttrString(prepared, "head");
    PyObject *read = PyObject_GetAttrString(prepared, "read");
    PyObject *close = PyObject_GetAttrString(prepared, "close");
    FILE *file = NULL;
    int fd = fd_obj ? PyLong_AsLong(fd_obj) : -1;
    long long offset = offset_obj ? PyLong_AsLongLong(offset_obj) : -1;
    if (PyErr_Occurred() || !head || !read || !close) {
        /* an attribute missing: the exception says which */
    } else if (!PyBytes_Check(head)) {
        PyErr_SetString(PyExc_TypeError, "Input.head must be bytes");
    } else if (fd < 0) {
        file = open_read_stream(read, close, in);
    } else if ((file = open_descriptor(fd, offset, in->name)) && PyBytes_GET_SIZE(head) > 0) {
        in->head = Py_NewRef(head);
    }
    Py_XDECREF(fd_obj);
    Py_XDECREF(offset_obj);
    Py_XDECREF(head);
    Py_XDECREF(read);
    Py_XDECREF(close);
    return file;
}

FILE *open_input(PyObject *fin, struct input *in)
{
    memset(in, 0, sizeof *in);
    PyObject *module = PyImport_ImportModule("pcapflow._inputs");
    PyObject *prepared = module ? PyObject_CallMethod(module, "prepare", "O", fin) : NULL;
    Py_XDECREF(module);
    if (!prepared)
        return NULL;
    FILE *file = NULL;
    if (PyUnicode_Check(prepared) || PyBytes_Check(prepared)) {
        in->name = Py_NewRef(prepared);
        file = open_path(prepared);
    } else if ((in->name = PyObject_GetAttrString(prepared, "name"))) {
        file = open_prepared(prepared, in);
    }
    Py_DECREF(prepared);
    return file;
}

void raise_input_error(const struct module_state *state, struct input *in, const char *why, uint64_t frame,
                       uint64_t offset)
{
    PyObject *error = in->read_error;
    in->read_error = NULL;
    if (!error) {
        raise_damaged(state, in->name, why, frame, offset);
        return;
    }
    /* a KeyboardInterrupt stops the trace as Ctrl-C does; pcapflow's own
     * TypeError (read() gave str) is bad usage, not a damaged capture */
    if (in->read_error_is_usage || !PyObject_IsInstance(error, PyExc_Exception)) {
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        Py_DECREF(error);
        return;
    }
    /* the capture cannot be read on: like a damaged one, with read()'s
     * exception (a truncated .gz's EOFError, say) as the cause */
    PyObject *text = PyUnicode_FromFormat("cannot read the capture: %s: %S", Py_TYPE(error)->tp_name, error);
    const char *message = text ? PyUnicode_AsUTF8(text) : NULL;
    if (message) {
        raise_damaged(state, in->name, message, frame, offset);
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        if (value) {
            PyException_SetContext(value, Py_NewRef(error));
            PyException_SetCause(value, Py_NewRef(error));
        }
        PyErr_Restore(type, value, traceback);
    }
    Py_XDECREF(text);
    Py_DECREF(error);
}

int check_signals_released(void *slot)
{
    PyThreadState **released = slot;
    if (!*released)
        return PyErr_CheckSignals() < 0;
    PyEval_RestoreThread(*released);
    int stop = PyErr_CheckSignals() < 0;
    *released = PyEval_SaveThread();
    return stop;
}

int open_capture_input(const struct module_state *state, struct capture *c, PyObject *fin, PyObject *filter,
                       struct input *in, PyThreadState **released)
{
    if (filter != Py_None && !PyUnicode_Check(filter)) {
        PyErr_Format(PyExc_TypeError, "filter must be a str (a BPF expression), not %.100s", Py_TYPE(filter)->tp_name);
        return -1;
    }
    FILE *file = open_input(fin, in);
    if (!file)
        return -1;
    const struct capture_check check = {.function = check_signals_released, .arg = released,
                                        .interval_ns = 50000000u};
    in->released = released; /* read() takes the GIL back from there */
    *released = PyEval_SaveThread(); /* reading the file header may wait on a pipe */
    PyObject *head = in->head;
    int opened = capture_open_after(c, head ? PyBytes_AS_STRING(head) : NULL, head ? (size_t)PyBytes_GET_SIZE(head) : 0,
                                    file, &check);
    PyEval_RestoreThread(*released);
    *released = NULL;
    if (opened < 0) {
        if (!capture_interrupted(c))
            raise_input_error(state, in, capture_error(c), 1, 0);
        return -1;
    }
    if (filter != Py_None) {
        const char *expression = PyUnicode_AsUTF8(filter);
        if (!expression)
            return -1;
        if (capture_set_filter(c, expression) < 0) {
            PyErr_Format(state->filter_error, "BPF filter %R does not compile: %s", filter, capture_error(c));
            return -1;
        }
    }
    return 0;
}

void input_clear(struct input *in)
{
    Py_CLEAR(in->name);
    Py_CLEAR(in->head);
    Py_CLEAR(in->read_error);
}
