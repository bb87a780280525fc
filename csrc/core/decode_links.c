/* Link types tshark reads but pcapkit does not, decoded for Follow TCP
 * Stream only (DECODE_FOLLOW): the tracer stays pcapkit's and counts their
 * frames as an unsupported link. */
#include "decode_internal.h"

enum { LINK_ARCNET_LINUX = 129, LINK_JUNIPER_ETHERNET = 178, LINK_IPOIB = 242 };

/* Linux ARCNET: source, destination, a 2-byte offset, then the protocol
 * byte. RFC 1201 protocols carry a split flag and a sequence number (and
 * an exception packet 4 bytes more); RFC 1051's do not. */
static enum decode_status decode_arcnet(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 5)
        return DECODE_TRUNCATED;
    size_t offset;
    switch (p[4]) {
    case 0xd4: /* RFC 1201 IP */
        if (length < 6)
            return DECODE_TRUNCATED;
        offset = p[5] == 0xff ? 12 : 8;
        break;
    case 0xf0: /* RFC 1051 IP */
        offset = 5;
        break;
    default:
        return DECODE_NOT_TCP;
    }
    if (offset > length)
        return DECODE_TRUNCATED;
    return decode_inner_ipv4(p + offset, length - offset, tunnels, out);
}

/* Juniper's Ethernet encapsulation: "MGC", a flags byte, extension TLVs
 * when flagged (their length first), then the Ethernet frame (or, when
 * flagged as having no layer 2 header, the IP packet). */
static enum decode_status decode_juniper(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 4)
        return DECODE_TRUNCATED;
    if (p[0] != 'M' || p[1] != 'G' || p[2] != 'C')
        return DECODE_NOT_TCP;
    size_t offset = 4;
    if (p[3] & 0x80) {
        if (length < 6)
            return DECODE_TRUNCATED;
        offset += 2 + decode_u16(p + 4);
    }
    if (offset > length)
        return DECODE_TRUNCATED;
    if (p[3] & 0x01) {
        if (offset >= length)
            return DECODE_TRUNCATED;
        return p[offset] >> 4 == 6 ? decode_inner_ipv6(p + offset, length - offset, tunnels, out)
                                   : decode_inner_ipv4(p + offset, length - offset, tunnels, out);
    }
    return decode_inner_ethernet(p + offset, length - offset, tunnels, out);
}

/* IP over InfiniBand (RFC 4391): two 20-byte hardware addresses, then an
 * ethertype and two reserved bytes. */
static enum decode_status decode_ipoib(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 44)
        return DECODE_TRUNCATED;
    return decode_inner_ethertype(decode_u16(p + 40), p + 44, length - 44, tunnels, out);
}

enum decode_status decode_follow_link(int linktype, const uint8_t *data, size_t caplen, int tunnels,
                                      struct decoded_frame *out)
{
    switch (linktype) {
    case LINK_ARCNET_LINUX: return decode_arcnet(data, caplen, tunnels, out);
    case LINK_JUNIPER_ETHERNET: return decode_juniper(data, caplen, tunnels, out);
    case LINK_IPOIB: return decode_ipoib(data, caplen, tunnels, out);
    default: return DECODE_UNSUPPORTED_LINK;
    }
}
