#include "tracer_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

size_t tracer_flow_bytes(void) { return sizeof(struct flow); }

static void set_error(struct tracer *tr, int code, const char *message, const char *path)
{
    tr->error.code = code;
    snprintf(tr->error.message, sizeof tr->error.message, "%s", message);
    snprintf(tr->error.path, sizeof tr->error.path, "%s", path ? path : "");
}

int tracer_out_of_memory(struct tracer *tr)
{
    set_error(tr, ENOMEM, "out of memory", NULL);
    return -1;
}

static char *copy_text(const char *text)
{
    size_t n = strlen(text) + 1;
    char *copy = malloc(n);
    return copy ? memcpy(copy, text, n) : NULL;
}

/* A quarter of the descriptor limit, so that the rest of the process keeps
 * most of its descriptors; at most 256, at least 1. */
static uint32_t default_max_open_files(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur == RLIM_INFINITY)
        return 256;
    rlim_t quarter = limit.rlim_cur / 4;
    return quarter < 1 ? 1 : quarter > 256 ? 256 : (uint32_t)quarter;
}

/* What the sink asks of a flow when it makes the flow's file. */
static struct flow_identity identify_flow(const void *owner, uint32_t slot)
{
    const struct flow *flow = &((const struct tracer *)owner)->flows[slot];
    return (struct flow_identity){flow->label, flow->use_number, flow->linktype};
}

static int tracer_init(struct tracer *tr, const struct tracer_config *config)
{
    memset(tr, 0, sizeof *tr);
    tr->config = *config;
    tr->free_slot = tr->open_first = tr->open_last = tr->last_found = TRACER_NO_SLOT;
    tr->hash_seed = flow_key_random_seed();
    label_set_init(&tr->labels, flow_key_random_seed());
    label_set_init(&tr->split_files, flow_key_random_seed());
    if (!tr->config.max_open_files)
        tr->config.max_open_files = default_max_open_files();
    if (!tr->config.flush_bytes)
        tr->config.flush_bytes = 64 * 1024;
    if (!tr->config.max_pending_bytes)
        tr->config.max_pending_bytes = TRACER_DEFAULT_BUDGET;
    if (!tr->config.extension)
        tr->config.write_pcap = 0;

    tr->directory = copy_text(config->directory);
    tr->extension = copy_text(config->extension ? config->extension : "");
    if (!tr->directory || !tr->extension) {
        set_error(tr, ENOMEM, "out of memory", NULL);
        return -1;
    }
    /* the caller's strings need not outlive this call */
    tr->config.directory = tr->directory;
    tr->config.extension = tr->config.extension ? tr->extension : NULL;
    if (sink_init(&tr->sink, &tr->config, &tr->error, identify_flow, tr) < 0)
        return -1;
    return 0;
}

static void tracer_free(struct tracer *tr)
{
    sink_free(&tr->sink);
    for (uint32_t slot = 0; slot < tr->flow_capacity; slot++)
        if (tr->flows[slot].in_use)
            frame_list_free(&tr->flows[slot].frames);
    free(tr->flows);
    free(tr->table);
    free(tr->closed);
    free(tr->closed_steps);
    free(tr->idle);
    free(tr->directory);
    free(tr->extension);
    label_set_free(&tr->labels);
    label_set_free(&tr->split_files);
    memset(tr, 0, sizeof *tr);
}

struct tracer *tracer_new(const struct tracer_config *config, struct tracer_error *error)
{
    struct tracer *tr = malloc(sizeof *tr);
    if (!tr) {
        *error = (struct tracer_error){.code = ENOMEM};
        snprintf(error->message, sizeof error->message, "out of memory");
        return NULL;
    }
    if (tracer_init(tr, config) < 0) {
        *error = tr->error;
        tracer_free(tr);
        free(tr);
        return NULL;
    }
    return tr;
}

void tracer_delete(struct tracer *tr)
{
    if (!tr)
        return;
    tracer_free(tr);
    free(tr);
}

/* ---- the hash table: linear probing over (tag, slot) words ---- */

static uint64_t table_word(uint64_t hash, uint32_t slot) { return (hash >> 32) << 32 | (uint64_t)(slot + 1); }
static uint32_t word_slot(uint64_t word) { return (uint32_t)(word & 0xffffffffu) - 1; }
/* Where a hash (or the word holding its tag) starts probing: taken from the
 * tag, so moving words (growth, deletion) needs no key hashed again. */
