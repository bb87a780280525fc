/* The C core's public API: the one header code outside csrc/core includes.
 * Plain C, no Python. Sections: flow keys and records; decoded frames; the
 * numbers' text; the flow tracer; reading captures.
 *
 * The flow tracer: pcapkit's TCP flow tracing, in C.
 *
 * A flow is one direction of a TCP connection. The tracer keeps the open
 * flows in a hash table keyed by flow_key, each with its label, the frame
 * numbers seen so far and its output file; a FIN closes the flow and moves
 * its label and frame numbers to the closed list. A bidirectional tracer
 * (tracer_config.bidirectional) keeps one flow per connection instead: both
 * directions share it, it is labelled as its first frame's direction would
 * be, and it closes once both sides have sent FIN, or at an RST.
 * Frames written to a flow
 * are buffered in memory and reach the file in large writes; at most
 * max_open_files descriptors are open at once (least recently used first
 * to go), so any number of flows can be open.
 *
 * Memory per open flow: one struct flow (see tracer_flow_bytes(); it holds
 * the first few frame numbers), one hash-table entry, the interned label, a
 * byte or two per further frame number and the flow's pending output
 * (bounded by flush_bytes).
 *
 * struct tracer and struct capture are opaque (tracer_internal.h and
 * capture.c define them for the core's own files); flows are named by
 * slot, valid until the next call that may open or close a flow, or by a
 * flow_handle, which finds its flow again afterwards. */
#ifndef PCAPFLOW_CORE_H
#define PCAPFLOW_CORE_H

#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Flow keys and pcap records ---- */

/* The identity of one TCP flow: one direction of a connection, as pcapkit
 * defines it (source address and port, destination address and port). */
enum { FLOW_FAMILY_IPV4 = 4, FLOW_FAMILY_IPV6 = 6 };

/* Addresses are stored in 16 bytes; an IPv4 address uses the first 4 and
 * leaves the rest zero, so keys can be hashed and compared as plain bytes. */
struct flow_key { /* 40 bytes */
    uint8_t src[16];
    uint8_t dst[16];
    uint16_t src_port;
    uint16_t dst_port;
    uint8_t src_family;
    uint8_t dst_family;
    uint8_t padding[2]; /* always zero: part of the bytes hashed */
};

_Static_assert(sizeof(struct flow_key) == 40, "flow keys are hashed and compared as five words");

static inline void flow_key_clear(struct flow_key *key) { memset(key, 0, sizeof *key); }

/* The classic pcap file format: a 24-byte global header, then one 16-byte
 * record header before each frame's bytes. */
enum {
    PCAP_GLOBAL_HEADER_SIZE = 24,
    PCAP_RECORD_HEADER_SIZE = 16,
    PCAP_SNAPLEN = 262144, /* what pcapkit writes */
};

struct pcap_layout {
    int big_endian; /* byte order of every header field */
    int nanosecond; /* sub-second field counts nanoseconds (magic a1b23c4d) */
};

/* One frame's record as it arrives: the sub-second field is in the units of
 * the capture it came from (frac_is_nanosecond). */
struct pcap_record {
    uint64_t ts_sec;
    uint64_t ts_frac;
    int frac_is_nanosecond;
    uint64_t incl_len;
    uint64_t orig_len;
};

/* ---- Decoded frames ---- */

enum { TCP_FLAG_FIN = 0x01, TCP_FLAG_SYN = 0x02, TCP_FLAG_RST = 0x04, TCP_FLAG_ACK = 0x10 };

/* decode_frame()'s options, or-ed together */
enum {
    /* Open GRE, IP-in-IP, VXLAN and GENEVE and trace the innermost TCP.
     * Without it only TCP right after the first IP header is traced
     * (pcapkit's rule). */
    DECODE_TUNNELS = 1,
    /* What Follow TCP Stream needs besides TCP segments, as Wireshark sees
     * them: IP fragments (any with more-fragments set or an offset, whole in
     * the capture) come back as DECODED_IP_FRAGMENT to be reassembled, and
     * TCP headers quoted in ICMP errors as DECODED_ICMP_QUOTE. */
    DECODE_FOLLOW = 2,
};

/* What a decoded frame holds (decoded_frame.kind) */
enum {
    DECODED_TCP = 0,         /* a TCP segment */
    DECODED_IP_FRAGMENT = 1, /* DECODE_FOLLOW: a whole IP fragment at ip (ip_captured bytes) */
    DECODED_ICMP_QUOTE = 2,  /* DECODE_FOLLOW: an ICMP error quoting at least 16 bytes of a TCP header */
};

