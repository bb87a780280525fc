/* libFuzzer harness for Follow TCP Stream (csrc/core/follow.c, ip_defrag.c).
 *
 * The first input byte picks the mode:
 *   odd: the rest is a capture file, read by libpcap and followed with
 *        follow_capture() (any link type, damage, tunnels);
 *   even: the rest is a compact list of TCP segments (below) that the harness
 *        builds into raw IP frames (IPv4 or IPv6), decodes with DECODE_FOLLOW
 *        and hands to follow_frame(), as capture_next() would.
 *
 * Segment mode: a header, then segments until the input runs out.
 *   header: 2 ISNs (4 bytes each, by direction), 2 ports (2 bytes each: port 0
 *   is allowed), a byte of IPv6-ness by tuple (bit t), a byte choosing the
 *   bounds (max_held_per_stream, max_held, max_fragment_bytes: small powers
 *   of two, or the defaults).
 *   segment: op (bit 0 direction, bits 1-2 tuple, bits 3-5 variant, bits 6-7
 *   sequence mode), TCP flags, payload length, ack mode; then the sequence
 *   delta (mode 0: int8, 1: int16, 2: int16 * 256, 3: a new absolute number),
 *   the ack delta or raw ack, and the variant's bytes.
 *   variants: 0-2 plain; 3 TCP options; 4 IP fragments (size, order, a
 *   duplicate, overlaps, one left out, an IPv6 hop-by-hop header); 5 an ICMP
 *   error quoting the segment (itself fragmented when the quote length is
 *   odd); 6 payload cut by the capture (snaplen); 7 the segment twice.
 *   An ack mode of 0xf0-0xff instead sends a burst of 8 * length SYNs from
 *   new ports (the conversation table grows), as never-completed IPv4 first
 *   fragments when bit 3 is set (the defragmenter's table fills); 3000 such
 *   frames per input at most.
 * A segment's payload byte at absolute sequence number s is (s + 97 *
 * direction) mod 256 whatever the segment, so every copy of a byte agrees.
 *
 * Invariants (abort on violation):
 *   - every record names a node 0 or 1 and a stream < streams; stream numbers
 *     are taken 0, 1, 2, ...; frames are numbered < the frame being fed;
 *   - a data record is not empty; a gap record says "[N bytes missing in
 *     capture file]" and a NUL, 0 < N < 2^31, with time 0;
 *   - per stream and node, the data records' bytes never exceed the payload
 *     bytes captured in the segments fed to that node;
 *   - held_bytes <= max_held after each frame, peak_held_bytes <= max_held;
 *   - stats agree with the records seen (records, gap_records, bytes);
 *   - segment mode: a data record is a run of consecutive sequence numbers,
 *     and a node's records continue one another (a gap record skipping its N
 *     bytes), unless its stream saw what legitimately breaks that: a SYN
 *     after the stream's first frame (a SYN-ACK re-bases), a truncated
 *     payload (its lost bytes are skipped silently), node 0 moving (port 0),
 *     or the zero sentinel (a node that wrote nothing in order yet restarts);
 *   - segment mode: emitted bytes never exceed the input's payload bytes in
 *     all; raw mode: never exceed the input's size;
 *   - follow_delete frees everything (AddressSanitizer's leak check). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/decode.h"
#include "core/flow_key.h"
#include "core/pcapflow_core.h"

#define CHECK(condition)                                                                                   \
    do {                                                                                                   \
        if (!(condition)) {                                                                                \
            fprintf(stderr, "fuzz_follow: %s:%d: %s\n", __FILE__, __LINE__, #condition);                  \
            abort();                                                                                       \
        }                                                                                                  \
    } while (0)

/* ---- what the harness knows of each stream ---- */

struct stream_state {
    uint64_t fed[2], emitted[2];   /* by node */
    struct flow_key node0;         /* node 0's sender key, as the nodes callback said */
    int node0_set;
    int irregular;                 /* continuity is not checked (see above) */
    int written[2];                /* a node emitted a segment of the frame being fed: in order */
    int have_last[2];
    uint8_t last[2];               /* a node's last data byte */
    uint64_t skipped[2];           /* gap bytes since it */
    uint64_t frames;
};

struct harness {
    struct follow *follow;
    struct stream_state *streams;
    uint64_t stream_count, stream_capacity;
    /* the frame being fed */
    int64_t frame;
    struct flow_key sender;        /* its sender (the TCP segment's, or the quoted one's) */
    int is_quote, is_syn, is_truncated;
    int64_t frame_stream;          /* the stream its frame callback named, or -1 */
    uint64_t max_held;
    uint64_t records, gap_records, bytes;
    int check_content;
    int raw; /* capture mode */
};

