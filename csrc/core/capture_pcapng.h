/* A pcapng capture as capture.c reads it: pcapng_reader's frames with the
 * decoder's link type (libpcap's DLT_ value) and the BPF filter of each
 * frame's link type. For capture.c only. */
#ifndef PCAPFLOW_CAPTURE_PCAPNG_H
#define PCAPFLOW_CAPTURE_PCAPNG_H

#include <stdint.h>
#include <stdio.h>

#include "pcapng_reader.h"

struct pcapng_link; /* one per link type met: its DLT_ value and filter */

struct pcapng_source {
    struct pcapng_reader reader;
    struct pcapng_link *links;
    uint32_t link_count;
    char *filter; /* the BPF expression, compiled for each link type as it comes; NULL: none */
    char *error;
    size_t error_size;
};

/* One frame as capture_next() takes it. */
struct pcapng_source_frame {
    struct pcapng_frame frame;
    int dlt;             /* what decode_frame() reads */
    int filtered_out;    /* the filter rejects it */
};

/* Opens the source on file (positioned at the section header) and reads up
 * to the first interface. Returns 0, or -1 with error set. */
int pcapng_source_open(struct pcapng_source *s, FILE *file, char *error, size_t error_size);
/* The first interface's LINKTYPE_ value. */
uint32_t pcapng_source_linktype(const struct pcapng_source *s);
/* Compiles expression for every link type met so far (and keeps it for
 * those to come). Returns 0 or -1 (error: the compiler's words). */
int pcapng_source_set_filter(struct pcapng_source *s, const char *expression);
/* The next frame, filtered. PCAPNG_DAMAGED also when the filter does not
 * compile for a new link type. */
enum pcapng_status pcapng_source_next(struct pcapng_source *s, struct pcapng_source_frame *out);
/* Frees everything but the file. */
void pcapng_source_free(struct pcapng_source *s);

#endif
