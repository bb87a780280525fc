/* Frame decoding: from a captured frame to the TCP flow it belongs to.
 * No allocation and no read past `caplen`: every header is checked against
 * the captured length before it is read. */
#ifndef PCAPFLOW_DECODE_H
#define PCAPFLOW_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "pcapflow_core.h"

enum decode_status {
    DECODE_TCP,              /* a TCP segment: key and flags are set */
    DECODE_NOT_TCP,          /* a well-formed frame that carries no TCP header */
    DECODE_FRAGMENT,         /* a non-first IP fragment: no TCP header in it */
    DECODE_TRUNCATED,        /* shorter than its headers claim (captured or stated length) */
    DECODE_UNSUPPORTED_LINK, /* a link type pcapflow does not decode */
    DECODE_FOLLOW_EXTRA,     /* DECODE_FOLLOW: an IP fragment or an ICMP quote (decoded_frame.kind) */
};

/* How many tunnels deep DECODE_TUNNELS looks: a crafted frame of nested
 * tunnels cannot make the decoder loop or recurse without end. */
enum { DECODE_MAX_TUNNELS = 8 };

/* The link types (libpcap's DLT_ values) decode_frame() understands. */
int decode_link_supported(int linktype);

enum decode_status decode_frame(int linktype, const uint8_t *data, size_t caplen, unsigned options,
                                struct decoded_frame *out);

#endif
