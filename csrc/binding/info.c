/* Packet, Buffer and Index: pcapkit's Info classes (read-only mappings with
 * attribute access) as C types with one slot per declared field. */
#include "binding.h"

static struct info_spec packet_spec = {
    "Packet", 10,
    {"protocol", "index", "frame", "syn", "fin", "src", "dst", "srcport", "dstport", "timestamp"},
    {0},
};
static struct info_spec buffer_spec = {"Buffer", 3, {"fpout", "index", "label"}, {0}};
static struct info_spec index_spec = {"Index", 3, {"fpout", "index", "label"}, {0}};

static PyObject *packet_new(PyTypeObject *type, PyObject *args, PyObject *kwargs);
static PyObject *buffer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs);
static PyObject *index_type_new(PyTypeObject *type, PyObject *args, PyObject *kwargs);

/* The spec of an Info type or of a subclass of one, or NULL. Each type has
 * its own tp_new, which subclasses inherit unless they define __new__ (then
 * their base has it): told apart without the module's state, so the same for
 * the types of every module instance. */
static const struct info_spec *spec_of(PyTypeObject *type)
{
    for (; type; type = type->tp_base) {
        if (type->tp_new == packet_new)
            return &packet_spec;
        if (type->tp_new == buffer_new)
            return &buffer_spec;
        if (type->tp_new == index_type_new)
            return &index_spec;
    }
    return NULL;
}

int info_check(PyObject *object) { return spec_of(Py_TYPE(object)) != NULL; }

/* The position of a declared field, or -1. */
static int field_position(const struct info_spec *spec, PyObject *name)
{
    for (int i = 0; i < spec->field_count; i++)
        if (spec->interned[i] == name)
            return i;
    if (!PyUnicode_Check(name))
        return -1;
    for (int i = 0; i < spec->field_count; i++)
        if (PyUnicode_Compare(spec->interned[i], name) == 0)
            return i;
    return -1;
}

static InfoObject *info_alloc(PyTypeObject *type, const struct info_spec *spec)
{
    InfoObject *self = (InfoObject *)type->tp_alloc(type, 0);
    if (self)
        self->spec = spec;
    return self;
}

/* ---- construction ---- */

static PyObject *info_new(const struct info_spec *spec, PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t given = PyTuple_GET_SIZE(args);
    if (given > spec->field_count) {
        PyErr_Format(PyExc_TypeError, "%s.__init__() takes %d positional arguments but %zd were given",
                     spec->type_name, spec->field_count + 1, given + 1);
        return NULL;
    }
    InfoObject *self = info_alloc(type, spec);
    if (!self)
        return NULL;
    for (Py_ssize_t i = 0; i < given; i++)
        self->values[i] = Py_NewRef(PyTuple_GET_ITEM(args, i));
    if (kwargs) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kwargs, &pos, &key, &value)) {
            int i = field_position(spec, key);
            if (i < 0) {
                PyErr_Format(PyExc_TypeError, "%s.__init__() got an unexpected keyword argument '%S'",
                             spec->type_name, key);
                goto fail;
            }
            if (self->values[i]) {
                PyErr_Format(PyExc_TypeError, "%s.__init__() got multiple values for argument '%S'",
                             spec->type_name, key);
                goto fail;
            }
            self->values[i] = Py_NewRef(value);
        }
    }
    for (int i = 0; i < spec->field_count; i++) {
        if (!self->values[i]) {
            PyErr_Format(PyExc_TypeError, "%s.__init__() missing required argument: '%s'", spec->type_name,
                         spec->field_names[i]);
            goto fail;
        }
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static PyObject *packet_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return info_new(&packet_spec, type, args, kwargs);
}
static PyObject *buffer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return info_new(&buffer_spec, type, args, kwargs);
}
static PyObject *index_type_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return info_new(&index_spec, type, args, kwargs);
}

