/* fopencookie() is a GNU extension */
#define _GNU_SOURCE

#include "pcapflow_core.h"

#include <pcap/pcap.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture_internal.h"
#include "capture_pcapng.h"
#include "decode.h"
#include "tracer_internal.h"

/* The link type a pcap file written from this capture carries. libpcap maps
 * its DLT_ values to file LINKTYPE_ values when it writes a file header and
 * does not export the mapping, so let it write one into memory. */
uint32_t capture_file_linktype(pcap_t *pcap)
{
    char *buffer = NULL;
    size_t size = 0;
    uint32_t linktype = (uint32_t)pcap_datalink(pcap);
    FILE *memory = open_memstream(&buffer, &size);
    pcap_dumper_t *dumper = memory ? pcap_dump_fopen(pcap, memory) : NULL;
    if (dumper) {
        pcap_dump_flush(dumper);
        if (size >= PCAP_GLOBAL_HEADER_SIZE) {
            uint32_t value;
            memcpy(&value, buffer + 20, 4); /* written in host byte order */
            linktype = value;
        }
        pcap_dump_close(dumper); /* closes memory too */
    } else if (memory) {
        fclose(memory);
    }
    free(buffer);
    return linktype;
}

/* libpcap reads through this stream so that the bytes read are known even
 * where ftell() cannot tell them (a pipe). */
struct counted_stream {
    const uint8_t *head; /* bytes that come before inner's (capture_open_after) */
    size_t head_left;
    FILE *inner;
    uint64_t bytes;
    uint8_t magic[4]; /* the first bytes of the file */
    struct capture *owner;
    int may_block; /* not a regular file: a read may wait for a writer */
};

uint64_t capture_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Calls the check function when its time has come (or `now_due`). Returns
 * -1 when it asks to stop (c->interrupted is then set), else 0. */
int capture_run_check(struct capture *c, int now_due)
{
    if (c->interrupted)
        return -1;
    if (!c->check.function)
        return 0;
    uint64_t now = capture_monotonic_ns();
    if (!now_due && now < c->next_check_ns)
        return 0;
    c->next_check_ns = now + c->check.interval_ns;
    if (c->check.function(c->check.arg) != 0) {
        c->interrupted = 1;
        return -1;
    }
    return 0;
}

/* Waits until fd has input, calling the check function every interval
 * meanwhile. Returns 0 (readable, or the end, or an error read() will
 * report), or -1 when the check asked to stop. */
static int wait_readable(struct capture *c, int fd)
{
    for (;;) {
        if (capture_run_check(c, 0) < 0)
            return -1;
        uint64_t now = capture_monotonic_ns();
        uint64_t left = c->next_check_ns > now ? c->next_check_ns - now : 0;
        struct pollfd entry = {.fd = fd, .events = POLLIN};
        int ready = poll(&entry, 1, (int)(left / 1000000u) + 1);
        if (ready > 0)
            return 0;
        if (ready < 0 && errno == EINTR) {
            if (capture_run_check(c, 1) < 0)
                return -1;
        } else if (ready < 0) {
            return 0; /* poll cannot watch it: read() will block or fail */
        }
    }
}

static ssize_t counted_read(void *cookie, char *buffer, size_t size)
{
    struct counted_stream *stream = cookie;
    struct capture *c = stream->owner;
    ssize_t n;
    int fd = fileno(stream->inner);
    if (c->interrupted) {
        errno = EINTR;
        return -1;
    }
    if (stream->head_left > 0) {
        n = (ssize_t)(size < stream->head_left ? size : stream->head_left);
        memcpy(buffer, stream->head, (size_t)n);
        stream->head += n;
        stream->head_left -= (size_t)n;
    } else if (fd >= 0) {
        /* one read(): what a pipe holds now, so that frames from a live
         * `tcpdump -w -` reach the tracer as they come, not 256 KiB at a time */
        for (;;) {
            if ((stream->may_block && c->check.function) ? wait_readable(c, fd) < 0 : capture_run_check(c, 0) < 0) {
                errno = EINTR;
                return -1;
            }
            n = read(fd, buffer, size);
            if (n >= 0)
                break;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* a descriptor in non-blocking mode (a socket with a timeout):
                 * wait for it, checking meanwhile */
                if ((c->check.function ? wait_readable(c, fd) : poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, -1)) < 0) {
                    errno = EINTR;
                    return -1;
                }
                continue;
            }
            if (errno != EINTR)
                return -1;
            /* a signal: its handler may want the capture stopped */
            if (capture_run_check(c, 1) < 0) {
                errno = EINTR;
                return -1;
            }
        }
    } else {
        if (capture_run_check(c, 0) < 0) {
            errno = EINTR;
            return -1;
        }
        n = (ssize_t)fread(buffer, 1, size, stream->inner);
        if (n == 0 && ferror(stream->inner))
            return -1;
    }
    for (uint64_t i = stream->bytes; i < sizeof stream->magic && i < stream->bytes + (uint64_t)n; i++)
        stream->magic[i] = (uint8_t)buffer[i - stream->bytes];
    stream->bytes += (uint64_t)n;
    return n;
}

