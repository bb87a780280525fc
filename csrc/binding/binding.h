/* Declarations shared by the files of the CPython binding. Each Python type
 * lives in its own file; this header is private to them. */
#ifndef PCAPFLOW_BINDING_H
#define PCAPFLOW_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "core/pcapflow_core.h"

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *object)
{
    Py_INCREF(object);
    return object;
}
static inline PyObject *Py_XNewRef(PyObject *object)
{
    Py_XINCREF(object);
    return object;
}
static inline int PyModule_AddObjectRef(PyObject *module, const char *name, PyObject *value)
{
    int status = PyModule_AddObject(module, name, value);
    if (status == 0)
        Py_INCREF(value); /* AddObject stole the reference it was given */
    return status;
}
#endif

/* ---- Packet, Buffer, Index (info.c) ---- */

enum { INFO_MAX_FIELDS = 10 };

struct info_spec {
    const char *type_name;
    int field_count;
    const char *field_names[INFO_MAX_FIELDS];
    PyObject *interned[INFO_MAX_FIELDS]; /* made by the first module instance, shared by all (info.c) */
};

typedef struct {
    PyObject_HEAD
    const struct info_spec *spec;
    PyObject *extra;    /* dict of keys that are not declared fields, or NULL */
    PyObject *order;    /* tuple of keys in insertion order, or NULL for declared order */
    PyObject *values[]; /* the spec's declared fields; NULL when absent */
} InfoObject;

/* Field positions of Packet, in pcapkit's order. */
enum {
    PACKET_PROTOCOL, PACKET_INDEX, PACKET_FRAME, PACKET_SYN, PACKET_FIN,
    PACKET_SRC, PACKET_DST, PACKET_SRCPORT, PACKET_DSTPORT, PACKET_TIMESTAMP,
};
enum { INDEX_FPOUT, INDEX_INDEX, INDEX_LABEL };

struct module_state;
/* Makes Packet, Buffer and Index for the module being executed. */
int info_types_add(PyObject *module, struct module_state *state);
/* A new Index(fpout, index, label) of the state's Index type, not tracked
 * by the cyclic collector: for values that cannot lead back to it. Steals nothing. */
PyObject *index_new(const struct module_state *state, PyObject *fpout, PyObject *index, PyObject *label);
/* Whether object is a Packet, Buffer or Index (of any module instance). */
int info_check(PyObject *object);
/* Field `position` of an Info object as stored (borrowed; NULL when absent),
 * compact frame numbers not turned into a tuple. */
PyObject *info_raw_field(PyObject *info, int position);

/* ---- An Index's compact frame numbers (frame_numbers.c) ---- */

/* A capsule holding a copy of the view's frame numbers, compact. */
PyObject *frame_numbers_new(const struct flow_view *flow);
int frame_numbers_check(PyObject *value);
/* The tuple of ints pcapkit's Index holds. */
PyObject *frame_numbers_tuple(PyObject *capsule);
PyObject *frame_text(PyObject *module, PyObject *args);
PyObject *frame_steps(PyObject *module, PyObject *index);
PyObject *index_from_steps(PyObject *module, PyObject *args);
PyObject *indexes_from_steps(PyObject *module, PyObject *args);
/* A field of a packet (pcapflow's, pcapkit's or a mapping) by Packet position: a new reference. */
PyObject *packet_field(PyObject *packet, int position);
/* The interned name of a Packet field (borrowed). */
PyObject *packet_field_name(int position);

/* ---- TCP (tcp.c) and its flow writers (flow_writer.c) ---- */

enum output_mode { OUTPUT_NONE, OUTPUT_PCAP, OUTPUT_DUMPER };

typedef struct {
    PyObject_HEAD
    struct tracer *tracer;   /* NULL until __init__ */
    int ready;               /* __init__ completed */
    enum output_mode mode;
    PyObject *dumper_class;  /* OUTPUT_DUMPER: called once per flow */
    PyObject *root;          /* fout as given, for fpout strings */
    PyObject *extension;     /* str, or None */
    PyObject *byteorder;     /* 'little' or 'big' */
    int nanosecond;
    int tunnels;              /* _trace_capture opens tunnels (DECODE_TUNNELS) */
    int bidirectional;        /* one flow per connection (tracer_config.bidirectional) */
    PyObject *closed_indexes; /* list: Index objects of closed flows built so far */
    PyObject *submitted;      /* cached submit() tuple, or NULL */
    PyObject *weakrefs;
    struct address_memo {     /* the last address objects converted (see read_address) */
        PyObject *object;     /* a strong reference, or NULL */
        uint8_t family;
        uint8_t bytes[16];
    } memo[2];
    int memo_next;            /* the entry to replace next */
    uint64_t epoch;           /* counts __init__ calls: a flow writer belongs to one */
    int busy;                 /* a capture is being traced in C, without the GIL */
    /* One caller at a time (see tcp_enter): a method owns the tracer from
     * its start to its end, so no other thread moves the flow table while it
     * keeps a slot across Python code or a released GIL. Read and written
     * only with the GIL held. */
    PyThreadState *owner;     /* the owning thread, NULL when free */
    pid_t owner_process;      /* where owner runs: after fork() a child's copy may name a parent's thread */
    int depth;                /* method calls of the owner, nested ones included */
    int callback_depth;       /* the depth whose FIN callbacks run now (nested calls allowed), or 0 */
    /* The module whose TCPBase this object is (found once, in tp_new), held
     * so that its state outlives the object; the state and the Packet type
     * are cached for the per-packet path. */
    PyObject *module;
    struct module_state *state;
    PyTypeObject *packet_type;
} TCPObject;

