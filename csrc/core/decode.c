#include "decode.h"

#include <string.h>

#include "decode_internal.h"

/* libpcap's DLT_ numbers (as pcap_datalink() reports them) */
enum {
    LINK_NULL = 0,
    LINK_ETHERNET = 1,
    LINK_PPP = 9,
    LINK_RAW_OPENBSD = 12, /* DLT_RAW on most systems; LINKTYPE_RAW in files is 101 */
    LINK_RAW_BSD = 14,
    LINK_PPP_HDLC = 50,
    LINK_RAW = 101,
    LINK_LOOP = 108,
    LINK_LINUX_SLL = 113,
    LINK_IPV4 = 228,
    LINK_IPV6 = 229,
    LINK_LINUX_SLL2 = 276,
};

enum { ETHERTYPE_IPV4 = 0x0800, ETHERTYPE_IPV6 = 0x86dd, ETHERTYPE_VLAN = 0x8100, ETHERTYPE_QINQ = 0x88a8,
       ETHERTYPE_QINQ_OLD = 0x9100, ETHERTYPE_MPLS = 0x8847, ETHERTYPE_MPLS_MULTICAST = 0x8848,
       ETHERTYPE_PPPOE_SESSION = 0x8864 };

enum { IPPROTO_ICMP_ = 1, IPPROTO_TCP_ = 6, IPPROTO_AH_ = 51, IPPROTO_ICMPV6_ = 58 };

#define read_u16 decode_u16
#define HOT static inline __attribute__((always_inline))

/* static, so that the compiler can inline the common path of a frame into
 * decode_frame(); decode_tunnel.c reaches them through the decode_inner_
 * functions at the end */
static enum decode_status decode_ipv4(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out);
static enum decode_status decode_ipv6(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out);
static enum decode_status decode_ppp(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out);

int decode_link_supported(int linktype)
{
    switch (linktype) {
    case LINK_NULL: case LINK_ETHERNET: case LINK_PPP: case LINK_RAW_OPENBSD: case LINK_RAW_BSD:
    case LINK_PPP_HDLC: case LINK_RAW: case LINK_LOOP: case LINK_LINUX_SLL: case LINK_IPV4: case LINK_IPV6:
    case LINK_LINUX_SLL2:
        return 1;
    default:
        return 0;
    }
}

/* The TCP header at p, `length` bytes of it both captured and inside the
 * IP datagram: the IP decoders leave out bytes past the datagram's stated
 * length (Ethernet pads short frames), so a TCP header read from them is
 * refused here as one cut short by the snapshot length is. */
static enum decode_status decode_tcp(const uint8_t *p, size_t length, struct decoded_frame *out)
{
    if (length < 14) /* ports, sequence, acknowledgement, offset and flags */
        return DECODE_TRUNCATED;
    out->key.src_port = read_u16(p);
    out->key.dst_port = read_u16(p + 2);
    out->tcp_flags = p[13];
    out->tcp = p;
    out->tcp_captured = (uint32_t)length;
    return DECODE_TCP;
}

static enum decode_status decode_icmp_quote(uint8_t protocol, const uint8_t *p, size_t length,
                                            struct decoded_frame *out);

/* What follows an IP header (and its extension headers): TCP, or with
 * tunnels open, an inner packet. */
static inline enum decode_status decode_transport(uint8_t protocol, const uint8_t *p, size_t length, int tunnels,
                                                  struct decoded_frame *out)
{
    if (protocol == IPPROTO_TCP_)
        return decode_tcp(p, length, out);
    if ((protocol == IPPROTO_ICMP_ || protocol == IPPROTO_ICMPV6_) && (out->options & DECODE_FOLLOW))
        return decode_icmp_quote(protocol, p, length, out);
    if (tunnels > 0)
        return decode_tunnel(protocol, p, length, tunnels - 1, out);
    return DECODE_NOT_TCP;
}

static inline void ipv4_key(const uint8_t *p, struct decoded_frame *out)
{
    out->key.src_family = out->key.dst_family = FLOW_FAMILY_IPV4;
    memcpy(out->key.src, p + 12, 4);
    memcpy(out->key.dst, p + 16, 4);
}

