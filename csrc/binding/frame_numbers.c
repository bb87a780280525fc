/* An Index's frame numbers, kept compact until they are asked for: the
 * core's encoding (the first frame, then one- or two-byte differences)
 * copied into a capsule, which the Index holds in place of its tuple. The
 * first read of the field turns it into the tuple pcapkit gives (info.c);
 * frame_text() writes them as JSON without making an int of each. */
#include <stdio.h>
#include <string.h>

#include "binding.h"

#define CAPSULE_NAME "pcapflow._frame_numbers"

struct frame_numbers {
    struct flow_view view; /* label fields unused; steps points into bytes */
    uint8_t bytes[];
};

static void free_numbers(PyObject *capsule) { PyMem_Free(PyCapsule_GetPointer(capsule, CAPSULE_NAME)); }

PyObject *frame_numbers_new(const struct flow_view *flow)
{
    size_t length = flow_view_steps_length(flow);
    struct frame_numbers *numbers = PyMem_Malloc(sizeof *numbers + (length ? length : 1));
    if (!numbers)
        return PyErr_NoMemory();
    numbers->view = (struct flow_view){NULL, 0, 0, flow->frame_count, flow->first_frame, numbers->bytes};
    if (length)
        memcpy(numbers->bytes, flow->steps, length);
    PyObject *capsule = PyCapsule_New(numbers, CAPSULE_NAME, free_numbers);
    if (!capsule)
        PyMem_Free(numbers);
    return capsule;
}

int frame_numbers_check(PyObject *value) { return PyCapsule_IsValid(value, CAPSULE_NAME); }

PyObject *frame_numbers_tuple(PyObject *capsule)
{
    const struct frame_numbers *numbers = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (!numbers)
        return NULL;
    uint32_t count = numbers->view.frame_count;
    PyObject *tuple = PyTuple_New(count);
    struct frame_reader frames = frame_reader_start(&numbers->view);
    for (uint32_t i = 0; tuple && i < count; i++) {
        PyObject *number = PyLong_FromLongLong(frame_reader_next(&frames));
        if (!number) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, i, number);
    }
    /* ints only: the collector need not scan it */
    if (tuple)
        PyObject_GC_UnTrack(tuple);
    return tuple;
}

/* Writes number in decimal, after ", " when separated; returns the bytes written. */
static size_t put_number(int64_t number, int separated, char *out)
{
    char digits[20];
    size_t n = 0, written = 0;
    uint64_t magnitude = number < 0 ? 0 - (uint64_t)number : (uint64_t)number;
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (separated) {
        out[written++] = ',';
        out[written++] = ' ';
    }
    if (number < 0)
        out[written++] = '-';
    while (n)
        out[written++] = digits[--n];
    return written;
}

/* frame_text(index, start=0, limit=65536) -> (text, next_start or None), or
 * None when the Index's frame numbers are a tuple already: its frame numbers
 * from position start on, at most limit of them, as JSON writes a list's
 * items ("1, 2, 3"), read from the compact form without an int object each
 * (the CLI's index file). */
PyObject *frame_text(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *index;
    Py_ssize_t start = 0, limit = 65536;
    if (!PyArg_ParseTuple(args, "O|nn:frame_text", &index, &start, &limit))
        return NULL;
    if (!info_check(index) || start < 0 || limit < 1) {
        PyErr_SetString(PyExc_ValueError, "frame_text() takes an Index, a start >= 0 and a limit >= 1");
        return NULL;
    }
    PyObject *value = info_raw_field(index, INDEX_INDEX);
    if (!value || !frame_numbers_check(value))
        Py_RETURN_NONE;
    const struct frame_numbers *numbers = PyCapsule_GetPointer(value, CAPSULE_NAME);
    Py_ssize_t count = (Py_ssize_t)numbers->view.frame_count;
    if (start >= count)
        return Py_BuildValue("(sO)", "", Py_None);
    Py_ssize_t stop = limit < count - start ? start + limit : count;
    struct frame_reader frames = frame_reader_start(&numbers->view);
    for (Py_ssize_t i = 0; i < start; i++)
        (void)frame_reader_next(&frames);
    /* at most ", ", a sign and 20 digits a number */
    char *text = PyMem_Malloc((size_t)(stop - start) * 23), *end = text;
    if (!text)
        return PyErr_NoMemory();
    for (Py_ssize_t i = start; i < stop; i++)
        end += put_number(frame_reader_next(&frames), i > start, end);
    PyObject *next = stop < count ? PyLong_FromSsize_t(stop) : Py_NewRef(Py_None);
    PyObject *result = next ? Py_BuildValue("(s#N)", text, (Py_ssize_t)(end - text), next) : NULL;
    PyMem_Free(text);
    return result;
}

/* _frame_steps(index) -> (first, last, count, steps) or None: an Index's frame
 * numbers as the core keeps them. The differences do not depend on where the
 * numbering starts, so pcapflow.dask's tasks hand them over as they are (a
 * byte or two a frame) and the client adds its offset to the first alone.
 * None when the Index holds a tuple already. */
