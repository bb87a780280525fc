/* Reading a capture file with libpcap and tracing every frame, with no
 * Python and no allocation per frame. */
#ifndef PCAPFLOW_CAPTURE_H
#define PCAPFLOW_CAPTURE_H

#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>

#include "decode.h"
#include "tracer.h"

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

struct counted_stream; /* capture.c: counts the bytes libpcap reads, pipes included */

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

struct capture {
    pcap_t *pcap;
    FILE *file; /* the stream libpcap reads (closed by pcap_close) */
    struct counted_stream *counter;
    int linktype;        /* libpcap's DLT_ value, what the decoder reads */
    uint32_t file_linktype; /* the LINKTYPE_ value files carry (DLT_RAW is 12, LINKTYPE_RAW 101) */
    int microsecond_pcap; /* a pcap file with microsecond timestamps (not pcapng, not nanosecond) */
    int has_filter;
    struct bpf_program filter;
    struct capture_check check;
    uint64_t next_check_ns; /* CLOCK_MONOTONIC time of the next call of check.function */
    int interrupted;        /* check.function asked to stop */
    uint32_t frames_read;   /* counts reads, for the clock read every 256 */
    char errbuf[PCAP_ERRBUF_SIZE + 128]; /* room for what pcapflow adds */
};

enum capture_status {
    CAPTURE_FRAME,        /* capture_next: a TCP frame is ready */
    CAPTURE_DONE,         /* end of the capture */
    CAPTURE_MORE,         /* the frame budget is used up; call again */
    CAPTURE_DAMAGED,      /* libpcap could not read the next frame: errbuf says why */
    CAPTURE_TRACER_ERROR, /* writing failed: tr->error says why */
    CAPTURE_INTERRUPTED,  /* the check function asked to stop: every whole frame read is traced */
};

/* Opens a capture (pcap or pcapng) read from `file` (which must not have
 * been read from yet), at nanosecond precision so no timestamp is rounded.
 * Takes ownership of file. Returns 0, or -1 with errbuf set (and file
 * closed; c->interrupted when check asked to stop). Reads the file header,
 * so it may block on a pipe. `check` may be NULL; c must stay where it is
 * while the capture is open (the stream points back to it). */
int capture_open(struct capture *c, FILE *file, const struct capture_check *check);
/* The same for a capture whose first head_length bytes were already taken
 * from `file` by someone else (a Python file object's buffer): they are read
 * first. head must stay valid while the capture is open. */
int capture_open_after(struct capture *c, const void *head, size_t head_length, FILE *file,
                       const struct capture_check *check);
/* Compiles a BPF expression for the capture's link type. Returns 0 or -1 (errbuf). */
int capture_set_filter(struct capture *c, const char *expression);
void capture_close(struct capture *c);
/* A frame's time as the file holds it: seconds, and the sub-second field in
 * nanoseconds (which may exceed a second in a damaged capture). */
void capture_timestamp(const struct capture *c, const struct pcap_pkthdr *header, uint64_t *seconds,
                       uint64_t *nanoseconds);
/* Bytes of the file read so far. */
uint64_t capture_offset(const struct capture *c);

/* The next TCP frame of a capture, as capture_next() leaves it: valid until
 * the next call (libpcap's buffer). */
struct capture_frame {
    const struct pcap_pkthdr *header;
    const uint8_t *data;
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

#endif