/* The IPv4 total length bounds the datagram: bytes past it (Ethernet
 * padding) are not part of it. 0 is what TCP segmentation offload leaves
 * there, and tshark then takes the captured bytes: so do we. Returns the
 * bytes of the datagram captured, or 0 when the length is below the header. */
static inline size_t ipv4_captured(const uint8_t *p, size_t header, size_t length, struct decoded_frame *out)
{
    size_t total = read_u16(p + 2);
    out->ip = p;
    out->ip_stated = (uint32_t)(total == 0 ? length : total);
    if (total == 0)
        return length;
    if (total < header)
        return 0;
    return total < length ? total : length;
}

/* An IPv4 datagram with more-fragments set or an offset. Follow TCP Stream
 * (DECODE_FOLLOW) reassembles fragments that are whole in the capture, as
 * Wireshark does; other first fragments are decoded as far as they go (what
 * pcapkit traces, and what Wireshark shows of a fragment it cannot
 * reassemble); later fragments hold no TCP header. Returns DECODE_TCP when
 * the caller is to decode the fragment's payload itself. */
static enum decode_status ipv4_fragment(const uint8_t *p, size_t header, size_t length, struct decoded_frame *out)
{
    size_t total = read_u16(p + 2);
    if ((out->options & DECODE_FOLLOW) && total > header && total <= length) {
        ipv4_key(p, out);
        out->ip = p;
        out->ip_captured = out->ip_stated = (uint32_t)total;
        out->kind = DECODED_IP_FRAGMENT;
        return DECODE_FOLLOW_EXTRA;
    }
    return (read_u16(p + 6) & 0x1fff) != 0 ? DECODE_FRAGMENT : DECODE_TCP;
}

/* An IPv4 datagram whose protocol is not TCP: authentication headers (RFC
 * 4302, as IPv6 has them) before TCP, a tunnel, or no TCP. Out of line, so
 * that decode_ipv4()'s common path, plain TCP, stays short. */
static enum decode_status decode_ipv4_other(uint8_t protocol, const uint8_t *p, size_t header, size_t length,
                                            int tunnels, struct decoded_frame *out)
{
    if (protocol != IPPROTO_AH_ && tunnels == 0 && !(out->options & DECODE_FOLLOW))
        return DECODE_NOT_TCP;
    if ((read_u16(p + 6) & 0x3fff) != 0) {
        enum decode_status status = ipv4_fragment(p, header, length, out);
        if (status != DECODE_TCP)
            return status == DECODE_FRAGMENT && protocol != IPPROTO_AH_ ? DECODE_NOT_TCP : status;
    }
    if ((length = ipv4_captured(p, header, length, out)) == 0)
        return DECODE_TRUNCATED;
    ipv4_key(p, out);
    size_t offset = header;
    while (protocol == IPPROTO_AH_) {
        if (offset + 2 > length)
            return DECODE_TRUNCATED;
        size_t extension = ((size_t)p[offset + 1] + 2) * 4;
        if (offset + extension > length)
            return DECODE_TRUNCATED;
        protocol = p[offset];
        offset += extension;
    }
    return decode_transport(protocol, p + offset, length - offset, tunnels, out);
}

static enum decode_status decode_ipv4(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 20)
        return DECODE_TRUNCATED;
    if (p[0] >> 4 != 4)
        return DECODE_NOT_TCP;
    size_t header = (size_t)(p[0] & 0x0f) * 4;
    if (header < 20)
        return DECODE_NOT_TCP;
    if (header > length)
        return DECODE_TRUNCATED;
    uint8_t protocol = p[9];
    if (protocol != IPPROTO_TCP_)
        return decode_ipv4_other(protocol, p, header, length, tunnels, out);
    if ((read_u16(p + 6) & 0x3fff) != 0) {
        enum decode_status status = ipv4_fragment(p, header, length, out);
        if (status != DECODE_TCP)
            return status;
    }
    if ((length = ipv4_captured(p, header, length, out)) == 0)
        return DECODE_TRUNCATED;
    ipv4_key(p, out);
    return decode_tcp(p + header, length - header, out);
}

/* The Jumbo Payload option's length (RFC 2675) in the hop-by-hop header at
 * p (`length` bytes of it captured), or 0 when it has none. A length below
 * 65536 is invalid (the option is for longer payloads only): 0 too, as
 * tshark then finds no jumbo payload either. */
