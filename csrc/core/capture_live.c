/* Capturing on an interface: libpcap's packet socket, read without
 * blocking so that the caller's check (signals, Ctrl-C), the count and the
 * duration are acted on within CAPTURE_LIVE_TICK_NS, traffic or none. */
#include "capture_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

/* libpcap hands over what the kernel holds at least this often (TPACKET_V3
 * retires a block after this many ms even when it is not full): a FIN
 * reaches the tracer, and its flow's file the disk, within milliseconds,
 * while a busy link is still read a block at a time. */
#define DELIVERY_TIMEOUT_MS 10

static void describe_failure(struct capture *c, const char *interface, int status)
{
    const char *detail = pcap_geterr(c->pcap);
    switch (status) {
    case PCAP_ERROR_NO_SUCH_DEVICE:
        snprintf(c->errbuf, sizeof c->errbuf, "no such interface: '%.100s' ('ip link' lists them)", interface);
        break;
    case PCAP_ERROR_PERM_DENIED:
    case PCAP_ERROR_PROMISC_PERM_DENIED:
        snprintf(c->errbuf, sizeof c->errbuf,
                 "no permission to capture on '%.100s': run as root or give the program CAP_NET_RAW (%.200s)",
                 interface, detail && *detail ? detail : pcap_statustostr(status));
        break;
    case PCAP_ERROR_IFACE_NOT_UP:
        snprintf(c->errbuf, sizeof c->errbuf, "interface '%.100s' is down ('ip link set %.100s up')", interface,
                 interface);
        break;
    default:
        snprintf(c->errbuf, sizeof c->errbuf, "cannot capture on '%.100s': %.200s", interface,
                 detail && *detail ? detail : pcap_statustostr(status));
    }
}

static enum live_failure failure_of(int status)
{
    switch (status) {
    case PCAP_ERROR_NO_SUCH_DEVICE: return LIVE_NO_SUCH_INTERFACE;
    case PCAP_ERROR_PERM_DENIED:
    case PCAP_ERROR_PROMISC_PERM_DENIED: return LIVE_NO_PERMISSION;
    case PCAP_ERROR_IFACE_NOT_UP: return LIVE_INTERFACE_DOWN;
    default: return LIVE_FAILED;
    }
}

enum live_failure capture_open_live(struct capture *c, const char *interface, const struct live_options *options,
                                    const struct capture_check *check)
{
    memset(c, 0, sizeof *c);
    if (check) {
        c->check = *check;
        c->next_check_ns = capture_monotonic_ns() + check->interval_ns;
    }
    c->pcap = pcap_create(interface, c->errbuf);
    if (!c->pcap)
        return LIVE_FAILED;
    pcap_set_snaplen(c->pcap, options->snaplen);
    pcap_set_promisc(c->pcap, options->promisc);
    pcap_set_timeout(c->pcap, DELIVERY_TIMEOUT_MS);
    if (options->buffer_bytes)
        pcap_set_buffer_size(c->pcap, options->buffer_bytes);
    /* nanoseconds where the kernel gives them; microseconds otherwise */
    (void)pcap_set_tstamp_precision(c->pcap, PCAP_TSTAMP_PRECISION_NANO);
    int status = pcap_activate(c->pcap);
    if (status < 0) {
        describe_failure(c, interface, status);
        pcap_close(c->pcap);
        c->pcap = NULL;
        return failure_of(status);
    }
    char errbuf[PCAP_ERRBUF_SIZE];
    if (pcap_setnonblock(c->pcap, 1, errbuf) < 0 || (c->live_fd = pcap_get_selectable_fd(c->pcap)) < 0) {
        snprintf(c->errbuf, sizeof c->errbuf, "cannot capture on '%.100s' without blocking: %.200s", interface,
                 c->live_fd < 0 ? "no descriptor to wait on" : errbuf);
        pcap_close(c->pcap);
        c->pcap = NULL;
        return LIVE_FAILED;
    }
    c->live = 1;
    c->live_nanosecond = pcap_get_tstamp_precision(c->pcap) == PCAP_TSTAMP_PRECISION_NANO;
    c->linktype = pcap_datalink(c->pcap);
    c->file_linktype = capture_file_linktype(c->pcap);
    c->frames_left = options->count ? options->count : UINT64_MAX;
    c->stop_at_ns = options->duration_ns ? capture_monotonic_ns() + options->duration_ns : 0;
    return LIVE_OK;
}

