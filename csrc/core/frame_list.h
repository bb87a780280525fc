/* A flow's frame numbers, compact: the first one, then each one's difference
 * from the one before as a zigzag variable-length integer (frame_reader in
 * tracer.h reads them back). Frames of a flow are usually close together, so
 * a frame costs one or two bytes instead of eight: 5,000,000 frames of one
 * flow take 5 MB. Differences wrap modulo 2^64, so any int64 sequence
 * (trace() takes whatever numbers the caller gives) comes back exactly. */
#ifndef PCAPFLOW_FRAME_LIST_H
#define PCAPFLOW_FRAME_LIST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { FRAME_LIST_INLINE = 16, FRAME_LIST_MAX_STEP = 10 };

struct frame_list {
    int64_t first, last;
    uint32_t count;
    uint32_t length;   /* bytes of differences */
    uint32_t capacity; /* FRAME_LIST_INLINE while they are in place */
    uint8_t last_step; /* bytes of the last difference, for frame_list_drop_last() */
    union {
        uint8_t in_place[FRAME_LIST_INLINE];
        uint8_t *heap;
    } bytes;
};

static inline void frame_list_init(struct frame_list *l)
{
    memset(l, 0, sizeof *l);
    l->capacity = FRAME_LIST_INLINE;
}

static inline const uint8_t *frame_list_bytes(const struct frame_list *l)
{
    return l->capacity > FRAME_LIST_INLINE ? l->bytes.heap : l->bytes.in_place;
}

static inline void frame_list_free(struct frame_list *l)
{
    if (l->capacity > FRAME_LIST_INLINE)
        free(l->bytes.heap);
    frame_list_init(l);
}

/* Room for one more difference. Returns 0 or -1 (memory, or 4 GiB of differences). */
int frame_list_grow(struct frame_list *l);

static inline int frame_list_add(struct frame_list *l, int64_t frame)
{
    if (l->count == 0) {
        l->first = l->last = frame;
        l->count = 1;
        return 0;
    }
    if (l->capacity - l->length < FRAME_LIST_MAX_STEP && frame_list_grow(l) < 0)
        return -1;
    uint64_t difference = (uint64_t)frame - (uint64_t)l->last;
    uint64_t zigzag = (difference << 1) ^ (uint64_t)-(int64_t)(difference >> 63);
    uint8_t *out = (uint8_t *)frame_list_bytes(l) + l->length;
    uint8_t step = 0;
    while (zigzag >= 0x80) {
        out[step++] = (uint8_t)(zigzag | 0x80);
        zigzag >>= 7;
    }
    out[step++] = (uint8_t)zigzag;
    l->length += step;
    l->last_step = step;
    l->last = frame;
    l->count++;
    return 0;
}

/* Takes back the frame added last (only once in a row: last_step is gone after). */
void frame_list_drop_last(struct frame_list *l);

#endif