static struct stream_state *stream_at(struct harness *h, uint64_t stream)
{
    CHECK(stream < h->stream_count);
    return &h->streams[stream];
}

static int same_sender(const struct flow_key *a, const struct flow_key *b)
{
    return memcmp(a->src, b->src, 16) == 0 && a->src_port == b->src_port && a->src_family == b->src_family;
}

static int on_stream(void *context, uint64_t stream, const struct flow_key *key)
{
    struct harness *h = context;
    (void)key;
    CHECK(stream == h->stream_count); /* numbers are taken in order */
    if (h->stream_count == h->stream_capacity) {
        uint64_t capacity = h->stream_capacity ? h->stream_capacity * 2 : 16;
        struct stream_state *grown = realloc(h->streams, capacity * sizeof *grown);
        if (!grown)
            abort();
        h->streams = grown;
        h->stream_capacity = capacity;
    }
    memset(&h->streams[h->stream_count++], 0, sizeof *h->streams);
    CHECK(follow_stats(h->follow).streams == h->stream_count);
    return 0;
}

static int on_nodes(void *context, uint64_t stream, const struct flow_key *key)
{
    struct harness *h = context;
    struct stream_state *s = stream_at(h, stream);
    CHECK((int64_t)stream == h->frame_stream);
    if (s->node0_set && !same_sender(&s->node0, key))
        s->irregular = 1; /* node 0 moved (its port read 0): nodes swap their state */
    s->node0 = *key;
    s->node0_set = 1;
    return 0;
}

static int on_frame(void *context, uint64_t stream, int64_t frame, int64_t seconds, uint32_t nanoseconds)
{
    struct harness *h = context;
    (void)seconds;
    (void)nanoseconds;
    if (h->raw) { /* capture mode: the frame being read is the one called back */
        CHECK(frame > h->frame);
        h->frame = frame;
    }
    CHECK(frame == h->frame);
    CHECK(h->frame_stream < 0); /* one conversation per frame */
    struct stream_state *s = stream_at(h, stream);
    h->frame_stream = (int64_t)stream;
    if (!h->is_quote && ((h->is_syn && s->frames > 0) || h->is_truncated))
        s->irregular = 1;
    s->frames++;
    return 0;
}

/* The node of the frame being fed, in its stream. */
static int current_node(const struct harness *h, const struct stream_state *s)
{
    return s->node0_set && same_sender(&s->node0, &h->sender) ? 0 : 1;
}

static int on_record(void *context, const struct follow_record *r)
{
    struct harness *h = context;
    CHECK(r->node == 0 || r->node == 1);
    CHECK(r->frame >= 1 && r->frame <= h->frame);
    struct stream_state *s = stream_at(h, r->stream);
    CHECK(r->data != NULL || r->length == 0);
    h->records++;
    if (r->missing) {
        char text[64];
        int n = snprintf(text, sizeof text, "[%d bytes missing in capture file]", (int)r->missing);
        CHECK(r->missing < 0x80000000u);
        CHECK(r->length == (size_t)n + 1 && memcmp(r->data, text, (size_t)n + 1) == 0);
        CHECK(r->seconds == 0 && r->nanoseconds == 0);
        CHECK(r->frame == h->frame);
        h->gap_records++;
        s->skipped[r->node] += r->missing;
        return 0;
    }
    CHECK(r->length > 0);
    h->bytes += r->length;
    s->emitted[r->node] += r->length;
    CHECK((int64_t)r->stream == h->frame_stream);
    if (!h->check_content)
        return 0;
    for (size_t i = 1; i < r->length; i++)
        CHECK((uint8_t)(r->data[i - 1] + 1) == r->data[i]);
    int node = r->node;
    /* a record of the frame being fed, for its own node, is Follow's in-order path */
    int in_order = r->frame == h->frame && (int64_t)r->stream == h->frame_stream && node == current_node(h, s);
    if (!s->irregular && s->have_last[node]) {
        uint8_t expected = (uint8_t)(s->last[node] + 1 + s->skipped[node]);
        /* the zero sentinel: nothing written in order yet, next at 0: Follow starts over */
        CHECK(r->data[0] == expected || (in_order && !s->written[node]));
    }
    if (in_order)
        s->written[node] = 1;
    s->have_last[node] = 1;
    s->last[node] = r->data[r->length - 1];
    s->skipped[node] = 0;
    return 0;
}

