/* Python objects to core values: addresses, ports, timestamps, frames. Every
 * failure names the field, so a user sees which part of a packet is wrong. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "binding.h"

PyObject *get_optional_field(PyObject *object, PyObject *name)
{
    if (PyDict_Check(object)) {
        PyObject *value = PyDict_GetItemWithError(object, name);
        return value ? Py_NewRef(value) : NULL;
    }
    PyObject *value = PyObject_GetAttr(object, name);
    if (value || !PyErr_ExceptionMatches(PyExc_AttributeError))
        return value;
    PyErr_Clear();
    if (!PyMapping_Check(object) || PyUnicode_Check(object) || PyBytes_Check(object))
        return NULL;
    value = PyObject_GetItem(object, name);
    if (!value && (PyErr_ExceptionMatches(PyExc_KeyError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
                   PyErr_ExceptionMatches(PyExc_IndexError)))
        PyErr_Clear();
    return value;
}

PyObject *get_field(PyObject *object, PyObject *name, const char *what)
{
    PyObject *value = get_optional_field(object, name);
    if (!value && !PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "%s has no field '%U' (got %.100s)", what, name, Py_TYPE(object)->tp_name);
    return value;
}

#if PY_VERSION_HEX < 0x030D0000
static void put_big_endian(uint64_t word, uint8_t *out, size_t width)
{
    for (size_t i = 0; i < width; i++)
        out[width - 1 - i] = (uint8_t)(word >> (8 * i));
}
#endif

/* An int in 0 .. 2**(8*size) - 1 (size 4 or 16), big-endian into out.
 * Returns 0, or -1 with an exception. */
