/* Tunnels, opened only with DECODE_TUNNELS: GRE, IP in IP, VXLAN and
 * GENEVE. The TCP traced is the innermost one, and its flow is keyed by
 * the innermost IP addresses, as tshark's tcp.stream is. */
#include "decode_internal.h"

enum { ETHERTYPE_TRANSPARENT_BRIDGING = 0x6558, ETHERTYPE_PPP = 0x880b };
enum { PORT_VXLAN = 4789, PORT_GENEVE = 6081 };

/* GRE (RFC 2784 with RFC 2890's key and sequence number), version 0; and
 * version 1, PPTP's enhanced GRE (RFC 2637), which carries PPP. */
static enum decode_status decode_gre(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 4)
        return DECODE_TRUNCATED;
    uint16_t flags = decode_u16(p), type = decode_u16(p + 2);
    size_t offset = 4;
    switch (flags & 7) { /* the version */
    case 0:
        if (flags & 0x4000) /* RFC 1701 source routing: obsolete, not opened */
            return DECODE_NOT_TCP;
        offset += (flags & 0x8000 ? 4 : 0) + (flags & 0x2000 ? 4 : 0) + (flags & 0x1000 ? 4 : 0);
        break;
    case 1:
        if (type != ETHERTYPE_PPP)
            return DECODE_NOT_TCP;
        /* the key (payload length, call id) is always there; sequence and acknowledgement numbers may be */
        offset += 4 + (flags & 0x1000 ? 4 : 0) + (flags & 0x0080 ? 4 : 0);
        if (offset > length)
            return DECODE_TRUNCATED;
        return decode_inner_ppp(p + offset, length - offset, tunnels, out);
    default:
        return DECODE_NOT_TCP;
    }
    if (offset > length)
        return DECODE_TRUNCATED;
    if (type == ETHERTYPE_TRANSPARENT_BRIDGING)
        return decode_inner_ethernet(p + offset, length - offset, tunnels, out);
    return decode_inner_ethertype(type, p + offset, length - offset, tunnels, out);
}

/* VXLAN (RFC 7348): 8 bytes, then an Ethernet frame. */
static enum decode_status decode_vxlan(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 8)
        return DECODE_TRUNCATED;
    return decode_inner_ethernet(p + 8, length - 8, tunnels, out);
}

/* GENEVE (RFC 8926): 8 bytes and the options, then what the protocol type
 * says (Ethernet, or an ethertype such as IPv4 or IPv6). */
static enum decode_status decode_geneve(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 8)
        return DECODE_TRUNCATED;
    if (p[0] >> 6 != 0) /* a version this decoder does not know */
        return DECODE_NOT_TCP;
    size_t offset = 8 + (size_t)(p[0] & 0x3f) * 4;
    if (offset > length)
        return DECODE_TRUNCATED;
    uint16_t type = decode_u16(p + 2);
    if (type == ETHERTYPE_TRANSPARENT_BRIDGING)
        return decode_inner_ethernet(p + offset, length - offset, tunnels, out);
    return decode_inner_ethertype(type, p + offset, length - offset, tunnels, out);
}

/* UDP to or from the VXLAN or GENEVE port. When both ports are tunnel
 * ports the lower one decides, as Wireshark tries the lower port first. */
static enum decode_status decode_udp(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out)
{
    if (length < 8)
        return DECODE_TRUNCATED;
    uint16_t source = decode_u16(p), destination = decode_u16(p + 2);
    size_t datagram = decode_u16(p + 4);
    if (datagram >= 8 && datagram < length) /* 0: an IPv6 jumbogram, the IP length stands */
        length = datagram;
    uint16_t low = source < destination ? source : destination;
    uint16_t high = source < destination ? destination : source;
    uint16_t port = low == PORT_VXLAN || low == PORT_GENEVE ? low : high;
    switch (port) {
    case PORT_VXLAN: return decode_vxlan(p + 8, length - 8, tunnels, out);
    case PORT_GENEVE: return decode_geneve(p + 8, length - 8, tunnels, out);
    default: return DECODE_NOT_TCP;
    }
}

enum decode_status decode_tunnel(uint8_t protocol, const uint8_t *p, size_t length, int tunnels,
                                 struct decoded_frame *out)
{
    /* the inner addresses replace the outer ones, and an IPv4 address in a
     * key that held an IPv6 one must leave the other 12 bytes zero */
    flow_key_clear(&out->key);
    switch (protocol) {
    case 4: return decode_inner_ipv4(p, length, tunnels, out);
    case 41: return decode_inner_ipv6(p, length, tunnels, out);
    case 47: return decode_gre(p, length, tunnels, out);
    case 17: return decode_udp(p, length, tunnels, out);
    default: return DECODE_NOT_TCP;
    }
}