int tcp_type_add(PyObject *module, struct module_state *state);
int flow_writer_type_add(PyObject *module, struct module_state *state);
PyObject *flow_writer_new(TCPObject *tracer, uint32_t slot);
/* Takes the tracer for one method call (`what` names it in errors): waits
 * for another thread using it, refuses a nested call from Python code the
 * tracer itself is running (a dumper constructor, a field's __str__), except
 * from FIN callbacks. Returns 1, or 0 with an exception (RuntimeError,
 * or KeyboardInterrupt while waiting). Pair with tcp_leave(). */
int tcp_enter(TCPObject *self, const char *what);
void tcp_leave(TCPObject *self);
/* TCPBase._trace_capture(fin, filter=None, progress=None, first_frame=0) (capture.c) */
PyObject *tcp_trace_capture(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *tcp_trace_live(PyObject *self, PyObject *args, PyObject *kwargs);

/* ---- conversions from Python objects (convert.c) ---- */

/* Reads a field of a Packet, a pcapkit Info, an object or a mapping; a new
 * reference, or NULL with TypeError naming the field when it is missing. */
PyObject *get_field(PyObject *object, PyObject *name, const char *what);
/* Like get_field, but returns NULL without an error when the field is missing. */
PyObject *get_optional_field(PyObject *object, PyObject *name);
int convert_address(const struct module_state *state, PyObject *value, const char *field, uint8_t *family,
                    uint8_t out[16]);

/* The value of an exact int that fits a long: ports and frame numbers
 * nearly always are, and the general conversion (with its field-naming
 * errors) costs more than the rest of their checks together. From 3.12 a
 * compact int is read in place (public, if unstable, API); before, the
 * public conversion. Returns 0 when value is not such an int (the general
 * conversion then decides). */
static inline int read_small_int(PyObject *value, long *out)
{
    if (!PyLong_CheckExact(value))
        return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyUnstable_Long_IsCompact((PyLongObject *)value))
        return 0;
    *out = (long)PyUnstable_Long_CompactValue((PyLongObject *)value);
    return 1;
#else
    int overflow;
    *out = PyLong_AsLongAndOverflow(value, &overflow);
    return !overflow && (*out != -1 || !PyErr_Occurred());
#endif
}

/* A port (0..65535) or a frame number (any int64), or -1 with an exception
 * naming the field. Inline for the common case; the rest is in convert.c. */
int convert_port_general(PyObject *value, const char *field, uint16_t *out);
int convert_frame_number_general(PyObject *value, int64_t *out);

static inline int convert_port(PyObject *value, const char *field, uint16_t *out)
{
    long small;
    if (read_small_int(value, &small) && small >= 0 && small <= 65535) {
        *out = (uint16_t)small;
        return 0;
    }
    return convert_port_general(value, field, out);
}

static inline int convert_frame_number(PyObject *value, int64_t *out)
{
    long small;
    if (read_small_int(value, &small)) {
        *out = small;
        return 0;
    }
    return convert_frame_number_general(value, out);
}
/* str(timestamp) as pcapkit writes it into labels, into out; returns its
 * length, or -1 with an exception (a wrong type, or text too long). */
enum { TIMESTAMP_TEXT_LIMIT = LABEL_MAX_TIMESTAMP + 1 };
Py_ssize_t timestamp_text(const struct module_state *state, PyObject *value, char out[TIMESTAMP_TEXT_LIMIT]);
int convert_linktype(PyObject *value, uint32_t *out);
/* The pcap record of a frame (an object or mapping with packet and frame_info);
 * fills record and data (release data with PyBuffer_Release). */
int convert_frame(const struct module_state *state, PyObject *frame, struct pcap_record *record, Py_buffer *data);
/* Raises the tracer's last error as OSError (with the path) or ValueError. */
void raise_tracer_error(const struct tracer *tracer);
/* The same for an error the caller kept. */
void raise_error(const struct tracer_error *error);

/* ---- capture files (capture.c, reader.c) ---- */

