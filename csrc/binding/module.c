/* The pcapflow._core module: registers the types and looks up, once, the
 * Python objects the per-packet code compares against. */
#include "binding.h"
#include "core/timestamp_text.h"

struct module_globals G;

/* str(CaptureError): "{filename}: {message} (frame {frame}, byte offset {offset})",
 * each part only when known. An instance method of the class made below. */
static PyObject *capture_error_str(PyObject *unused, PyObject *self)
{
    (void)unused;
    PyObject *message = ((PyTypeObject *)PyExc_ValueError)->tp_str(self);
    PyObject *filename = message ? PyObject_GetAttrString(self, "filename") : NULL;
    PyObject *frame = filename ? PyObject_GetAttrString(self, "frame") : NULL;
    PyObject *offset = frame ? PyObject_GetAttrString(self, "offset") : NULL;
    PyObject *text = NULL;
    if (offset) {
        PyObject *where = filename == Py_None ? PyUnicode_FromString("") : PyUnicode_FromFormat("%S: ", filename);
        PyObject *at = frame == Py_None ? PyUnicode_FromString("")
                                        : PyUnicode_FromFormat(" (frame %S, byte offset %S)", frame, offset);
        if (where && at)
            text = PyUnicode_FromFormat("%U%U%U", where, message, at);
        Py_XDECREF(where);
        Py_XDECREF(at);
    }
    Py_XDECREF(message);
    Py_XDECREF(filename);
    Py_XDECREF(frame);
    Py_XDECREF(offset);
    return text;
}

static PyMethodDef capture_error_str_def = {"__str__", capture_error_str, METH_O, NULL};

/* An exception class pcapflow re-exports; attributes: its class attributes
 * as "name", value, ... NULL. Returns a new reference. */
static PyObject *new_exception(const char *name, const char *doc, PyObject *base, PyObject *attributes)
{
    PyObject *type = PyErr_NewExceptionWithDoc(name, doc, base, attributes);
    Py_XDECREF(attributes);
    return type;
}

static int make_exceptions(void)
{
    G.unsupported_call = new_exception("pcapflow.UnsupportedCall",
                                       "An attribute of a read-only object was set or deleted.",
                                       PyExc_AttributeError, NULL);
    G.filter_error = new_exception("pcapflow.FilterError", "A BPF filter expression does not compile.",
                                   PyExc_ValueError, NULL);
    PyObject *function = PyCFunction_New(&capture_error_str_def, NULL);
    PyObject *method = function ? PyInstanceMethod_New(function) : NULL;
    Py_XDECREF(function);
    PyObject *attributes = method ? Py_BuildValue("{sOsOsOsOs()sO}", "filename", Py_None, "frame", Py_None,
                                                  "offset", Py_None, "stats", Py_None, "index", "__str__", method)
                                  : NULL;
    Py_XDECREF(method);
    G.capture_error = attributes ? new_exception("pcapflow.CaptureError",
                                                 "A capture file is not a capture, or is damaged.\n\n"
                                                 "Attributes: filename, frame (the number the unreadable frame "
                                                 "would have had), offset (bytes of the file read when the damage "
                                                 "was found), index (every flow traced before the damage; their "
                                                 "files are complete) and stats (the counters up to the damage).",
                                                 PyExc_ValueError, attributes)
                                 : NULL;
    return G.unsupported_call && G.filter_error && G.capture_error ? 0 : -1;
}

static PyObject *flow_bytes(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromSize_t(tracer_flow_bytes());
}

/* format_timestamp(seconds, nanoseconds) and float_repr(value): the core's
 * label timestamps, exposed so tests can hold them against Python's own. */
static PyObject *format_timestamp_py(PyObject *module, PyObject *args)
{
    (void)module;
    unsigned long long seconds, nanoseconds;
    if (!PyArg_ParseTuple(args, "KK", &seconds, &nanoseconds))
        return NULL;
    char text[TIMESTAMP_TEXT_MAX];
    size_t length = format_timestamp(seconds, nanoseconds, text);
    return PyUnicode_FromStringAndSize(text, (Py_ssize_t)length);
}

static PyObject *float_repr_py(PyObject *module, PyObject *value)
{
    (void)module;
    double v = PyFloat_AsDouble(value);
    if (v == -1.0 && PyErr_Occurred())
        return NULL;
    char text[TIMESTAMP_TEXT_MAX];
    size_t length = format_double_repr(v, text);
    return PyUnicode_FromStringAndSize(text, (Py_ssize_t)length);
}

/* output_budget(capture_bytes, buffer_bytes=None): the output budget
 * trace_file() gives its tracer (tracer_choose_budget); buffer_bytes, when
 * given, bounds it. A buffer_bytes that is not an int of at least 4096 comes
 * back as it is, for TCP() to refuse with its own message. */
static PyObject *output_budget(PyObject *module, PyObject *args)
{
    (void)module;
    unsigned long long capture_bytes;
    PyObject *limit = Py_None;
    if (!PyArg_ParseTuple(args, "K|O:output_budget", &capture_bytes, &limit))
        return NULL;
    unsigned long long bound = 0;
    if (limit != Py_None) {
        if (!PyLong_CheckExact(limit))
            return Py_NewRef(limit);
        bound = PyLong_AsUnsignedLongLong(limit);
        if (bound == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return Py_NewRef(limit);
        }
        if (bound < 4096)
            return Py_NewRef(limit);
    }
    return PyLong_FromUnsignedLongLong(tracer_choose_budget(capture_bytes, bound));
}

static PyObject *available_memory(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromUnsignedLongLong(tracer_available_memory());
}