static int counted_close(void *cookie)
{
    struct counted_stream *stream = cookie;
    int status = fclose(stream->inner);
    free(stream);
    return status;
}

/* Wraps file for counting, with one large buffer in front of the inner
 * stream (which gets none, so bytes are copied once). */
static FILE *counted_open(const void *head, size_t head_length, FILE *file, struct capture *owner,
                          struct counted_stream **counter)
{
    struct counted_stream *stream = malloc(sizeof *stream);
    cookie_io_functions_t functions = {.read = counted_read, .close = counted_close};
    FILE *outer = stream ? fopencookie(stream, "rb", functions) : NULL;
    if (!outer) {
        free(stream);
        return NULL;
    }
    stream->head = head;
    stream->head_left = head_length;
    stream->inner = file;
    stream->bytes = 0;
    stream->owner = owner;
    struct stat info;
    int fd = fileno(file);
    stream->may_block = fd >= 0 && !(fstat(fd, &info) == 0 && S_ISREG(info.st_mode));
    memset(stream->magic, 0, sizeof stream->magic);
    setvbuf(file, NULL, _IONBF, 0);
    setvbuf(outer, NULL, _IOFBF, 256 * 1024);
    *counter = stream;
    return outer;
}

struct capture *capture_new(void) { return calloc(1, sizeof(struct capture)); }

void capture_delete(struct capture *c)
{
    if (c)
        capture_close(c);
    free(c);
}

void capture_set_decode_options(struct capture *c, unsigned options) { c->decode_options = options; }
const char *capture_error(const struct capture *c) { return c->errbuf; }
int capture_interrupted(const struct capture *c) { return c->interrupted; }
uint32_t capture_linktype(const struct capture *c) { return c->file_linktype; }

/* Whether the stream opens with a pcapng section header; its first bytes
 * are put back for whichever reader takes it. They sit in the stream's
 * buffer, so glibc takes them back however many there are. */
static int starts_pcapng(FILE *stream)
{
    uint8_t first[4];
    size_t got = fread(first, 1, sizeof first, stream);
    for (size_t i = got; i-- > 0;)
        if (ungetc(first[i], stream) == EOF)
            return 0;
    uint32_t type;
    memcpy(&type, first, 4);
    return got == sizeof first && type == PCAPNG_SECTION_HEADER;
}

/* libpcap's "unknown file format" for a compressed capture says which
 * compression its first bytes show, and how to have it decompressed. */
static void explain_compressed(struct capture *c)
{
    static const struct {
        uint8_t magic[4];
        size_t length;
        const char *extension;
    } kinds[] = {{{0x1f, 0x8b}, 2, ".gz"},
                 {{0xfd, '7', 'z', 'X'}, 4, ".xz"},
                 {{'B', 'Z', 'h'}, 3, ".bz2"},
                 {{0x28, 0xb5, 0x2f, 0xfd}, 4, ".zst"}};
    if (c->counter->bytes < 4)
        return;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (memcmp(c->counter->magic, kinds[i].magic, kinds[i].length) == 0) {
            size_t used = strlen(c->errbuf);
            snprintf(c->errbuf + used, sizeof c->errbuf - used,
                     " (it looks %s-compressed: a path ending in %s is decompressed)", kinds[i].extension + 1,
                     kinds[i].extension);
            return;
        }
    }
}