void capture_describe(const struct capture *c, struct capture_description *about)
{
    const char *name = pcap_datalink_val_to_name(c->linktype);
    const char *description = pcap_datalink_val_to_description(c->linktype);
    about->linktype_name = name ? name : "unknown";
    about->linktype_description = description ? description : "unknown";
    about->snaplen = pcap_snapshot(c->pcap);
    about->nanosecond = c->live_nanosecond;
}

/* libpcap's counters are 32 bits and wrap on a link that runs for days:
 * they are read every so often and their differences added up. */
static void update_counts(struct capture *c)
{
    struct pcap_stat now;
    if (pcap_stats(c->pcap, &now) < 0)
        return;
    c->counts.received += (uint32_t)(now.ps_recv - c->last_stat.ps_recv);
    c->counts.dropped += (uint32_t)(now.ps_drop - c->last_stat.ps_drop);
    c->counts.interface_dropped += (uint32_t)(now.ps_ifdrop - c->last_stat.ps_ifdrop);
    c->last_stat = now;
}

int capture_live_counts(struct capture *c, struct live_counts *counts)
{
    if (!c->live || !c->pcap)
        return -1;
    update_counts(c);
    *counts = c->counts;
    return 0;
}

enum wait_outcome { WAIT_READABLE, WAIT_IDLE, WAIT_STOPPED, WAIT_TIME_UP };

/* Waits for the kernel to hand over frames, at most until the check's next
 * call or the end of the duration. */
static enum wait_outcome wait_for_frames(struct capture *c)
{
    uint64_t now = capture_monotonic_ns();
    if (c->stop_at_ns && now >= c->stop_at_ns)
        return WAIT_TIME_UP;
    if (capture_run_check(c, 0) < 0)
        return WAIT_STOPPED;
    uint64_t until = now + CAPTURE_LIVE_TICK_NS;
    if (c->check.function && c->next_check_ns < until)
        until = c->next_check_ns;
    if (c->stop_at_ns && c->stop_at_ns < until)
        until = c->stop_at_ns;
    struct pollfd entry = {.fd = c->live_fd, .events = POLLIN};
    int ready = poll(&entry, 1, until > now ? (int)((until - now + 999999u) / 1000000u) : 0);
    if (ready > 0)
        return WAIT_READABLE;
    if (ready < 0 && errno == EINTR)
        return capture_run_check(c, 1) < 0 ? WAIT_STOPPED : WAIT_READABLE;
    return ready < 0 ? WAIT_READABLE : WAIT_IDLE; /* an error: pcap_next_ex() reports it */
}

enum capture_status capture_live_next(struct capture *c, struct capture_frame *frame, uint64_t *frame_number,
                                      struct capture_stats *stats)
{
    for (;;) {
        if (c->interrupted)
            return CAPTURE_INTERRUPTED;
        if (c->frames_left == 0)
            return CAPTURE_DONE;
        if ((++c->frames_read & 255) == 0) {
            /* a busy link: the clock, the check and the counters, every so often */
            if (c->stop_at_ns && capture_monotonic_ns() >= c->stop_at_ns)
                return CAPTURE_DONE;
            if (c->check.function && capture_run_check(c, 0) < 0)
                return CAPTURE_INTERRUPTED;
            if ((c->frames_read & 0xffffu) == 0)
                update_counts(c);
        }
        struct pcap_pkthdr *header;
        const u_char *data;
        int status = pcap_next_ex(c->pcap, &header, &data);
        if (status == 0) {
            switch (wait_for_frames(c)) {
            case WAIT_READABLE: continue;
            case WAIT_STOPPED: return CAPTURE_INTERRUPTED;
            case WAIT_TIME_UP: return CAPTURE_DONE;
            case WAIT_IDLE: update_counts(c); return CAPTURE_IDLE;
            }
        }
        if (status != 1) {
            /* the interface went down or away */
            snprintf(c->errbuf, sizeof c->errbuf, "%s", pcap_geterr(c->pcap));
            return CAPTURE_DAMAGED;
        }
        ++*frame_number;
        stats->frames++;
        c->live_bytes += header->caplen;
        if (c->frames_left != UINT64_MAX)
            c->frames_left--;
        if (capture_decode(c, c->linktype, data, header->caplen, frame, stats)) {
            frame->seconds = (int64_t)header->ts.tv_sec;
            frame->nanoseconds = (uint64_t)header->ts.tv_usec * (c->live_nanosecond ? 1u : 1000u);
            frame->caplen = header->caplen;
            frame->len = header->len;
            frame->data = data;
            frame->linktype = c->file_linktype;
            return CAPTURE_FRAME;
        }
    }
}
