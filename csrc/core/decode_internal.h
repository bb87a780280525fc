/* What decode.c (links, IP, TCP) and decode_tunnel.c (GRE, IP-in-IP,
 * VXLAN, GENEVE) call of each other. `tunnels` is how many more tunnels
 * may be opened: 0 when DECODE_TUNNELS is off or the depth is used up.
 * `length` is always the bytes captured from p on. */
#ifndef PCAPFLOW_DECODE_INTERNAL_H
#define PCAPFLOW_DECODE_INTERNAL_H

#include "decode.h"

static inline uint16_t decode_u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* decode.c's decoders, for the packets inside a tunnel */
enum decode_status decode_inner_ipv4(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out);
enum decode_status decode_inner_ipv6(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out);
/* Ethernet II from its destination address on */
enum decode_status decode_inner_ethernet(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out);
/* the payload of an Ethernet frame of this type */
enum decode_status decode_inner_ethertype(uint16_t type, const uint8_t *p, size_t length, int tunnels,
                                          struct decoded_frame *out);
/* PPP from its (optional) address and control bytes on */
enum decode_status decode_inner_ppp(const uint8_t *p, size_t length, int tunnels, struct decoded_frame *out);

/* The payload of an IP datagram of protocol `protocol` that is not TCP,
 * `length` bytes of it captured and inside the datagram: a tunnel is
 * opened (one level of `tunnels` used), anything else is DECODE_NOT_TCP. */
enum decode_status decode_tunnel(uint8_t protocol, const uint8_t *p, size_t length, int tunnels,
                                 struct decoded_frame *out);

/* decode_links.c: link types only Follow TCP Stream decodes */
enum decode_status decode_follow_link(int linktype, const uint8_t *data, size_t caplen, int tunnels,
                                      struct decoded_frame *out);

#endif