int capture_open(struct capture *c, FILE *file, const struct capture_check *check)
{
    return capture_open_after(c, NULL, 0, file, check);
}

int capture_open_after(struct capture *c, const void *head, size_t head_length, FILE *file,
                       const struct capture_check *check)
{
    memset(c, 0, sizeof *c);
    if (check) {
        c->check = *check;
        c->next_check_ns = capture_monotonic_ns() + check->interval_ns;
    }
    FILE *counted = counted_open(head, head_length, file, c, &c->counter);
    if (!counted) {
        snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
        fclose(file);
        return -1;
    }
    if (starts_pcapng(counted)) {
        c->pcapng = malloc(sizeof *c->pcapng);
        if (!c->pcapng || pcapng_source_open(c->pcapng, counted, c->errbuf, sizeof c->errbuf) < 0) {
            if (!c->pcapng)
                snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
            free(c->pcapng);
            c->pcapng = NULL;
            fclose(counted);
            return -1;
        }
        c->file = counted;
        c->file_linktype = pcapng_source_linktype(c->pcapng);
        return 0;
    }
    c->pcap = pcap_fopen_offline_with_tstamp_precision(counted, PCAP_TSTAMP_PRECISION_NANO, c->errbuf);
    if (!c->pcap) {
        explain_compressed(c);
        fclose(counted);
        return -1;
    }
    c->file = counted;
    static const uint8_t micro_little[4] = {0xd4, 0xc3, 0xb2, 0xa1}, micro_big[4] = {0xa1, 0xb2, 0xc3, 0xd4};
    c->microsecond_pcap = memcmp(c->counter->magic, micro_little, 4) == 0 || memcmp(c->counter->magic, micro_big, 4) == 0;
    c->linktype = pcap_datalink(c->pcap);
    c->file_linktype = capture_file_linktype(c->pcap);
    return 0;
}