static size_t home_of(uint64_t hash_or_word, size_t mask) { return (size_t)(hash_or_word >> 32) & mask; }

static int table_grow(struct tracer *tr)
{
    size_t capacity = tr->table_capacity ? tr->table_capacity * 2 : 64;
    uint64_t *table = calloc(capacity, sizeof *table);
    if (!table)
        return -1;
    for (size_t i = 0; i < tr->table_capacity; i++) {
        uint64_t word = tr->table[i];
        if (!word)
            continue;
        size_t j = home_of(word, capacity - 1);
        while (table[j])
            j = (j + 1) & (capacity - 1);
        table[j] = word;
    }
    free(tr->table);
    tr->table = table;
    tr->table_capacity = capacity;
    return 0;
}

/* tracer_find(), inline for tracer_trace() */
static inline __attribute__((always_inline)) uint32_t find_slot(struct tracer *tr, const struct flow_key *key)
{
    /* a connection's packets often come in runs in one direction */
    uint32_t last = tr->last_found;
    if (last < tr->flow_capacity && tr->flows[last].in_use && flow_key_equal(&tr->flows[last].key, key))
        return last;
    if (!tr->table_capacity)
        return TRACER_NO_SLOT;
    uint64_t hash = flow_key_hash(key, tr->hash_seed);
    size_t mask = tr->table_capacity - 1;
    for (size_t i = home_of(hash, mask);; i = (i + 1) & mask) {
        uint64_t word = tr->table[i];
        if (!word)
            return TRACER_NO_SLOT;
        if (word >> 32 == hash >> 32 && flow_key_equal(&tr->flows[word_slot(word)].key, key))
            return tr->last_found = word_slot(word);
    }
}

uint32_t tracer_find(struct tracer *tr, const struct flow_key *key)
{
    struct flow_key connection;
    if (tr->config.bidirectional) {
        (void)flow_key_connection(key, &connection);
        key = &connection;
    }
    return find_slot(tr, key);
}

static void table_remove(struct tracer *tr, uint32_t slot)
{
    size_t mask = tr->table_capacity - 1;
    size_t i = home_of(flow_key_hash(&tr->flows[slot].key, tr->hash_seed), mask);
    while (word_slot(tr->table[i]) != slot)
        i = (i + 1) & mask;
    /* backward-shift deletion keeps every probe chain unbroken without tombstones */
    for (size_t j = (i + 1) & mask; tr->table[j]; j = (j + 1) & mask) {
        size_t home = home_of(tr->table[j], mask);
        int movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            tr->table[i] = tr->table[j];
            i = j;
        }
    }
    tr->table[i] = 0;
}

/* ---- flow slots ---- */

static uint32_t take_slot(struct tracer *tr)
{
    if (tr->free_slot == TRACER_NO_SLOT) {
        uint32_t capacity = tr->flow_capacity ? tr->flow_capacity * 2 : 64;
        if (capacity <= tr->flow_capacity || capacity >= TRACER_NO_SLOT || sink_reserve(&tr->sink, capacity) < 0 ||
            tracer_idle_reserve(tr, capacity) < 0)
            return TRACER_NO_SLOT;
        struct flow *flows = realloc(tr->flows, capacity * sizeof *flows);
        if (!flows)
            return TRACER_NO_SLOT;
        memset(flows + tr->flow_capacity, 0, (capacity - tr->flow_capacity) * sizeof *flows);
        for (uint32_t s = capacity; s-- > tr->flow_capacity;) {
            flows[s].open_next = tr->free_slot;
            tr->free_slot = s;
        }
        tr->flows = flows;
        tr->flow_capacity = capacity;
    }
    uint32_t slot = tr->free_slot;
    tr->free_slot = tr->flows[slot].open_next;
    return slot;
}