/* After each frame: credit its payload and check the bounds. */
static void after_frame(struct harness *h, uint64_t payload)
{
    if (h->frame_stream >= 0 && !h->is_quote) {
        struct stream_state *s = stream_at(h, (uint64_t)h->frame_stream);
        s->fed[current_node(h, s)] += payload;
    }
    if (h->frame_stream >= 0) /* records come only for the frame's own stream */
        for (int node = 0; node < 2; node++)
            CHECK(h->streams[h->frame_stream].emitted[node] <= h->streams[h->frame_stream].fed[node]);
    struct follow_stats stats = follow_stats(h->follow);
    CHECK(stats.held_bytes <= h->max_held);
    CHECK(stats.peak_held_bytes <= h->max_held);
    CHECK(stats.held_bytes <= stats.peak_held_bytes);
    CHECK(stats.records == h->records && stats.gap_records == h->gap_records && stats.bytes == h->bytes);
    CHECK(stats.streams == h->stream_count);
}

/* ---- reading the input ---- */

struct input {
    const uint8_t *p;
    size_t left;
};

static int take(struct input *in, void *out, size_t n)
{
    if (in->left < n)
        return -1;
    memcpy(out, in->p, n);
    in->p += n;
    in->left -= n;
    return 0;
}

static uint8_t byte(struct input *in)
{
    uint8_t b = 0;
    take(in, &b, 1);
    return b;
}

static uint32_t be(struct input *in, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | byte(in);
    return v;
}

/* ---- building frames ---- */

static int seq_after(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v); }

enum { MAX_PAYLOAD = 2040, MAX_PACKET = 40 + 8 + 60 + MAX_PAYLOAD + 64, LINK_RAW = 101 };

struct endpoint_pair {
    int v6;
    uint8_t a[16], b[16];
    uint16_t port_a, port_b;
};

static size_t ip_header(uint8_t *out, const struct endpoint_pair *t, int direction, uint8_t protocol,
                        size_t payload_length, uint16_t ident)
{
    const uint8_t *src = direction ? t->b : t->a, *dst = direction ? t->a : t->b;
    if (t->v6) {
        memset(out, 0, 40);
        out[0] = 0x60;
        put16(out + 4, (uint32_t)payload_length);
        out[6] = protocol;
        out[7] = 64;
        memcpy(out + 8, src, 16);
        memcpy(out + 24, dst, 16);
        return 40;
    }
    memset(out, 0, 20);
    out[0] = 0x45;
    put16(out + 2, (uint32_t)(20 + payload_length));
    put16(out + 4, ident);
    out[8] = 64;
    out[9] = protocol;
    memcpy(out + 12, src, 4);
    memcpy(out + 16, dst, 4);
    return 20;
}

/* The frame decoded as capture_next() would, then followed. Returns follow_frame()'s answer. */
static int feed(struct harness *h, const uint8_t *frame, size_t caplen, uint64_t payload, int quote)
{
    /* a copy of exactly caplen bytes, so that AddressSanitizer sees any read past it */
    uint8_t *copy = malloc(caplen ? caplen : 1);
    if (!copy)
        abort();
    memcpy(copy, frame, caplen);
    struct capture_frame cf;
    memset(&cf, 0, sizeof cf);
    cf.seconds = 1700000000 + h->frame;
    cf.nanoseconds = 1000;
    cf.caplen = cf.len = (uint32_t)caplen;
    cf.data = copy;
    cf.linktype = LINK_RAW;
    h->frame++;
    h->frame_stream = -1;
    h->is_quote = quote;
    int result = 0;
    enum decode_status status = decode_frame(LINK_RAW, copy, caplen, DECODE_FOLLOW | DECODE_TUNNELS, &cf.decoded);
    if (status == DECODE_TCP || status == DECODE_FOLLOW_EXTRA) {
        result = follow_frame(h->follow, &cf, h->frame);
        CHECK(result == 0); /* no callback stops it, and the harness has the memory */
    }
    after_frame(h, payload);
    free(copy);
    return result;
}

/* The datagram at ip (an IPv4 header or a plain 40-byte IPv6 header, then
 * its payload) as fragments. size_byte: bits 0-4 the fragment size in 8s, 5
 * overlaps of 8 bytes, 6 a duplicate of the first fragment sent right after
 * it, 7 one fragment left out; order: bit 0 reversed, else rotated by
 * order >> 1; bit 7 (IPv6) a hop-by-hop header before the fragment header. */
