/* The pcapflow._core module: multi-phase initialisation, so that each
 * import (a reimport, a subinterpreter) gets its own state: its types, its
 * exceptions and, looked up once, the Python objects the per-packet code
 * compares against. */
#include "binding.h"

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

static int make_exceptions(struct module_state *state)
{
    state->unsupported_call = new_exception("pcapflow.UnsupportedCall",
                                       "An attribute of a read-only object was set or deleted.",
                                       PyExc_AttributeError, NULL);
    state->filter_error = new_exception("pcapflow.FilterError", "A BPF filter expression does not compile.",
                                   PyExc_ValueError, NULL);
    PyObject *function = PyCFunction_New(&capture_error_str_def, NULL);
    PyObject *method = function ? PyInstanceMethod_New(function) : NULL;
    Py_XDECREF(function);
    PyObject *attributes = method ? Py_BuildValue("{sOsOsOsOs()sO}", "filename", Py_None, "frame", Py_None,
                                                  "offset", Py_None, "stats", Py_None, "index", "__str__", method)
                                  : NULL;
    Py_XDECREF(method);
    state->capture_error = attributes ? new_exception("pcapflow.CaptureError",
                                                 "A capture file is not a capture, or is damaged.\n\n"
                                                 "Attributes: filename, frame (the number the unreadable frame "
                                                 "would have had), offset (bytes of the file read when the damage "
                                                 "was found), index (every flow traced before the damage; their "
                                                 "files are complete) and stats (the counters up to the damage).",
                                                 PyExc_ValueError, attributes)
                                 : NULL;
    return state->unsupported_call && state->filter_error && state->capture_error ? 0 : -1;
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
    const struct module_state *state = PyModule_GetState(module);
    if (!PyObject_TypeCheck(tracer, state->tcpbase_type)) {
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
    {"frame_text", frame_text, METH_VARARGS,
     "frame_text(index, start=0, limit=65536)\n--\n\nAn Index's frame numbers from position start, at most limit, as "
     "JSON list items, and where to go on (None at the end); None when they are a tuple already."},
    {"_frame_steps", frame_steps, METH_O,
     "_frame_steps(index, /)\n--\n\nAn Index's frame numbers as kept compact: (first, last, count, steps), or None."},
    {"_index_from_steps", index_from_steps, METH_VARARGS,
     "_index_from_steps(fpout, label, first, count, steps, /)\n--\n\nAn Index of frame numbers first, then as steps "
     "(from _frame_steps) give."},
    {"_indexes", indexes_from_steps, METH_VARARGS,
     "_indexes(prefix, suffix, labels, firsts, counts, ends, steps, offset, start, /)\n--\n\nThe Index of each "
     "flow from position start on, from frame numbers as _frame_steps gives them, one after another."},
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

static int intern_all(struct module_state *state)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&state->str_packet, "packet"},         {&state->str_frame_info, "frame_info"},
        {&state->str_ts_sec, "ts_sec"},         {&state->str_ts_usec, "ts_usec"},
        {&state->str_incl_len, "incl_len"},     {&state->str_orig_len, "orig_len"},
        {&state->str_time_epoch, "time_epoch"}, {&state->str_ip, "_ip"},
        {&state->str_packed, "packed"},         {&state->str_callback_fn, "__callback_fn__"},
        {&state->str_trace, "trace"},           {&state->str_dump, "dump"},
        {&state->str_items, "items"},           {&state->str_to_dict, "to_dict"},
        {&state->str_pcapkit_info_module, "pcapkit.corekit.infoclass"}, {&state->str_rst, "rst"},
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
static PyObject *ip_slot(const struct module_state *state, PyObject *type)
{
    PyObject *slot = PyObject_GetAttr(type, state->str_ip);
    if (slot && (!Py_IS_TYPE(slot, &PyMemberDescr_Type) || !Py_TYPE(slot)->tp_descr_get))
        Py_CLEAR(slot);
    PyErr_Clear();
    return slot;
}

/* The foreign objects the conversions compare against, looked up once. */
static int look_up_foreign(struct module_state *state)
{
    if (!(state->ipv4_type = attribute_of("ipaddress", "IPv4Address")) ||
        !(state->ipv6_type = attribute_of("ipaddress", "IPv6Address")) ||
        !(state->decimal_type = attribute_of("decimal", "Decimal")))
        return -1;
    if (!(state->int_64 = PyLong_FromLong(64)))
        return -1;
    state->ipv4_ip_slot = ip_slot(state, state->ipv4_type);
    state->ipv6_ip_slot = ip_slot(state, state->ipv6_type);
    /* Python 3.13 prints IPv4-mapped IPv6 addresses as ::ffff:a.b.c.d; labels follow the running Python */
    PyObject *probe = PyUnicode_FromString("::ffff:1.2.3.4");
    PyObject *address = probe ? PyObject_CallOneArg(state->ipv6_type, probe) : NULL;
    PyObject *text = address ? PyObject_Str(address) : NULL;
    state->mapped_as_dotted = text && PyUnicode_Compare(text, probe) == 0;
    Py_XDECREF(probe);
    Py_XDECREF(address);
    Py_XDECREF(text);
    return PyErr_Occurred() ? -1 : 0;
}

PyTypeObject *add_type(PyObject *module, PyType_Spec *spec, PyObject *base)
{
    PyTypeObject *type = (PyTypeObject *)PyType_FromModuleAndSpec(module, spec, base);
    if (type && PyModule_AddType(module, type) < 0)
        Py_CLEAR(type);
    return type;
}

static int module_exec(PyObject *module)
{
    struct module_state *state = PyModule_GetState(module);
    /* on failure the module is dropped, and module_free releases what was made */
    if (intern_all(state) < 0 || look_up_foreign(state) < 0 || info_types_add(module, state) < 0 ||
        tcp_type_add(module, state) < 0 || flow_writer_type_add(module, state) < 0 ||
        capture_reader_type_add(module, state) < 0 || follow_reader_type_add(module) < 0 || make_exceptions(state) < 0 ||
        PyModule_AddObjectRef(module, "UnsupportedCall", state->unsupported_call) < 0 ||
        PyModule_AddObjectRef(module, "FilterError", state->filter_error) < 0 ||
        PyModule_AddObjectRef(module, "CaptureError", state->capture_error) < 0)
        return -1;
    return 0;
}

/* Every object member of struct module_state. */
#define STATE_OBJECTS(X)                                                                                   \
    X(packet_type) X(buffer_type) X(index_type) X(tcpbase_type) X(flow_writer_type) X(capture_reader_type) \
    X(unsupported_call) X(capture_error) X(filter_error) X(base_trace_method) X(base_dump_method)          \
    X(pcapkit_packet_type) X(ipv4_type) X(ipv6_type) X(decimal_type) X(int_64) X(ipv4_ip_slot)             \
    X(ipv6_ip_slot) X(str_packet) X(str_frame_info) X(str_ts_sec) X(str_ts_usec) X(str_incl_len)           \
    X(str_orig_len) X(str_time_epoch) X(str_ip) X(str_packed) X(str_callback_fn) X(str_trace) X(str_dump)  \
    X(str_items) X(str_to_dict) X(str_pcapkit_info_module) X(str_rst)

/* The types refer to the module (PyType_GetModule) and the state to the
 * types: the collector sees the cycle through these. */
static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    struct module_state *state = PyModule_GetState(module);
#define VISIT_MEMBER(name) Py_VISIT(state->name);
    STATE_OBJECTS(VISIT_MEMBER)
#undef VISIT_MEMBER
    return 0;
}