uint32_t tracer_open(struct tracer *tr, const struct flow_key *key, const char *timestamp,
                     size_t timestamp_length, uint32_t linktype)
{
    /* the label is the frame's own direction; the table holds the connection's key */
    struct flow_key connection;
    const struct flow_key *table_key = key;
    int order = 0;
    if (tr->config.bidirectional) {
        order = flow_key_connection(key, &connection);
        table_key = &connection;
    }
    char label[LABEL_MAX];
    size_t label_length = format_label(key, timestamp, timestamp_length, tr->config.mapped_as_dotted, label);
    if (!label_length) {
        set_error(tr, 0, "timestamp text cannot be part of a file name", NULL);
        return TRACER_NO_SLOT;
    }
    if ((tr->open_count + 1) * 2 > tr->table_capacity && table_grow(tr) < 0) {
        set_error(tr, ENOMEM, "out of memory", NULL);
        return TRACER_NO_SLOT;
    }
    uint32_t slot = take_slot(tr);
    if (slot == TRACER_NO_SLOT) {
        set_error(tr, ENOMEM, "out of memory", NULL);
        return TRACER_NO_SLOT;
    }
    struct flow *flow = &tr->flows[slot];
    uint64_t generation = flow->generation + 1;
    memset(flow, 0, sizeof *flow);
    flow->generation = generation;
    sink_start_flow(&tr->sink, slot);
    frame_list_init(&flow->frames);

    const char *interned;
    uint32_t use_number;
    char name[NAME_MAX + 1];
    int failed = label_set_use(&tr->labels, label, label_length, &interned, &use_number) < 0;
    if (failed)
        set_error(tr, ENOMEM, "out of memory", NULL);
    else if (tr->config.extension && sink_file_name(&tr->sink, interned, use_number, name, sizeof name) < 0) {
        /* refused now, while nothing depends on it: a file that cannot be
         * made would fail every later flush, index and close */
        set_error(tr, ENAMETOOLONG, "flow label too long for a file name", interned);
        failed = 1;
    }
    if (failed) {
        flow->open_next = tr->free_slot;
        tr->free_slot = slot;
        return TRACER_NO_SLOT;
    }
    flow->key = *table_key;
    flow->opener_swapped = order > 0;
    flow->label = interned;
    flow->label_length = (uint32_t)label_length;
    flow->use_number = use_number;
    flow->linktype = linktype;
    flow->in_use = 1;

    flow->open_prev = tr->open_last;
    flow->open_next = TRACER_NO_SLOT;
    if (tr->open_last != TRACER_NO_SLOT)
        tr->flows[tr->open_last].open_next = slot;
    else
        tr->open_first = slot;
    tr->open_last = slot;
    tr->open_count++;

    size_t mask = tr->table_capacity - 1;
    uint64_t hash = flow_key_hash(table_key, tr->hash_seed);
    size_t i = home_of(hash, mask);
    while (tr->table[i])
        i = (i + 1) & mask;
    tr->table[i] = table_word(hash, slot);
    return slot;
}

int tracer_write_frame(struct tracer *tr, uint32_t slot, const struct pcap_record *record,
                       const uint8_t *data, size_t length)
{
    if (!tr->config.write_pcap)
        return 0;
    return sink_queue(&tr->sink, slot, record, data, length);
}

/* Takes the flow out of the table and the open list and frees its slot. */
static void unlink_flow(struct tracer *tr, uint32_t slot)
{
    struct flow *flow = &tr->flows[slot];
    sink_release(&tr->sink, slot);
    tracer_idle_forget(tr, slot);
    frame_list_free(&flow->frames);
    table_remove(tr, slot);
    if (flow->open_prev != TRACER_NO_SLOT)
        tr->flows[flow->open_prev].open_next = flow->open_next;
    else
        tr->open_first = flow->open_next;
    if (flow->open_next != TRACER_NO_SLOT)
        tr->flows[flow->open_next].open_prev = flow->open_prev;
    else
        tr->open_last = flow->open_prev;
    tr->open_count--;
    flow->in_use = 0;
    flow->open_next = tr->free_slot;
    tr->free_slot = slot;
}

void tracer_discard_flow(struct tracer *tr, uint32_t slot) { unlink_flow(tr, slot); }