static size_t ipv6_jumbo_length(const uint8_t *p, size_t length)
{
    if (length < 2)
        return 0;
    size_t end = ((size_t)p[1] + 1) * 8;
    if (end > length)
        end = length;
    size_t offset = 2;
    while (offset < end) {
        if (p[offset] == 0) { /* Pad1 has no length byte */
            offset++;
            continue;
        }
        if (offset + 2 > end)
            return 0;
        size_t option = 2 + (size_t)p[offset + 1];
        if (p[offset] == 0xc2 && option == 6 && offset + 6 <= end) {
            size_t jumbo = (size_t)p[offset + 2] << 24 | (size_t)p[offset + 3] << 16 | (size_t)p[offset + 4] << 8 |
                           p[offset + 5];
            return jumbo > 65535 ? jumbo : 0;
        }
        offset += option;
    }
    return 0;
}

static enum decode_status decode_ipv6(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 40)
        return DECODE_TRUNCATED;
    if (p[0] >> 4 != 6)
        return DECODE_NOT_TCP;
    uint8_t next = p[6];
    /* The payload length bounds the datagram, as IPv4's total length does.
     * 0 means a jumbogram when a hop-by-hop header carries the length (BIG
     * TCP captures); without one, tshark finds an empty payload: so do we. */
    size_t stated = 40 + (size_t)read_u16(p + 4);
    if (stated == 40 && next == 0)
        stated += ipv6_jumbo_length(p + 40, length - 40);
    out->ip = p;
    out->ip_stated = (uint32_t)stated;
    int whole = stated <= length;
    if (stated < length)
        length = stated;
    size_t offset = 40;
    for (;;) {
        if (next == IPPROTO_TCP_)
            break;
        size_t extension;
        switch (next) {
        case 0:  /* hop-by-hop options */
        case 43: /* routing */
        case 60: /* destination options */
            if (offset + 2 > length)
                return DECODE_TRUNCATED;
            extension = ((size_t)p[offset + 1] + 1) * 8;
            break;
        case 44: /* fragment */
            if (offset + 8 > length)
                return DECODE_TRUNCATED;
            if ((out->options & DECODE_FOLLOW) && whole && (read_u16(p + offset + 2) & 0xfff9) != 0) {
                /* whole in the capture, with an offset or more to come: reassembled first */
                out->key.src_family = out->key.dst_family = FLOW_FAMILY_IPV6;
                memcpy(out->key.src, p + 8, 16);
                memcpy(out->key.dst, p + 24, 16);
                out->ip_captured = (uint32_t)stated;
                out->kind = DECODED_IP_FRAGMENT;
                return DECODE_FOLLOW_EXTRA;
            }
            if ((read_u16(p + offset + 2) & 0xfff8) != 0)
                return DECODE_FRAGMENT;
            extension = 8;
            break;
        case IPPROTO_AH_: /* authentication header */
            if (offset + 2 > length)
                return DECODE_TRUNCATED;
            extension = ((size_t)p[offset + 1] + 2) * 4;
            break;
        default:
            if (tunnels == 0 && !(next == IPPROTO_ICMPV6_ && (out->options & DECODE_FOLLOW)))
                return DECODE_NOT_TCP;
            goto header_done;
        }
        if (offset + extension > length)
            return DECODE_TRUNCATED;
        next = p[offset];
        offset += extension;
    }
header_done:
    out->key.src_family = out->key.dst_family = FLOW_FAMILY_IPV6;
    memcpy(out->key.src, p + 8, 16);
    memcpy(out->key.dst, p + 24, 16);
    return decode_transport(next, p + offset, length - offset, tunnels, out);
}

static enum decode_status decode_ip_by_version(const uint8_t *p, size_t length, int tunnels,
                                               struct decoded_frame *out)
{
    if (length < 1)
        return DECODE_TRUNCATED;
    switch (p[0] >> 4) {
    case 4: return decode_ipv4(p, length, tunnels, out);
    case 6: return decode_ipv6(p, length, tunnels, out);
    default: return DECODE_NOT_TCP;
    }
}

/* An MPLS label stack: labels up to the one marked bottom of stack, then
 * the payload, which says nothing of its type. Like tshark, take a first
 * nibble of 4 or 6 for IP; anything else (a pseudowire) is not opened. */
