/* Declarations shared by the files of the CPython binding. Each Python type
 * lives in its own file; this header is private to them. */
#ifndef PCAPFLOW_BINDING_H
#define PCAPFLOW_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "core/label.h"
#include "core/tracer.h"

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
    PyObject *interned[INFO_MAX_FIELDS]; /* filled at module start */
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

extern PyTypeObject Packet_Type, Buffer_Type, Index_Type;
int info_types_ready(PyObject *module);
/* A new Index(fpout, index, label), not tracked by the cyclic collector:
 * for values that cannot lead back to it. Steals nothing. */
PyObject *index_new(PyObject *fpout, PyObject *index, PyObject *label);
int info_check(PyObject *object);
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
} TCPObject;

extern PyTypeObject TCPBase_Type, FlowWriter_Type;
int tcp_type_ready(PyObject *module);
int flow_writer_type_ready(PyObject *module);
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

/* ---- conversions from Python objects (convert.c) ---- */

/* Reads a field of a Packet, a pcapkit Info, an object or a mapping; a new
 * reference, or NULL with TypeError naming the field when it is missing. */
PyObject *get_field(PyObject *object, PyObject *name, const char *what);
/* Like get_field, but returns NULL without an error when the field is missing. */
PyObject *get_optional_field(PyObject *object, PyObject *name);
int convert_address(PyObject *value, const char *field, uint8_t *family, uint8_t out[16]);

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
Py_ssize_t timestamp_text(PyObject *value, char out[TIMESTAMP_TEXT_LIMIT]);
int convert_linktype(PyObject *value, uint32_t *out);
/* The pcap record of a frame (an object or mapping with packet and frame_info);
 * fills record and data (release data with PyBuffer_Release). */
int convert_frame(PyObject *frame, struct pcap_record *record, Py_buffer *data);
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
void raise_input_error(struct input *in, const char *why, uint64_t frame, uint64_t offset);
void input_clear(struct input *in);
/* Raises pcapflow.CaptureError with filename, frame and offset. */
void raise_damaged(PyObject *name, const char *why, uint64_t frame, uint64_t offset);
extern PyTypeObject CaptureReader_Type;

/* ---- module-wide objects (module.c) ---- */

struct module_globals {
    PyObject *ipv4_type, *ipv6_type, *decimal_type;
    /* pcapflow's exception classes, made at module start (module.c) */
    PyObject *unsupported_call, *capture_error, *filter_error;
    int mapped_as_dotted;
    PyObject *int_64; /* 64, for shifting ints on Pythons without PyLong_AsNativeBytes */
    /* the descriptors of IPv4Address._ip and IPv6Address._ip when they are
     * slots (as in every CPython so far), else NULL */
    PyObject *ipv4_ip_slot, *ipv6_ip_slot;
    PyObject *str_packet, *str_frame_info, *str_ts_sec, *str_ts_usec, *str_incl_len, *str_orig_len,
        *str_time_epoch, *str_ip, *str_packed, *str_callback_fn, *str_trace, *str_dump, *str_items, *str_to_dict;
};
extern struct module_globals G;

#endif