long tracer_close_flow(struct tracer *tr, uint32_t slot, int *write_failed)
{
    struct flow *flow = &tr->flows[slot];
    *write_failed = tr->config.write_pcap && sink_finish(&tr->sink, slot) < 0;
    if (tr->forget_closed) {
        unlink_flow(tr, slot);
        tracer_forgot_flow(tr);
        return TRACER_CLOSED_FORGOTTEN;
    }

    if (tr->closed_count == tr->closed_capacity) {
        size_t capacity = tr->closed_capacity ? tr->closed_capacity * 2 : 64;
        struct closed_flow *closed = realloc(tr->closed, capacity * sizeof *closed);
        if (!closed) {
            set_error(tr, ENOMEM, "out of memory", NULL);
            return -1;
        }
        tr->closed = closed;
        tr->closed_capacity = capacity;
    }
    const struct frame_list *frames = &flow->frames;
    if (tr->closed_steps_capacity - tr->closed_steps_length < frames->length) {
        size_t capacity = tr->closed_steps_capacity ? tr->closed_steps_capacity : 4096;
        while (capacity - tr->closed_steps_length < frames->length)
            capacity *= 2;
        uint8_t *steps = realloc(tr->closed_steps, capacity);
        if (!steps) {
            set_error(tr, ENOMEM, "out of memory", NULL);
            return -1;
        }
        tr->closed_steps = steps;
        tr->closed_steps_capacity = capacity;
    }
    if (frames->length) /* (closed_steps is NULL until a flow with more than one frame closes) */
        memcpy(tr->closed_steps + tr->closed_steps_length, frame_list_bytes(frames), frames->length);
    tr->closed[tr->closed_count] = (struct closed_flow){
        flow->label, flow->label_length, flow->use_number, frames->count, frames->first, tr->closed_steps_length,
        flow->carried,
    };
    tr->closed_steps_length += frames->length;
    flow->carried = NULL; /* now the closed flow's */
    unlink_flow(tr, slot);
    return (long)tr->closed_count++;
}