PyObject *index_new(const struct module_state *state, PyObject *fpout, PyObject *index, PyObject *label)
{
    /* one per flow: allocated without zeroing and without tracking (the
     * allocation takes the reference to the heap type its dealloc drops) */
    InfoObject *self = PyObject_GC_New(InfoObject, state->index_type);
    if (!self)
        return NULL;
    self->spec = &index_spec;
    self->extra = self->order = NULL;
    self->values[INDEX_FPOUT] = Py_NewRef(fpout);
    self->values[INDEX_INDEX] = Py_NewRef(index);
    self->values[INDEX_LABEL] = Py_NewRef(label);
    return (PyObject *)self;
}

/* Stores one key, keeping the order keys first arrived in (as a dict does). */
static int info_store(InfoObject *self, PyObject *order, PyObject *key, PyObject *value)
{
    if (!PyUnicode_Check(key)) {
        PyErr_Format(PyExc_TypeError, "%s keys must be str, not %.100s", self->spec->type_name,
                     Py_TYPE(key)->tp_name);
        return -1;
    }
    int i = field_position(self->spec, key);
    int present = i >= 0 ? self->values[i] != NULL : self->extra && PyDict_Contains(self->extra, key) == 1;
    if (!present && PyList_Append(order, key) < 0)
        return -1;
    if (i >= 0) {
        Py_XSETREF(self->values[i], Py_NewRef(value));
        return 0;
    }
    if (!self->extra && !(self->extra = PyDict_New()))
        return -1;
    return PyDict_SetItem(self->extra, key, value);
}

static int info_store_pairs(const struct module_state *state, InfoObject *self, PyObject *order, PyObject *source)
{
    PyObject *pairs = PyObject_HasAttr(source, state->str_items) ? PyObject_CallMethodNoArgs(source, state->str_items)
                                                                  : Py_NewRef(source);
    if (!pairs)
        return -1;
    PyObject *iterator = PyObject_GetIter(pairs);
    Py_DECREF(pairs);
    if (!iterator)
        return -1;
    PyObject *pair;
    while ((pair = PyIter_Next(iterator))) {
        PyObject *key = NULL, *value = NULL;
        PyObject *sequence = PySequence_Fast(pair, "from_dict() needs a mapping or (key, value) pairs");
        int status = -1;
        if (sequence && PySequence_Fast_GET_SIZE(sequence) == 2) {
            key = PySequence_Fast_GET_ITEM(sequence, 0);
            value = PySequence_Fast_GET_ITEM(sequence, 1);
            status = info_store(self, order, key, value);
        } else if (sequence) {
            PyErr_SetString(PyExc_ValueError, "from_dict() needs (key, value) pairs");
        }
        Py_XDECREF(sequence);
        Py_DECREF(pair);
        if (status < 0) {
            Py_DECREF(iterator);
            return -1;
        }
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

/* from_dict(mapping=None, **kwargs): any keys, in the order given (pcapkit's rule). */
static PyObject *info_from_dict(PyObject *cls, PyObject *args, PyObject *kwargs)
{
    PyObject *source = Py_None;
    if (!PyArg_ParseTuple(args, "|O:from_dict", &source))
        return NULL;
    /* the class method is looked up on an Info class or a subclass: it has a spec */
    const struct module_state *state = module_state_of_type((PyTypeObject *)cls);
    if (!state)
        return NULL;
    InfoObject *self = info_alloc((PyTypeObject *)cls, spec_of((PyTypeObject *)cls));
    PyObject *order = PyList_New(0);
    if (!self || !order)
        goto fail;
    if (source != Py_None && info_store_pairs(state, self, order, source) < 0)
        goto fail;
    if (kwargs) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kwargs, &pos, &key, &value))
            if (info_store(self, order, key, value) < 0)
                goto fail;
    }
    /* keep the order only when it is not simply every declared field in turn */
    int declared = PyList_GET_SIZE(order) == self->spec->field_count;
    for (Py_ssize_t i = 0; declared && i < PyList_GET_SIZE(order); i++)
        declared = PyList_GET_ITEM(order, i) == self->spec->interned[i] ||
                   PyUnicode_Compare(PyList_GET_ITEM(order, i), self->spec->interned[i]) == 0;
    if (!declared && !(self->order = PyList_AsTuple(order)))
        goto fail;
    Py_DECREF(order);
    return (PyObject *)self;
