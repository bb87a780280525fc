#include "capture.h"

#include <string.h>

#include "decode.h"
#include "timestamp_text.h"

int capture_open(struct capture *c, FILE *file)
{
    memset(c, 0, sizeof *c);
    c->pcap = pcap_fopen_offline_with_tstamp_precision(file, PCAP_TSTAMP_PRECISION_NANO, c->errbuf);
    if (!c->pcap) {
        fclose(file);
        return -1;
    }
    c->file = file;
    c->linktype = pcap_datalink(c->pcap);
    return 0;
}

int capture_set_filter(struct capture *c, const char *expression)
{
    if (pcap_compile(c->pcap, &c->filter, expression, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        snprintf(c->errbuf, sizeof c->errbuf, "%s", pcap_geterr(c->pcap));
        return -1;
    }
    c->has_filter = 1;
    return 0;
}

void capture_close(struct capture *c)
{
    if (c->has_filter)
        pcap_freecode(&c->filter);
    if (c->pcap)
        pcap_close(c->pcap);
    c->pcap = NULL;
    c->file = NULL;
    c->has_filter = 0;
}

uint64_t capture_offset(const struct capture *c)
{
    long offset = c->file ? ftell(c->file) : -1;
    return offset < 0 ? 0 : (uint64_t)offset;
}

/* Traces one decoded TCP frame. Returns 0 or -1 (tr->error). */
static int trace_tcp_frame(struct tracer *tr, const struct decoded_frame *decoded, const struct pcap_pkthdr *header,
                           const uint8_t *data, uint64_t frame_number, int linktype, struct capture_stats *stats)
{
    /* the file holds 32-bit unsigned fields; libpcap hands them over in
     * signed types, so an out-of-range sub-second value (2^31, say) would
     * come out negative without these casts */
    uint64_t seconds = (uint32_t)header->ts.tv_sec;
    uint32_t nanoseconds = (uint32_t)header->ts.tv_usec; /* nanoseconds: opened at nanosecond precision */
    uint32_t slot = tracer_find(tr, &decoded->key);
    if (slot == TRACER_NO_SLOT) {
        char timestamp[TIMESTAMP_TEXT_MAX];
        size_t length = format_timestamp(seconds, nanoseconds, timestamp);
        slot = tracer_open(tr, &decoded->key, timestamp, length, (uint32_t)linktype);
        if (slot == TRACER_NO_SLOT)
            return -1;
        stats->flows_opened++;
    }
    if (tracer_add_frame(tr, slot, (int64_t)frame_number) < 0)
        return -1;
    struct pcap_record record = {
        .ts_sec = seconds,
        .ts_frac = nanoseconds,
        .frac_is_nanosecond = 1,
        .incl_len = header->caplen,
        .orig_len = header->len,
    };
    if (tracer_write_frame(tr, slot, &record, data, header->caplen) < 0)
        return -1;
    if (decoded->tcp_flags & TCP_FLAG_FIN) {
        int write_failed;
        if (tracer_close_flow(tr, slot, &write_failed) < 0 || write_failed)
            return -1;
    }
    return 0;
}

enum capture_status capture_trace(struct capture *c, struct tracer *tr, uint64_t *frame_number, uint64_t max_frames,
                                  struct capture_stats *stats)
{
    struct pcap_pkthdr *header;
    const u_char *data;
    for (uint64_t n = 0; n < max_frames; n++) {
        int status = pcap_next_ex(c->pcap, &header, &data);
        if (status == PCAP_ERROR_BREAK)
            return CAPTURE_DONE;
        if (status != 1) {
            snprintf(c->errbuf, sizeof c->errbuf, "%s", pcap_geterr(c->pcap));
            return CAPTURE_DAMAGED;
        }
        ++*frame_number;
        stats->frames++;
        if (c->has_filter && !pcap_offline_filter(&c->filter, header, data)) {
            stats->filtered_out++;
            continue;
        }
        struct decoded_frame decoded;
        switch (decode_frame(c->linktype, data, header->caplen, &decoded)) {
        case DECODE_TCP:
            stats->tcp_frames++;
            if (trace_tcp_frame(tr, &decoded, header, data, *frame_number, c->linktype, stats) < 0)
                return CAPTURE_TRACER_ERROR;
            break;
        case DECODE_NOT_TCP: stats->not_tcp++; break;
        case DECODE_FRAGMENT: stats->fragments++; break;
        case DECODE_TRUNCATED: stats->truncated++; break;
        case DECODE_UNSUPPORTED_LINK: stats->unsupported_link++; break;
        }
    }
    return CAPTURE_MORE;
}