struct decoded_frame {
    struct flow_key key;
    uint8_t tcp_flags;
    uint8_t kind;
    uint8_t options;       /* decode_frame()'s options, for the decoders it calls */
    /* the innermost IP header, and its stated length (IPv4 total length,
     * IPv6 40 + payload length), which may exceed what was captured */
    const uint8_t *ip;
    uint32_t ip_captured, ip_stated;
    /* the TCP header (or the quoted part of it), and the bytes from it on
     * that were captured and lie inside the IP datagram */
    const uint8_t *tcp;
    uint32_t tcp_captured;
};

/* ---- Numbers as text, whatever the C locale ---- */

/* Timestamps in labels, as pcapkit writes them: str(float(epoch)), where the
 * epoch is the exact decimal seconds.nanoseconds of the frame. */
enum { TIMESTAMP_TEXT_MAX = 48 };

/* Rounds seconds + nanoseconds / 1e9 to the nearest double (correctly, from
 * the decimal text, not by adding floats) and writes it as Python's repr()
 * would: the shortest digits that read back to the same double, in fixed
 * notation unless the exponent is below -4 or above 15. Returns the length. */
size_t format_timestamp(uint64_t seconds, uint64_t nanoseconds, char out[TIMESTAMP_TEXT_MAX]);

/* The same for a time that may lie before 1970 (if_tsoffset in pcapng):
 * seconds is signed, nanoseconds adds to it ("-95.0" for -95 and 0). */
size_t format_epoch(int64_t seconds, uint64_t nanoseconds, char out[TIMESTAMP_TEXT_MAX]);

/* repr() of a double in the common case of at most six decimals between
 * 1e-4 and 2^33, or 0 when the value is not such a case. */
size_t format_double_repr_fast(double value, char out[TIMESTAMP_TEXT_MAX]);

/* The same for a double already at hand. */
size_t format_double_repr(double value, char out[TIMESTAMP_TEXT_MAX]);

/* Longest timestamp text a label takes. */
enum { LABEL_MAX_TIMESTAMP = 160 };

/* ---- Growing arrays: every array of the core and the binding grows by
 * doubling, so appending n items copies O(n) in all ---- */

/* Room for at least `need` items of item_size bytes in the array that
 * `array` points at (a T **, taken as void * so that any T will do; the
 * pointer is read and written with memcpy, which any type may alias), whose
 * room is *capacity items: doubles from `first` until it fits. Returns 0,
 * or -1 (memory, or a size past SIZE_MAX) with both left as they were. */
static inline int array_reserve(void *array, size_t *capacity, size_t need, size_t item_size, size_t first)
{
    if (need <= *capacity)
        return 0;
    size_t grown = *capacity ? *capacity : first;
    while (grown < need) {
        if (grown > SIZE_MAX / 2)
            return -1;
        grown *= 2;
    }
    void *items;
    memcpy(&items, array, sizeof items);
    void *moved = grown <= SIZE_MAX / item_size ? realloc(items, grown * item_size) : NULL;
    if (!moved)
        return -1;
    memcpy(array, &moved, sizeof moved);
    *capacity = grown;
    return 0;
}

/* ---- The flow tracer ---- */

enum { TRACER_NO_SLOT = 0xffffffffu };

struct tracer_error {
    int code;          /* errno value, or 0 with a message */
    char message[160]; /* what failed */
    char path[4096];   /* the file involved, if any */
};

struct tracer_config {
    const char *directory; /* output root as the user gave it (labels' files go in it) */
    const char *extension; /* e.g. ".pcap"; NULL: the tracer writes no files */
    int write_pcap;        /* the tracer writes pcap records itself */
    struct pcap_layout layout;
    int mapped_as_dotted;  /* see format_address() */
    int no_frame_numbers;  /* keep no frame numbers (flows' views have none): memory flat in the packets */
    int bidirectional;     /* one flow per connection, closed by FINs from both sides or an RST (see above) */
    uint32_t max_open_files;   /* 0: choose from RLIMIT_NOFILE */
    uint32_t flush_bytes;      /* a flow's buffer is written once it holds this much */
    uint64_t max_pending_bytes; /* the largest buffers are written once all together hold this much memory */
};

/* What the output cost, for the caller's statistics. */
struct tracer_output_counts {
    uint64_t files_created;  /* flow files created (by the tracer or its background writers) */
    uint64_t file_writes;    /* times a flow's buffered records went to its file */
    uint64_t file_reopens;   /* times a file created earlier was opened again to append to it */
    uint64_t budget_flushes; /* times all buffers together reached max_pending_bytes */
};

struct tracer; /* opaque: see tracer_internal.h */

/* A new tracer, or NULL with *error set (the directory cannot be opened, or memory). */
struct tracer *tracer_new(const struct tracer_config *config, struct tracer_error *error);
/* Releases memory and descriptors; does not write pending bytes (call tracer_flush_all first). NULL is fine. */
void tracer_delete(struct tracer *tr);


