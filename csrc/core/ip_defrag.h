/* IP fragment reassembly for Follow TCP Stream, as Wireshark's defaults do
 * it (ip.defragment, ipv6.defragment): a datagram is put together from
 * its fragments and dissected at the frame whose fragment completes it.
 *
 * Fragments belong together by (source, destination, identification,
 * protocol) for IPv4 and (source, destination, identification) for IPv6.
 * Where fragments overlap, the bytes of the fragment with the lower offset
 * stay (the one that came first, at equal offsets), as Wireshark assembles
 * them. Incomplete datagrams are kept until their memory is needed: past
 * max_bytes the oldest is dropped (counted). */
#ifndef PCAPFLOW_IP_DEFRAG_H
#define PCAPFLOW_IP_DEFRAG_H

#include <stddef.h>
#include <stdint.h>

struct ip_defrag;

struct ip_defrag_stats {
    uint64_t fragments;      /* fragments taken */
    uint64_t reassembled;    /* datagrams completed */
    uint64_t dropped;        /* incomplete datagrams dropped for memory */
    uint64_t refused;        /* fragments that could not belong to any datagram (beyond 64 KiB, say) */
    uint64_t pending_bytes;  /* memory the incomplete datagrams hold now */
};

/* NULL: no memory. max_bytes: the most the incomplete datagrams hold. */
struct ip_defrag *ip_defrag_new(uint64_t max_bytes);
void ip_defrag_delete(struct ip_defrag *d);

/* Takes one whole fragment: the IP datagram at ip, `length` bytes (its
 * stated length, all captured), version 4 or 6. When it completes its
 * datagram, returns that datagram as one unfragmented IP packet (header
 * fixed up: no fragment offset, more-fragments clear, lengths set; IPv6's
 * fragment header removed) and sets *out_length; the bytes stay valid until
 * the next call. Else NULL. */
const uint8_t *ip_defrag_add(struct ip_defrag *d, const uint8_t *ip, size_t length, size_t *out_length);

struct ip_defrag_stats ip_defrag_stats(const struct ip_defrag *d);

#endif