int tracer_output_path(const struct tracer *tr, const char *label, uint32_t use_number, char *out,
                       size_t size)
{
    char name[LABEL_MAX + 32];
    if (sink_file_name(&tr->sink, label, use_number, name, sizeof name) < 0)
        return -1;
    int n = snprintf(out, size, "%s/%s", tr->directory, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* tracer_trace() for a frame of a flow not open yet: the caller describes
 * the flow. Out of line, so the common frame's path keeps no label buffer. */
static __attribute__((noinline)) enum trace_status open_for_frame(struct tracer *tr, const struct flow_key *key,
                                                                  tracer_describe_flow describe, void *context,
                                                                  uint32_t *slot)
{
    char timestamp[LABEL_MAX_TIMESTAMP + 1];
    size_t length;
    uint32_t linktype;
    if (describe(context, timestamp, &length, &linktype) < 0)
        return TRACE_DESCRIBE_FAILED;
    *slot = tracer_open(tr, key, timestamp, length, linktype);
    return *slot == TRACER_NO_SLOT ? TRACE_FAILED : TRACE_OK;
}

/* A frame of another link type than its flow's pcap file (a series of an
 * Ethernet and a raw-IP capture, a pcapng file with both) would be read
 * under the wrong header: it goes to a file of its own link type beside the
 * flow's, "{label}[_{use}]~{linktype}{extension}" ('~' is in no label), made
 * on the first such frame of this trace and appended to after. The flow's
 * index lists it all the same; fpout stays the flow's own file. Rare, so
 * opened per frame. Returns 1 (written there) or -1 (tr->error). */
static __attribute__((noinline)) int write_other_link(struct tracer *tr, const struct traced_frame *frame,
                                                      uint32_t slot)
{
    const struct flow *flow = &tr->flows[slot];
    char name[NAME_MAX + 1], split[NAME_MAX + 1];
    size_t extension = strlen(tr->extension);
    if (sink_file_name(&tr->sink, flow->label, flow->use_number, name, sizeof name) < 0 ||
        snprintf(split, sizeof split, "%.*s~%u%s", (int)(strlen(name) - extension), name, frame->linktype,
                 tr->extension) >= (int)sizeof split) {
        set_error(tr, ENAMETOOLONG, "flow label too long for a file name", flow->label);
        return -1;
    }
    const char *interned;
    uint32_t uses;
    if (label_set_use(&tr->split_files, split, strlen(split), &interned, &uses) < 0)
        return tracer_out_of_memory(tr);
    return sink_append_named(&tr->sink, split, uses == 1, frame->linktype, frame->record, frame->data,
                             frame->record->incl_len) < 0 ? -1 : 1;
}

/* tracer_trace() once the frame number is recorded: writing its record,
 * and closing its flow when the frame ended it. Inline: it is most of the
 * per-frame path. */
static inline __attribute__((always_inline)) enum trace_status
write_and_close(struct tracer *tr, const struct traced_frame *frame, struct trace_outcome *outcome, int ends)
{
    uint32_t slot = outcome->slot;
    /* out of line: the common frame's path keeps no file name buffers */
    int other = tr->config.write_pcap && frame->linktype && frame->linktype != tr->flows[slot].linktype;
    int written = other ? write_other_link(tr, frame, slot) : 0;
    if (written == 0)
        written = tracer_write_frame(tr, slot, frame->record, frame->data, frame->record->incl_len);
    else if (written == 1)
        written = 0;
    if (written == TRACER_QUEUED_UNWRITTEN)
        return TRACE_WRITE_PENDING;
    if (written < 0) {
        frame_list_drop_last(&tr->flows[slot].frames); /* the index lists exactly the frames the files hold */
        tr->flows[slot].fins = tr->flows[slot].fins_before;
        if (tr->error.code == 0 && frame->number > 0) {
            /* a frame the file format cannot hold: name it */
            char message[sizeof tr->error.message];
            snprintf(message, sizeof message, "frame %lld: %.*s", (long long)frame->number,
                     (int)sizeof message - 32, tr->error.message);
            memcpy(tr->error.message, message, sizeof message);
        }
        if (outcome->opened) {
            tracer_discard_flow(tr, slot);
            outcome->slot = TRACER_NO_SLOT;
        }
        return TRACE_FAILED;
    }
    if (!ends)
        return TRACE_OK;
    outcome->ends = 1;
    int write_failed;
    if ((outcome->closed = tracer_close_flow(tr, slot, &write_failed)) < 0)
        return TRACE_FAILED;
    outcome->slot = TRACER_NO_SLOT;
    return write_failed ? TRACE_CLOSE_WRITE_FAILED : TRACE_OK;
}

/* Whether a frame ends its connection's flow in a bidirectional tracer: an
 * RST, or a FIN once the other side has sent one too (a FIN sent again by
 * the same side does not). order is flow_key_connection()'s answer for the
 * frame's key; when both endpoints are the same the sides cannot be told
 * apart, and the first FIN counts for one, the next for the other. The FINs
 * before the frame are kept, so that taking the frame back takes its FIN
 * back too. */
static int connection_ends(struct flow *flow, const struct traced_frame *frame, int order)
{
    flow->fins_before = flow->fins;
    if (frame->tcp_flags & TCP_FLAG_FIN) {
        unsigned side = order == 0 ? flow->fins & 1u : (unsigned)(order > 0) ^ flow->opener_swapped;
        flow->fins |= (uint8_t)(1u << side);
    }
    return (frame->tcp_flags & TCP_FLAG_RST) || flow->fins == 3;
}

/* tracer_trace(), made twice by the compiler: `bidirectional` is a constant
 * in each, so the one-direction path (pcapkit's) has none of the other's
 * work, only the test that chose it. */
static inline __attribute__((always_inline)) enum trace_status
trace_frame(struct tracer *tr, const struct traced_frame *frame, tracer_describe_flow describe, void *context,
            struct trace_outcome *outcome, const int bidirectional)
{
    outcome->opened = outcome->ends = 0;
    outcome->closed = -1;
    struct flow_key connection;
    const struct flow_key *key = &frame->key;
    int order = 0;
    if (bidirectional) {
        order = flow_key_connection(&frame->key, &connection);
        key = &connection;
    }
    uint32_t slot = find_slot(tr, key);
    if (slot == TRACER_NO_SLOT) {
        enum trace_status opened = open_for_frame(tr, &frame->key, describe, context, &slot);
        if (opened != TRACE_OK) {
            outcome->slot = TRACER_NO_SLOT;
            return opened;
        }
        outcome->opened = 1;
    }
    outcome->slot = slot;
    if (tracer_add_frame_inline(tr, slot, frame->number) < 0) {
        if (outcome->opened) {
            tracer_discard_flow(tr, slot);
            outcome->slot = TRACER_NO_SLOT;
        }
        return TRACE_FAILED;
    }
    int ends = bidirectional ? connection_ends(&tr->flows[slot], frame, order) : frame->tcp_flags & TCP_FLAG_FIN;
    if (frame->record)
        return write_and_close(tr, frame, outcome, ends);
    outcome->ends = ends; /* the caller closes */
    return TRACE_OK;
}

/* Each out of line, so that tracer_trace() chooses before any register is
 * saved and jumps to either. */
static __attribute__((noinline)) enum trace_status trace_one_way(struct tracer *tr, const struct traced_frame *frame,
                                                                 tracer_describe_flow describe, void *context,
                                                                 struct trace_outcome *outcome)
{
    return trace_frame(tr, frame, describe, context, outcome, 0);
}

static __attribute__((noinline)) enum trace_status trace_both_ways(struct tracer *tr, const struct traced_frame *frame,
                                                                   tracer_describe_flow describe, void *context,
                                                                   struct trace_outcome *outcome)
{
    return trace_frame(tr, frame, describe, context, outcome, 1);
}

enum trace_status tracer_trace(struct tracer *tr, const struct traced_frame *frame, tracer_describe_flow describe,
                               void *context, struct trace_outcome *outcome)
{
    if (__builtin_expect(tr->config.bidirectional, 0))
        return trace_both_ways(tr, frame, describe, context, outcome);
    return trace_one_way(tr, frame, describe, context, outcome);
}

/* ---- the caller's view (tracer.h) ---- */

int tracer_add_frame(struct tracer *tr, uint32_t slot, int64_t frame_number)
{
    return tracer_add_frame_inline(tr, slot, frame_number);
}

void tracer_forget_last_frame(struct tracer *tr, uint32_t slot)
{
    frame_list_drop_last(&tr->flows[slot].frames);
    tr->flows[slot].fins = tr->flows[slot].fins_before;
}

uint32_t tracer_open_count(const struct tracer *tr) { return tr->open_count; }
size_t tracer_closed_count(const struct tracer *tr) { return tr->closed_count; }
uint32_t tracer_first_open(const struct tracer *tr) { return tr->open_first; }
uint32_t tracer_next_open(const struct tracer *tr, uint32_t slot) { return tr->flows[slot].open_next; }

struct flow_view tracer_open_view(const struct tracer *tr, uint32_t slot)
{
    const struct flow *flow = &tr->flows[slot];
    return (struct flow_view){flow->label, flow->label_length, flow->use_number, flow->frames.count,
                              flow->frames.first, frame_list_bytes(&flow->frames)};
}

struct flow_view tracer_closed_view(const struct tracer *tr, size_t i)
{
    const struct closed_flow *closed = &tr->closed[i];
    return (struct flow_view){closed->label, closed->label_length, closed->use_number, closed->frame_count,
                              closed->first_frame,
                              tr->closed_steps ? tr->closed_steps + closed->steps : NULL};
}

struct flow_handle tracer_handle(const struct tracer *tr, uint32_t slot)
{
    return (struct flow_handle){slot, tr->flows[slot].generation};
}

uint32_t tracer_slot_of(const struct tracer *tr, struct flow_handle handle)
{
    int open = handle.slot < tr->flow_capacity && tr->flows[handle.slot].in_use &&
               tr->flows[handle.slot].generation == handle.generation;
    return open ? handle.slot : TRACER_NO_SLOT;
}

void **tracer_carried(struct tracer *tr, uint32_t slot) { return &tr->flows[slot].carried; }
void **tracer_open_data(struct tracer *tr, uint32_t slot) { return &tr->flows[slot].open_data; }
void **tracer_closed_carried(struct tracer *tr, size_t i) { return &tr->closed[i].carried; }
struct tracer_output_counts tracer_output_counts(const struct tracer *tr) { return tr->sink.counts; }
uint64_t tracer_output_budget(const struct tracer *tr) { return tr->config.max_pending_bytes; }
const struct tracer_error *tracer_last_error(const struct tracer *tr) { return &tr->error; }

/* ---- the flows' files (flow_sink.c) ---- */

int tracer_flush_all(struct tracer *tr)
{
    if (!tr->config.write_pcap)
        return 0;
    int status = 0;
    TRACER_FOR_EACH_OPEN(tr, slot)
        if (sink_flush(&tr->sink, slot) < 0)
            status = -1;
    return status;
}

int tracer_start_write_behind(struct tracer *tr, int threads) { return sink_start_writers(&tr->sink, threads); }
int tracer_finish_write_behind(struct tracer *tr) { return sink_finish_writers(&tr->sink); }
void tracer_close_files(struct tracer *tr) { sink_close_files(&tr->sink); }

int tracer_claim(struct tracer *tr, const char *fallback, const char *journal)
{
    if (!tr->config.write_pcap || tr->open_count || tr->closed_count || tr->sink.fallback_fd >= 0) {
        set_error(tr, EINVAL, "claim mode is for a pcap-writing tracer before its first flow", "");
        return -1;
    }
    return sink_claim(&tr->sink, fallback, journal);
}
void tracer_drop_pending(struct tracer *tr, uint32_t slot) { sink_drop_pending(&tr->sink, slot); }

int tracer_append_to_closed(struct tracer *tr, const char *label, uint32_t use_number,
                            const struct pcap_record *record, const uint8_t *data, size_t length)
{
    return sink_append(&tr->sink, label, use_number, record, data, length);
}