static int unsigned_bytes(const struct module_state *state, PyObject *number, uint8_t *out, size_t size)
{
    if (!PyLong_Check(number)) {
        PyErr_SetString(PyExc_ValueError, "not an int");
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    (void)state;
    Py_ssize_t needed = PyLong_AsNativeBytes(number, out, (Py_ssize_t)size,
                                             Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_REJECT_NEGATIVE |
                                                 Py_ASNATIVEBYTES_UNSIGNED_BUFFER);
    if (needed >= 0 && (size_t)needed > size)
        PyErr_SetString(PyExc_ValueError, "too large");
    return needed >= 0 && (size_t)needed <= size ? 0 : -1;
#else
    if (size == 4) {
        unsigned long word = PyLong_AsUnsignedLong(number); /* OverflowError if negative */
        if (word == (unsigned long)-1 && PyErr_Occurred())
            return -1;
        if (word > 0xffffffffu) {
            PyErr_SetString(PyExc_ValueError, "too large");
            return -1;
        }
        put_big_endian(word, out, 4);
        return 0;
    }
    /* the high 64 bits (an OverflowError if negative or wider), then the low ones */
    PyObject *high = PyNumber_Rshift(number, state->int_64);
    unsigned long long high_word = high ? PyLong_AsUnsignedLongLong(high) : (unsigned long long)-1;
    Py_XDECREF(high);
    if (high_word == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    unsigned long long low_word = PyLong_AsUnsignedLongLongMask(number);
    if (low_word == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    put_big_endian(high_word, out, 8);
    put_big_endian(low_word, out + 8, 8);
    return 0;
#endif
}

/* An ipaddress object's integer value (_ip, a slot of the exact types; the
 * public .packed for subclasses, which may compute it otherwise). */
static int ipaddress_bytes(const struct module_state *state, PyObject *value, const char *field, uint8_t *out,
                           size_t size)
{
    PyObject *number;
    PyObject *slot = Py_IS_TYPE(value, (PyTypeObject *)state->ipv4_type)   ? state->ipv4_ip_slot
                     : Py_IS_TYPE(value, (PyTypeObject *)state->ipv6_type) ? state->ipv6_ip_slot
                                                                      : NULL;
    if (slot) {
        /* the slot's descriptor, asked directly: what value._ip does, without the attribute lookup */
        number = Py_TYPE(slot)->tp_descr_get(slot, value, (PyObject *)Py_TYPE(value));
        int status = number ? unsigned_bytes(state, number, out, size) : -1;
        Py_XDECREF(number);
        if (status == 0)
            return 0;
    } else {
        PyObject *packed = PyObject_GetAttr(value, state->str_packed);
        int ok = packed && PyBytes_Check(packed) && (size_t)PyBytes_GET_SIZE(packed) == size;
        if (ok)
            memcpy(out, PyBytes_AS_STRING(packed), size);
        Py_XDECREF(packed);
        if (ok)
            return 0;
    }
    if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        /* not %R: the repr of such an object fails too */
        PyErr_Format(PyExc_ValueError, "field '%s': the %.100s does not hold a %d-bit address", field,
                     Py_TYPE(value)->tp_name, (int)size * 8);
    }
    return -1;
}

int convert_address(const struct module_state *state, PyObject *value, const char *field, uint8_t *family,
                    uint8_t out[16])
{
    memset(out, 0, 16);
    if (PyObject_TypeCheck(value, (PyTypeObject *)state->ipv4_type)) {
        *family = FLOW_FAMILY_IPV4;
        return ipaddress_bytes(state, value, field, out, 4);
    }
    if (PyObject_TypeCheck(value, (PyTypeObject *)state->ipv6_type)) {
        *family = FLOW_FAMILY_IPV6;
        return ipaddress_bytes(state, value, field, out, 16);
    }
    if (PyUnicode_Check(value)) {
        const char *text = PyUnicode_AsUTF8(value);
        if (!text)
            return -1;
        if (inet_pton(AF_INET, text, out) == 1) {
            *family = FLOW_FAMILY_IPV4;
            return 0;
        }
        if (inet_pton(AF_INET6, text, out) == 1) {
            *family = FLOW_FAMILY_IPV6;
            return 0;
        }
        PyErr_Format(PyExc_ValueError, "field '%s': %R is not an IPv4 or IPv6 address", field, value);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "field '%s' must be an ipaddress.IPv4Address, IPv6Address or str, not %.100s",
                 field, Py_TYPE(value)->tp_name);
    return -1;
}

int convert_port_general(PyObject *value, const char *field, uint16_t *out)
{
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "field '%s' must be an int, not %.100s", field, Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow;
    long port = PyLong_AsLongAndOverflow(value, &overflow);
    if (port == -1 && PyErr_Occurred())
        return -1;
    if (overflow || port < 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "field '%s' must be a port number in 0..65535, not %R", field, value);
        return -1;
    }
    *out = (uint16_t)port;
    return 0;
}

int convert_frame_number_general(PyObject *value, int64_t *out)
{
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "field 'index' (the frame number) must be an int, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (number == -1 && PyErr_Occurred())
        return -1;
    if (overflow) {
        PyErr_Format(PyExc_ValueError, "field 'index' (the frame number) is out of range: %R", value);
        return -1;
    }
    *out = number;
    return 0;
}

Py_ssize_t timestamp_text(const struct module_state *state, PyObject *value, char out[TIMESTAMP_TEXT_LIMIT])
{
    PyObject *text;
    if (PyFloat_CheckExact(value)) {
        /* repr() of a float: the shortest text that reads back to the same value */
        size_t length = format_double_repr_fast(PyFloat_AS_DOUBLE(value), out);
        if (length)
            return (Py_ssize_t)length;
        char *repr = PyOS_double_to_string(PyFloat_AS_DOUBLE(value), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!repr) {
            PyErr_NoMemory();
            return -1;
        }
        text = PyUnicode_FromString(repr);
        PyMem_Free(repr);
    } else if (PyFloat_Check(value) || PyLong_Check(value) ||
               PyObject_TypeCheck(value, (PyTypeObject *)state->decimal_type)) {
        text = PyObject_Str(value);
    } else {
        PyErr_Format(PyExc_TypeError, "field 'timestamp' must be a float, int or decimal.Decimal, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_ssize_t length = -1;
    const char *chars = text ? PyUnicode_AsUTF8AndSize(text, &length) : NULL;
    if (chars && length >= TIMESTAMP_TEXT_LIMIT) {
        PyErr_Format(PyExc_ValueError, "field 'timestamp': str(%R) is too long to be part of a flow label", value);
        length = -1;
    } else if (chars) {
        memcpy(out, chars, (size_t)length + 1);
    }
    Py_XDECREF(text);
    return chars ? length : -1;
}

int convert_linktype(PyObject *value, uint32_t *out)
{
    PyObject *number = PyNumber_Index(value);
    if (!number) {
        PyErr_Format(PyExc_TypeError, "field 'protocol' (the link type) must be an int or IntEnum, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    unsigned long linktype = PyLong_AsUnsignedLong(number);
    Py_DECREF(number);
    if ((linktype == (unsigned long)-1 && PyErr_Occurred()) || linktype > UINT32_MAX) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "field 'protocol' (the link type) is out of range: %R", value);
        return -1;
    }
    *out = (uint32_t)linktype;
    return 0;
}

static int read_count(PyObject *info, PyObject *name, uint64_t *out)
{
    PyObject *value = get_field(info, name, "frame_info");
    if (!value)
        return -1;
    int status = 0;
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "frame_info field '%U' must be an int, not %.100s", name,
                     Py_TYPE(value)->tp_name);
        status = -1;
    } else {
        unsigned long long number = PyLong_AsUnsignedLongLong(value);
        if (number == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "frame_info field '%U' is out of range: %R", name, value);
            status = -1;
        }
        *out = number;
    }
    Py_DECREF(value);
    return status;
}

/* Whether (epoch - seconds) * scale == frac, computed exactly on a Decimal
 * epoch: 1 if so, 0 if not, -1 on error. */