/* The slot of the open flow for key, or TRACER_NO_SLOT. In a bidirectional
 * tracer keys are a frame's own, either direction finding the connection's
 * flow. */
uint32_t tracer_find(struct tracer *tr, const struct flow_key *key);
/* Opens a new flow for key (which must not be open) labelled with the timestamp
 * text (and key's direction, for a bidirectional tracer's connection). For
 * pcap output the file (with its global header) is created at the
 * flow's first flush, so a flow traced without frames still gets a
 * header-only file by submit(). Returns the slot, or TRACER_NO_SLOT with
 * tr->error set. */
uint32_t tracer_open(struct tracer *tr, const struct flow_key *key, const char *timestamp,
                     size_t timestamp_length, uint32_t linktype);
/* ---- The per-frame entry point: every caller (trace(), dump(), the capture
 * loop) hands a frame over through it ---- */

/* One TCP frame: its flow, its number, its TCP flags (FIN closes a flow; a
 * bidirectional tracer reads RST too) and the pcap record to write. Without
 * a record (NULL) the caller writes the frame its own way, and closes the
 * flow (tracer_close_flow) when outcome->ends says the frame ended it. */
struct traced_frame {
    struct flow_key key;
    int64_t number;
    uint8_t tcp_flags; /* TCP_FLAG_FIN, TCP_FLAG_RST; the others are ignored */
    const struct pcap_record *record;
    const uint8_t *data;
    /* the frame's LINKTYPE_ value, 0: not told. A pcap file holds one link
     * type: a frame of another than its flow's file goes to a file beside it,
     * "{label}[_{use}]~{linktype}{extension}" (see tracer.c). */
    uint32_t linktype;
};

/* Asked only when the frame opens a flow: the label's timestamp text (at
 * most LABEL_MAX_TIMESTAMP bytes, into timestamp) and the flow's link type.
 * Returns 0, or -1 with the caller's own error. */
typedef int (*tracer_describe_flow)(void *context, char *timestamp, size_t *length, uint32_t *linktype);

enum trace_status {
    TRACE_OK = 0,
    TRACE_DESCRIBE_FAILED = -1,    /* describe() failed; nothing changed */
    TRACE_FAILED = -2,             /* tr->error; nothing of the frame is left (nor a flow it opened) */
    TRACE_WRITE_PENDING = -3,      /* recorded and queued, but a write failed (tr->error); not closed */
    TRACE_CLOSE_WRITE_FAILED = -4, /* closed on FIN, but its file's last write failed (tr->error) */
};

struct trace_outcome {
    uint32_t slot; /* the frame's flow, while it is open */
    int opened;    /* the frame opened it */
    /* the frame ends its flow (a FIN; bidirectional: the second side's FIN or an RST) and, given a
     * record, the flow was closed; without a record, the caller is to close it */
    int ends;
    long closed;   /* once it ended: the flow's index in the closed list, else -1 */
};

/* Finds or opens the frame's flow, records the frame number, queues the
 * record and closes the flow when the frame ends it (given a record). */
enum trace_status tracer_trace(struct tracer *tr, const struct traced_frame *frame, tracer_describe_flow describe,
                               void *context, struct trace_outcome *outcome);

/* The steps tracer_trace() takes, for callers that run code of their own
 * between them. Appends a frame number to the flow. Returns 0 or -1 (memory). */
int tracer_add_frame(struct tracer *tr, uint32_t slot, int64_t frame_number);
/* Takes back the frame number tracer_add_frame() added last (its frame could
 * not be queued), and the FIN tracer_trace() noted for it. */
void tracer_forget_last_frame(struct tracer *tr, uint32_t slot);
/* Queues one pcap record (header and data) on the flow's file, whole or not
 * at all. Returns 0; -1 when nothing was queued (tr->error); or
 * TRACER_QUEUED_UNWRITTEN (also < 0) when the record is queued but a write
 * it set off failed (it is written by a later flush). */
enum { TRACER_QUEUED_UNWRITTEN = -2 };
int tracer_write_frame(struct tracer *tr, uint32_t slot, const struct pcap_record *record,
                       const uint8_t *data, size_t length);
/* ---- Idle flows (tracer_idle.c): closed after timeout_ns of capture time
 * without a frame, as if by FIN; their next frame opens a new flow ---- */

/* Sets the timeout (0: flows never idle out). Returns 0 or -1 (memory). */
int tracer_set_idle_timeout(struct tracer *tr, uint64_t timeout_ns);
/* Capture time has come to now_ns (a frame's time, or the clock's on an
 * interface without traffic; earlier times than before are ignored):
 * closes the flows whose last frame is more than the timeout before it.
 * Returns how many were closed, or -1 (tr->error: memory, or a file's
 * last write failed, its flow closed all the same). */
