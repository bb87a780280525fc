/* The tracer's own structures, for csrc/core's files only: code outside the
 * core uses tracer.h, where struct tracer is opaque. */
#ifndef PCAPFLOW_TRACER_INTERNAL_H
#define PCAPFLOW_TRACER_INTERNAL_H

#include "flow_key.h"
#include "flow_sink.h"
#include "frame_list.h"
#include "label.h"
#include "label_set.h"
#include "pcapflow_core.h"

/* What every packet of a flow touches comes first: the key, the frame
 * numbers and the caller's carried data. */
struct flow {
    struct flow_key key;
    struct frame_list frames; /* a few frames' differences in place: most flows need no allocation */
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
    /* bidirectional tracers only (in what was padding: a flow is no larger) */
    uint8_t opener_swapped; /* the first frame's key was the connection key swapped */
    uint8_t fins;           /* bit 0: the first frame's side sent FIN, bit 1: the other side */
    uint8_t fins_before;    /* fins before the last frame, put back when that frame is taken back */
};

/* When a flow was last traced, and its place in the least recently traced
 * list. */
struct flow_idle {
    int64_t last_seen_ns;
    uint32_t prev, next;
    uint8_t linked;
};

struct closed_flow {
    const char *label;
    uint32_t label_length;
    uint32_t use_number;
    uint32_t frame_count;
    int64_t first_frame;
    size_t steps; /* the differences after the first frame: tracer.closed_steps + steps */
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
    uint8_t *closed_steps; /* the closed flows' frame differences, one flow after another */
    size_t closed_steps_length, closed_steps_capacity;

    struct label_set labels;
    struct label_set split_files; /* "{name}~{linktype}" files made for frames of another link type */

    struct flow_sink sink; /* the flows' files (its own struct per slot) */

    /* idle flows (tracer_idle.c); idle is NULL until a timeout is set, so
     * that a tracer without one pays nothing per flow */
    struct flow_idle *idle;         /* one per slot */
    uint64_t idle_timeout_ns;       /* 0: flows never idle out */
    int64_t idle_now_ns;            /* the latest capture time seen */
    uint32_t idle_first, idle_last; /* flows traced by the capture loop, least recently first */
    uint64_t idle_closed;

    struct tracer_error error;
};

/* tracer_idle.c's part of the slots' lifecycle: the table of slots grows
 * to capacity (0 or -1: memory), a flow leaves them. */
int tracer_idle_reserve(struct tracer *tr, uint32_t capacity);
void tracer_idle_forget(struct tracer *tr, uint32_t slot);

/* Sets tr->error to "out of memory"; returns -1. */
int tracer_out_of_memory(struct tracer *tr);

/* tracer_add_frame(), inline for the core's own per-frame loop. */
static inline int tracer_add_frame_inline(struct tracer *tr, uint32_t slot, int64_t frame_number)
{
    if (tr->config.no_frame_numbers)
        return 0;
    return frame_list_add(&tr->flows[slot].frames, frame_number) == 0 ? 0 : tracer_out_of_memory(tr);
}

#endif
