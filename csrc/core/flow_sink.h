/* The output sink: every flow's pcap file, its buffered records, a bounded
 * set of open descriptors and the background writers. The tracer owns one
 * and names flows to it by slot; the sink keeps one struct flow_file per slot
 * and asks the tracer (identify) for a flow's file name and link type only
 * when it opens or creates the file. */
#ifndef PCAPFLOW_FLOW_SINK_H
#define PCAPFLOW_FLOW_SINK_H

#include "label.h"
#include "pcap_format.h"
#include "pcapflow_core.h"

struct write_behind;

/* What the sink needs to know of a flow to make its file. */
struct flow_identity {
    const char *label;
    uint32_t use_number;
    uint32_t linktype;
};

struct flow_file {
    uint8_t *pending; /* bytes not yet written to the file */
    uint32_t pending_length;
    uint32_t pending_capacity;
    int fd;         /* -1 while the file is not open */
    uint8_t exists; /* created (and truncated) by this sink */
    uint8_t displaced; /* claim mode: made in the fallback directory, its name being taken */
    uint32_t lru_newer, lru_older; /* list of files holding an open descriptor */
};

struct flow_sink {
    int writes;              /* pcap records are written (else the sink only names files) */
    int raw;                 /* files hold bytes as queued: no pcap headers (payload files) */
    const char *directory;   /* as the user gave it, for error messages and paths */
    const char *extension;
    int directory_fd;        /* every file is opened relative to it */
    int fallback_fd;         /* claim mode (sink_claim), else -1 */
    int journal_fd;          /* claim mode: the names made in directory, a line each; else -1 */
    struct pcap_layout layout;
    uint32_t max_open_files;
    uint32_t flush_bytes;
    uint64_t max_pending_bytes;

    struct flow_file *files; /* by slot */
    uint32_t file_capacity;
    uint32_t open_files;
    uint32_t lru_newest, lru_oldest;
    uint64_t buffered_bytes; /* memory the buffers hold (their capacity), counted against max_pending_bytes */
    struct write_behind *behind; /* background writers, while the capture loop runs */
    struct tracer_output_counts counts;

    struct tracer_error *error; /* where failures are told (the tracer's) */
    struct flow_identity (*identify)(const void *owner, uint32_t slot);
    const void *owner;
};

/* Opens the output directory (when config->write_pcap) and keeps the
 * configuration; directory and extension must outlive the sink. Returns 0
 * or -1 (*error). */
int sink_init(struct flow_sink *sink, const struct tracer_config *config, struct tracer_error *error,
              struct flow_identity (*identify)(const void *owner, uint32_t slot), const void *owner);
/* Claim mode, for tracers sharing one output directory (pcapflow.dask): a
 * flow's file is made in the directory only if its name is free there (never
 * replacing a file), else in the directory `fallback`; each name made in the
 * directory is written to the file `journal` (created), a line each, once
 * made, so that whoever runs the tracers knows which files are whose. No
 * background writers run in claim mode (a task is one core's work). Call
 * before any file is made. Returns 0 or -1 (*error). */
int sink_claim(struct flow_sink *sink, const char *fallback, const char *journal);
/* Releases every buffer and descriptor; writes nothing. */
void sink_free(struct flow_sink *sink);
/* Room for files of slots below capacity. Returns 0 or -1 (memory). */
int sink_reserve(struct flow_sink *sink, uint32_t capacity);
/* Slot now holds a new flow: no file yet, nothing pending. */
void sink_start_flow(struct flow_sink *sink, uint32_t slot);

/* Queues a record (header and data) for the flow's file, whole or, when
 * memory or the 32-bit buffer length runs out, not at all; then writes the
 * buffer out when it grew past flush_bytes, and the largest buffers when the
 * memory all buffers hold passes max_pending_bytes. A written buffer is
 * freed, so an idle flow holds none. Returns 0, -1 when nothing was queued, or
 * TRACER_QUEUED_UNWRITTEN when it was queued but writing out failed (the
 * next flush tries again). */
int sink_queue(struct flow_sink *sink, uint32_t slot, const struct pcap_record *record, const uint8_t *data,
               size_t length);
/* Queues bytes as they are for a raw sink's file (see sink_queue). */
int sink_queue_bytes(struct flow_sink *sink, uint32_t slot, const uint8_t *data, size_t length);
/* Writes the flow's pending bytes, creating the file on first use. */
int sink_flush(struct flow_sink *sink, uint32_t slot);
/* Writes what is queued for a flow that is closing: by a background writer
 * when one runs and the file is still to be made, otherwise at once. */
int sink_finish(struct flow_sink *sink, uint32_t slot);
/* Closes the flow's descriptor, if open, and frees its buffer. */
void sink_release(struct flow_sink *sink, uint32_t slot);
/* Forgets the flow's unwritten bytes (after a write error the caller gives up on). */
void sink_drop_pending(struct flow_sink *sink, uint32_t slot);
/* Closes every open descriptor (pending bytes stay queued). */
void sink_close_files(struct flow_sink *sink);

/* Appends a record to the file of a flow that is closed already. */
int sink_append(struct flow_sink *sink, const char *label, uint32_t use_number, const struct pcap_record *record,
                const uint8_t *data, size_t length);
/* Appends a record to the file `name` in the output directory; `create`:
 * creates (or truncates) it first and writes a global header of linktype. */
int sink_append_named(struct flow_sink *sink, const char *name, int create, uint32_t linktype,
                      const struct pcap_record *record, const uint8_t *data, size_t length);
/* "{label}[_{use}]{extension}", the file name pcapkit gives a flow. Returns 0 or -1 (too long). */
int sink_file_name(const struct flow_sink *sink, const char *label, uint32_t use_number, char *out, size_t size);

/* Background writers for flows closing before their file was made (see
 * write_behind.h). Returns 0 or -1. */
int sink_start_writers(struct flow_sink *sink, int threads);
/* Waits for them and stops them. Returns 0, or -1 naming the first file that
 * could not be written. */
int sink_finish_writers(struct flow_sink *sink);

/* Writes both buffers, in one system call when it can. Returns 0 or -1. */
int flow_file_write_two(int fd, const uint8_t *first, size_t first_length, const uint8_t *second,
                        size_t second_length);

#endif