fail:
    Py_XDECREF(self);
    Py_XDECREF(order);
    return NULL;
}

/* ---- reading ---- */

PyObject *info_raw_field(PyObject *info, int position) { return ((InfoObject *)info)->values[position]; }

/* Field i (borrowed), an Index's compact frame numbers turned into their
 * tuple on this first read; NULL when absent, or with an error. */
static PyObject *field_value(InfoObject *self, int i)
{
    PyObject *value = self->values[i];
    if (!value || i != INDEX_INDEX || self->spec != &index_spec || !frame_numbers_check(value))
        return value;
    /* making the ints may run a collection, and finalizers with it, which
     * may read this field too: the capsule is held while it is read, and the
     * field replaced only if it still holds it */
    Py_INCREF(value);
    PyObject *tuple = frame_numbers_tuple(value);
    if (tuple && self->values[i] == value)
        Py_SETREF(self->values[i], tuple);
    else
        Py_XDECREF(tuple);
    Py_DECREF(value);
    return tuple ? self->values[i] : NULL;
}

/* The value under key (borrowed), or NULL without an error. */
static PyObject *info_lookup(InfoObject *self, PyObject *key)
{
    int i = field_position(self->spec, key);
    if (i >= 0)
        return field_value(self, i);
    if (self->extra) {
        PyObject *value = PyDict_GetItemWithError(self->extra, key);
        if (value || PyErr_Occurred())
            return value;
    }
    return NULL;
}

/* The keys in order, as a new list. */
static PyObject *info_key_list(InfoObject *self)
{
    if (self->order)
        return PySequence_List(self->order);
    PyObject *keys = PyList_New(0);
    if (!keys)
        return NULL;
    for (int i = 0; i < self->spec->field_count; i++)
        if (self->values[i] && PyList_Append(keys, self->spec->interned[i]) < 0)
            goto fail;
    if (self->extra) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(self->extra, &pos, &key, &value))
            if (PyList_Append(keys, key) < 0)
                goto fail;
    }
    return keys;
fail:
    Py_DECREF(keys);
    return NULL;
}

static Py_ssize_t info_length(PyObject *op)
{
    PyObject *keys = info_key_list((InfoObject *)op);
    if (!keys)
        return -1;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    Py_DECREF(keys);
    return n;
}

static PyObject *info_getitem(PyObject *op, PyObject *key)
{
    PyObject *value = info_lookup((InfoObject *)op, key);
    if (value)
        return Py_NewRef(value);
    if (!PyErr_Occurred())
        PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
}

static int info_contains(PyObject *op, PyObject *key)
{
    PyObject *value = info_lookup((InfoObject *)op, key);
    return value ? 1 : PyErr_Occurred() ? -1 : 0;
}

static PyObject *info_getattro(PyObject *op, PyObject *name)
{
    InfoObject *self = (InfoObject *)op;
    int i = field_position(self->spec, name);
    if (i >= 0 && self->values[i]) {
        PyObject *value = field_value(self, i);
        return value ? Py_NewRef(value) : NULL;
    }
    PyObject *result = PyObject_GenericGetAttr(op, name);
    if (result || !self->extra || !PyErr_ExceptionMatches(PyExc_AttributeError))
        return result;
    PyObject *value = PyDict_GetItemWithError(self->extra, name);
    if (!value)
        return NULL; /* the AttributeError stands */
    PyErr_Clear();
    return Py_NewRef(value);
}

static int info_setattro(PyObject *op, PyObject *name, PyObject *value)
{
    (void)name;
    const struct module_state *state = module_state_of_type(Py_TYPE(op));
    if (state)
        PyErr_SetString(state->unsupported_call, value ? "can't set attribute" : "can't delete attribute");
    return -1;
}

static PyObject *info_iter(PyObject *op)
{
    PyObject *keys = info_key_list((InfoObject *)op);
    if (!keys)
        return NULL;
    PyObject *iterator = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return iterator;
}

