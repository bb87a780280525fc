/* struct capture, for the capture readers of csrc/core (capture.c reads
 * files and pipes, capture_live.c interfaces); others see it opaque. */
#ifndef PCAPFLOW_CAPTURE_INTERNAL_H
#define PCAPFLOW_CAPTURE_INTERNAL_H

#include <pcap/pcap.h>

#include "pcapflow_core.h"

struct counted_stream; /* capture.c: counts the bytes libpcap reads, pipes included */

struct capture {
    pcap_t *pcap;        /* a pcap file or an interface: libpcap reads it */
    struct pcapng_source *pcapng; /* a pcapng file: pcapng_reader.c reads it */
    FILE *file; /* the stream read (closed by pcap_close for a pcap file) */
    struct counted_stream *counter;
    int linktype;        /* libpcap's DLT_ value, what the decoder reads */
    uint32_t file_linktype; /* the LINKTYPE_ value files carry (DLT_RAW is 12, LINKTYPE_RAW 101) */
    int microsecond_pcap; /* a pcap file with microsecond timestamps (not pcapng, not nanosecond) */
    unsigned decode_options; /* decode_frame()'s options (DECODE_TUNNELS); 0 after capture_open */
    int has_filter;      /* filter is applied here (a file's; an interface's is in the kernel) */
    struct bpf_program filter;
    struct capture_check check;
    uint64_t next_check_ns; /* CLOCK_MONOTONIC time of the next call of check.function */
    int interrupted;        /* check.function asked to stop */
    uint32_t frames_read;   /* counts reads, for the clock read every 256 */

    /* an interface (capture_open_live) */
    int live;
    int live_fd;            /* what poll() waits on: pcap_get_selectable_fd() */
    int live_nanosecond;    /* the kernel gives nanosecond timestamps (else microseconds) */
    uint64_t live_bytes;    /* bytes of the frames captured */
    uint64_t frames_left;   /* frames still to read (count), UINT64_MAX: no limit */
    uint64_t stop_at_ns;    /* CLOCK_MONOTONIC time the capture ends (duration), 0: never */
    struct live_counts counts;  /* libpcap's counters, added up past their 32 bits */
    struct pcap_stat last_stat; /* libpcap's counters when last read */

    char errbuf[PCAP_ERRBUF_SIZE + 128]; /* room for what pcapflow adds */
};

uint64_t capture_monotonic_ns(void);
/* Calls the check function when its time has come (or `now_due`). Returns
 * -1 when it asks to stop (c->interrupted is then set), else 0. */
int capture_run_check(struct capture *c, int now_due);
/* The LINKTYPE_ value a pcap file written from pcap carries. */
uint32_t capture_file_linktype(pcap_t *pcap);
/* Decodes a frame read into frame->decoded and counts it in stats. Returns
 * 1 when it is for the caller (TCP, or a fragment or ICMP error for Follow
 * TCP Stream), 0 when it was only counted. */
int capture_decode(const struct capture *c, int dlt, const uint8_t *data, uint32_t caplen,
                   struct capture_frame *frame, struct capture_stats *stats);
/* capture_next() for an interface (capture_live.c). */
enum capture_status capture_live_next(struct capture *c, struct capture_frame *frame, uint64_t *frame_number,
                                      struct capture_stats *stats);

#endif
