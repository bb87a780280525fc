/* pcapng block by block: see pcapng_reader.h. Written from the pcapng
 * specification (draft-ietf-opsawg-pcapng); the checks a block must pass are
 * libpcap's, so that a file libpcap reads gives the same frames here. */
#include "pcapng_reader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pcapflow_core.h"

enum {
    BLOCK_INTERFACE = 1,   /* IDB */
    BLOCK_PACKET = 2,      /* PB, obsolete: a frame */
    BLOCK_SIMPLE = 3,      /* SPB: a frame of interface 0, no time */
    BLOCK_ENHANCED = 6,    /* EPB */
    BYTE_ORDER_MAGIC = 0x1A2B3C4Du,
    OPTION_END = 0,
    OPTION_TSRESOL = 9,
    OPTION_TSOFFSET = 14,
    HEADER = 8,  /* type and total length */
    TRAILER = 4, /* total length again */
};

static void tell(struct pcapng_reader *r, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void tell(struct pcapng_reader *r, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(r->error, r->error_size, format, args);
    va_end(args);
}

static uint32_t swap32(uint32_t v) { return v >> 24 | (v >> 8 & 0xff00u) | (v << 8 & 0xff0000u) | v << 24; }

/* Fields in the section's byte order. */
static uint32_t u32_at(const struct pcapng_reader *r, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return r->swapped ? swap32(v) : v;
}

static uint16_t u16_at(const struct pcapng_reader *r, const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return r->swapped ? (uint16_t)(v >> 8 | v << 8) : v;
}

int pcapng_reader_open(struct pcapng_reader *r, FILE *file, char *error, size_t error_size)
{
    memset(r, 0, sizeof *r);
    r->file = file;
    r->error = error;
    r->error_size = error_size;
    r->block_capacity = 4096;
    r->block = malloc(r->block_capacity);
    return r->block ? 0 : -1;
}

void pcapng_reader_free(struct pcapng_reader *r)
{
    free(r->block);
    free(r->interfaces);
    r->block = NULL;
    r->interfaces = NULL;
}

/* Reads exactly size bytes. Returns 1, 0 at the end of the file before any
 * byte when end_ok, else -1 (told). */
static int read_exact(struct pcapng_reader *r, void *out, size_t size, int end_ok)
{
    size_t got = fread(out, 1, size, r->file);
    if (got == size)
        return 1;
    if (ferror(r->file))
        tell(r, "error reading dump file: %s", strerror(errno ? errno : EIO));
    else if (got == 0 && end_ok)
        return 0;
    else
        tell(r, "truncated pcapng dump file; tried to read %zu bytes, only got %zu", size, got);
    return -1;
}

/* Passes over size bytes without keeping them (a long block of no interest). */
static int skip_bytes(struct pcapng_reader *r, uint64_t size)
{
    while (size) {
        size_t chunk = size < r->block_capacity ? (size_t)size : r->block_capacity;
        if (read_exact(r, r->block, chunk, 0) < 0)
            return -1;
        size -= chunk;
    }
    return 0;
}

static int block_carries_frame(uint32_t type)
{
    return type == BLOCK_ENHANCED || type == BLOCK_SIMPLE || type == BLOCK_PACKET;
}

/* Reads the next block into r->block (whole: header, body and trailer) and
 * sets its type and body length. A section header sets the byte order
 * first, since its length field is in the order it announces. Returns 1, 0
 * at the end of the file, or -1 (told). Long blocks of no interest come back
 * with *body_length 0 and r->block holding no body. */
static int read_block(struct pcapng_reader *r, uint32_t *type, uint32_t *body_length)
{
    uint8_t header[HEADER];
    int status = read_exact(r, header, HEADER, 1);
    if (status <= 0)
        return status;
    uint32_t raw_type;
    memcpy(&raw_type, header, 4);
    size_t have = HEADER;
    memcpy(r->block, header, HEADER);
    if (raw_type == PCAPNG_SECTION_HEADER) {
        /* the byte-order magic follows the length */
        if (read_exact(r, r->block + HEADER, 4, 0) < 0)
            return -1;
        have += 4;
        uint32_t magic;
        memcpy(&magic, r->block + HEADER, 4);
        if (magic == BYTE_ORDER_MAGIC)
            r->swapped = 0;
        else if (magic == swap32(BYTE_ORDER_MAGIC))
            r->swapped = 1;
        else {
            tell(r, "the file has a section with a bad byte order magic field");
            return -1;
        }
    }
    *type = u32_at(r, header);
    uint32_t total = u32_at(r, header + 4);
    if (total < HEADER + TRAILER || total % 4 != 0 || total < have + TRAILER) {
        tell(r, "block in pcapng dump file has a length of %u (block type %u)", total, *type);
        return -1;
    }
    if (total > PCAPNG_MAX_BLOCK) {
        if (block_carries_frame(*type) || *type == BLOCK_INTERFACE || *type == PCAPNG_SECTION_HEADER) {
            tell(r, "pcapng block size %u > maximum %u", total, (unsigned)PCAPNG_MAX_BLOCK);
            return -1;
        }
        /* an oversized block of no interest: pass over it, trailer included */
        if (skip_bytes(r, (uint64_t)total - have - TRAILER) < 0 || read_exact(r, r->block, TRAILER, 0) < 0)
            return -1;
        if (u32_at(r, r->block) != total) {
            tell(r, "block total length in header %u and trailer %u don't match", total, u32_at(r, r->block));
            return -1;
        }
        *body_length = 0;
        return 1;
    }
    if (total > r->block_capacity) {
        uint8_t *bigger = realloc(r->block, total);
        if (!bigger) {
            tell(r, "out of memory");
            return -1;
        }
        r->block = bigger;
        r->block_capacity = total;
    }
    if (read_exact(r, r->block + have, total - have, 0) < 0)
        return -1;
    uint32_t trailer = u32_at(r, r->block + total - TRAILER);
    if (trailer != total) {
        tell(r, "block total length in header %u and trailer %u don't match", total, trailer);
        return -1;
    }
    *body_length = total - HEADER - TRAILER;
    return 1;
}

static int start_section(struct pcapng_reader *r, uint32_t body_length)
{
    const uint8_t *body = r->block + HEADER;
    if (body_length < 16) { /* magic, versions, section length */
        tell(r, "block of type %u in pcapng dump file is too short", PCAPNG_SECTION_HEADER);
        return -1;
    }
    uint16_t major = u16_at(r, body + 4);
    if (major != 1) {
        tell(r, "unknown pcapng savefile major version number %u", major);
        return -1;
    }
    r->interface_count = 0; /* each section has its own interfaces */
    return 0;
}

/* if_tsresol: the most significant bit chooses a power of 2, else of 10. */
static int set_resolution(struct pcapng_reader *r, struct pcapng_interface *i, uint8_t value)
{
    unsigned exponent = value & 0x7fu;
    if (value & 0x80u) {
        if (exponent > 63) {
            tell(r, "Interface Description Block if_tsresol option resolution 2^-%u is too high", exponent);
            return -1;
        }
        i->units = (uint64_t)1 << exponent;
    } else {
        if (exponent > 19) {
            tell(r, "Interface Description Block if_tsresol option resolution 10^-%u is too high", exponent);
            return -1;
        }
        i->units = 1;
        for (unsigned n = 0; n < exponent; n++)
            i->units *= 10;
    }
    return 0;
}

static int add_interface(struct pcapng_reader *r, uint32_t body_length)
{
    const uint8_t *body = r->block + HEADER;
    if (body_length < 8) {
        tell(r, "block of type %u in pcapng dump file is too short", BLOCK_INTERFACE);
        return -1;
    }
    struct pcapng_interface interface = {
        .linktype = u16_at(r, body),
        .snaplen = u32_at(r, body + 4),
        .units = 1000000, /* microseconds unless if_tsresol says otherwise */
        .link = PCAPNG_NO_LINK,
    };
    int saw_resolution = 0, saw_offset = 0;
    for (uint32_t at = 8; at < body_length;) {
        if (body_length - at < 4) {
            tell(r, "block of type %u in pcapng dump file is too short", BLOCK_INTERFACE);
            return -1;
        }
        uint16_t code = u16_at(r, body + at), length = u16_at(r, body + at + 2);
        uint32_t padded = ((uint32_t)length + 3) & ~3u;
        at += 4;
        if (padded > body_length - at) {
            tell(r, "block of type %u in pcapng dump file is too short", BLOCK_INTERFACE);
            return -1;
        }
        const uint8_t *value = body + at;
        at += padded;
        if (code == OPTION_END)
            break;
        if (code == OPTION_TSRESOL) {
            if (length != 1 || saw_resolution) {
                tell(r, "Interface Description Block has a bad if_tsresol option");
                return -1;
            }
            saw_resolution = 1;
            if (set_resolution(r, &interface, value[0]) < 0)
                return -1;
        } else if (code == OPTION_TSOFFSET) {
            if (length != 8 || saw_offset) {
                tell(r, "Interface Description Block has a bad if_tsoffset option");
                return -1;
            }
            saw_offset = 1;
            uint64_t raw; /* a signed 64-bit field in the section's byte order */
            memcpy(&raw, value, 8);
            if (r->swapped)
                raw = __builtin_bswap64(raw);
            memcpy(&interface.offset, &raw, 8);
        }
    }
    if (r->interface_count == r->interface_capacity) {
        uint32_t capacity = r->interface_capacity ? r->interface_capacity * 2 : 4;
        struct pcapng_interface *more = capacity > (1u << 24) ? NULL : realloc(r->interfaces, capacity * sizeof *more);
        if (!more) {
            tell(r, "out of memory");
            return -1;
        }
        r->interfaces = more;
        r->interface_capacity = capacity;
    }
    r->interfaces[r->interface_count++] = interface;
    return 0;
}

/* A timestamp in interface units as seconds and nanoseconds (truncated, as
 * libpcap scales it), plus if_tsoffset. -1 when it leaves 64-bit seconds. */
static int frame_time(const struct pcapng_interface *i, uint64_t units, int64_t *seconds, uint32_t *nanoseconds)
{
    uint64_t whole = units / i->units, fraction = units % i->units;
    *nanoseconds = (uint32_t)((unsigned __int128)fraction * 1000000000u / i->units);
    __int128 sum = (__int128)whole + i->offset;
    if (sum > INT64_MAX || sum < INT64_MIN)
        return -1;
    *seconds = (int64_t)sum;
    return 0;
}

/* The frame a block holds. Returns 0 or -1 (told). */
static int take_frame(struct pcapng_reader *r, uint32_t type, uint32_t body_length, struct pcapng_frame *frame)
{
    const uint8_t *body = r->block + HEADER;
    uint32_t interface_id, fixed;
    uint64_t units = 0;
    if (type == BLOCK_SIMPLE) {
        fixed = 4;
        interface_id = 0;
    } else {
        fixed = 20;
        if (body_length < fixed) {
            tell(r, "block of type %u in pcapng dump file is too short", type);
            return -1;
        }
        interface_id = type == BLOCK_ENHANCED ? u32_at(r, body) : u16_at(r, body);
        units = (uint64_t)u32_at(r, body + 4) << 32 | u32_at(r, body + 8);
        frame->caplen = u32_at(r, body + 12);
        frame->len = u32_at(r, body + 16);
    }
    if (body_length < fixed) {
        tell(r, "block of type %u in pcapng dump file is too short", type);
        return -1;
    }
    if (interface_id >= r->interface_count) {
        tell(r, "a packet arrived on interface %u, but there's no Interface Description Block for that interface",
             interface_id);
        return -1;
    }
    struct pcapng_interface *interface = &r->interfaces[interface_id];
    if (type == BLOCK_SIMPLE) {
        /* no captured length: the frame's, cut to the snapshot length (as
         * libpcap adjusts it: 0 or more than a pcap file holds is that) */
        uint32_t snaplen = interface->snaplen && interface->snaplen < PCAP_SNAPLEN ? interface->snaplen : PCAP_SNAPLEN;
        frame->len = u32_at(r, body);
        frame->caplen = frame->len < snaplen ? frame->len : snaplen;
    }
    if (frame->caplen > PCAP_SNAPLEN) {
        tell(r, "invalid packet capture length %u, bigger than %u (the most a pcap file holds)", frame->caplen,
             (unsigned)PCAP_SNAPLEN);
        return -1;
    }
    if (frame->caplen > body_length - fixed) {
        tell(r, "block of type %u in pcapng dump file is too short", type);
        return -1;
    }
    if (frame_time(interface, units, &frame->seconds, &frame->nanoseconds) < 0) {
        tell(r, "timestamp beyond 64-bit seconds (if_tsoffset %lld)", (long long)interface->offset);
        return -1;
    }
    frame->interface = interface;
    frame->data = body + fixed;
    return 0;
}

/* One block: a frame (1), a block of another kind handled (0), the end (2)
 * or damage (-1). */
static int next_block(struct pcapng_reader *r, struct pcapng_frame *frame, int frames_allowed)
{
    uint32_t type, body_length;
    int status = read_block(r, &type, &body_length);
    if (status <= 0)
        return status == 0 ? 2 : -1;
    if (type == PCAPNG_SECTION_HEADER)
        return start_section(r, body_length);
    if (type == BLOCK_INTERFACE)
        return add_interface(r, body_length);
    if (!block_carries_frame(type))
        return 0; /* name resolution, statistics, secrets, custom blocks: not frames */
    if (!frames_allowed) {
        tell(r, "the capture file has a packet block before any Interface Description Blocks");
        return -1;
    }
    return take_frame(r, type, body_length, frame) < 0 ? -1 : 1;
}

int pcapng_reader_first_interface(struct pcapng_reader *r)
{
    struct pcapng_frame unused;
    while (r->interface_count == 0) {
        int status = next_block(r, &unused, 0);
        if (status == 2) {
            tell(r, "the capture file has no Interface Description Blocks");
            return -1;
        }
        if (status < 0)
            return -1;
    }
    return 0;
}

enum pcapng_status pcapng_reader_next(struct pcapng_reader *r, struct pcapng_frame *frame)
{
    for (;;) {
        int status = next_block(r, frame, 1);
        if (status == 1)
            return PCAPNG_FRAME;
        if (status == 2)
            return PCAPNG_END;
        if (status < 0)
            return PCAPNG_DAMAGED;
    }
}