/* _output_stats(tracer): the output budget of a tracer that writes pcap
 * files itself and what its output cost so far; {} for other tracers (the
 * text formats' files are written by their dumpers, unbuffered). */
static PyObject *output_stats(PyObject *module, PyObject *tracer)
{
    (void)module;
    if (!PyObject_TypeCheck(tracer, &TCPBase_Type)) {
        PyErr_Format(PyExc_TypeError, "expected a TCP tracer, not %.100s", Py_TYPE(tracer)->tp_name);
        return NULL;
    }
    if (!((TCPObject *)tracer)->ready || ((TCPObject *)tracer)->mode != OUTPUT_PCAP)
        return PyDict_New();
    const struct tracer *tr = ((TCPObject *)tracer)->tracer;
    struct tracer_output_counts counts = tracer_output_counts(tr);
    return Py_BuildValue("{sKsKsKsKsK}", "buffer_bytes", (unsigned long long)tracer_output_budget(tr),
                         "files_created", (unsigned long long)counts.files_created, "file_writes",
                         (unsigned long long)counts.file_writes, "file_reopens", (unsigned long long)counts.file_reopens,
                         "budget_flushes", (unsigned long long)counts.budget_flushes);
}

static PyMethodDef module_methods[] = {
    {"output_budget", output_budget, METH_VARARGS,
     "output_budget(capture_bytes, buffer_bytes=None)\n--\n\nThe output buffer budget trace_file() chooses for a "
     "capture of capture_bytes (0: unknown), at most buffer_bytes."},
    {"available_memory", available_memory, METH_NOARGS,
     "Bytes of memory the process could still take (MemAvailable, cgroup and RLIMIT_AS limits), 0 if unknown."},
    {"_output_stats", output_stats, METH_O, "A tracer's output budget and counts of files created, written, reopened."},
    {"format_timestamp", format_timestamp_py, METH_VARARGS, "The label text of a seconds.nanoseconds timestamp."},
    {"float_repr", float_repr_py, METH_O, "repr() of a float, as the C core writes it."},
    {"flow_struct_bytes", flow_bytes, METH_NOARGS, "Size of the C core's per-flow record, in bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "pcapflow._core", "The C core of pcapflow: flow tracer, data types, pcap writer.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

static int intern_all(void)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&G.str_packet, "packet"},         {&G.str_frame_info, "frame_info"}, {&G.str_ts_sec, "ts_sec"},
        {&G.str_ts_usec, "ts_usec"},       {&G.str_incl_len, "incl_len"},     {&G.str_orig_len, "orig_len"},
        {&G.str_time_epoch, "time_epoch"}, {&G.str_ip, "_ip"},                {&G.str_packed, "packed"},
        {&G.str_callback_fn, "__callback_fn__"}, {&G.str_trace, "trace"},     {&G.str_dump, "dump"},
        {&G.str_items, "items"},           {&G.str_to_dict, "to_dict"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!(*names[i].slot = PyUnicode_InternFromString(names[i].text)))
            return -1;
    return 0;
}

static PyObject *attribute_of(const char *module_name, const char *name)
{
    PyObject *module = PyImport_ImportModule(module_name);
    PyObject *value = module ? PyObject_GetAttrString(module, name) : NULL;
    Py_XDECREF(module);
    return value;
}

/* type._ip if it is a slot (a member descriptor with a getter), else NULL */
static PyObject *ip_slot(PyObject *type)
{
    PyObject *slot = PyObject_GetAttr(type, G.str_ip);
    if (slot && (!Py_IS_TYPE(slot, &PyMemberDescr_Type) || !Py_TYPE(slot)->tp_descr_get))
        Py_CLEAR(slot);
    PyErr_Clear();
    return slot;
}

PyMODINIT_FUNC PyInit__core(void)
{
    if (intern_all() < 0)
        return NULL;
    if (!(G.ipv4_type = attribute_of("ipaddress", "IPv4Address")) ||
        !(G.ipv6_type = attribute_of("ipaddress", "IPv6Address")) ||
        !(G.decimal_type = attribute_of("decimal", "Decimal")))
        return NULL;
    if (!(G.int_64 = PyLong_FromLong(64)))
        return NULL;
    G.ipv4_ip_slot = ip_slot(G.ipv4_type);
    G.ipv6_ip_slot = ip_slot(G.ipv6_type);
    /* Python 3.13 prints IPv4-mapped IPv6 addresses as ::ffff:a.b.c.d; labels follow the running Python */
    PyObject *probe = PyUnicode_FromString("::ffff:1.2.3.4");
    PyObject *address = probe ? PyObject_CallOneArg(G.ipv6_type, probe) : NULL;
    PyObject *text = address ? PyObject_Str(address) : NULL;
    G.mapped_as_dotted = text && PyUnicode_Compare(text, probe) == 0;
    Py_XDECREF(probe);
    Py_XDECREF(address);
    Py_XDECREF(text);
    if (PyErr_Occurred())
        return NULL;
    PyTypeObject *types[] = {&Packet_Type, &Buffer_Type, &Index_Type, &TCPBase_Type, &FlowWriter_Type,
                             &CaptureReader_Type};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyType_Ready(types[i]) < 0)
            return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (!module)
        return NULL;
    if (info_types_ready(module) < 0 || tcp_type_ready(module) < 0 || flow_writer_type_ready(module) < 0 ||
        PyModule_AddType(module, &CaptureReader_Type) < 0 || make_exceptions() < 0 ||
        PyModule_AddObjectRef(module, "UnsupportedCall", G.unsupported_call) < 0 ||
        PyModule_AddObjectRef(module, "FilterError", G.filter_error) < 0 ||
        PyModule_AddObjectRef(module, "CaptureError", G.capture_error) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
