/* Python objects to core values: addresses, ports, timestamps, frames. Every
 * failure names the field, so a user sees which part of a packet is wrong. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "binding.h"
#include "core/timestamp_text.h"

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

int convert_address(PyObject *value, const char *field, uint8_t *family, uint8_t out[16])
{
    memset(out, 0, 16);
    if (PyObject_TypeCheck(value, (PyTypeObject *)G.ipv4_type)) {
        /* IPv4Address keeps its value in the slot _ip: read it in place */
        PyObject *number = Py_IS_TYPE(value, (PyTypeObject *)G.ipv4_type) && G.ipv4_ip_offset
                               ? Py_XNewRef(*(PyObject **)((char *)value + G.ipv4_ip_offset))
                               : PyObject_GetAttr(value, G.str_ip);
        if (!number && !PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "field '%s': IPv4Address without a value", field);
        unsigned long ip = number ? PyLong_AsUnsignedLong(number) : (unsigned long)-1;
        Py_XDECREF(number);
        if (ip == (unsigned long)-1 && PyErr_Occurred())
            return -1;
        for (int i = 0; i < 4; i++)
            out[i] = (uint8_t)(ip >> (24 - 8 * i));
        *family = FLOW_FAMILY_IPV4;
        return 0;
    }
    if (PyObject_TypeCheck(value, (PyTypeObject *)G.ipv6_type)) {
        PyObject *packed = PyObject_GetAttr(value, G.str_packed);
        if (!packed)
            return -1;
        int ok = PyBytes_Check(packed) && PyBytes_GET_SIZE(packed) == 16;
        if (ok)
            memcpy(out, PyBytes_AS_STRING(packed), 16);
        Py_DECREF(packed);
        if (!ok) {
            PyErr_Format(PyExc_ValueError, "field '%s': IPv6 address does not pack to 16 bytes", field);
            return -1;
        }
        *family = FLOW_FAMILY_IPV6;
        return 0;
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

Py_ssize_t timestamp_text(PyObject *value, char out[TIMESTAMP_TEXT_LIMIT])
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
               PyObject_TypeCheck(value, (PyTypeObject *)G.decimal_type)) {
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
static int frac_is_nanosecond(PyObject *frame, const struct pcap_record *record)
{
    if (record->ts_frac >= 1000000)
        return 1;
    if (record->ts_frac == 0)
        return 0;
    PyObject *epoch = get_optional_field(frame, G.str_time_epoch);
    if (!epoch) {
        PyErr_Clear();
        return 0;
    }
    int nano = 0;
    if (PyObject_TypeCheck(epoch, (PyTypeObject *)G.decimal_type)) {
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

int convert_frame(PyObject *frame, struct pcap_record *record, Py_buffer *data)
{
    PyObject *info = get_field(frame, G.str_frame_info, "frame");
    if (!info)
        return -1;
    int status = read_count(info, G.str_ts_sec, &record->ts_sec) < 0 ||
                 read_count(info, G.str_ts_usec, &record->ts_frac) < 0 ||
                 read_count(info, G.str_incl_len, &record->incl_len) < 0 ||
                 read_count(info, G.str_orig_len, &record->orig_len) < 0;
    Py_DECREF(info);
    if (status)
        return -1;
    PyObject *packet = get_field(frame, G.str_packet, "frame");
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
    record->frac_is_nanosecond = frac_is_nanosecond(frame, record);
    return 0;
}

void raise_tracer_error(const struct tracer *tracer)
{
    const struct tracer_error *error = &tracer->error;
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
