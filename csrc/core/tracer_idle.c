/* Runs that go on for days.
 *
 * Idle flows: a flow that carries no frame for longer than the timeout
 * (capture time) is closed as if by FIN, so that a capture keeps only its
 * live connections open. Flows are kept in the order they were last
 * traced; each frame moves its flow to the end, and the flows at the front
 * are closed once the capture's time has passed their deadline: O(1) a
 * frame, in the order they fell idle.
 *
 * Forgetting: a run that wants no index keeps no closed flow, and on an
 * interface no old label either (below). */
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

/* ---- forgetting closed flows ---- */

void tracer_forget_closed(struct tracer *tr, int forget, int prune_labels)
{
    tr->forget_closed = forget;
    tr->prune_labels = forget && prune_labels;
    if (!tr->prune_labels_at)
        tr->prune_labels_at = 2 * tr->labels.count + 4096;
}

/* The whole seconds of a label's time ("...-{seconds}.{fraction}"), or
 * INT64_MAX when they cannot be told (a time before 1970, an exponent):
 * such a label is kept. Read by hand: strtod would follow the locale. */
static int64_t label_seconds(const char *label)
{
    const char *dash = strrchr(label, '-');
    if (!dash || dash == label || dash[-1] == '-' || dash[1] < '0' || dash[1] > '9')
        return INT64_MAX;
    int64_t seconds = 0;
    const char *c = dash + 1;
    for (; *c >= '0' && *c <= '9'; c++) {
        if (seconds > INT64_MAX / 10 - 10)
            return INT64_MAX;
        seconds = seconds * 10 + (*c - '0');
    }
    return *c == '.' || *c == '\0' ? seconds : INT64_MAX;
}

/* Makes a new label set of the labels of open flows and those at most
 * TRACER_LABEL_MEMORY_S older than the latest, and points the open flows at
 * it. Nothing is changed when memory is short. */
static void prune_labels(struct tracer *tr)
{
    const struct label_set *old = &tr->labels;
    int64_t latest = INT64_MIN;
    for (size_t i = 0; i < old->capacity; i++) {
        int64_t seconds = old->entries[i].text ? label_seconds(old->entries[i].text) : INT64_MIN;
        if (seconds != INT64_MAX && seconds > latest)
            latest = seconds;
    }
    struct label_set kept;
    label_set_init(&kept, old->seed);
    const char *interned;
    uint32_t uses;
    for (size_t i = 0; i < old->capacity; i++) {
        const struct label_entry *entry = &old->entries[i];
        if (entry->text && label_seconds(entry->text) >= latest - TRACER_LABEL_MEMORY_S &&
            label_set_keep(&kept, entry->text, strlen(entry->text), entry->uses, &interned, &uses) < 0)
            goto short_of_memory;
    }
    for (uint32_t slot = tr->open_first; slot != TRACER_NO_SLOT; slot = tr->flows[slot].open_next) {
        const struct flow *flow = &tr->flows[slot];
        if (label_set_keep(&kept, flow->label, flow->label_length, flow->use_number, &interned, &uses) < 0)
            goto short_of_memory;
    }
    for (uint32_t slot = tr->open_first; slot != TRACER_NO_SLOT; slot = tr->flows[slot].open_next) {
        struct flow *flow = &tr->flows[slot];
        flow->label = label_set_find(&kept, flow->label, flow->label_length);
    }
    label_set_free(&tr->labels);
    tr->labels = kept;
    tr->prune_labels_at = 2 * kept.count + 4096;
    return;
short_of_memory:
    label_set_free(&kept);
    tr->prune_labels_at = 2 * tr->labels.count + 4096;
}

void tracer_forgot_flow(struct tracer *tr)
{
    /* closed flows kept from before point into the labels: those stay */
    if (tr->prune_labels && tr->closed_count == 0 && tr->labels.count >= tr->prune_labels_at)
        prune_labels(tr);
}

size_t tracer_memory_bytes(const struct tracer *tr)
{
    size_t bytes = (size_t)tr->flow_capacity * (sizeof *tr->flows + (tr->idle ? sizeof *tr->idle : 0));
    bytes += tr->table_capacity * sizeof *tr->table;
    bytes += tr->closed_capacity * sizeof *tr->closed + tr->closed_steps_capacity;
    bytes += tr->labels.capacity * sizeof *tr->labels.entries + tr->labels.text_bytes;
    for (uint32_t slot = tr->open_first; slot != TRACER_NO_SLOT; slot = tr->flows[slot].open_next)
        if (tr->flows[slot].frames.capacity > FRAME_LIST_INLINE)
            bytes += tr->flows[slot].frames.capacity;
    return bytes;
}
