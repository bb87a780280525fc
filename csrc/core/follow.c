/* Follow TCP Stream: Wireshark 4.0's rules (packet-tcp.c's conversation
 * numbering and relative sequence numbers, the follow tap's reassembly),
 * read from its documentation and behaviour and checked against tshark by
 * tests/test_follow_tshark.py. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "flow_key.h"
#include "ip_defrag.h"
#include "pcapflow_core.h"

/* A segment held back until the bytes before it come (or are given up). */
struct held_segment {
    struct held_segment *next;
    uint32_t seq, length;
    int64_t frame, seconds;
    uint32_t nanoseconds;
    uint8_t data[];
};

/* its header and malloc's, within what a held segment is charged beyond its bytes */
_Static_assert(sizeof(struct held_segment) + 16 <= FOLLOW_HELD_SEGMENT_COST, "FOLLOW_HELD_SEGMENT_COST too small");

struct held_lists {
    struct held_segment *head[2], *tail[2]; /* by node, in arrival order */
    uint64_t bytes;
};

enum {
    BASE_SET_0 = 1, BASE_SET_1 = 2, /* by direction */
    WRITTEN_0 = 4, WRITTEN_1 = 8,   /* by node: a segment's bytes came out (Wireshark's bytes_written) */
    NODE0_SET = 16, NODE0_IS_DIRECTION_1 = 32,
};

/* One tcp.stream. Directions: 0 is the key's src sending. Nodes: 0 is the
 * sender of the first segment Follow saw. */
struct conversation {
    struct flow_key key; /* its connection key (flow_key_connection()): the lower endpoint as src */
    uint32_t base[2];    /* by direction: what relative sequence numbers count from */
    uint32_t next[2];    /* by node: the next relative sequence number expected */
    struct held_lists *held;
    uint8_t flags;
};

struct follow {
    struct follow_config config;
    struct conversation *conversations; /* by stream number */
    size_t count, capacity;
    uint32_t *table; /* open addressing: stream + 1 of a tuple's newest conversation, 0 empty */
    uint64_t table_size;
    uint64_t hash_seed; /* random: a crafted capture cannot make lookups collide */
    struct ip_defrag *defrag;
    struct follow_stats stats;
};

static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Sequence number comparisons modulo 2^32 */
static int seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static int seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

size_t follow_conversation_bytes(void) { return sizeof(struct conversation) + 2 * sizeof(uint32_t); }

int follow_stream_nodes(const struct follow *f, uint64_t stream, struct flow_key *node0)
{
    if (stream >= f->count)
        return -1;
    const struct conversation *c = &f->conversations[stream];
    if (!(c->flags & NODE0_SET))
        return 0;
    *node0 = c->key;
    if (c->flags & NODE0_IS_DIRECTION_1) {
        memcpy(node0->src, c->key.dst, 16);
        memcpy(node0->dst, c->key.src, 16);
        node0->src_port = c->key.dst_port;
        node0->dst_port = c->key.src_port;
        node0->src_family = c->key.dst_family;
        node0->dst_family = c->key.src_family;
    }
    return 1;
}

struct follow *follow_new(const struct follow_config *config)
{
    struct follow *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->config = *config;
    if (!f->config.max_held_per_stream)
        f->config.max_held_per_stream = FOLLOW_DEFAULT_HELD_PER_STREAM;
    if (!f->config.max_held)
        f->config.max_held = FOLLOW_DEFAULT_HELD;
    f->table_size = 1024;
    f->hash_seed = flow_key_random_seed();
    f->table = calloc(f->table_size, sizeof *f->table);
    f->defrag = ip_defrag_new(f->config.max_fragment_bytes ? f->config.max_fragment_bytes
                                                           : FOLLOW_DEFAULT_FRAGMENT_BYTES);
    if (!f->table || !f->defrag) {
        follow_delete(f);
        return NULL;
    }
    return f;
}

static void free_held(struct conversation *c)
{
    if (!c->held)
        return;
    for (int node = 0; node < 2; node++)
        for (struct held_segment *s = c->held->head[node], *next; s; s = next) {
            next = s->next;
            free(s);
        }
    free(c->held);
    c->held = NULL;
}

