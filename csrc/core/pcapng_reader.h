/* pcapng read block by block, for capture.c only.
 *
 * libpcap 1.10 refuses a pcapng file whose interfaces differ in link type
 * or snapshot length, and so a file of several sections whose interfaces
 * differ (`cat a.pcapng b.pcapng`). This reader takes every such file: each
 * frame comes with its own interface, whose link type, snapshot length and
 * timestamp resolution and offset are the IDB's. It reads the stream
 * sequentially (a pipe will do) and holds one block at a time, at most
 * PCAPNG_MAX_BLOCK bytes; longer blocks that carry no frame are skipped
 * unread. */
#ifndef PCAPFLOW_PCAPNG_READER_H
#define PCAPFLOW_PCAPNG_READER_H

#include <stdint.h>
#include <stdio.h>

/* The block type that opens every section (and every pcapng file): the same
 * bytes in either byte order. */
#define PCAPNG_SECTION_HEADER 0x0A0D0D0Au

/* The longest block held in memory, as libpcap bounds it. */
enum { PCAPNG_MAX_BLOCK = 16 * 1024 * 1024 };

/* Unset pcapng_interface.link: capture.c has not looked the link type up yet. */
enum { PCAPNG_NO_LINK = 0xffffffffu };

struct pcapng_interface {
    uint32_t linktype; /* the LINKTYPE_ value of the IDB */
    uint32_t snaplen;  /* 0: no limit */
    uint64_t units;    /* timestamp units per second (if_tsresol: 10^n or 2^n) */
    int64_t offset;    /* seconds added to every timestamp (if_tsoffset) */
    uint32_t link;     /* capture.c's own index for this link type, PCAPNG_NO_LINK until it sets it */
};

struct pcapng_frame {
    struct pcapng_interface *interface;
    int64_t seconds;      /* may be negative (if_tsoffset) or past 2^32 */
    uint32_t nanoseconds; /* below 10^9 */
    uint32_t caplen, len;
    const uint8_t *data; /* valid until the next read */
};

struct pcapng_reader {
    FILE *file;
    int swapped; /* the section's byte order is not the host's */
    struct pcapng_interface *interfaces; /* the current section's */
    uint32_t interface_count, interface_capacity;
    uint8_t *block; /* the block being read, from its type field on */
    size_t block_capacity;
    char *error; /* where failures are told */
    size_t error_size;
};

enum pcapng_status { PCAPNG_FRAME, PCAPNG_END, PCAPNG_DAMAGED };

/* Starts reading a pcapng file at its first byte (the section header's
 * type); errors are written into error (error_size bytes). Returns 0 or -1
 * (memory). Nothing is read yet. */
int pcapng_reader_open(struct pcapng_reader *r, FILE *file, char *error, size_t error_size);
/* Reads blocks up to the next frame (EPB, SPB or the obsolete PB): PCAPNG_FRAME
 * with *frame set, PCAPNG_END at the end of the file after a whole block, or
 * PCAPNG_DAMAGED with the error told. */
enum pcapng_status pcapng_reader_next(struct pcapng_reader *r, struct pcapng_frame *frame);
/* Reads blocks up to the first interface description, so that the capture's
 * first link type is known before any frame. The frames met before it (none
 * in a valid file) are refused. Returns 0, or -1 with the error told. */
int pcapng_reader_first_interface(struct pcapng_reader *r);
/* Frees the reader's memory; the file is the caller's. */
void pcapng_reader_free(struct pcapng_reader *r);

#endif
