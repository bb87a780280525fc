#include "ip_defrag.h"

#include "pcapflow_core.h"

#include <stdlib.h>
#include <string.h>

/* Datagrams being put together at once; past this the oldest goes, so a
 * capture of scattered fragments costs a bounded search per fragment. */
enum { DEFRAG_MAX_PENDING = 1024, DEFRAG_MAX_END = 65535 };
/* Fragments of one datagram: more are refused (counted), so that a crafted
 * flood of tiny overlapping fragments costs bounded time. */
enum { DEFRAG_MAX_FRAGMENTS = 256 };

struct fragment {
    uint32_t offset, length;
    uint32_t arrival; /* at equal offsets the earlier one's bytes stay */
    uint8_t *data;
};

struct pending {
    uint8_t version;
    uint8_t protocol;        /* IPv4 */
    uint8_t src[16], dst[16];
    uint32_t identification;
    uint64_t order;          /* when it began: the oldest is dropped first */
    uint8_t *header;         /* the offset-0 fragment's unfragmentable part */
    uint32_t header_length;
    uint32_t next_header_at; /* IPv6: where the byte naming the fragment header is */
    uint8_t next_header;     /* IPv6: the fragment header's next header */
    int64_t total;           /* payload bytes, once the last fragment came; -1 before */
    uint64_t held;           /* payload bytes of all its fragments (overlaps counted twice) */
    struct fragment *fragments;
    size_t count, capacity;
    uint64_t bytes;          /* memory held */
};

struct ip_defrag {
    struct pending *pending;
    uint32_t count;
    uint64_t max_bytes, next_order;
    uint8_t *assembled;      /* the last datagram completed */
    struct ip_defrag_stats stats;
};

static uint16_t u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

struct ip_defrag *ip_defrag_new(uint64_t max_bytes)
{
    struct ip_defrag *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->pending = calloc(DEFRAG_MAX_PENDING, sizeof *d->pending);
    if (!d->pending) {
        free(d);
        return NULL;
    }
    d->max_bytes = max_bytes;
    return d;
}

static void pending_free(struct ip_defrag *d, uint32_t i)
{
    struct pending *p = &d->pending[i];
    for (uint32_t f = 0; f < p->count; f++)
        free(p->fragments[f].data);
    free(p->fragments);
    free(p->header);
    d->stats.pending_bytes -= p->bytes;
    d->pending[i] = d->pending[--d->count];
}

void ip_defrag_delete(struct ip_defrag *d)
{
    if (!d)
        return;
    while (d->count)
        pending_free(d, 0);
    free(d->pending);
    free(d->assembled);
    free(d);
}

struct ip_defrag_stats ip_defrag_stats(const struct ip_defrag *d) { return d->stats; }

/* One fragment's place: what identifies its datagram, and its piece. */
struct piece {
    struct pending key;
    uint32_t offset, length;
    int more;
    const uint8_t *data;
    uint32_t header_length, next_header_at;
};

static int parse_ipv4(const uint8_t *ip, size_t length, struct piece *piece)
{
    size_t header = (size_t)(ip[0] & 0x0f) * 4;
    if (header < 20 || header >= length)
        return -1;
    piece->key.version = 4;
    piece->key.protocol = ip[9];
    memcpy(piece->key.src, ip + 12, 4);
    memcpy(piece->key.dst, ip + 16, 4);
    piece->key.identification = u16(ip + 4);
    uint16_t field = u16(ip + 6);
    piece->offset = (uint32_t)(field & 0x1fff) * 8;
    piece->more = (field & 0x2000) != 0;
    piece->data = ip + header;
    piece->length = (uint32_t)(length - header);
    piece->header_length = (uint32_t)header;
    return 0;
}

static int parse_ipv6(const uint8_t *ip, size_t length, struct piece *piece)
{
    if (length < 40)
        return -1;
    size_t offset = 40, next_at = 6;
    uint8_t next = ip[6];
    while (next != 44) {
        if (next != 0 && next != 43 && next != 60)
            return -1; /* the decoder found a fragment header: not reached */
        if (offset + 2 > length)
            return -1;
        next_at = offset;
        next = ip[offset];
        offset += ((size_t)ip[offset + 1] + 1) * 8;
    }
    if (offset + 8 > length)
        return -1;
    piece->key.version = 6;
    memcpy(piece->key.src, ip + 8, 16);
    memcpy(piece->key.dst, ip + 24, 16);
    piece->key.identification = u32(ip + offset + 4);
    piece->key.next_header = ip[offset];
    uint16_t field = u16(ip + offset + 2);
    piece->offset = field & 0xfff8;
    piece->more = field & 1;
    piece->data = ip + offset + 8;
    piece->length = (uint32_t)(length - offset - 8);
    piece->header_length = (uint32_t)offset;
    piece->next_header_at = (uint32_t)next_at;
    return 0;
}

static int same_datagram(const struct pending *a, const struct pending *b)
{
    return a->version == b->version && a->identification == b->identification && a->protocol == b->protocol &&
           memcmp(a->src, b->src, 16) == 0 && memcmp(a->dst, b->dst, 16) == 0;
}

