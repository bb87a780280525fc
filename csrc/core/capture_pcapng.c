#include "capture_pcapng.h"

#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "pcapflow_core.h"

struct pcapng_link {
    uint32_t linktype; /* LINKTYPE_, as files carry it */
    int dlt;           /* libpcap's DLT_ value for it */
    int has_program;
    struct bpf_program program;
};

/* libpcap's DLT_ value for a LINKTYPE_ value (LINKTYPE_RAW 101 is DLT_RAW,
 * 12 or 14, and a few more differ). libpcap keeps that mapping to itself,
 * but applies it when it opens a pcap file: so let it open a file header
 * of that link type, in memory. */
static int dlt_of_linktype(uint32_t linktype)
{
    uint32_t header[6] = {0xa1b2c3d4u, 2u | 4u << 16, 0, 0, PCAP_SNAPLEN, linktype};
    if (*(const uint8_t *)header != 0xd4) /* big-endian host: the version halves the other way round */
        header[1] = 2u << 16 | 4u;
    char errbuf[PCAP_ERRBUF_SIZE];
    FILE *memory = fmemopen(header, sizeof header, "rb");
    pcap_t *pcap = memory ? pcap_fopen_offline(memory, errbuf) : NULL;
    if (!pcap) {
        if (memory)
            fclose(memory);
        return (int)linktype; /* the same number: what libpcap does for most */
    }
    int dlt = pcap_datalink(pcap);
    pcap_close(pcap); /* closes memory */
    return dlt;
}

/* Compiles the filter for a link type. `later`: a link type met after
 * set_filter, whose error names it (the expression compiled for others). */
static int compile(struct pcapng_source *s, struct pcapng_link *link, int later)
{
    pcap_t *dead = pcap_open_dead(link->dlt, PCAP_SNAPLEN);
    if (!dead) {
        snprintf(s->error, s->error_size, "out of memory");
        return -1;
    }
    int status = pcap_compile(dead, &link->program, s->filter, 1, PCAP_NETMASK_UNKNOWN);
    if (status < 0 && later)
        snprintf(s->error, s->error_size, "BPF filter does not compile for link type %u: %s", link->linktype,
                 pcap_geterr(dead));
    else if (status < 0)
        snprintf(s->error, s->error_size, "%s", pcap_geterr(dead));
    pcap_close(dead);
    link->has_program = status == 0;
    return status < 0 ? -1 : 0;
}

/* The link of an interface: found among those met, or added. */
static struct pcapng_link *link_of(struct pcapng_source *s, struct pcapng_interface *interface)
{
    if (interface->link != PCAPNG_NO_LINK)
        return &s->links[interface->link];
    uint32_t i = 0;
    while (i < s->link_count && s->links[i].linktype != interface->linktype)
        i++;
    if (i == s->link_count) {
        /* at most 65536 link types (the IDB field is 16 bits) */
        struct pcapng_link *more = realloc(s->links, (s->link_count + 1) * sizeof *more);
        if (!more) {
            snprintf(s->error, s->error_size, "out of memory");
            return NULL;
        }
        s->links = more;
        struct pcapng_link *link = &s->links[s->link_count++];
        memset(link, 0, sizeof *link);
        link->linktype = interface->linktype;
        link->dlt = dlt_of_linktype(interface->linktype);
        if (s->filter && compile(s, link, 1) < 0) {
            s->link_count--;
            return NULL;
        }
    }
    interface->link = i;
    return &s->links[i];
}

int pcapng_source_open(struct pcapng_source *s, FILE *file, char *error, size_t error_size)
{
    memset(s, 0, sizeof *s);
    s->error = error;
    s->error_size = error_size;
    if (pcapng_reader_open(&s->reader, file, error, error_size) < 0) {
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    if (pcapng_reader_first_interface(&s->reader) < 0 || !link_of(s, &s->reader.interfaces[0])) {
        pcapng_source_free(s);
        return -1;
    }
    return 0;
}

uint32_t pcapng_source_linktype(const struct pcapng_source *s) { return s->links[0].linktype; }

int pcapng_source_set_filter(struct pcapng_source *s, const char *expression)
{
    size_t n = strlen(expression) + 1;
    s->filter = malloc(n);
    if (!s->filter) {
        snprintf(s->error, s->error_size, "out of memory");
        return -1;
    }
    memcpy(s->filter, expression, n);
    for (uint32_t i = 0; i < s->link_count; i++)
        if (compile(s, &s->links[i], 0) < 0) {
            while (i--) {
                pcap_freecode(&s->links[i].program);
                s->links[i].has_program = 0;
            }
            free(s->filter);
            s->filter = NULL;
            return -1;
        }
    return 0;
}

enum pcapng_status pcapng_source_next(struct pcapng_source *s, struct pcapng_source_frame *out)
{
    enum pcapng_status status = pcapng_reader_next(&s->reader, &out->frame);
    if (status != PCAPNG_FRAME)
        return status;
    struct pcapng_link *link = link_of(s, out->frame.interface);
    if (!link)
        return PCAPNG_DAMAGED;
    out->dlt = link->dlt;
    out->filtered_out = 0;
    if (link->has_program) {
        struct pcap_pkthdr header = {.caplen = out->frame.caplen, .len = out->frame.len};
        out->filtered_out = !pcap_offline_filter(&link->program, &header, out->frame.data);
    }
    return PCAPNG_FRAME;
}

void pcapng_source_free(struct pcapng_source *s)
{
    for (uint32_t i = 0; i < s->link_count; i++)
        if (s->links[i].has_program)
            pcap_freecode(&s->links[i].program);
    free(s->links);
    free(s->filter);
    pcapng_reader_free(&s->reader);
    s->links = NULL;
    s->filter = NULL;
    s->link_count = 0;
}