static enum decode_status decode_mpls(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    size_t offset = 0;
    int bottom;
    do {
        if (offset + 4 > length)
            return DECODE_TRUNCATED;
        bottom = p[offset + 2] & 1;
        offset += 4;
    } while (!bottom);
    return decode_ip_by_version(p + offset, length - offset, tunnels, out);
}

/* PPPoE session stage (RFC 2516): a 6-byte header whose length field
 * bounds the PPP frame that follows (tshark stops there too). */
static enum decode_status decode_pppoe(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 6)
        return DECODE_TRUNCATED;
    size_t payload = read_u16(p + 4);
    if (payload < length - 6)
        length = 6 + payload;
    return decode_ppp(p + 6, length - 6, tunnels, out);
}

/* Inlined, with decode_ethernet(), into the callers: the plain Ethernet frame
 * is the common case, and two calls more cost a third of its decoding. */
HOT enum decode_status decode_ethertype(uint16_t type, const uint8_t *p, size_t length, int tunnels,
                                        struct decoded_frame *out)
{
    switch (type) {
    case ETHERTYPE_IPV4: return decode_ipv4(p, length, tunnels, out);
    case ETHERTYPE_IPV6: return decode_ipv6(p, length, tunnels, out);
    case ETHERTYPE_MPLS: case ETHERTYPE_MPLS_MULTICAST: return decode_mpls(p, length, tunnels, out);
    case ETHERTYPE_PPPOE_SESSION: return decode_pppoe(p, length, tunnels, out);
    default: return DECODE_NOT_TCP;
    }
}

HOT enum decode_status decode_ethernet(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 14)
        return DECODE_TRUNCATED;
    size_t offset = 12;
    uint16_t type = read_u16(p + offset);
    /* most frames: no tags to look for, no type to look up */
    if (type == ETHERTYPE_IPV4)
        return decode_ipv4(p + 14, length - 14, tunnels, out);
    if (type == ETHERTYPE_IPV6)
        return decode_ipv6(p + 14, length - 14, tunnels, out);
    /* 802.1Q / 802.1ad tags, any number of them */
    while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ || type == ETHERTYPE_QINQ_OLD) {
        offset += 4;
        if (offset + 2 > length)
            return DECODE_TRUNCATED;
        type = read_u16(p + offset);
    }
    offset += 2;
    return decode_ethertype(type, p + offset, length - offset, tunnels, out);
}

/* BSD loopback: a 4-byte address family in the capturing host's byte order
 * (NULL) or in network order (LOOP); IPv6's number differs between BSDs. */
static enum decode_status decode_loopback(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 4)
        return DECODE_TRUNCATED;
    uint32_t big = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    uint32_t little = (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
    uint32_t family = big < 256 ? big : little;
    switch (family) {
    case 2: return decode_ipv4(p + 4, length - 4, tunnels, out);
    case 10: case 24: case 28: case 30: return decode_ipv6(p + 4, length - 4, tunnels, out);
    default: return DECODE_NOT_TCP;
    }
}

/* PPP, with or without the HDLC address and control bytes, and with a
 * one-byte (compressed) or two-byte protocol field. */
static enum decode_status decode_ppp(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    size_t offset = 0;
    if (length >= 2 && p[0] == 0xff && p[1] == 0x03)
        offset = 2;
    if (offset + 1 > length)
        return DECODE_TRUNCATED;
    uint16_t protocol;
    if (p[offset] & 1) {
        protocol = p[offset];
        offset += 1;
    } else {
        if (offset + 2 > length)
            return DECODE_TRUNCATED;
        protocol = read_u16(p + offset);
        offset += 2;
    }
    switch (protocol) {
    case 0x21: return decode_ipv4(p + offset, length - offset, tunnels, out);
    case 0x57: return decode_ipv6(p + offset, length - offset, tunnels, out);
    case 0x281: case 0x283: return decode_mpls(p + offset, length - offset, tunnels, out); /* unicast, multicast */
    default: return DECODE_NOT_TCP;
    }
}