static void fragments(struct harness *h, const uint8_t *ip, size_t ip_length, int v6, uint16_t ident,
                      uint8_t size_byte, uint8_t order, uint64_t credit, int quote)
{
    static uint8_t frame[MAX_PACKET + 64];
    size_t total = v6 ? 40u + ((size_t)ip[4] << 8 | ip[5]) : ((size_t)ip[2] << 8 | ip[3]);
    const uint8_t *payload = ip + ip_length;
    uint32_t length = (uint32_t)(total - ip_length);
    uint32_t size = 8u * (1u + (size_byte & 31));
    int overlap = (size_byte & 0x20) != 0, hop = v6 && (order & 0x80);
    uint32_t count = (length + size - 1) / size;
    if (count == 0)
        count = 1;
    uint32_t drop = (size_byte & 0x80) ? order % count : UINT32_MAX;
    for (uint32_t k = 0; k < count + ((size_byte & 0x40) ? 1 : 0); k++) {
        uint32_t position = (size_byte & 0x40) && k > 0 ? k - 1 : k; /* k == 1 repeats position 0 */
        uint32_t index = order & 1 ? count - 1 - position : (position + (order >> 1 & 0x3f)) % count;
        if (index == drop)
            continue;
        uint32_t offset = index * size, end = offset + size + (overlap && index + 1 < count ? 8 : 0);
        if (end > length)
            end = length;
        int more = end < length;
        size_t n;
        if (v6) {
            size_t at = 40;
            memcpy(frame, ip, 40);
            frame[6] = hop ? 0 : 44;
            if (hop) {
                memset(frame + 40, 0, 8);
                frame[40] = 44;
                frame[42] = 1; /* PadN over 4 bytes */
                frame[43] = 4;
                at = 48;
            }
            frame[at] = ip[6];
            frame[at + 1] = 0;
            put16(frame + at + 2, offset | (more ? 1 : 0));
            put32(frame + at + 4, 0x10000u + ident);
            memcpy(frame + at + 8, payload + offset, end - offset);
            n = at + 8 + end - offset;
            put16(frame + 4, (uint32_t)(n - 40));
        } else {
            memcpy(frame, ip, ip_length);
            put16(frame + 2, (uint32_t)(ip_length + end - offset));
            put16(frame + 4, ident);
            put16(frame + 6, offset / 8 | (more ? 0x2000 : 0));
            memcpy(frame + ip_length, payload + offset, end - offset);
            n = ip_length + end - offset;
        }
        feed(h, frame, n, credit, quote);
    }
}

static void set_sender(struct harness *h, const struct endpoint_pair *t, int direction, uint16_t sport,
                       uint16_t dport)
{
    memset(&h->sender, 0, sizeof h->sender);
    h->sender.src_family = h->sender.dst_family = t->v6 ? FLOW_FAMILY_IPV6 : FLOW_FAMILY_IPV4;
    memcpy(h->sender.src, direction ? t->b : t->a, 16);
    memcpy(h->sender.dst, direction ? t->a : t->b, 16);
    h->sender.src_port = sport;
    h->sender.dst_port = dport;
}

struct direction_state {
    uint32_t cursor; /* the end of what was sent (absolute) */
};

