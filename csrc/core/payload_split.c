/* Payload files: each direction of each followed conversation written to
 * its own file, as tcpflow does, with what Follow TCP Stream found missing
 * kept as gaps for the index instead of filling the file. The files go
 * through the flow sink (buffers, bounded descriptors) in its raw mode. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "flow_sink.h"
#include "pcapflow_core.h"

enum { NAME_MAX_LENGTH = 2 * INET6_ADDRSTRLEN + 48 };

struct payload_split {
    struct tracer_config config;
    struct flow_sink sink;
    struct tracer_error *error;
    struct payload_stream *streams; /* by stream number */
    size_t count, capacity;
    char name[NAME_MAX_LENGTH];     /* the last name identify() made */
};

static void endpoint_text(const uint8_t *address, int family, char *out, size_t size)
{
    if (!inet_ntop(family == FLOW_FAMILY_IPV4 ? AF_INET : AF_INET6, address, out, (socklen_t)size))
        snprintf(out, size, "?");
}

/* "{stream}-{src}.{srcport}-{dst}.{dstport}" of the direction in slot. */
static struct flow_identity identify(const void *owner, uint32_t slot)
{
    struct payload_split *ps = (struct payload_split *)owner;
    const struct payload_stream *s = &ps->streams[slot / 2];
    const struct flow_key *k = &s->key;
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    endpoint_text(k->src, k->src_family, a, sizeof a);
    endpoint_text(k->dst, k->dst_family, b, sizeof b);
    if (slot % 2 == 0)
        snprintf(ps->name, sizeof ps->name, "%llu-%s.%u-%s.%u", (unsigned long long)(slot / 2), a, k->src_port, b,
                 k->dst_port);
    else
        snprintf(ps->name, sizeof ps->name, "%llu-%s.%u-%s.%u", (unsigned long long)(slot / 2), b, k->dst_port, a,
                 k->src_port);
    return (struct flow_identity){ps->name, 1, 0};
}

struct payload_split *payload_split_new(const char *directory, uint64_t max_pending_bytes, struct tracer_error *error)
{
    struct payload_split *ps = calloc(1, sizeof *ps);
    if (!ps) {
        *error = (struct tracer_error){.code = 12};
        snprintf(error->message, sizeof error->message, "out of memory");
        return NULL;
    }
    ps->error = error;
    ps->config = (struct tracer_config){
        .directory = directory,
        .extension = "",
        .write_pcap = 1,
        .flush_bytes = 64 << 10,
        .max_pending_bytes = max_pending_bytes ? max_pending_bytes : TRACER_DEFAULT_BUDGET,
    };
    if (sink_init(&ps->sink, &ps->config, error, identify, ps) < 0) {
        free(ps);
        return NULL;
    }
    ps->sink.raw = 1;
    return ps;
}

void payload_split_delete(struct payload_split *ps)
{
    if (!ps)
        return;
    sink_free(&ps->sink);
    for (uint64_t i = 0; i < ps->count; i++)
        for (int node = 0; node < 2; node++)
            free(ps->streams[i].directions[node].gaps);
    free(ps->streams);
    free(ps);
}

static int out_of_memory(struct payload_split *ps)
{
    *ps->error = (struct tracer_error){.code = 12};
    snprintf(ps->error->message, sizeof ps->error->message, "out of memory");
    return -1;
}

int payload_split_stream(void *context, uint64_t stream, const struct flow_key *key)
{
    struct payload_split *ps = context;
    if (stream >= UINT32_MAX / 2)
        return out_of_memory(ps);
    if (array_reserve(&ps->streams, &ps->capacity, stream + 1, sizeof *ps->streams, 256) < 0 ||
        sink_reserve(&ps->sink, (uint32_t)(ps->capacity * 2)) < 0)
        return out_of_memory(ps);
    memset(&ps->streams[stream], 0, sizeof ps->streams[stream]);
    ps->streams[stream].key = *key;
    ps->count = stream + 1;
    sink_start_flow(&ps->sink, (uint32_t)(stream * 2));
    sink_start_flow(&ps->sink, (uint32_t)(stream * 2 + 1));
    return 0;
}

int payload_split_nodes(void *context, uint64_t stream, const struct flow_key *key)
{
    struct payload_split *ps = context;
    ps->streams[stream].key = *key; /* node 0 sends: before any byte is written, so no file is named yet */
    return 0;
}

int payload_split_frame(void *context, uint64_t stream, int64_t frame, int64_t seconds, uint32_t nanoseconds)
{
    (void)frame;
    struct payload_stream *s = &((struct payload_split *)context)->streams[stream];
    if (s->frames++ == 0) {
        s->first_seconds = seconds;
        s->first_nanoseconds = nanoseconds;
    }
    s->last_seconds = seconds;
    s->last_nanoseconds = nanoseconds;
    return 0;
}

int payload_split_record(void *context, const struct follow_record *r)
{
    struct payload_split *ps = context;
    struct payload_direction *d = &ps->streams[r->stream].directions[r->node];
    if (r->missing) {
        if (array_reserve(&d->gaps, &d->gap_capacity, d->gap_count + 1, sizeof *d->gaps, 4) < 0)
            return out_of_memory(ps);
        d->gaps[d->gap_count++] = (struct payload_gap){d->bytes, r->missing, r->frame};
        return 0;
    }
    if (d->records++ == 0) {
        d->first_seconds = r->seconds;
        d->first_nanoseconds = r->nanoseconds;
    }
    d->last_seconds = r->seconds;
    d->last_nanoseconds = r->nanoseconds;
    d->bytes += r->length;
    /* a write that failed (a full disk) stops the run: the error names the file */
    return sink_queue_bytes(&ps->sink, (uint32_t)(r->stream * 2 + (uint64_t)r->node), r->data, r->length) < 0 ? -1 : 0;
}

int payload_split_finish(struct payload_split *ps)
{
    int status = 0;
    for (uint64_t slot = 0; slot < ps->count * 2; slot++)
        if (ps->streams[slot / 2].directions[slot % 2].records && ps->sink.files[slot].pending_length &&
            sink_flush(&ps->sink, (uint32_t)slot) < 0)
            status = -1;
    sink_close_files(&ps->sink);
    return status;
}

uint64_t payload_split_count(const struct payload_split *ps) { return ps->count; }

const struct payload_stream *payload_split_streams(const struct payload_split *ps) { return ps->streams; }

int payload_split_file_name(struct payload_split *ps, uint64_t stream, int node, char *out, size_t size)
{
    struct flow_identity id = identify(ps, (uint32_t)(stream * 2 + (uint64_t)node));
    int n = snprintf(out, size, "%s", id.label);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}