void follow_delete(struct follow *f)
{
    if (!f)
        return;
    for (uint64_t i = 0; i < f->count; i++)
        free_held(&f->conversations[i]);
    free(f->conversations);
    free(f->table);
    ip_defrag_delete(f->defrag);
    free(f);
}

struct follow_stats follow_stats(const struct follow *f)
{
    struct follow_stats stats = f->stats;
    struct ip_defrag_stats defrag = ip_defrag_stats(f->defrag);
    stats.streams = f->count;
    stats.fragments = defrag.fragments;
    stats.reassembled = defrag.reassembled;
    stats.fragments_dropped = defrag.dropped + defrag.refused;
    return stats;
}

/* ---- the conversation table ---- */

/* The table slot for key: its entry, or the empty slot it would take. */
static uint64_t table_slot(const struct follow *f, const struct flow_key *key)
{
    uint64_t mask = f->table_size - 1, slot = flow_key_hash(key, f->hash_seed) & mask;
    while (f->table[slot] && !flow_key_equal(&f->conversations[f->table[slot] - 1].key, key))
        slot = (slot + 1) & mask;
    return slot;
}

static int table_grow(struct follow *f)
{
    uint64_t size = f->table_size * 2;
    uint32_t *old = f->table, *table = calloc(size, sizeof *table);
    if (!table)
        return -1;
    uint64_t old_size = f->table_size;
    f->table = table;
    f->table_size = size;
    for (uint64_t i = 0; i < old_size; i++)
        if (old[i])
            f->table[table_slot(f, &f->conversations[old[i] - 1].key)] = old[i];
    free(old);
    return 0;
}

/* A new conversation for key (a connection key: flow_key_connection()), newest for its tuple. Returns its
 * number, or -1 (memory; errno). */
static int64_t conversation_new(struct follow *f, const struct flow_key *key, uint64_t slot, int replaces)
{
    if (f->count >= 0xfffffffeu) {
        errno = ENOMEM;
        return -1;
    }
    if (array_reserve(&f->conversations, &f->capacity, f->count + 1, sizeof *f->conversations, 256) < 0) {
        errno = ENOMEM;
        return -1;
    }
    uint64_t stream = f->count++;
    struct conversation *c = &f->conversations[stream];
    memset(c, 0, sizeof *c);
    c->key = *key;
    f->table[slot] = (uint32_t)(stream + 1);
    if (!replaces && f->count * 2 > f->table_size && table_grow(f) < 0) {
        f->count--;
        f->table[table_slot(f, key)] = 0;
        return -1;
    }
    return (int64_t)stream;
}

/* ---- Follow's reassembly (per conversation, per node) ---- */

struct frame_time {
    int64_t number, seconds;
    uint32_t nanoseconds;
};

static int emit(struct follow *f, uint64_t stream, int node, const struct frame_time *when, const uint8_t *data,
                size_t length, uint32_t missing)
{
    struct follow_record record = {stream, node, when->number, when->seconds, when->nanoseconds, data, length,
                                   missing};
    f->stats.records++;
    if (missing)
        f->stats.gap_records++;
    else
        f->stats.bytes += length;
    return f->config.callbacks.record ? f->config.callbacks.record(f->config.callbacks.context, &record) : 0;
}

static void unlink_held(struct follow *f, struct conversation *c, int node, struct held_segment *s,
                        struct held_segment *before)
{
    if (before)
        before->next = s->next;
    else
        c->held->head[node] = s->next;
    if (c->held->tail[node] == s)
        c->held->tail[node] = before;
    c->held->bytes -= s->length + FOLLOW_HELD_SEGMENT_COST;
    f->stats.held_bytes -= s->length + FOLLOW_HELD_SEGMENT_COST;
    free(s);
    if (!c->held->head[0] && !c->held->head[1]) {
        free(c->held); /* delivered: its memory goes at once */
        c->held = NULL;
    }
}

