#include "decode.h"

#include <string.h>

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
       ETHERTYPE_QINQ_OLD = 0x9100 };

static uint16_t read_u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

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

static enum decode_status decode_tcp(const uint8_t *p, size_t length, struct decoded_frame *out)
{
    if (length < 14) /* ports, sequence, acknowledgement, offset and flags */
        return DECODE_TRUNCATED;
    out->key.src_port = read_u16(p);
    out->key.dst_port = read_u16(p + 2);
    out->tcp_flags = p[13];
    return DECODE_TCP;
}

static enum decode_status decode_ipv4(const uint8_t *p, size_t length, struct decoded_frame *out)
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
    if (p[9] != 6)
        return DECODE_NOT_TCP;
    if ((read_u16(p + 6) & 0x1fff) != 0)
        return DECODE_FRAGMENT;
    out->key.src_family = out->key.dst_family = FLOW_FAMILY_IPV4;
    memcpy(out->key.src, p + 12, 4);
    memcpy(out->key.dst, p + 16, 4);
    return decode_tcp(p + header, length - header, out);
}

static enum decode_status decode_ipv6(const uint8_t *p, size_t length, struct decoded_frame *out)
{
    if (length < 40)
        return DECODE_TRUNCATED;
    if (p[0] >> 4 != 6)
        return DECODE_NOT_TCP;
    uint8_t next = p[6];
    size_t offset = 40;
    for (;;) {
        if (next == 6)
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
            if ((read_u16(p + offset + 2) & 0xfff8) != 0)
                return DECODE_FRAGMENT;
            extension = 8;
            break;
        case 51: /* authentication header */
            if (offset + 2 > length)
                return DECODE_TRUNCATED;
            extension = ((size_t)p[offset + 1] + 2) * 4;
            break;
        default:
            return DECODE_NOT_TCP;
        }
        if (offset + extension > length)
            return DECODE_TRUNCATED;
        next = p[offset];
        offset += extension;
    }
    out->key.src_family = out->key.dst_family = FLOW_FAMILY_IPV6;
    memcpy(out->key.src, p + 8, 16);
    memcpy(out->key.dst, p + 24, 16);
    return decode_tcp(p + offset, length - offset, out);
}

static enum decode_status decode_ip_by_version(const uint8_t *p, size_t length, struct decoded_frame *out)
{
    if (length < 1)
        return DECODE_TRUNCATED;
    switch (p[0] >> 4) {
    case 4: return decode_ipv4(p, length, out);
    case 6: return decode_ipv6(p, length, out);
    default: return DECODE_NOT_TCP;
    }
}

static enum decode_status decode_ethertype(uint16_t type, const uint8_t *p, size_t length, struct decoded_frame *out)
{
    switch (type) {
    case ETHERTYPE_IPV4: return decode_ipv4(p, length, out);
    case ETHERTYPE_IPV6: return decode_ipv6(p, length, out);
    default: return DECODE_NOT_TCP;
    }
}

static enum decode_status decode_ethernet(const uint8_t *p, size_t length, struct decoded_frame *out)
{
    if (length < 14)
        return DECODE_TRUNCATED;
    size_t offset = 12;
    uint16_t type = read_u16(p + offset);
    /* 802.1Q / 802.1ad tags, any number of them */
    while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ || type == ETHERTYPE_QINQ_OLD) {
        offset += 4;
        if (offset + 2 > length)
            return DECODE_TRUNCATED;
        type = read_u16(p + offset);
    }
    offset += 2;
    return decode_ethertype(type, p + offset, length - offset, out);
}

/* BSD loopback: a 4-byte address family in the capturing host's byte order
 * (NULL) or in network order (LOOP); IPv6's number differs between BSDs. */
static enum decode_status decode_loopback(const uint8_t *p, size_t length, struct decoded_frame *out)
{
    if (length < 4)
        return DECODE_TRUNCATED;
    uint32_t big = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    uint32_t little = (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
    uint32_t family = big < 256 ? big : little;
    switch (family) {
    case 2: return decode_ipv4(p + 4, length - 4, out);
    case 10: case 24: case 28: case 30: return decode_ipv6(p + 4, length - 4, out);
    default: return DECODE_NOT_TCP;
    }
}

/* PPP, with or without the HDLC address and control bytes, and with a
 * one-byte (compressed) or two-byte protocol field. */
static enum decode_status decode_ppp(const uint8_t *p, size_t length, struct decoded_frame *out)
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
    case 0x21: return decode_ipv4(p + offset, length - offset, out);
    case 0x57: return decode_ipv6(p + offset, length - offset, out);
    default: return DECODE_NOT_TCP;
    }
}

enum decode_status decode_frame(int linktype, const uint8_t *data, size_t caplen, struct decoded_frame *out)
{
    flow_key_clear(&out->key);
    out->tcp_flags = 0;
    switch (linktype) {
    case LINK_ETHERNET:
        return decode_ethernet(data, caplen, out);
    case LINK_LINUX_SLL:
        if (caplen < 16)
            return DECODE_TRUNCATED;
        return decode_ethertype(read_u16(data + 14), data + 16, caplen - 16, out);
    case LINK_LINUX_SLL2:
        if (caplen < 20)
            return DECODE_TRUNCATED;
        return decode_ethertype(read_u16(data), data + 20, caplen - 20, out);
    case LINK_RAW_OPENBSD: case LINK_RAW_BSD: case LINK_RAW:
        return decode_ip_by_version(data, caplen, out);
    case LINK_IPV4:
        return decode_ipv4(data, caplen, out);
    case LINK_IPV6:
        return decode_ipv6(data, caplen, out);
    case LINK_NULL: case LINK_LOOP:
        return decode_loopback(data, caplen, out);
    case LINK_PPP: case LINK_PPP_HDLC:
        return decode_ppp(data, caplen, out);
    default:
        return DECODE_UNSUPPORTED_LINK;
    }
}