/* A plain dict of the fields; nested Info values become dicts when deep
 * (state is then the module's state, NULL otherwise). */
static PyObject *info_as_dict(InfoObject *self, const struct module_state *deep)
{
    PyObject *keys = info_key_list(self);
    PyObject *dict = keys ? PyDict_New() : NULL;
    if (!dict)
        goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *value = info_lookup(self, key);
        if (!value)
            goto fail;
        PyObject *converted = deep && info_check(value) ? info_as_dict((InfoObject *)value, deep)
                              : deep && PyObject_HasAttr(value, deep->str_to_dict) && PyMapping_Check(value)
                                  ? PyObject_CallMethodNoArgs(value, deep->str_to_dict)
                                  : Py_NewRef(value);
        if (!converted || PyDict_SetItem(dict, key, converted) < 0) {
            Py_XDECREF(converted);
            goto fail;
        }
        Py_DECREF(converted);
    }
    Py_DECREF(keys);
    return dict;
fail:
    Py_XDECREF(keys);
    Py_XDECREF(dict);
    return NULL;
}

static PyObject *info_to_dict(PyObject *op, PyObject *unused)
{
    (void)unused;
    const struct module_state *state = module_state_of_type(Py_TYPE(op));
    return state ? info_as_dict((InfoObject *)op, state) : NULL;
}

static PyObject *info_view(PyObject *op, const char *method)
{
    PyObject *dict = info_as_dict((InfoObject *)op, NULL);
    if (!dict)
        return NULL;
    PyObject *view = PyObject_CallMethod(dict, method, NULL);
    Py_DECREF(dict);
    return view;
}

static PyObject *info_keys(PyObject *op, PyObject *unused) { (void)unused; return info_view(op, "keys"); }
static PyObject *info_values(PyObject *op, PyObject *unused) { (void)unused; return info_view(op, "values"); }
static PyObject *info_items(PyObject *op, PyObject *unused) { (void)unused; return info_view(op, "items"); }

static PyObject *info_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get() takes 1 or 2 arguments");
        return NULL;
    }
    PyObject *value = info_lookup((InfoObject *)op, args[0]);
    if (value)
        return Py_NewRef(value);
    if (PyErr_Occurred())
        return NULL;
    return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

static PyObject *info_reduce(PyObject *op, PyObject *unused)
{
    (void)unused;
    PyObject *dict = info_as_dict((InfoObject *)op, NULL);
    if (!dict)
        return NULL;
    PyObject *from_dict = PyObject_GetAttrString((PyObject *)Py_TYPE(op), "from_dict");
    PyObject *result = from_dict ? Py_BuildValue("O(N)", from_dict, dict) : NULL;
    if (!from_dict)
        Py_DECREF(dict);
    Py_XDECREF(from_dict);
    return result;
}

/* ---- str and repr, spelled as pcapkit spells them ---- */

/* A pcapkit Info value (from pcapkit itself), shown as Name(...) in repr. */
static int is_pcapkit_info(const struct module_state *state, PyObject *value)
{
    PyObject *module = PyImport_GetModule(state->str_pcapkit_info_module); /* only if pcapkit is already loaded */
    if (!module) {
        PyErr_Clear();
        return 0;
    }
    PyObject *info = PyObject_GetAttrString(module, "Info");
    Py_DECREF(module);
    int result = info ? PyObject_IsInstance(value, info) : 0;
    Py_XDECREF(info);
    if (result < 0)
        PyErr_Clear();
    return result > 0;
}


/* A type's name without its module, as type.__name__ gives it (what
 * CPython's private _PyType_Name does, from the public tp_name). */
static const char *type_name(PyTypeObject *type)
{
    const char *dot = strrchr(type->tp_name, '.');
    return dot ? dot + 1 : type->tp_name;
}