PyObject *frame_steps(PyObject *module, PyObject *index)
{
    (void)module;
    if (!info_check(index)) {
        PyErr_SetString(PyExc_TypeError, "_frame_steps() takes an Index");
        return NULL;
    }
    PyObject *value = info_raw_field(index, INDEX_INDEX);
    if (!value || !frame_numbers_check(value))
        Py_RETURN_NONE;
    const struct frame_numbers *numbers = PyCapsule_GetPointer(value, CAPSULE_NAME);
    struct frame_reader frames = frame_reader_start(&numbers->view);
    int64_t last = 0;
    for (uint32_t i = 0; i < numbers->view.frame_count; i++)
        last = frame_reader_next(&frames);
    return Py_BuildValue("(LLIy#)", (long long)numbers->view.first_frame, (long long)last,
                         (unsigned int)numbers->view.frame_count, (const char *)numbers->view.steps,
                         (Py_ssize_t)flow_view_steps_length(&numbers->view));
}

/* Whether steps hold count - 1 differences, each ended by a byte below 0x80. */
static int steps_hold(const uint8_t *steps, size_t length, uint32_t count)
{
    size_t ended = 0;
    for (size_t i = 0; i < length; i++)
        ended += steps[i] < 0x80;
    return count > 0 && ended == (size_t)count - 1 && (length == 0 || steps[length - 1] < 0x80);
}

static PyObject *index_of(const struct module_state *state, PyObject *fpout, PyObject *label, int64_t first,
                          uint32_t count, const uint8_t *steps)
{
    struct flow_view view = {NULL, 0, 0, count, first, steps};
    PyObject *numbers = frame_numbers_new(&view);
    PyObject *result = numbers ? index_new(state, fpout, numbers, label) : NULL;
    Py_XDECREF(numbers);
    return result;
}

/* _index_from_steps(fpout, label, first, count, steps) -> Index: an Index
 * whose frame numbers are first and then those the steps (from
 * _frame_steps) give, kept compact until read. */
PyObject *index_from_steps(PyObject *module, PyObject *args)
{
    PyObject *fpout, *label;
    long long first;
    unsigned int count;
    Py_buffer steps;
    if (!PyArg_ParseTuple(args, "UULIy*:_index_from_steps", &fpout, &label, &first, &count, &steps))
        return NULL;
    PyObject *result = NULL;
    if (!steps_hold(steps.buf, (size_t)steps.len, count))
        PyErr_SetString(PyExc_ValueError, "_index_from_steps(): steps do not hold count - 1 differences");
    else
        result = index_of(PyModule_GetState(module), fpout, label, first, count, steps.buf);
    PyBuffer_Release(&steps);
    return result;
}

/* _indexes(prefix, suffix, labels, firsts, counts, ends, steps, offset, start)
 * -> list: the Index of each flow from position start on, fpout
 * prefix + label + suffix, frame numbers first + offset and then as its steps
 * give (flow i's are steps[ends[i - 1]:ends[i]]). firsts are int64, counts
 * uint32 and ends uint64 buffers, one item a flow. pcapflow.dask's client
 * makes the Index of a task's flows with it, none an int per frame. */
PyObject *indexes_from_steps(PyObject *module, PyObject *args)
{
    PyObject *prefix, *suffix, *labels;
    Py_buffer firsts, counts, ends, steps;
    long long offset;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "UUO!y*y*y*y*Ln:_indexes", &prefix, &suffix, &PyList_Type, &labels, &firsts, &counts,
                          &ends, &steps, &offset, &start))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = PyList_GET_SIZE(labels);
    if (firsts.len != n * 8 || counts.len != n * 4 || ends.len != n * 8 || start < 0 || start > n) {
        PyErr_SetString(PyExc_ValueError, "_indexes(): firsts, counts and ends must have an item a label");
        goto done;
    }
    const uint8_t *bytes = steps.buf;
    result = PyList_New(0);
    uint64_t begin = 0;
    for (Py_ssize_t i = 0; result && i < n; i++) {
        int64_t first;
        uint32_t count;
        uint64_t end;
        memcpy(&first, (const char *)firsts.buf + i * 8, 8);
        memcpy(&count, (const char *)counts.buf + i * 4, 4);
        memcpy(&end, (const char *)ends.buf + i * 8, 8);
        if (end < begin || end > (uint64_t)steps.len || !steps_hold(bytes + begin, (size_t)(end - begin), count)) {
            PyErr_SetString(PyExc_ValueError, "_indexes(): steps do not hold count - 1 differences a flow");
            Py_CLEAR(result);
            break;
        }
        if (i >= start) {
            PyObject *label = PyList_GET_ITEM(labels, i);
            PyObject *fpout = PyUnicode_Check(label) ? PyUnicode_FromFormat("%U%U%U", prefix, label, suffix) : NULL;
            PyObject *made = fpout ? index_of(PyModule_GetState(module), fpout, label, first + offset, count,
                                              bytes + begin) : NULL;
            if (!fpout && !PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "_indexes(): labels must be str");
            if (!made || PyList_Append(result, made) < 0)
                Py_CLEAR(result);
            Py_XDECREF(made);
            Py_XDECREF(fpout);
        }
        begin = end;
    }
done:
    PyBuffer_Release(&firsts);
    PyBuffer_Release(&counts);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&steps);
    return result;
}