static int decimal_matches(PyObject *epoch, uint64_t seconds, uint64_t frac, long scale)
{
    PyObject *whole = PyLong_FromUnsignedLongLong(seconds);
    PyObject *fraction = whole ? PyNumber_Subtract(epoch, whole) : NULL;
    PyObject *million = fraction ? PyLong_FromLong(scale) : NULL;
    PyObject *scaled = million ? PyNumber_Multiply(fraction, million) : NULL;
    PyObject *expected = scaled ? PyLong_FromUnsignedLongLong(frac) : NULL;
    int result = expected ? PyObject_RichCompareBool(scaled, expected, Py_EQ) : -1;
    Py_XDECREF(whole);
    Py_XDECREF(fraction);
    Py_XDECREF(million);
    Py_XDECREF(scaled);
    Py_XDECREF(expected);
    return result;
}

/* Whether the sub-second field counts nanoseconds. A value of a million or
 * more can only be nanoseconds; otherwise the frame's time_epoch (pcapkit's
 * frames carry one, a Decimal) tells which reading of the field matches:
 * exactly for a Decimal (microseconds unless it matches only nanoseconds),
 * and for a float by which reading is nearer. */
static int frac_is_nanosecond(const struct module_state *state, PyObject *frame, const struct pcap_record *record)
{
    if (record->ts_frac >= 1000000)
        return 1;
    if (record->ts_frac == 0)
        return 0;
    PyObject *epoch = get_optional_field(frame, state->str_time_epoch);
    if (!epoch) {
        PyErr_Clear();
        return 0;
    }
    int nano = 0;
    if (PyObject_TypeCheck(epoch, (PyTypeObject *)state->decimal_type)) {
        nano = decimal_matches(epoch, record->ts_sec, record->ts_frac, 1000000) == 0 &&
               decimal_matches(epoch, record->ts_sec, record->ts_frac, 1000000000) == 1;
    } else {
        double seconds = PyFloat_AsDouble(epoch);
        if (!(seconds == -1.0 && PyErr_Occurred())) {
            double fraction = seconds - (double)record->ts_sec;
            nano = fabs(fraction * 1e9 - (double)record->ts_frac) < fabs(fraction * 1e6 - (double)record->ts_frac);
        }
    }
    PyErr_Clear();
    Py_DECREF(epoch);
    return nano;
}

int convert_frame(const struct module_state *state, PyObject *frame, struct pcap_record *record, Py_buffer *data)
{
    PyObject *info = get_field(frame, state->str_frame_info, "frame");
    if (!info)
        return -1;
    int status = read_count(info, state->str_ts_sec, &record->ts_sec) < 0 ||
                 read_count(info, state->str_ts_usec, &record->ts_frac) < 0 ||
                 read_count(info, state->str_incl_len, &record->incl_len) < 0 ||
                 read_count(info, state->str_orig_len, &record->orig_len) < 0;
    Py_DECREF(info);
    if (status)
        return -1;
    PyObject *packet = get_field(frame, state->str_packet, "frame");
    if (!packet)
        return -1;
    status = PyObject_GetBuffer(packet, data, PyBUF_SIMPLE);
    Py_DECREF(packet);
    if (status < 0) {
        PyErr_Format(PyExc_TypeError, "frame field 'packet' must be bytes-like");
        return -1;
    }
    if (data->len > PCAP_SNAPLEN) {
        /* readers (libpcap, Wireshark) refuse a record longer than the
         * file's snapshot length, and every record after it */
        PyErr_Format(PyExc_ValueError, "frame field 'packet' holds %zd bytes, more than the %d a record of the flow's "
                     "pcap file may hold", data->len, (int)PCAP_SNAPLEN);
        PyBuffer_Release(data);
        return -1;
    }
    /* the record must describe the bytes that follow it */
    record->incl_len = (uint64_t)data->len;
    record->frac_is_nanosecond = frac_is_nanosecond(state, frame, record);
    return 0;
}

void raise_tracer_error(const struct tracer *tracer) { raise_error(tracer_last_error(tracer)); }

void raise_error(const struct tracer_error *error)
{
    if (error->code == ENOMEM) {
        PyErr_NoMemory();
        return;
    }
    if (!error->code) {
        PyErr_Format(PyExc_ValueError, "%s%s%s", error->message, error->path[0] ? ": " : "", error->path);
        return;
    }
    /* OSError(errno, message, filename) becomes the subclass that fits the
     * errno (PermissionError, FileNotFoundError, ...) and names the path */
    PyObject *args = Py_BuildValue("(iNs)", error->code,
                                   PyUnicode_FromFormat("%s: %s", error->message, strerror(error->code)),
                                   error->path);
    if (args)
        PyErr_SetObject(PyExc_OSError, args);
    Py_XDECREF(args);
}