static int segment_mode(struct harness *h, struct input *in)
{
    uint32_t isn[2] = {be(in, 4), be(in, 4)};
    uint16_t ports[2] = {(uint16_t)be(in, 2), (uint16_t)be(in, 2)};
    uint8_t v6_bits = byte(in), bounds = byte(in);
    static const uint64_t sizes[8] = {0, 1, 64, 512, 1500, 4096, 20000, 1 << 20};
    struct follow_config config = {
        .callbacks = {h, on_stream, on_nodes, on_frame, on_record},
        .max_held_per_stream = sizes[bounds & 7],
        .max_held = sizes[(bounds >> 3) & 7],
        .max_fragment_bytes = (bounds & 0x40) ? 3000 : 0,
    };
    h->max_held = config.max_held ? config.max_held : FOLLOW_DEFAULT_HELD;
    h->check_content = 1;
    h->follow = follow_new(&config);
    if (!h->follow)
        abort();
    struct endpoint_pair tuples[4];
    struct direction_state dirs[4][2];
    for (int t = 0; t < 4; t++) {
        struct endpoint_pair *p = &tuples[t];
        memset(p, 0, sizeof *p);
        p->v6 = (v6_bits >> t) & 1;
        if (p->v6) {
            p->a[0] = p->b[0] = 0x20;
            p->a[1] = p->b[1] = 0x01;
            p->a[15] = 1;
            p->b[15] = 2;
        } else {
            p->a[0] = p->b[0] = 10;
            p->a[3] = 1;
            p->b[3] = 2;
        }
        p->port_a = (uint16_t)(ports[0] + (t & 1));
        p->port_b = (uint16_t)(ports[1] + (t >> 1));
        for (int d = 0; d < 2; d++)
            dirs[t][d].cursor = isn[d] + (uint32_t)t * 0x01000000u;
    }
    uint16_t ident = 1;
    uint16_t next_port = 1;
    uint32_t burst_budget = 3000; /* frames of all bursts: an input stays fast */
    static uint8_t packet[MAX_PACKET], frame[MAX_PACKET + 64];
    while (in->left >= 4) {
        uint8_t op = byte(in), flags = byte(in), length_byte = byte(in), ack_mode = byte(in);
        int direction = op & 1, tuple = (op >> 1) & 3, variant = (op >> 3) & 7, seq_mode = op >> 6;
        if ((ack_mode & 0xf0) == 0xf0) {
            /* a burst before the segment: SYNs from new ports (the table grows),
             * or IPv4 first fragments never completed (datagrams pile up) */
            for (uint32_t k = 0; k < (uint32_t)length_byte * 8 && burst_budget > 0; k++, burst_budget--) {
                size_t n = ip_header(frame, &tuples[tuple], direction, 6, 20, (uint16_t)(0x9000 + k));
                memset(frame + n, 0, 20);
                put16(frame + n, next_port++);
                put16(frame + n + 2, 443);
                put32(frame + n + 4, k * 7919u);
                frame[n + 12] = 0x50;
                frame[n + 13] = 0x02;
                const struct endpoint_pair *b = &tuples[tuple];
                set_sender(h, b, direction, (uint16_t)(next_port - 1), 443);
                h->is_syn = 1;
                h->is_truncated = 0;
                if ((ack_mode & 8) && !b->v6)
                    frame[6] = 0x20; /* more fragments, offset 0: never completed */
                feed(h, frame, n + 20, 0, 0);
            }
            continue;
        }
        struct endpoint_pair *t = &tuples[tuple];
        struct direction_state *me = &dirs[tuple][direction], *peer = &dirs[tuple][!direction];
        uint32_t seq;
        switch (seq_mode) {
        case 0: seq = me->cursor + (uint32_t)(int32_t)(int8_t)byte(in); break;
        case 1: seq = me->cursor + (uint32_t)(int32_t)(int16_t)be(in, 2); break;
        case 2: seq = me->cursor + (uint32_t)((int32_t)(int16_t)be(in, 2) * 256); break;
        default: seq = be(in, 4); break;
        }
        uint32_t ack;
        switch (ack_mode & 3) {
        case 0: ack = peer->cursor; break;
        case 1: ack = peer->cursor + (uint32_t)(int32_t)(int8_t)byte(in); break;
        case 2: ack = be(in, 4); break;
        default: ack = 0; break;
        }
        uint32_t length = (ack_mode & 4) ? (uint32_t)length_byte * 8 : length_byte;
        if (length > MAX_PAYLOAD)
            length = MAX_PAYLOAD;
        int syn = (flags & 0x02) != 0;
        /* the TCP segment */
        size_t options = variant == 3 ? 12 : 0, tcp_length = 20 + options + length;
        uint8_t *tcp = packet + 64; /* room for the IP header before it */
        memset(tcp, 0, 20 + options);
        put16(tcp, direction ? t->port_b : t->port_a);
        put16(tcp + 2, direction ? t->port_a : t->port_b);
        put32(tcp + 4, seq);
        put32(tcp + 8, ack);
        tcp[12] = (uint8_t)((20 + options) / 4 << 4);
        tcp[13] = flags;
        put16(tcp + 14, 65535);
        if (options)
            memset(tcp + 20, 1, options); /* NOPs */
        for (uint32_t i = 0; i < length; i++)
            tcp[20 + options + i] = (uint8_t)(seq + (uint32_t)syn + i + 97u * (uint32_t)direction);
        if (seq_after(seq + (uint32_t)syn + length, me->cursor))
            me->cursor = seq + (uint32_t)syn + length;
        set_sender(h, t, direction, direction ? t->port_b : t->port_a, direction ? t->port_a : t->port_b);
        h->is_syn = syn;
        h->is_truncated = 0;
        size_t ip_length = ip_header(packet, t, direction, 6, tcp_length, ident);
        uint8_t *ip = tcp - ip_length;
        memmove(ip, packet, ip_length);
        size_t whole = ip_length + tcp_length;
        switch (variant) {
        case 4: { /* IP fragments: size, order, a duplicate, overlap */
            uint8_t size_byte = byte(in), order = byte(in);
            fragments(h, ip, ip_length, t->v6, ident, size_byte, order, length, 0);
            break;
        }
        case 5: { /* an ICMP error quoting the segment's start, from a router */
            uint32_t quoted = 8u + byte(in) % 40u;
            if (quoted > tcp_length)
                quoted = (uint32_t)tcp_length;
            size_t body = 8 + ip_length + quoted;
            struct endpoint_pair router = *t;
            router.b[15] = 254;
            router.b[3] = t->v6 ? router.b[3] : 254;
            size_t outer = ip_header(frame, &router, 1, t->v6 ? 58 : 1, body, ident);
            memset(frame + outer, 0, 8);
            frame[outer] = t->v6 ? 1 : 3;
            frame[outer + 1] = 4;
            memcpy(frame + outer + 8, ip, ip_length + quoted);
            memset(&h->sender, 0, sizeof h->sender); /* no node */
            if (quoted & 1) /* the error itself fragmented */
                fragments(h, frame, outer, t->v6, (uint16_t)(ident + 0x8000), 0x01, 1, 0, 1);
            else
                feed(h, frame, outer + body, 0, 1);
            break;
        }
        case 6: { /* cut by the capture */
            uint32_t kept = byte(in);
            if (kept > whole)
                kept = (uint32_t)whole;
            h->is_truncated = 1;
            size_t header = ip_length + 20 + options;
            feed(h, ip, kept, kept > header ? kept - header : 0, 0);
            break;
        }
        case 7:
            feed(h, ip, whole, length, 0);
            feed(h, ip, whole, length, 0);
            break;
        default:
            feed(h, ip, whole, length, 0);
            break;
        }
        ident++;
    }
    return 0;
}

