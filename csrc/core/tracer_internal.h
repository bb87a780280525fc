/* The tracer's own structures, for csrc/core's files only: code outside the
 * core uses tracer.h, where struct tracer is opaque. */
#ifndef PCAPFLOW_TRACER_INTERNAL_H
#define PCAPFLOW_TRACER_INTERNAL_H

#include "flow_sink.h"
#include "label.h"
#include "label_set.h"
#include "tracer.h"

/* Frame numbers a flow keeps in its own struct: most flows have no more, and
 * need no allocation of their own. */
enum { FLOW_INLINE_FRAMES = 4 };

/* What every packet of a flow touches comes first: the key, the frame
 * numbers and the caller's carried data fill the struct's first 96 bytes. */
struct flow {
    struct flow_key key;
    uint32_t frame_count;
    uint32_t frame_capacity;
    union {
        int64_t in_place[FLOW_INLINE_FRAMES]; /* while frame_capacity is FLOW_INLINE_FRAMES */
        int64_t *heap;                         /* once there were more */
    } frames;
    /* the caller's, never read by the core: `carried` goes with the flow to
     * the closed list at close, `open_data` is for the caller to release
     * before (the Python binding keeps the label str and the dumper here) */
    void *carried;
    void *open_data;
    uint64_t generation; /* changes each time the slot is reused */
    const char *label;   /* interned in tracer.labels */
    uint32_t label_length;
    uint32_t use_number; /* 1 for the first flow with this label, 2 for the next, ... */
    uint32_t open_prev, open_next; /* open flows in the order they were first seen */
    uint32_t linktype;
    uint8_t in_use;
};

struct closed_flow {
    const char *label;
    uint32_t label_length;
    uint32_t use_number;
    size_t first_frame; /* its frame numbers: tracer.closed_frames[first_frame ...] */
    uint32_t frame_count;
    void *carried; /* the open flow's carried data, handed over on close (the caller's) */
};

struct tracer {
    struct tracer_config config;
    char *directory;
    char *extension;

    struct flow *flows; /* slots; free ones are chained through open_next */
    uint32_t flow_capacity;
    uint32_t free_slot;
    uint32_t open_count;
    uint32_t open_first, open_last;
    uint32_t last_found; /* the slot tracer_find() found last (checked again before use) */

    uint64_t *table; /* open addressing: (hash tag << 32) | (slot + 1); 0 is empty */
    uint64_t hash_seed;
    size_t table_capacity;

    struct closed_flow *closed;
    size_t closed_count, closed_capacity;
    int64_t *closed_frames; /* the closed flows' frame numbers, one after another */
    size_t closed_frames_count, closed_frames_capacity;

    struct label_set labels;

    struct flow_sink sink; /* the flows' files (its own struct per slot) */

    struct tracer_error error;
};

/* Makes room for more frame numbers (tracer_add_frame's slow path). Returns 0 or -1 (memory). */
int tracer_grow_frames(struct tracer *tr, uint32_t slot);
/* The frame numbers of an open flow (flow->frame_count of them). */
static inline const int64_t *flow_frames(const struct flow *flow)
{
    return flow->frame_capacity > FLOW_INLINE_FRAMES ? flow->frames.heap : flow->frames.in_place;
}
/* The frame numbers of closed flow i. */
static inline const int64_t *closed_flow_frames(const struct tracer *tr, size_t i)
{
    return tr->closed_frames + tr->closed[i].first_frame;
}
/* tracer_add_frame(), inline for the core's own per-frame loop. */
static inline int tracer_add_frame_inline(struct tracer *tr, uint32_t slot, int64_t frame_number)
{
    struct flow *flow = &tr->flows[slot];
    if (flow->frame_count == flow->frame_capacity && tracer_grow_frames(tr, slot) < 0)
        return -1;
    int64_t *frames = flow->frame_capacity > FLOW_INLINE_FRAMES ? flow->frames.heap : flow->frames.in_place;
    frames[flow->frame_count++] = frame_number;
    return 0;
}

#endif