long tracer_expire_idle(struct tracer *tr, int64_t now_ns);
/* A frame of the open flow in slot was just traced: it is idle from now on. */
void tracer_idle_touch(struct tracer *tr, uint32_t slot);
/* Flows closed for being idle so far. */
uint64_t tracer_idle_closed(const struct tracer *tr);

/* Bytes the tracer holds to keep track of its flows (slots, table, labels,
 * closed flows and their frame numbers), not counting output buffers. */
size_t tracer_memory_bytes(const struct tracer *tr);

/* What tracer_close_flow() returns for a flow closed and forgotten. */
#define TRACER_CLOSED_FORGOTTEN LONG_MAX
/* For a run that wants no index (a capture that may go on for days): from
 * now on a flow that closes is written and forgotten, not kept for the
 * closed list. With prune_labels (frames stamped by the clock, as an
 * interface's are: time does not go back) the labels of flows that began
 * more than TRACER_LABEL_MEMORY_S before the latest are forgotten too: only
 * a flow opened with the same label, so at the same instant, could need one
 * (to number its file rather than truncate the first's). Memory then grows
 * with the open flows alone. Flows closed before this call are kept. */
void tracer_forget_closed(struct tracer *tr, int forget, int prune_labels);
#define TRACER_LABEL_MEMORY_S 60

/* Writes everything queued for the flow, closes its file and moves the flow
 * to the closed list, its carried data with it (open_data is the caller's to
 * release first). Returns the index in the closed list, or -1 (memory).
 * When the write failed the flow is closed all the same, *write_failed is
 * set and tr->error tells what failed. */
long tracer_close_flow(struct tracer *tr, uint32_t slot, int *write_failed);
/* Forgets an open flow without recording it (its open failed half-way). */
void tracer_discard_flow(struct tracer *tr, uint32_t slot);
/* Writes every flow's pending bytes (creating header-only files). Returns 0 or -1. */
int tracer_flush_all(struct tracer *tr);
/* Forgets the flow's unwritten bytes (after a write error the caller gives up on). */
void tracer_drop_pending(struct tracer *tr, uint32_t slot);
/* From now on a closing flow whose file is still to be made is written by
 * `threads` background writers (see write_behind.h). Returns 0 or -1. */
int tracer_start_write_behind(struct tracer *tr, int threads);
/* Waits for the background writers and stops them. Returns 0, or -1 with
 * tr->error naming the first file that could not be written. */
int tracer_finish_write_behind(struct tracer *tr);
/* Closes every open output descriptor (pending bytes stay queued). */
void tracer_close_files(struct tracer *tr);
/* Claim mode for a tracer sharing its output directory (see sink_claim in
 * flow_sink.h); before the first flow. Returns 0 or -1 (tr->error). */
int tracer_claim(struct tracer *tr, const char *fallback, const char *journal);

/* Appends a record to the file named by path relative to the output
 * directory, for writers that outlive their flow. Returns 0 or -1. */
int tracer_append_to_closed(struct tracer *tr, const char *label, uint32_t use_number,
                            const struct pcap_record *record, const uint8_t *data, size_t length);

/* Writes "{directory}/{label}[_{use}]{extension}" as pcapkit spells fpout. */
int tracer_output_path(const struct tracer *tr, const char *label, uint32_t use_number, char *out,
                       size_t size);

size_t tracer_flow_bytes(void);

/* max_pending_bytes when the caller sets none (and the chooser's answer when
 * the memory available cannot be told). */
#define TRACER_DEFAULT_BUDGET ((uint64_t)32 << 20)
/* The least the chooser picks for a capture larger than that. */
#define TRACER_LEAST_BUDGET ((uint64_t)4 << 20)
/* The most the chooser picks for a capture of unknown size (a pipe). */
#define TRACER_STREAM_BUDGET ((uint64_t)256 << 20)

/* Memory this process could still take, in bytes: MemAvailable from
 * /proc/meminfo (or the free pages), less where the process's cgroup
 * memory limit or RLIMIT_AS comes first. 0 when it cannot be told. */
uint64_t tracer_available_memory(void);
/* An output budget (max_pending_bytes) for tracing a capture of
 * capture_bytes (0: size unknown, a pipe, say): an eighth of the available
 * memory, at most four times the capture's size (its records can never
 * need more: a flow's buffer holds at least half its capacity, or a first
 * record of 70 bytes or more in 256) or TRACER_STREAM_BUDGET when the size
 * is unknown, at least
 * TRACER_LEAST_BUDGET (unless the capture is smaller), and at most limit
 * when limit is not 0. TRACER_DEFAULT_BUDGET when the memory cannot be told. */