static int module_clear(PyObject *module)
{
    struct module_state *state = PyModule_GetState(module);
#define CLEAR_MEMBER(name) Py_CLEAR(state->name);
    STATE_OBJECTS(CLEAR_MEMBER)
#undef CLEAR_MEMBER
    return 0;
}

static void module_free(void *module) { module_clear((PyObject *)module); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *)module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pcapflow._core",
    .m_doc = "The C core of pcapflow: flow tracer, data types, pcap writer.",
    .m_size = sizeof(struct module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyObject *module_of_type(PyTypeObject *type)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyType_GetModuleByDef(type, &module_def);
#else
    /* what PyType_GetModuleByDef (3.11) does, with the public calls of 3.9:
     * the first heap type of the MRO that a module with this definition made */
    PyObject *mro = type->tp_mro;
    for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!PyType_HasFeature(base, Py_TPFLAGS_HEAPTYPE))
            continue;
        /* a class made by Python code has no module: PyType_GetModule
         * raises, and any exception set before is kept */
        PyObject *kind, *value, *traceback;
        PyErr_Fetch(&kind, &value, &traceback);
        PyObject *module = PyType_GetModule(base);
        PyErr_Restore(kind, value, traceback);
        if (module && PyModule_GetDef(module) == &module_def)
            return module;
    }
    PyErr_Format(PyExc_TypeError, "%.100s is not a type of pcapflow._core", type->tp_name);
    return NULL;
#endif
}

struct module_state *module_state_of_type(PyTypeObject *type)
{
    PyObject *module = module_of_type(type);
    return module ? PyModule_GetState(module) : NULL;
}

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&module_def); }
