/* libFuzzer harness: the pcap writer round trip. The input is cut into
 * frames for a handful of flows (FINs included); the tracer writes them with
 * tiny buffers and few descriptors so every flush and eviction path runs;
 * libpcap must then read each flow file back as exactly the frames written
 * to it, in order, with the same timestamps. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "core/pcapflow_core.h"

enum { MAX_FRAMES = 64 };

struct sent {
    uint64_t ts_sec;
    uint32_t ts_usec;
    size_t length;
    const uint8_t *bytes;
};

static char directory[64];

static void empty_directory(void)
{
    DIR *dir = opendir(directory);
    struct dirent *entry;
    while (dir && (entry = readdir(dir))) {
        if (entry->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", directory, entry->d_name);
        unlink(path);
    }
    if (dir)
        closedir(dir);
}

/* Reads back one flow's file and compares it with the frames sent to it. */
static void check_file(const struct tracer *tr, const struct flow_view *flow, const struct sent *sent)
{
    char path[4200];
    struct frame_reader frames = frame_reader_start(flow);
    uint32_t count = flow->frame_count;
    if (tracer_output_path(tr, flow->label, flow->use_number, path, sizeof path) < 0)
        abort();
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_MICRO, errbuf);
    if (!p)
        abort();
    struct pcap_pkthdr *header;
    const u_char *data;
    for (uint32_t i = 0; i < count; i++) {
        const struct sent *s = &sent[frame_reader_next(&frames)];
        if (pcap_next_ex(p, &header, &data) != 1 || header->caplen != s->length ||
            memcmp(data, s->bytes, s->length) != 0 || (uint64_t)header->ts.tv_sec != s->ts_sec ||
            (uint32_t)header->ts.tv_usec != s->ts_usec)
            abort();
    }
    if (pcap_next_ex(p, &header, &data) != PCAP_ERROR_BREAK)
        abort();
    pcap_close(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!directory[0]) {
        snprintf(directory, sizeof directory, "/tmp/pcapflow-fuzzw-XXXXXX");
        if (!mkdtemp(directory))
            abort();
    }
    struct tracer_config config = {.directory = directory, .extension = ".pcap", .write_pcap = 1,
                                   .layout = {.big_endian = size % 2, .nanosecond = 0},
                                   .max_open_files = 2, .flush_bytes = 64, .max_pending_bytes = 256};
    struct tracer_error error;
    struct tracer *tr = tracer_new(&config, &error);
    if (!tr)
        abort();
    struct sent sent[MAX_FRAMES];
    size_t count = 0, offset = 0;
    /* each frame: flow (1 byte: low 2 bits pick the flow, bit 7 is FIN), length (1 byte), bytes */
    while (count < MAX_FRAMES && offset + 2 <= size) {
        uint8_t selector = data[offset], length = data[offset + 1];
        offset += 2;
        if (offset + length > size)
            length = (uint8_t)(size - offset);
        struct flow_key key;
        flow_key_clear(&key);
        key.src_family = key.dst_family = FLOW_FAMILY_IPV4;
        key.src[3] = selector & 3;
        key.src_port = 1000;
        key.dst_port = 80;
        uint32_t slot = tracer_find(tr, &key);
        if (slot == TRACER_NO_SLOT)
            slot = tracer_open(tr, &key, "1.5", 3, 1); /* one timestamp: labels repeat on purpose */
        if (slot == TRACER_NO_SLOT)
            abort();
        sent[count] = (struct sent){1600000000u + count, (uint32_t)(count * 7919 % 1000000), length,
                                    data + offset};
        struct pcap_record record = {sent[count].ts_sec, sent[count].ts_usec, 0, length, length};
        if (tracer_add_frame(tr, slot, (int64_t)count) < 0 ||
            tracer_write_frame(tr, slot, &record, data + offset, length) < 0)
            abort();
        if (selector & 0x80) {
            int write_failed;
            if (tracer_close_flow(tr, slot, &write_failed) < 0 || write_failed)
                abort();
        }
        offset += length;
        count++;
    }
    if (tracer_flush_all(tr) < 0)
        abort();
    TRACER_FOR_EACH_OPEN(tr, slot) {
        struct flow_view flow = tracer_open_view(tr, slot);
        check_file(tr, &flow, sent);
    }
    for (size_t i = 0; i < tracer_closed_count(tr); i++) {
        struct flow_view flow = tracer_closed_view(tr, i);
        check_file(tr, &flow, sent);
    }
    tracer_delete(tr);
    empty_directory();
    return 0;
}