static PyObject *info_format(PyObject *op, int as_repr)
{
    InfoObject *self = (InfoObject *)op;
    const struct module_state *state = as_repr ? module_state_of_type(Py_TYPE(op)) : NULL;
    if (as_repr && !state)
        return NULL;
    PyObject *keys = info_key_list(self);
    PyObject *parts = keys ? PyList_New(0) : NULL;
    PyObject *result = NULL;
    if (!parts)
        goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *value = info_lookup(self, key);
        if (!value)
            goto done;
        PyObject *part;
        if (as_repr && (info_check(value) || is_pcapkit_info(state, value)))
            part = PyUnicode_FromFormat("%U=%s(...)", key, type_name(Py_TYPE(value)));
        else
            part = PyUnicode_FromFormat(as_repr ? "%U=%R" : "%U=%S", key, value);
        if (!part || PyList_Append(parts, part) < 0) {
            Py_XDECREF(part);
            goto done;
        }
        Py_DECREF(part);
    }
    PyObject *separator = PyUnicode_FromString(", ");
    PyObject *joined = separator ? PyUnicode_Join(separator, parts) : NULL;
    Py_XDECREF(separator);
    if (joined)
        result = PyUnicode_FromFormat(as_repr ? "<%s %U>" : "%s(%U)", type_name(Py_TYPE(op)), joined);
    Py_XDECREF(joined);
done:
    Py_XDECREF(keys);
    Py_XDECREF(parts);
    return result;
}

static PyObject *info_str(PyObject *op) { return info_format(op, 0); }
static PyObject *info_repr(PyObject *op) { return info_format(op, 1); }

/* == compares as mappings do: against any Mapping, by items. */
static PyObject *info_richcompare(PyObject *op, PyObject *other, int cmp)
{
    if (cmp != Py_EQ && cmp != Py_NE)
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *other_dict;
    if (info_check(other))
        other_dict = info_as_dict((InfoObject *)other, NULL);
    else if (PyDict_Check(other))
        other_dict = Py_NewRef(other);
    else {
        PyObject *abc = PyImport_ImportModule("collections.abc");
        PyObject *mapping = abc ? PyObject_GetAttrString(abc, "Mapping") : NULL;
        Py_XDECREF(abc);
        int is_mapping = mapping ? PyObject_IsInstance(other, mapping) : -1;
        Py_XDECREF(mapping);
        if (is_mapping < 0)
            return NULL;
        if (!is_mapping)
            Py_RETURN_NOTIMPLEMENTED;
        other_dict = PyObject_CallOneArg((PyObject *)&PyDict_Type, other);
    }
    PyObject *self_dict = other_dict ? info_as_dict((InfoObject *)op, NULL) : NULL;
    PyObject *result = self_dict ? PyObject_RichCompare(self_dict, other_dict, cmp) : NULL;
    Py_XDECREF(self_dict);
    Py_XDECREF(other_dict);
    return result;
}

/* ---- lifetime ---- */

static int info_traverse(PyObject *op, visitproc visit, void *arg)
{
    InfoObject *self = (InfoObject *)op;
    Py_VISIT(Py_TYPE(op)); /* an instance holds its heap type */
    for (int i = 0; i < self->spec->field_count; i++)
        Py_VISIT(self->values[i]);
    Py_VISIT(self->extra);
    Py_VISIT(self->order);
    return 0;
}

static int info_clear(PyObject *op)
{
    InfoObject *self = (InfoObject *)op;
    for (int i = 0; i < self->spec->field_count; i++)
        Py_CLEAR(self->values[i]);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->order);
    return 0;
}

static void info_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    info_clear(op);
    type->tp_free(op);
    Py_DECREF(type); /* a heap type's instance holds it (a subclass's too: its deallocator leaves it to us) */
}