/* Bytes from 0 on that the fragments hold without a hole. */
static uint32_t contiguous(const struct pending *p)
{
    uint32_t end = 0;
    for (int grew = 1; grew;) {
        grew = 0;
        for (uint32_t f = 0; f < p->count; f++) {
            const struct fragment *fr = &p->fragments[f];
            if (fr->offset <= end && fr->offset + fr->length > end) {
                end = fr->offset + fr->length;
                grew = 1;
            }
        }
    }
    return end;
}

static int by_offset(const void *a, const void *b)
{
    const struct fragment *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
}

/* The datagram of pending i, whole: into d->assembled. */
static const uint8_t *assemble(struct ip_defrag *d, struct pending *p, size_t *out_length)
{
    size_t total = (size_t)p->total, length = p->header_length + total;
    uint8_t *out = malloc(length ? length : 1);
    if (!out)
        return NULL;
    memcpy(out, p->header, p->header_length);
    qsort(p->fragments, p->count, sizeof *p->fragments, by_offset);
    uint32_t done = 0;
    for (uint32_t f = 0; f < p->count && done < total; f++) {
        const struct fragment *fr = &p->fragments[f];
        uint32_t end = fr->offset + fr->length;
        if (end > total)
            end = (uint32_t)total;
        if (end > done && fr->offset <= done) {
            memcpy(out + p->header_length + done, fr->data + (done - fr->offset), end - done);
            done = end;
        }
    }
    if (p->version == 4) {
        out[2] = (uint8_t)(length >> 8);
        out[3] = (uint8_t)length;
        out[6] = out[7] = 0;
    } else {
        size_t payload = length - 40;
        out[4] = (uint8_t)(payload >> 8);
        out[5] = (uint8_t)payload;
        out[p->next_header_at] = p->next_header;
    }
    free(d->assembled);
    d->assembled = out;
    *out_length = length;
    return out;
}

static int add_fragment(struct pending *p, const struct piece *piece)
{
    if (p->count == DEFRAG_MAX_FRAGMENTS)
        return 1;
    if (array_reserve(&p->fragments, &p->capacity, p->count + 1, sizeof *p->fragments, 4) < 0)
        return -1;
    uint8_t *copy = malloc(piece->length ? piece->length : 1);
    if (!copy)
        return -1;
    memcpy(copy, piece->data, piece->length);
    p->fragments[p->count] = (struct fragment){piece->offset, piece->length, p->count, copy};
    p->count++;
    p->bytes += piece->length;
    p->held += piece->length;
    return 0;
}

const uint8_t *ip_defrag_add(struct ip_defrag *d, const uint8_t *ip, size_t length, size_t *out_length)
{
    struct piece piece;
    memset(&piece, 0, sizeof piece);
    if (length < 1 || length > 65535 + 40 ||
        ((ip[0] >> 4) == 4 ? parse_ipv4(ip, length, &piece) : (ip[0] >> 4) == 6 ? parse_ipv6(ip, length, &piece) : -1) < 0 ||
        piece.offset + piece.length > DEFRAG_MAX_END) {
        d->stats.refused++;
        return NULL;
    }
    d->stats.fragments++;
    uint32_t i = 0;
    while (i < d->count && !same_datagram(&d->pending[i], &piece.key))
        i++;
    if (i == d->count) {
        if (d->count == DEFRAG_MAX_PENDING) {
            uint32_t oldest = 0;
            for (uint32_t j = 1; j < d->count; j++)
                if (d->pending[j].order < d->pending[oldest].order)
                    oldest = j;
            pending_free(d, oldest);
            d->stats.dropped++;
            i = d->count;
        }
        d->pending[i] = piece.key;
        d->pending[i].order = d->next_order++;
        d->pending[i].total = -1;
        d->count++;
    }
    struct pending *p = &d->pending[i];
    if (piece.offset == 0 && !p->header) {
        p->header = malloc(piece.header_length);
        if (!p->header) {
            pending_free(d, i);
            return NULL;
        }
        memcpy(p->header, ip, piece.header_length);
        p->header_length = piece.header_length;
        p->next_header_at = piece.next_header_at;
        p->next_header = piece.key.next_header;
    }
    uint64_t before = p->bytes;
    int added = add_fragment(p, &piece);
    if (added < 0) {
        pending_free(d, i);
        return NULL;
    }
    if (added > 0) {
        d->stats.refused++;
        return NULL;
    }
    d->stats.pending_bytes += p->bytes - before;
    if (!piece.more && p->total < 0)
        p->total = piece.offset + piece.length;
    /* memory: the oldest other datagrams go first */
    while (d->stats.pending_bytes > d->max_bytes && d->count > 1) {
        uint32_t oldest = i == 0 ? 1 : 0;
        for (uint32_t j = 0; j < d->count; j++)
            if (j != i && d->pending[j].order < d->pending[oldest].order)
                oldest = j;
        uint64_t order = p->order;
        pending_free(d, oldest);
        d->stats.dropped++;
        for (i = 0; d->pending[i].order != order; i++)
            ;
        p = &d->pending[i];
    }
    if (p->total < 0 || !p->header || p->held < (uint64_t)p->total || contiguous(p) < (uint64_t)p->total)
        return NULL;
    const uint8_t *whole = assemble(d, p, out_length);
    pending_free(d, i);
    if (whole)
        d->stats.reassembled++;
    return whole;
}