uint64_t tracer_choose_budget(uint64_t capture_bytes, uint64_t limit);

/* ---- Flows as the caller sees them ---- */

/* Compact frame number lists (frame_list.h), which flows keep and callers
 * may keep too (the Follow TCP Stream binding keeps each stream's). */
#include "frame_list.h"

/* An open flow across calls that may move the table: tracer_slot_of() gives
 * its slot while it is open, TRACER_NO_SLOT once it closed. */
struct flow_handle {
    uint32_t slot;
    uint64_t generation;
};

/* A flow's label, file name number and frame numbers, open or closed. The
 * frame numbers are compact (csrc/core/frame_list.h): read them with a
 * frame_reader. */
struct flow_view {
    const char *label;
    uint32_t label_length;
    uint32_t use_number;
    uint32_t frame_count;
    int64_t first_frame;
    const uint8_t *steps; /* the differences between the frames that follow */
};

struct frame_reader {
    uint64_t frame;
    const uint8_t *next;
    uint32_t left;
};

static inline struct frame_reader frame_reader_start(const struct flow_view *flow)
{
    return (struct frame_reader){(uint64_t)flow->first_frame, flow->steps, flow->frame_count};
}

/* Bytes of a view's steps (they end where the frame_count - 1st difference does). */
static inline size_t flow_view_steps_length(const struct flow_view *flow)
{
    size_t length = 0;
    for (uint32_t ended = 1; ended < flow->frame_count; length++)
        ended += flow->steps[length] < 0x80;
    return length;
}

/* The flow's next frame number: call it frame_count times. */
static inline int64_t frame_reader_next(struct frame_reader *r)
{
    int64_t frame = (int64_t)r->frame;
    if (--r->left) {
        uint64_t zigzag = 0;
        for (int shift = 0;; shift += 7) {
            uint8_t byte = *r->next++;
            zigzag |= (uint64_t)(byte & 0x7f) << shift;
            if (byte < 0x80)
                break;
        }
        r->frame += (zigzag >> 1) ^ (uint64_t)-(int64_t)(zigzag & 1);
    }
    return frame;
}

uint32_t tracer_open_count(const struct tracer *tr);
size_t tracer_closed_count(const struct tracer *tr);
/* Open flows in the order first seen: first, then next until TRACER_NO_SLOT. */
uint32_t tracer_first_open(const struct tracer *tr);
uint32_t tracer_next_open(const struct tracer *tr, uint32_t slot);
/* for (each open flow's slot), as a statement head */
#define TRACER_FOR_EACH_OPEN(tr, slot) \
    for (uint32_t slot = tracer_first_open(tr); slot != TRACER_NO_SLOT; slot = tracer_next_open(tr, slot))
struct flow_view tracer_open_view(const struct tracer *tr, uint32_t slot);
/* Closed flow i (0 is the first closed). */
struct flow_view tracer_closed_view(const struct tracer *tr, size_t i);
struct flow_handle tracer_handle(const struct tracer *tr, uint32_t slot);
uint32_t tracer_slot_of(const struct tracer *tr, struct flow_handle handle);
/* The caller's data of open flow `slot` and of closed flow i: `carried` goes
 * with the flow to the closed list at close, `open_data` is for the caller
 * to release before; the core never reads either. */
void **tracer_carried(struct tracer *tr, uint32_t slot);
void **tracer_open_data(struct tracer *tr, uint32_t slot);
void **tracer_closed_carried(struct tracer *tr, size_t i);
/* What the output has cost so far, and the budget it works within. */
struct tracer_output_counts tracer_output_counts(const struct tracer *tr);
uint64_t tracer_output_budget(const struct tracer *tr);
/* What the last failed call failed on. */
const struct tracer_error *tracer_last_error(const struct tracer *tr);

/* ---- Output files made by others (the text formats' dumpers) ---- */

/* Creates name in directory_fd (AT_FDCWD: the working directory) for
 * appending, or truncates an existing regular file of the effective user's
 * with one link; a symbolic link, a FIFO or anyone else's file is refused
 * (EEXIST for the last) and left as it is. Returns the descriptor or -1. */
int flow_file_create_at(int directory_fd, const char *name);
/* What to say when opening an output file failed with errno `code`. */
const char *flow_file_open_failure(int code);

/* ---- Reading captures (libpcap, pcap and pcapng) ---- */

struct capture_stats {
    uint64_t frames;          /* every frame read, TCP or not */
    uint64_t tcp_frames;      /* frames traced */
    uint64_t filtered_out;    /* frames the BPF filter rejected */
    uint64_t not_tcp;         /* well-formed frames without TCP */
    uint64_t fragments;       /* non-first IP fragments */
    uint64_t truncated;       /* frames shorter than their headers claim */
    uint64_t unsupported_link; /* frames of a link type pcapflow does not decode */
    uint64_t flows_opened;
};