/* What a capture is read from (input.c). */
struct input {
    PyObject *name; /* for messages: the path, or the object's name or repr */
    PyObject *head; /* bytes the file object had taken from its descriptor, read first; or NULL */
    PyObject *read_error; /* what the object's read() raised, or NULL */
    int read_error_is_usage; /* read() gave no bytes (str, say) */
    /* where the reading thread keeps its state while it runs without the
     * GIL, NULL while it holds it: read() takes the GIL back from there.
     * The caller points it at its own slot before opening the capture. */
    PyThreadState **released;
};
/* A stdio stream over fin: a path (decompressed when named .gz, .xz, .bz2 or
 * .zst), a file object's descriptor or its read(), as pcapflow._inputs
 * decides; in (which must outlive the stream) is filled in. NULL with an
 * exception set when it cannot be opened. */
FILE *open_input(PyObject *fin, struct input *in);
/* Raises why the capture stopped: read()'s exception (a CaptureError caused
 * by it, or itself for a KeyboardInterrupt and bad usage), else
 * CaptureError(why). */
void raise_input_error(const struct module_state *state, struct input *in, const char *why, uint64_t frame,
                       uint64_t offset);
void input_clear(struct input *in);
/* A capture_check function for a reader that runs without the GIL: slot
 * (a PyThreadState **) holds its saved state while it does, NULL while it
 * holds the GIL. Runs Python's signal handlers; nonzero (an exception set)
 * stops the reading. */
int check_signals_released(void *slot);
/* Opens c on fin (open_input(); the capture's header is read without the
 * GIL, *released being its saved state meanwhile, and the reading stops on
 * a signal handler's exception) and compiles filter (None or a str). The
 * reader then uses check_signals_released with the same slot. Returns 0, or
 * -1 with an exception set (TypeError, CaptureError, FilterError, ...). */
int open_capture_input(const struct module_state *state, struct capture *c, PyObject *fin, PyObject *filter,
                       struct input *in, PyThreadState **released);
/* Raises pcapflow.CaptureError with filename, frame and offset. */
void raise_damaged(const struct module_state *state, PyObject *name, const char *why, uint64_t frame,
                   uint64_t offset);
int capture_reader_type_add(PyObject *module, struct module_state *state);
/* FollowReader (follow.c): Follow TCP Stream over a capture */
int follow_reader_type_add(PyObject *module);

/* ---- the module's state (module.c) ---- */

/* Everything a module instance made or looked up at its start: each import
 * of the extension (a reimport, a subinterpreter) has its own. */
struct module_state {
    /* the module's types (heap types, made from specs) */
    PyTypeObject *packet_type, *buffer_type, *index_type, *tcpbase_type, *flow_writer_type, *capture_reader_type;
    /* pcapflow's exception classes */
    PyObject *unsupported_call, *capture_error, *filter_error;
    /* TCPBase's own trace and dump, to spot overrides in subclasses */
    PyObject *base_trace_method, *base_dump_method;
    /* pcapkit's Packet class, recognised by name on first sight, or NULL */
    PyObject *pcapkit_packet_type;
    PyObject *ipv4_type, *ipv6_type, *decimal_type;
    int mapped_as_dotted;
    PyObject *int_64; /* 64, for shifting ints on Pythons without PyLong_AsNativeBytes */
    /* the descriptors of IPv4Address._ip and IPv6Address._ip when they are
     * slots (as in every CPython so far), else NULL */
    PyObject *ipv4_ip_slot, *ipv6_ip_slot;
    PyObject *str_packet, *str_frame_info, *str_ts_sec, *str_ts_usec, *str_incl_len, *str_orig_len,
        *str_time_epoch, *str_ip, *str_packed, *str_callback_fn, *str_trace, *str_dump, *str_items, *str_to_dict,
        *str_pcapkit_info_module, *str_rst;
};

/* Flags of every type here: heap types are mutable unless told otherwise,
 * and the static types they replace were not (3.10 on; 3.9 has no flag). */
#ifdef Py_TPFLAGS_IMMUTABLETYPE
#define TYPE_FLAGS (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE)
#else
#define TYPE_FLAGS Py_TPFLAGS_DEFAULT
#endif

/* The pcapflow._core module that defined type or the first of its bases
 * that it defined (borrowed), or NULL with TypeError. Works for Python
 * subclasses, where PyType_GetModule() does not; walks the MRO, so it is
 * for object creation and slow paths, not for every packet. */
PyObject *module_of_type(PyTypeObject *type);
/* The state of that module, or NULL with an exception. */
struct module_state *module_state_of_type(PyTypeObject *type);
/* Makes a type from spec for the module and adds it to the module; a new
 * reference, or NULL. */
PyTypeObject *add_type(PyObject *module, PyType_Spec *spec, PyObject *base);

#endif