/* Wireshark's check_follow_fragments(): the first held segment (in arrival
 * order) that reaches back to `next` gives its new bytes; failing that, an
 * acknowledgement past the lowest held segment gives a gap record up to it.
 * Returns 1 when something was taken (call again), 0 when not, -1 to stop. */
static int take_held(struct follow *f, uint64_t stream, int node, uint32_t acknowledged,
                     const struct frame_time *acking, int use_ack)
{
    struct conversation *c = &f->conversations[stream];
    if (!c->held || !c->held->head[node])
        return 0;
    uint32_t *next = &c->next[node];
    uint32_t lowest = c->held->head[node]->seq;
    for (struct held_segment *s = c->held->head[node], *before = NULL; s; before = s, s = s->next) {
        if (seq_gt(lowest, s->seq))
            lowest = s->seq;
        if (seq_lt(s->seq, *next) || s->seq == *next) {
            int stop = 0;
            uint32_t skip = s->seq == *next ? 0 : *next - s->seq;
            if (seq_gt(s->seq + s->length, *next)) {
                struct frame_time when = {s->frame, s->seconds, s->nanoseconds};
                stop = emit(f, stream, node, &when, s->data + skip, s->length - skip, 0) < 0;
                *next += s->length - skip;
            }
            unlink_held(f, c, node, s, before);
            return stop ? -1 : 1;
        }
    }
    if (use_ack && seq_gt(acknowledged, lowest)) {
        char text[64];
        int length = snprintf(text, sizeof text, "[%d bytes missing in capture file]", (int32_t)(lowest - *next));
        uint32_t missing = lowest - *next; /* not 0: held segments at or before next were taken above */
        struct frame_time when = {acking->number, 0, 0};
        *next = lowest;
        return emit(f, stream, node, &when, (const uint8_t *)text, (size_t)length + 1, missing) < 0
                   ? -1 : 1;
    }
    return 0;
}

static int hold(struct follow *f, struct conversation *c, int node, uint32_t seq, const uint8_t *data,
                uint32_t length, const struct frame_time *when)
{
    /* a segment costs its bytes and its header: the bounds hold for memory, 1-byte segments too */
    uint64_t held_here = c->held ? c->held->bytes : 0, cost = (uint64_t)length + FOLLOW_HELD_SEGMENT_COST;
    if (held_here + cost > f->config.max_held_per_stream || f->stats.held_bytes + cost > f->config.max_held) {
        f->stats.dropped_segments++;
        f->stats.dropped_bytes += length;
        return 0;
    }
    if (!c->held && !(c->held = calloc(1, sizeof *c->held)))
        return -1;
    struct held_segment *s = malloc(sizeof *s + length);
    if (!s)
        return -1;
    *s = (struct held_segment){NULL, seq, length, when->number, when->seconds, when->nanoseconds};
    memcpy(s->data, data, length);
    if (c->held->tail[node])
        c->held->tail[node]->next = s;
    else
        c->held->head[node] = s;
    c->held->tail[node] = s;
    c->held->bytes += cost;
    f->stats.held_bytes += cost;
    if (f->stats.held_bytes > f->stats.peak_held_bytes)
        f->stats.peak_held_bytes = f->stats.held_bytes;
    return 0;
}

static void release_held(struct follow *f, struct conversation *c)
{
    if (c->held)
        f->stats.held_bytes -= c->held->bytes;
    free_held(c);
}

/* What Follow is given of one segment. */
struct segment {
    int direction;
    uint32_t seq, ack;  /* relative, as the tap sees them */
    uint32_t length;    /* the TCP length the IP header states */
    const uint8_t *data;
    uint32_t captured;  /* payload bytes captured */
};

static int endpoints_equal(const struct flow_key *k)
{
    return memcmp(k->src, k->dst, 16) == 0 && k->src_port == k->dst_port && k->src_family == k->dst_family;
}