enum decode_status decode_frame(int linktype, const uint8_t *data, size_t caplen, unsigned options,
                                struct decoded_frame *out)
{
    flow_key_clear(&out->key);
    out->tcp_flags = 0;
    out->kind = DECODED_TCP;
    out->options = (uint8_t)options;
    out->ip = out->tcp = NULL;
    int tunnels = options & DECODE_TUNNELS ? DECODE_MAX_TUNNELS : 0;
    switch (linktype) {
    case LINK_ETHERNET:
        return decode_ethernet(data, caplen, tunnels, out);
    case LINK_LINUX_SLL:
        if (caplen < 16)
            return DECODE_TRUNCATED;
        return decode_ethertype(read_u16(data + 14), data + 16, caplen - 16, tunnels, out);
    case LINK_LINUX_SLL2:
        if (caplen < 20)
            return DECODE_TRUNCATED;
        return decode_ethertype(read_u16(data), data + 20, caplen - 20, tunnels, out);
    case LINK_RAW_OPENBSD: case LINK_RAW_BSD: case LINK_RAW:
        return decode_ip_by_version(data, caplen, tunnels, out);
    case LINK_IPV4:
        return decode_ipv4(data, caplen, tunnels, out);
    case LINK_IPV6:
        return decode_ipv6(data, caplen, tunnels, out);
    case LINK_NULL: case LINK_LOOP:
        return decode_loopback(data, caplen, tunnels, out);
    case LINK_PPP: case LINK_PPP_HDLC:
        return decode_ppp(data, caplen, tunnels, out);
    default:
        if (options & DECODE_FOLLOW)
            return decode_follow_link(linktype, data, caplen, tunnels, out);
        return DECODE_UNSUPPORTED_LINK;
    }
}

enum decode_status decode_inner_ipv4(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    return decode_ipv4(p, length, tunnels, out);
}

enum decode_status decode_inner_ipv6(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    return decode_ipv6(p, length, tunnels, out);
}

enum decode_status decode_inner_ethernet(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    return decode_ethernet(p, length, tunnels, out);
}

enum decode_status decode_inner_ethertype(uint16_t type, const uint8_t *p, size_t length, int tunnels,
                                          struct decoded_frame *out)
{
    return decode_ethertype(type, p, length, tunnels, out);
}

enum decode_status decode_inner_ppp(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    return decode_ppp(p, length, tunnels, out);
}

/* An ICMP or ICMPv6 error quotes the start of the datagram it reports on.
 * When that was TCP and at least 16 bytes of its header are there (ports,
 * sequence and acknowledgement numbers, flags), Wireshark dissects it and
 * gives it a tcp.stream number, though Follow TCP Stream never shows it. */
static enum decode_status decode_icmp_quote(uint8_t protocol, const uint8_t *p, size_t length,
                                            struct decoded_frame *out)
{
    if (length < 8)
        return DECODE_NOT_TCP;
    uint8_t type = p[0];
    int error = protocol == IPPROTO_ICMP_ ? (type == 3 || type == 4 || type == 5 || type == 11 || type == 12)
                                          : (type >= 1 && type <= 4);
    if (!error)
        return DECODE_NOT_TCP;
    const uint8_t *q = p + 8;
    size_t left = length - 8, offset;
    uint8_t quoted;
    struct flow_key key;
    flow_key_clear(&key);
    if (left >= 20 && q[0] >> 4 == 4) {
        offset = (size_t)(q[0] & 0x0f) * 4;
        if (offset < 20 || (read_u16(q + 6) & 0x1fff) != 0)
            return DECODE_NOT_TCP;
        quoted = q[9];
        key.src_family = key.dst_family = FLOW_FAMILY_IPV4;
        memcpy(key.src, q + 12, 4);
        memcpy(key.dst, q + 16, 4);
    } else if (left >= 40 && q[0] >> 4 == 6) {
        offset = 40;
        quoted = q[6];
        key.src_family = key.dst_family = FLOW_FAMILY_IPV6;
        memcpy(key.src, q + 8, 16);
        memcpy(key.dst, q + 24, 16);
    } else {
        return DECODE_NOT_TCP;
    }
    if (quoted != IPPROTO_TCP_ || offset > left || left - offset < 16)
        return DECODE_NOT_TCP;
    const uint8_t *tcp = q + offset;
    key.src_port = read_u16(tcp);
    key.dst_port = read_u16(tcp + 2);
    out->key = key;
    out->tcp_flags = tcp[13];
    out->tcp = tcp;
    out->tcp_captured = (uint32_t)(left - offset);
    out->kind = DECODED_ICMP_QUOTE;
    return DECODE_FOLLOW_EXTRA;
}