/* What a capture calls while it reads, so that its caller can stop it (on a
 * signal, say) even while the input is an idle pipe. */
struct capture_check {
    /* Returns nonzero to stop reading: the capture then ends with
     * CAPTURE_INTERRUPTED (or capture_open fails with c->interrupted set).
     * Called between frames and while waiting for input, at least every
     * interval_ns while the capture is read, and at once when a read is
     * interrupted by a signal (EINTR). NULL: never; EINTR is retried. */
    int (*function)(void *arg);
    void *arg;
    uint64_t interval_ns;
};

enum capture_status {
    CAPTURE_FRAME,        /* capture_next: a TCP frame is ready */
    CAPTURE_DONE,         /* end of the capture */
    CAPTURE_MORE,         /* the frame budget is used up; call again */
    CAPTURE_DAMAGED,      /* libpcap could not read the next frame: errbuf says why */
    CAPTURE_TRACER_ERROR, /* writing failed: tr->error says why */
    CAPTURE_INTERRUPTED,  /* the check function asked to stop: every whole frame read is traced */
    CAPTURE_IDLE,         /* an interface delivered nothing for a while: call again (files never say it) */
};

struct capture; /* opaque: see capture.c */

/* A capture not opened yet, or NULL (memory). */
struct capture *capture_new(void);
/* Closes it if open and frees it. NULL is fine. */
void capture_delete(struct capture *c);
/* decode_frame()'s options (DECODE_TUNNELS) for the frames read from now on. */
void capture_set_decode_options(struct capture *c, unsigned options);
/* Opens a capture (pcap or pcapng) read from `file` (which must not have
 * been read from yet), at nanosecond precision so no timestamp is rounded.
 * Takes ownership of file. Returns 0, or -1 with capture_error() set (and
 * file closed; capture_interrupted() when check asked to stop). Reads the
 * file header, so it may block on a pipe. `check` may be NULL. */
int capture_open(struct capture *c, FILE *file, const struct capture_check *check);
/* The same for a capture whose first head_length bytes were already taken
 * from `file` by someone else (a Python file object's buffer): they are read
 * first. head must stay valid while the capture is open. */
int capture_open_after(struct capture *c, const void *head, size_t head_length, FILE *file,
                       const struct capture_check *check);
/* What the last failure was (libpcap's words). */
const char *capture_error(const struct capture *c);
/* The check function asked to stop. */
int capture_interrupted(const struct capture *c);
/* The LINKTYPE_ value of the capture's frames, which files carry (pcapng:
 * the first interface's; each frame tells its own). */
uint32_t capture_linktype(const struct capture *c);
/* Compiles a BPF expression for the capture's link type. Returns 0 or -1 (errbuf). */
int capture_set_filter(struct capture *c, const char *expression);
void capture_close(struct capture *c);
/* Bytes of the file read so far. */
uint64_t capture_offset(const struct capture *c);

/* ---- Capturing on an interface (capture_live.c) ---- */

struct live_options {
    int snaplen;          /* bytes kept of each frame */
    int promisc;          /* promiscuous mode */
    int buffer_bytes;     /* the kernel's buffer for frames not read yet; 0: libpcap's default */
    uint64_t count;       /* the capture ends after this many frames (the filter's); 0: no limit */
    uint64_t duration_ns; /* the capture ends this long after it opens; 0: no limit */
};

enum live_failure {
    LIVE_OK = 0,
    LIVE_NO_SUCH_INTERFACE = -1,
    LIVE_NO_PERMISSION = -2, /* not root, no CAP_NET_RAW */
    LIVE_INTERFACE_DOWN = -3,
    LIVE_FAILED = -4,        /* anything else: capture_error() says what */
};

/* With nothing to read, capture_next() on an interface returns CAPTURE_IDLE
 * at least this often, so that its caller can close idle flows. */
#define CAPTURE_LIVE_TICK_NS 100000000u

/* Opens interface for capture, frames timestamped in nanoseconds where the
 * kernel can. Reads end (CAPTURE_DONE) after options' count or duration;
 * the check is called as for a pipe. A filter (capture_set_filter) runs in
 * the kernel: frames it rejects are neither read nor numbered. Returns
 * LIVE_OK, or a failure with capture_error() set. */
enum live_failure capture_open_live(struct capture *c, const char *interface, const struct live_options *options,
                                    const struct capture_check *check);

/* What an open interface captures: libpcap's name and description of its
 * link type, the bytes kept of each frame, nanosecond timestamps or not. */