static PyMethodDef info_methods[] = {
    {"keys", info_keys, METH_NOARGS, "The field names, in order."},
    {"values", info_values, METH_NOARGS, "The field values, in order."},
    {"items", info_items, METH_NOARGS, "(name, value) pairs, in order."},
    {"get", (PyCFunction)(void (*)(void))info_get, METH_FASTCALL, "get(key, default=None)"},
    {"to_dict", info_to_dict, METH_NOARGS, "A dict of the fields; nested Info values become dicts too."},
    {"from_dict", (PyCFunction)(void (*)(void))info_from_dict, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "from_dict(mapping=None, /, **kwargs): a new object holding exactly the given keys."},
    {"__reduce__", info_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

#ifdef Py_TPFLAGS_MAPPING
#define INFO_MAPPING_FLAG Py_TPFLAGS_MAPPING /* match statements treat it as a mapping */
#else
#define INFO_MAPPING_FLAG 0
#endif

/* The three types differ in their tp_new (which tells their spec) and doc;
 * their size comes from the spec's field count (info_types_add). */
#define INFO_TYPE_SPEC(c_name, py_name, new_function, doc)                               \
    static PyType_Slot c_name##_slots[] = {                                              \
        {Py_tp_new, new_function},                                                       \
        {Py_tp_doc, doc},                                                                \
        {Py_tp_dealloc, info_dealloc},                                                   \
        {Py_tp_traverse, info_traverse},                                                 \
        {Py_tp_clear, info_clear},                                                       \
        {Py_tp_getattro, info_getattro},                                                 \
        {Py_tp_setattro, info_setattro},                                                 \
        {Py_mp_length, info_length},                                                     \
        {Py_mp_subscript, info_getitem},                                                 \
        {Py_sq_contains, info_contains},                                                 \
        {Py_tp_iter, info_iter},                                                         \
        {Py_tp_str, info_str},                                                           \
        {Py_tp_repr, info_repr},                                                         \
        {Py_tp_richcompare, info_richcompare},                                           \
        {Py_tp_hash, PyObject_HashNotImplemented},                                       \
        {Py_tp_methods, info_methods},                                                   \
        {0, NULL},                                                                       \
    };                                                                                   \
    static PyType_Spec c_name = {                                                        \
        .name = "pcapflow." py_name,                                                     \
        .flags = TYPE_FLAGS | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE | INFO_MAPPING_FLAG, \
        .slots = c_name##_slots,                                                         \
    }

INFO_TYPE_SPEC(packet_type_spec, "Packet", packet_new,
               "Packet(protocol, index, frame, syn, fin, src, dst, srcport, dstport, timestamp)\n\n"
               "One TCP frame to trace: link type, frame number, frame (with packet bytes and\n"
               "frame_info), SYN and FIN flags, addresses, ports and timestamp.");
INFO_TYPE_SPEC(buffer_type_spec, "Buffer", buffer_new,
               "Buffer(fpout, index, label)\n\nAn open flow: output, frame numbers, label.");
INFO_TYPE_SPEC(index_type_spec, "Index", index_type_new,
               "Index(fpout, index, label)\n\nA traced flow: output file path (or None), frame numbers, label.");

int info_types_add(PyObject *module, struct module_state *state)
{
    struct info_spec *specs[] = {&packet_spec, &buffer_spec, &index_spec};
    PyType_Spec *type_specs[] = {&packet_type_spec, &buffer_type_spec, &index_type_spec};
    PyTypeObject **types[] = {&state->packet_type, &state->buffer_type, &state->index_type};
    for (int s = 0; s < 3; s++) {
        /* The field names are shared by every module instance: made by the
         * first, kept for the process (strings are immutable), and compared
         * by identity on every field access, where no state is at hand. */
        PyObject **names = specs[s]->interned;
        for (int i = 0; i < specs[s]->field_count; i++)
            if (!names[i] && !(names[i] = PyUnicode_InternFromString(specs[s]->field_names[i])))
                return -1;
        type_specs[s]->basicsize = (int)(sizeof(InfoObject) + (size_t)specs[s]->field_count * sizeof(PyObject *));
        if (!(*types[s] = add_type(module, type_specs[s], NULL)))
            return -1;
    }
    return 0;
}

PyObject *packet_field_name(int position) { return packet_spec.interned[position]; }

PyObject *packet_field(PyObject *packet, int position)
{
    if (spec_of(Py_TYPE(packet)) == &packet_spec) {
        PyObject *value = ((InfoObject *)packet)->values[position];
        if (value)
            return Py_NewRef(value);
    }
    return get_field(packet, packet_spec.interned[position], "packet");
}
