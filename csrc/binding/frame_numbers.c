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
    /* the steps must hold count - 1 differences, each ended by a byte below 0x80 */
    const uint8_t *bytes = steps.buf;
    Py_ssize_t ended = 0;
    for (Py_ssize_t i = 0; i < steps.len; i++)
        ended += bytes[i] < 0x80;
    PyObject *result = NULL;
    if (count == 0 || ended != (Py_ssize_t)count - 1 || (steps.len && bytes[steps.len - 1] >= 0x80)) {
        PyErr_SetString(PyExc_ValueError, "_index_from_steps(): steps do not hold count - 1 differences");
    } else {
        struct flow_view view = {NULL, 0, 0, count, first, bytes};
        PyObject *numbers = frame_numbers_new(&view);
        if (numbers)
            result = index_new(PyModule_GetState(module), fpout, numbers, label);
        Py_XDECREF(numbers);
    }
    PyBuffer_Release(&steps);
    return result;
}