struct capture_description {
    const char *linktype_name, *linktype_description; /* static strings */
    int snaplen;
    int nanosecond;
};
void capture_describe(const struct capture *c, struct capture_description *about);

/* What the kernel counted for an interface since it was opened (libpcap's
 * pcap_stats, kept in 64 bits). */
struct live_counts {
    uint64_t received;          /* frames that passed the filter */
    uint64_t dropped;           /* of those, lost for want of room in the buffer */
    uint64_t interface_dropped; /* lost by the interface or its driver */
};
/* Returns 0, or -1 when c is not an open interface. */
int capture_live_counts(struct capture *c, struct live_counts *counts);

/* The next TCP frame of a capture, as capture_next() leaves it: valid until
 * the next call (libpcap's buffer). */
struct capture_frame {
    int64_t seconds;      /* the frame's time as the file holds it: seconds (pcapng: any 64-bit value), */
    uint64_t nanoseconds; /* and the sub-second field (may exceed a second in a damaged pcap capture) */
    uint32_t caplen, len; /* bytes captured, bytes on the wire */
    const uint8_t *data;
    uint32_t linktype;    /* the frame's LINKTYPE_ value (pcapng: its interface's) */
    struct decoded_frame decoded;
};

/* Reads frames until a TCP frame passes the filter and decodes (CAPTURE_FRAME,
 * *frame filled), or the capture ends (CAPTURE_DONE), is damaged
 * (CAPTURE_DAMAGED, errbuf) or is stopped by the check (CAPTURE_INTERRUPTED).
 * Every frame read advances *frame_number and is counted in stats. The one
 * read loop of pcapflow: capture_trace and the packet reader both use it. */
enum capture_status capture_next(struct capture *c, struct capture_frame *frame, uint64_t *frame_number,
                                 struct capture_stats *stats);

/* Reads and traces up to max_frames frames, numbering them after
 * *frame_number (which it advances). When the check asks to stop, every
 * whole frame already read from the input is traced, then it returns
 * CAPTURE_INTERRUPTED without reading more; a frame the input had only begun
 * to deliver is not traced, and the capture cannot be read further. */
enum capture_status capture_trace(struct capture *c, struct tracer *tr, uint64_t *frame_number, uint64_t max_frames,
                                  struct capture_stats *stats);

/* ---- Follow TCP Stream (follow.c): TCP conversations reassembled as
 * Wireshark 4.0's "Follow TCP Stream" shows them ---- */

/* Conversations are numbered as tshark's tcp.stream: by first appearance,
 * keyed by the innermost addresses and ports in either direction; a SYN
 * (without ACK) whose sequence number differs from the one its side began
 * with starts a new one. Each side's bytes come out as records, in the
 * order Wireshark accepts them: a segment's new bytes when they continue
 * what came before; a segment further on is held back until the bytes
 * before it arrive, or until the other side acknowledges past it (then a
 * gap record says how much is missing). Retransmitted bytes come out once,
 * as first seen.
 *
 * Memory: a conversation costs about FOLLOW_CONVERSATION_BYTES for the
 * whole run (its number must still be found for a late segment); held
 * segments cost their bytes, bounded per conversation and in all (a
 * segment past a bound is dropped and counted). */

struct follow_record {
    uint64_t stream;
    int node;              /* 0: the side that sent the conversation's first segment */
    int64_t frame;         /* the frame it came in (a gap record: the acknowledging frame) */
    int64_t seconds;       /* its time (a gap record: 0) */
    uint32_t nanoseconds;
    const uint8_t *data;   /* valid during the call only */
    size_t length;
    uint32_t missing;      /* a gap record: the bytes missing; data holds Wireshark's text for them */
};

struct follow_callbacks {
    void *context;
    /* Each returns 0, or -1 to stop the run (follow_frame() then returns -1). */
    /* A conversation took its number: key is its first frame's (sender first). */
    int (*stream)(void *context, uint64_t stream, const struct flow_key *key);
    /* Node 0 of a conversation is (now) key's sender, node 1 its receiver. */
    int (*nodes)(void *context, uint64_t stream, const struct flow_key *key);
    /* A frame belongs to the conversation (every frame with a TCP header, ICMP errors quoting one too). */
    int (*frame)(void *context, uint64_t stream, int64_t frame, int64_t seconds, uint32_t nanoseconds);
    int (*record)(void *context, const struct follow_record *record);
};

struct follow_config {
    struct follow_callbacks callbacks;
    uint64_t max_held_per_stream; /* bytes held back per conversation; 0: FOLLOW_DEFAULT_HELD_PER_STREAM */
    uint64_t max_held;            /* in all; 0: FOLLOW_DEFAULT_HELD */
    uint64_t max_fragment_bytes;  /* IP fragments waiting for the rest; 0: FOLLOW_DEFAULT_FRAGMENT_BYTES */
};