static int capture_mode(struct harness *h, const uint8_t *data, size_t size)
{
    struct follow_config config = {
        .callbacks = {h, on_stream, on_nodes, on_frame, on_record},
        .max_held_per_stream = 4096,
        .max_held = 16384,
        .max_fragment_bytes = 8192,
    };
    h->max_held = config.max_held;
    h->follow = follow_new(&config);
    if (!h->follow)
        abort();
    FILE *file = fmemopen((void *)data, size, "rb");
    if (!file)
        return 0;
    struct capture *capture = capture_new();
    if (!capture) {
        fclose(file);
        return 0;
    }
    if (capture_open(capture, file, NULL) == 0) {
        /* follow_capture's frames go through the callbacks: the harness cannot
         * tell the sender of each, so only the invariants that need no
         * knowledge of the frame are checked (check_content is off) */
        uint64_t frame_number = 0;
        struct capture_stats stats = {0};
        h->raw = 1;
        h->frame_stream = -1;
        enum capture_status status;
        while ((status = follow_capture(capture, h->follow, &frame_number, 1, &stats)) == CAPTURE_MORE) {
            h->frame_stream = -1;
            struct follow_stats fs = follow_stats(h->follow);
            CHECK(fs.held_bytes <= h->max_held && fs.peak_held_bytes <= h->max_held);
        }
        CHECK(status != CAPTURE_TRACER_ERROR);
        CHECK(h->bytes <= size);
        struct follow_stats fs = follow_stats(h->follow);
        CHECK(fs.records == h->records && fs.gap_records == h->gap_records && fs.bytes == h->bytes);
        CHECK(fs.streams == h->stream_count);
    }
    capture_delete(capture);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct harness h;
    memset(&h, 0, sizeof h);
    if (data[0] & 1) {
        capture_mode(&h, data + 1, size - 1);
    } else {
        struct input in = {data + 1, size - 1};
        segment_mode(&h, &in);
        /* bytes out never exceed payload bytes in: each segment's bytes once at most */
        uint64_t fed = 0;
        for (uint64_t i = 0; i < h.stream_count; i++)
            fed += h.streams[i].fed[0] + h.streams[i].fed[1];
        CHECK(h.bytes <= fed);
    }
    follow_delete(h.follow);
    free(h.streams);
    return 0;
}
