/* FlowWriter: what trace(packet, output=True) returns for the C pcap writer
 * (pcapkit returns its dumper). Calling it with a frame writes that frame to
 * the flow's file, even after the flow was closed by FIN. */
#include "binding.h"

typedef struct {
    PyObject_HEAD
    TCPObject *tracer;
    uint64_t epoch;            /* the tracer's __init__ it was made under */
    struct flow_handle handle; /* finds the flow while it is open */
    PyObject *label;
    uint32_t use_number;
} FlowWriterObject;

PyObject *flow_writer_new(TCPObject *tracer, uint32_t slot)
{
    FlowWriterObject *self = PyObject_GC_New(FlowWriterObject, tracer->state->flow_writer_type);
    if (!self)
        return NULL;
    struct flow_view view = tracer_open_view(tracer->tracer, slot);
    self->tracer = (TCPObject *)Py_NewRef((PyObject *)tracer);
    self->epoch = tracer->epoch;
    self->handle = tracer_handle(tracer->tracer, slot);
    /* the flow's label str, which trace() made before asking for a writer */
    self->label = Py_NewRef(*(PyObject **)tracer_carried(tracer->tracer, slot));
    self->use_number = view.use_number;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *flow_writer_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    FlowWriterObject *self = (FlowWriterObject *)op;
    static char *kwlist[] = {"frame", "name", NULL};
    PyObject *frame, *name = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:write", kwlist, &frame, &name))
        return NULL;
    TCPObject *owner = self->tracer;
    if (!owner || owner->mode != OUTPUT_PCAP || !owner->ready)
        return Py_NewRef(op);
    if (!tcp_enter(owner, "trace(output=True)'s writer"))
        return NULL;
    if (owner->epoch != self->epoch) {
        tcp_leave(owner);
        PyErr_SetString(PyExc_RuntimeError, "the tracer was initialised again since this writer's flow was traced");
        return NULL;
    }
    struct pcap_record record;
    Py_buffer data;
    if (convert_frame(owner->state, frame, &record, &data) < 0) {
        tcp_leave(owner);
        return NULL;
    }
    struct tracer *tr = owner->tracer;
    uint32_t slot = tracer_slot_of(tr, self->handle);
    int status = slot != TRACER_NO_SLOT ? tracer_write_frame(tr, slot, &record, data.buf, (size_t)data.len)
                      : tracer_append_to_closed(tr, PyUnicode_AsUTF8(self->label), self->use_number, &record,
                                                data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    if (status < 0)
        raise_tracer_error(tr);
    tcp_leave(owner);
    return status < 0 ? NULL : Py_NewRef(op);
}

static PyObject *flow_writer_label(PyObject *op, void *closure)
{
    (void)closure;
    return Py_NewRef(((FlowWriterObject *)op)->label);
}

static int flow_writer_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op)); /* an instance holds its heap type */
    Py_VISIT(((FlowWriterObject *)op)->tracer);
    return 0;
}

static int flow_writer_clear(PyObject *op)
{
    Py_CLEAR(((FlowWriterObject *)op)->tracer);
    return 0;
}

static void flow_writer_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    flow_writer_clear(op);
    Py_CLEAR(((FlowWriterObject *)op)->label);
    PyObject_GC_Del(op);
    Py_DECREF(type);
}

static PyGetSetDef flow_writer_getset[] = {
    {"label", flow_writer_label, NULL, "The flow's label.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot flow_writer_slots[] = {
    {Py_tp_doc, "FlowWriter(frame, name=None): writes one frame to a flow's pcap file."},
    {Py_tp_call, flow_writer_call},
    {Py_tp_dealloc, flow_writer_dealloc},
    {Py_tp_traverse, flow_writer_traverse},
    {Py_tp_clear, flow_writer_clear},
    {Py_tp_getset, flow_writer_getset},
    {0, NULL},
};

/* Made by trace(output=True) only: a type from a spec would otherwise
 * inherit object's tp_new, and FlowWriter() would make a writer without a
 * tracer or label. */
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
#define FLOW_WRITER_NOT_CALLABLE Py_TPFLAGS_DISALLOW_INSTANTIATION
#else
#define FLOW_WRITER_NOT_CALLABLE 0 /* before 3.10: tp_new is cleared below */
#endif

static PyType_Spec flow_writer_spec = {
    .name = "pcapflow._core.FlowWriter",
    .basicsize = sizeof(FlowWriterObject),
    .flags = TYPE_FLAGS | Py_TPFLAGS_HAVE_GC | FLOW_WRITER_NOT_CALLABLE,
    .slots = flow_writer_slots,
};

int flow_writer_type_add(PyObject *module, struct module_state *state)
{
    if (!(state->flow_writer_type = add_type(module, &flow_writer_spec, NULL)))
        return -1;
#ifndef Py_TPFLAGS_DISALLOW_INSTANTIATION
    state->flow_writer_type->tp_new = NULL;
    PyType_Modified(state->flow_writer_type);
#endif
    return 0;
}