#define FOLLOW_DEFAULT_HELD_PER_STREAM ((uint64_t)16 << 20)
#define FOLLOW_DEFAULT_HELD ((uint64_t)512 << 20)
#define FOLLOW_DEFAULT_FRAGMENT_BYTES ((uint64_t)64 << 20)
/* What a held segment counts against max_held_per_stream and max_held (and
 * in held_bytes) beyond its payload: its header and the allocator's, so that
 * the bounds hold for memory even when every segment carries one byte. */
#define FOLLOW_HELD_SEGMENT_COST 64

struct follow_stats {
    uint64_t streams;
    uint64_t records, gap_records;
    uint64_t bytes;             /* payload bytes in records (gap texts not counted) */
    uint64_t held_bytes;        /* held back now: payload + FOLLOW_HELD_SEGMENT_COST per segment */
    uint64_t peak_held_bytes;
    uint64_t dropped_segments;  /* held segments dropped at a bound */
    uint64_t dropped_bytes;     /* their payload */
    uint64_t fragments, reassembled, fragments_dropped;
};

struct follow;

/* NULL: no memory. */
struct follow *follow_new(const struct follow_config *config);
void follow_delete(struct follow *f);
/* One frame as capture_next() gives it with DECODE_FOLLOW | DECODE_TUNNELS.
 * Returns 0, or -1: memory (errno ENOMEM) or a callback asked to stop. */
int follow_frame(struct follow *f, const struct capture_frame *frame, int64_t frame_number);
struct follow_stats follow_stats(const struct follow *f);
size_t follow_conversation_bytes(void);
/* Node 0 of a stream as sender, node 1 as receiver, into *node0: 1; 0 when
 * the stream has no nodes yet (only ICMP errors quoted it); -1 when there is
 * no such stream. The callers that stream records need keep no table of
 * their own: the conversation has it. */
int follow_stream_nodes(const struct follow *f, uint64_t stream, struct flow_key *node0);

/* Reads up to max_frames frames of c (opened; its decode options are set
 * here) into f, numbering them after *frame_number. CAPTURE_TRACER_ERROR:
 * follow_frame() failed. */
enum capture_status follow_capture(struct capture *c, struct follow *f, uint64_t *frame_number,
                                   uint64_t max_frames, struct capture_stats *stats);

/* ---- Payload files (payload_split.c): each direction of each followed
 * conversation in a file of its own, "{stream}-{src}.{port}-{dst}.{port}" in
 * the output directory, created when its first byte comes. Bytes the
 * capture lacks are not written: they are kept as gaps. Its functions of
 * (context, ...) are follow_callbacks for a follow run. ---- */

struct payload_gap {
    uint64_t offset; /* bytes of the file before it */
    uint32_t length;
    int64_t frame;   /* where it was found missing */
};

struct payload_direction {
    uint64_t bytes, records;
    int64_t first_seconds, last_seconds; /* of its first and last record */
    uint32_t first_nanoseconds, last_nanoseconds;
    struct payload_gap *gaps;
    size_t gap_count, gap_capacity;
};

struct payload_stream {
    struct flow_key key; /* node 0 sends */
    uint64_t frames;
    int64_t first_seconds, last_seconds;
    uint32_t first_nanoseconds, last_nanoseconds;
    struct payload_direction directions[2]; /* by node */
};

struct payload_split;

/* NULL with *error set (the directory cannot be opened, or memory); error
 * must outlive the splitter, and so must directory. max_pending_bytes: the
 * memory buffers may hold (0: TRACER_DEFAULT_BUDGET). */
struct payload_split *payload_split_new(const char *directory, uint64_t max_pending_bytes, struct tracer_error *error);
void payload_split_delete(struct payload_split *ps);
int payload_split_stream(void *context, uint64_t stream, const struct flow_key *key);
int payload_split_nodes(void *context, uint64_t stream, const struct flow_key *key);
int payload_split_frame(void *context, uint64_t stream, int64_t frame, int64_t seconds, uint32_t nanoseconds);
int payload_split_record(void *context, const struct follow_record *record);
/* Writes what is buffered and closes the files. Returns 0 or -1 (*error). */
int payload_split_finish(struct payload_split *ps);
uint64_t payload_split_count(const struct payload_split *ps);
/* The streams (payload_split_count() of them), valid until the next call. */
const struct payload_stream *payload_split_streams(const struct payload_split *ps);
/* The file name of a direction (whether or not it has a file). Returns 0 or -1 (size). */
int payload_split_file_name(struct payload_split *ps, uint64_t stream, int node, char *out, size_t size);

#endif