/* Wireshark's follow tap for one segment of conversation `stream`. */
static int follow_segment(struct follow *f, uint64_t stream, const struct flow_key *sent, struct segment *s,
                          const struct frame_time *when)
{
    struct conversation *c = &f->conversations[stream];
    uint16_t node0_port = (c->flags & NODE0_IS_DIRECTION_1) ? c->key.dst_port : c->key.src_port;
    if (!(c->flags & NODE0_SET) || node0_port == 0) {
        /* the tap takes the first segment's sender as node 0, and again while its port reads 0 */
        c->flags = (uint8_t)((c->flags & ~NODE0_IS_DIRECTION_1) | NODE0_SET | (s->direction ? NODE0_IS_DIRECTION_1 : 0));
        if (f->config.callbacks.nodes && f->config.callbacks.nodes(f->config.callbacks.context, stream, sent) < 0)
            return -1;
    }
    int node0_direction = (c->flags & NODE0_IS_DIRECTION_1) != 0;
    int node = (s->direction == node0_direction || endpoints_equal(&c->key)) ? 0 : 1;
    int step;
    while ((step = take_held(f, stream, !node, s->ack, when, 1)) > 0)
        ;
    if (step < 0)
        return -1;
    c = &f->conversations[stream];
    uint32_t *next = &c->next[node];
    uint8_t written = node ? WRITTEN_1 : WRITTEN_0;
    if (!(c->flags & written) && *next == 0)
        *next = s->seq;
    uint32_t seq = s->seq, length = s->length, offset = 0, captured = s->captured;
    if (seq_lt(seq, *next)) {
        uint32_t end = seq + length;
        if (seq_gt(end, *next)) {
            offset = *next - seq;
            captured = captured <= offset ? 0 : captured - offset;
            seq = *next;
            length = end - *next;
        }
    }
    if (captured == 0 || seq_lt(seq, *next))
        return 0;
    if (seq != *next)
        return hold(f, c, node, seq, s->data + offset, captured, when);
    *next += length;
    c->flags |= written;
    if (emit(f, stream, node, when, s->data + offset, captured, 0) < 0)
        return -1;
    while ((step = take_held(f, stream, node, 0, when, 0)) > 0)
        ;
    return step;
}

/* ---- a frame's TCP header: its conversation, then Follow ---- */

/* The conversation of a segment `sent` (key: its connection key): the
 * tuple's newest, or a new one when there is none or when the segment is a
 * SYN without ACK (syn_only) whose number differs from the one its side
 * began with. Returns its number, or -1 (memory, or a callback stopped). */
static int64_t conversation_of(struct follow *f, const struct flow_key *sent, const struct flow_key *key,
                               int direction, uint32_t seq, int syn_only)
{
    uint64_t slot = table_slot(f, key);
    int replaces = f->table[slot] != 0;
    if (replaces) {
        int64_t stream = (int64_t)f->table[slot] - 1;
        struct conversation *c = &f->conversations[stream];
        uint8_t base_set = direction ? BASE_SET_1 : BASE_SET_0;
        if (!syn_only || !(c->flags & base_set) || seq == c->base[direction])
            return stream;
        /* a new connection on the same ports: the old one gets no more segments, so
         * what it held back can never come out (Wireshark loses it too) */
        release_held(f, c);
    }
    int64_t stream = conversation_new(f, key, slot, replaces);
    if (stream >= 0 && f->config.callbacks.stream &&
        f->config.callbacks.stream(f->config.callbacks.context, (uint64_t)stream, sent) < 0)
        return -1;
    return stream;
}