int capture_set_filter(struct capture *c, const char *expression)
{
    if (c->pcapng)
        return pcapng_source_set_filter(c->pcapng, expression);
    if (pcap_compile(c->pcap, &c->filter, expression, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        snprintf(c->errbuf, sizeof c->errbuf, "%s", pcap_geterr(c->pcap));
        return -1;
    }
    if (c->live) {
        /* an interface's filter runs in the kernel: what it rejects is
         * never copied out, nor numbered (as in a file tcpdump -w writes) */
        int set = pcap_setfilter(c->pcap, &c->filter);
        if (set < 0)
            snprintf(c->errbuf, sizeof c->errbuf, "%s", pcap_geterr(c->pcap));
        pcap_freecode(&c->filter);
        return set < 0 ? -1 : 0;
    }
    c->has_filter = 1;
    return 0;
}

void capture_close(struct capture *c)
{
    if (c->has_filter)
        pcap_freecode(&c->filter);
    if (c->pcap)
        pcap_close(c->pcap);
    if (c->pcapng) {
        pcapng_source_free(c->pcapng);
        free(c->pcapng);
        fclose(c->file);
    }
    c->pcap = NULL;
    c->pcapng = NULL;
    c->file = NULL;
    c->has_filter = 0;
}

uint64_t capture_offset(const struct capture *c)
{
    if (c->live)
        return c->live_bytes;
    if (!c->file)
        return 0;
    uint64_t offset = c->counter->bytes;
#ifdef __GLIBC__
    /* less what sits in the buffer, not yet taken by libpcap */
    offset -= (uint64_t)(c->file->_IO_read_end - c->file->_IO_read_ptr);
#endif
    return offset;
}

/* A frame's time as the file holds it: seconds, and the sub-second field in
 * nanoseconds (which may exceed a second in a damaged capture). */
static void frame_time(const struct capture *c, const struct pcap_pkthdr *header, int64_t *seconds,
                       uint64_t *nanoseconds)
{
    /* A pcap file holds unsigned 32-bit fields, which libpcap reads as
     * signed ones: from 2^31 on they come out negative (a microsecond field
     * after being multiplied by 1000). Undo that. */
    long long frac = (long long)header->ts.tv_usec;
    *seconds = (uint32_t)header->ts.tv_sec;
    if (frac >= 0)
        *nanoseconds = (uint64_t)frac;
    else if (c->microsecond_pcap)
        *nanoseconds = (uint64_t)(frac / 1000 + (1LL << 32)) * 1000;
    else
        *nanoseconds = (uint64_t)(frac + (1LL << 32));
}

/* The label timestamp and link type of a flow a capture frame opens. */
struct frame_origin {
    const struct capture *capture;
    const struct capture_frame *frame;
};

static int describe_capture_flow(void *context, char *timestamp, size_t *length, uint32_t *linktype)
{
    struct frame_origin *origin = context;
    *length = format_epoch(origin->frame->seconds, origin->frame->nanoseconds, timestamp);
    *linktype = origin->frame->linktype;
    return 0;
}

/* A frame's time in nanoseconds since 1970, saturated (pcapng allows any
 * 64-bit seconds). */
static int64_t frame_time_ns(const struct capture_frame *frame)
{
    const int64_t limit = INT64_MAX / 1000000000 - 1;
    int64_t seconds = frame->seconds > limit ? limit : frame->seconds < -limit ? -limit : frame->seconds;
    uint64_t nanoseconds = frame->nanoseconds > 999999999u ? 999999999u : frame->nanoseconds;
    return seconds * 1000000000 + (int64_t)nanoseconds;
}

/* Traces one decoded TCP frame. Returns 0 or -1 (tr->error). */
static int trace_tcp_frame(const struct capture *c, struct tracer *tr, const struct capture_frame *captured,
                           uint64_t frame_number, struct capture_stats *stats)
{
    struct frame_origin origin = {c, captured};
    struct pcap_record record = {
        /* a pcap record's seconds are unsigned 32 bits: a pcapng time before
         * 1970 or from 2106 on is written modulo 2^32, as Wireshark's editcap
         * writes it; the label keeps the true time */
        .ts_sec = (uint32_t)captured->seconds,
        .ts_frac = captured->nanoseconds,
        .frac_is_nanosecond = 1,
        .incl_len = captured->caplen,
        .orig_len = captured->len,
    };
    const struct decoded_frame *decoded = &captured->decoded;
    struct traced_frame frame = {
        .key = decoded->key,
        .number = (int64_t)frame_number,
        .tcp_flags = decoded->tcp_flags,
        .record = &record,
        .data = captured->data,
        .linktype = captured->linktype,
    };
    struct trace_outcome outcome;
    /* flows idle for too long by this frame's time close first: one of
     * them may be this frame's, which then opens a new flow */
    if (__builtin_expect(tr->idle_timeout_ns != 0, 0) && tracer_expire_idle(tr, frame_time_ns(captured)) < 0)
        return -1;
    enum trace_status status = tracer_trace(tr, &frame, describe_capture_flow, &origin, &outcome);
    stats->flows_opened += (uint64_t)outcome.opened;
    if (__builtin_expect(tr->idle_timeout_ns != 0, 0) && outcome.slot != TRACER_NO_SLOT)
        tracer_idle_touch(tr, outcome.slot);
    return status == TRACE_OK ? 0 : -1;
}

/* Capture time on an interface without traffic: the clock, as the kernel
 * stamps frames, less a second. Frames stamped a little earlier may still
 * be on their way (libpcap is handed a block of them up to 10 ms after the
 * first); held back this far, the clock closes no flow that one of them
 * would have kept open, so an interface's flows are those of a file of the
 * same frames. */
static int64_t capture_time_without_frames(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - 1000000000;
}

int capture_decode(const struct capture *c, int dlt, const uint8_t *data, uint32_t caplen,
                   struct capture_frame *frame, struct capture_stats *stats)
{
    switch (decode_frame(dlt, data, caplen, c->decode_options, &frame->decoded)) {
    case DECODE_FOLLOW_EXTRA: /* a fragment or an ICMP error, for Follow TCP Stream */
    case DECODE_TCP:
        if (frame->decoded.kind == DECODED_TCP)
            stats->tcp_frames++;
        else
            stats->not_tcp++;
        return 1;
    case DECODE_NOT_TCP: stats->not_tcp++; break;
    case DECODE_FRAGMENT: stats->fragments++; break;
    case DECODE_TRUNCATED: stats->truncated++; break;
    case DECODE_UNSUPPORTED_LINK: stats->unsupported_link++; break;
    }
    return 0;
}

/* capture_next() for a pcapng file: the same, with each frame's own link
 * type and time. */
static enum capture_status pcapng_next(struct capture *c, struct capture_frame *frame, uint64_t *frame_number,
                                       struct capture_stats *stats)
{
    for (;;) {
        if ((++c->frames_read & 255) == 0 && c->check.function && !c->interrupted)
            (void)capture_run_check(c, 0);
        struct pcapng_source_frame got;
        enum pcapng_status status = pcapng_source_next(c->pcapng, &got);
        if (status != PCAPNG_FRAME && c->interrupted)
            return CAPTURE_INTERRUPTED;
        if (status == PCAPNG_END)
            return CAPTURE_DONE;
        if (status != PCAPNG_FRAME)
            return CAPTURE_DAMAGED; /* errbuf told */
        ++*frame_number;
        stats->frames++;
        if (got.filtered_out) {
            stats->filtered_out++;
            continue;
        }
        const struct pcapng_frame *f = &got.frame;
        if (capture_decode(c, got.dlt, f->data, f->caplen, frame, stats)) {
            frame->seconds = f->seconds;
            frame->nanoseconds = f->nanoseconds;
            frame->caplen = f->caplen;
            frame->len = f->len;
            frame->data = f->data;
            frame->linktype = f->interface->linktype;
            return CAPTURE_FRAME;
        }
    }
}

enum capture_status capture_next(struct capture *c, struct capture_frame *frame, uint64_t *frame_number,
                                 struct capture_stats *stats)
{
    if (c->pcapng)
        return pcapng_next(c, frame, frame_number, stats);
    if (c->live)
        return capture_live_next(c, frame, frame_number, stats);
    for (;;) {
        /* a clock read every 256 frames: a file read at full speed is
         * checked about as often as a pipe that delivers little. When the
         * check asks to stop, the frames already taken from the input (in
         * the stream's buffer) are still returned: the next read stops. */
        if ((++c->frames_read & 255) == 0 && c->check.function && !c->interrupted)
            (void)capture_run_check(c, 0);
        struct pcap_pkthdr *header;
        const u_char *data;
        int status = pcap_next_ex(c->pcap, &header, &data);
        if (status != 1 && c->interrupted)
            return CAPTURE_INTERRUPTED;
        if (status == PCAP_ERROR_BREAK)
            return CAPTURE_DONE;
        if (status != 1) {
            snprintf(c->errbuf, sizeof c->errbuf, "%s", pcap_geterr(c->pcap));
            return CAPTURE_DAMAGED;
        }
        ++*frame_number;
        stats->frames++;
        if (c->has_filter && !pcap_offline_filter(&c->filter, header, data)) {
            stats->filtered_out++;
            continue;
        }
        if (capture_decode(c, c->linktype, data, header->caplen, frame, stats)) {
            frame_time(c, header, &frame->seconds, &frame->nanoseconds);
            frame->caplen = header->caplen;
            frame->len = header->len;
            frame->data = data;
            frame->linktype = c->file_linktype;
            return CAPTURE_FRAME;
        }
    }
}

enum capture_status capture_trace(struct capture *c, struct tracer *tr, uint64_t *frame_number, uint64_t max_frames,
                                  struct capture_stats *stats)
{
    struct capture_frame frame;
    for (uint64_t n = 0; n < max_frames;) {
        enum capture_status status = capture_next(c, &frame, frame_number, stats);
        if (status == CAPTURE_IDLE) {
            /* an interface without traffic: capture time goes on all the same */
            if (tracer_expire_idle(tr, capture_time_without_frames()) < 0)
                return CAPTURE_TRACER_ERROR;
            continue;
        }
        n++;
        if (status != CAPTURE_FRAME)
            return status;
        if (trace_tcp_frame(c, tr, &frame, *frame_number, stats) < 0)
            return CAPTURE_TRACER_ERROR;
    }
    return CAPTURE_MORE;
}
