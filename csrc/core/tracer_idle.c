/* Idle flows: a flow that carries no frame for longer than the timeout
 * (capture time) is closed as if by FIN, so that a capture running for days
 * keeps only its live connections open. Flows are kept in the order they
 * were last traced; each frame moves its flow to the end, and the flows at
 * the front are closed once the capture's time has passed their deadline:
 * O(1) a frame, in the order they fell idle. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tracer_internal.h"

int tracer_idle_reserve(struct tracer *tr, uint32_t capacity)
{
    if (!tr->idle)
        return 0;
    struct flow_idle *idle = realloc(tr->idle, (size_t)capacity * sizeof *idle);
    if (!idle)
        return -1;
    if (capacity > tr->flow_capacity)
        memset(idle + tr->flow_capacity, 0, (size_t)(capacity - tr->flow_capacity) * sizeof *idle);
    tr->idle = idle;
    return 0;
}

int tracer_set_idle_timeout(struct tracer *tr, uint64_t timeout_ns)
{
    if (timeout_ns && !tr->idle) {
        /* flows open before now are not in the list until their next frame */
        tr->idle = calloc(tr->flow_capacity ? tr->flow_capacity : 1, sizeof *tr->idle);
        if (!tr->idle)
            return tracer_out_of_memory(tr);
        tr->idle_first = tr->idle_last = TRACER_NO_SLOT;
        tr->idle_now_ns = INT64_MIN;
    }
    tr->idle_timeout_ns = timeout_ns;
    return 0;
}

void tracer_idle_forget(struct tracer *tr, uint32_t slot)
{
    if (!tr->idle || !tr->idle[slot].linked)
        return;
    struct flow_idle *entry = &tr->idle[slot];
    if (entry->prev != TRACER_NO_SLOT)
        tr->idle[entry->prev].next = entry->next;
    else
        tr->idle_first = entry->next;
    if (entry->next != TRACER_NO_SLOT)
        tr->idle[entry->next].prev = entry->prev;
    else
        tr->idle_last = entry->prev;
    entry->linked = 0;
}

void tracer_idle_touch(struct tracer *tr, uint32_t slot)
{
    if (!tr->idle || !tr->idle_timeout_ns)
        return;
    tracer_idle_forget(tr, slot);
    struct flow_idle *entry = &tr->idle[slot];
    /* the latest time seen, not the frame's own: a frame stamped earlier
     * than one before it (a merged capture) keeps the list in order */
    entry->last_seen_ns = tr->idle_now_ns;
    entry->prev = tr->idle_last;
    entry->next = TRACER_NO_SLOT;
    entry->linked = 1;
    if (tr->idle_last != TRACER_NO_SLOT)
        tr->idle[tr->idle_last].next = slot;
    else
        tr->idle_first = slot;
    tr->idle_last = slot;
}

long tracer_expire_idle(struct tracer *tr, int64_t now_ns)
{
    if (!tr->idle || !tr->idle_timeout_ns)
        return 0;
    if (now_ns > tr->idle_now_ns)
        tr->idle_now_ns = now_ns;
    long closed = 0;
    while (tr->idle_first != TRACER_NO_SLOT) {
        uint32_t slot = tr->idle_first;
        int64_t last = tr->idle[slot].last_seen_ns;
        /* idle for longer than the timeout (times far apart cannot overflow) */
        if (last > tr->idle_now_ns || (uint64_t)(tr->idle_now_ns - last) <= tr->idle_timeout_ns)
            break;
        int write_failed;
        if (tracer_close_flow(tr, slot, &write_failed) < 0)
            return -1;
        tr->idle_closed++;
        closed++;
        if (write_failed) /* tr->error names its file */
            return -1;
    }
    return closed;
}

uint64_t tracer_idle_closed(const struct tracer *tr) { return tr->idle_closed; }