static int tcp_header(struct follow *f, const struct decoded_frame *d, const uint8_t *tcp, uint32_t captured,
                      uint32_t stated, const struct frame_time *when, int quoted)
{
    if (captured < 16) /* Wireshark reads ports, numbers, flags and window before it looks the conversation up */
        return 0;
    uint32_t seq = u32(tcp + 4), ack = u32(tcp + 8);
    uint8_t flags = tcp[13];
    struct flow_key key;
    int direction = flow_key_connection(&d->key, &key) > 0; /* 0: key's src sent it */
    int syn = (flags & TCP_FLAG_SYN) != 0, ack_flag = (flags & TCP_FLAG_ACK) != 0;
    int64_t stream = conversation_of(f, &d->key, &key, direction, seq, syn && !ack_flag);
    if (stream < 0)
        return -1;
    if (f->config.callbacks.frame &&
        f->config.callbacks.frame(f->config.callbacks.context, (uint64_t)stream, when->number, when->seconds,
                                  when->nanoseconds) < 0)
        return -1;
    uint32_t header = (uint32_t)(tcp[12] >> 4) * 4;
    if (quoted || header < 20 || header > captured)
        return 0;
    struct conversation *c = &f->conversations[stream];
    int other = !direction;
    uint8_t set = direction ? BASE_SET_1 : BASE_SET_0, other_set = direction ? BASE_SET_0 : BASE_SET_1;
    if (syn) {
        /* a SYN's number is the base; a SYN-ACK with another number moves it (Wireshark 4.0) */
        if (!(c->flags & set) || (ack_flag && c->base[direction] != seq))
            c->base[direction] = seq;
    } else if (!(c->flags & set)) {
        c->base[direction] = seq - 1;
    }
    c->flags |= set;
    if (ack_flag && !(c->flags & other_set)) {
        c->base[other] = ack - 1;
        c->flags |= other_set;
    }
    struct segment s = {
        .direction = direction,
        .seq = seq - c->base[direction] + (uint32_t)syn,
        .ack = ack_flag ? ack - c->base[other] : ack,
        .length = stated > header ? stated - header : 0,
        .data = tcp + header,
        .captured = captured - header,
    };
    if (s.captured > s.length) /* cannot be: the decoder bounds it by the IP length */
        s.captured = s.length;
    return follow_segment(f, (uint64_t)stream, &d->key, &s, when);
}

static int decoded_tcp(struct follow *f, const struct decoded_frame *d, const struct frame_time *when)
{
    uint32_t stated = d->tcp_captured;
    if (d->ip) {
        size_t before = (size_t)(d->tcp - d->ip);
        stated = d->ip_stated > before ? d->ip_stated - (uint32_t)before : 0;
    }
    return tcp_header(f, d, d->tcp, d->tcp_captured, stated, when, 0);
}

int follow_frame(struct follow *f, const struct capture_frame *frame, int64_t frame_number)
{
    struct frame_time when = {frame_number, frame->seconds, (uint32_t)frame->nanoseconds};
    const struct decoded_frame *d = &frame->decoded;
    switch (d->kind) {
    case DECODED_TCP:
        return decoded_tcp(f, d, &when);
    case DECODED_ICMP_QUOTE:
        return tcp_header(f, d, d->tcp, d->tcp_captured, d->tcp_captured, &when, 1);
    case DECODED_IP_FRAGMENT: {
        size_t length;
        const uint8_t *whole = ip_defrag_add(f->defrag, d->ip, d->ip_captured, &length);
        if (!whole)
            return 0;
        struct decoded_frame inner;
        enum { LINK_IPV4 = 228, LINK_IPV6 = 229 };
        int link = whole[0] >> 4 == 4 ? LINK_IPV4 : LINK_IPV6;
        switch (decode_frame(link, whole, length, DECODE_FOLLOW | DECODE_TUNNELS, &inner)) {
        case DECODE_TCP:
            return decoded_tcp(f, &inner, &when);
        case DECODE_FOLLOW_EXTRA:
            if (inner.kind == DECODED_ICMP_QUOTE)
                return tcp_header(f, &inner, inner.tcp, inner.tcp_captured, inner.tcp_captured, &when, 1);
            return 0; /* a fragment inside a reassembled datagram: not followed */
        default:
            return 0;
        }
    }
    default:
        return 0;
    }
}

enum capture_status follow_capture(struct capture *c, struct follow *f, uint64_t *frame_number,
                                   uint64_t max_frames, struct capture_stats *stats)
{
    struct capture_frame frame;
    capture_set_decode_options(c, DECODE_FOLLOW | DECODE_TUNNELS);
    for (uint64_t n = 0; n < max_frames; n++) {
        enum capture_status status = capture_next(c, &frame, frame_number, stats);
        if (status != CAPTURE_FRAME)
            return status;
        if (follow_frame(f, &frame, (int64_t)*frame_number) < 0)
            return CAPTURE_TRACER_ERROR;
    }
    return CAPTURE_MORE;
}
