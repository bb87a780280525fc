/* Comparing and hashing flow keys (struct flow_key is in pcapflow_core.h). */
#ifndef PCAPFLOW_FLOW_KEY_H
#define PCAPFLOW_FLOW_KEY_H

#include <stdint.h>
#include <string.h>

#include "pcapflow_core.h"

/* Word by word: a call to memcmp() costs more than comparing the 40 bytes. */
static inline int flow_key_equal(const struct flow_key *a, const struct flow_key *b)
{
    uint64_t x[5], y[5];
    memcpy(x, a, sizeof x);
    memcpy(y, b, sizeof y);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

static inline uint64_t flow_key_mix(uint64_t h, uint64_t word)
{
    h = (h ^ word) * 0xbf58476d1ce4e5b9u;
    return h ^ (h >> 31);
}

/* A 64-bit mix of the key's 40 bytes (five words folded with multiply-xorshift),
 * starting from a per-tracer random seed: a capture crafted to collide in
 * one process's table does not collide in another's. */
static inline uint64_t flow_key_hash(const struct flow_key *key, uint64_t seed)
{
    uint64_t w[5];
    memcpy(w, key, sizeof w);
    uint64_t h = flow_key_mix(flow_key_mix(flow_key_mix(flow_key_mix(flow_key_mix(seed, w[0]), w[1]), w[2]), w[3]),
                              w[4]);
    h *= 0x94d049bb133111ebu;
    return h ^ (h >> 29);
}

/* A seed for flow_key_hash() (flow_key.c): the tables' layout cannot be
 * predicted from the packets alone. */
uint64_t flow_key_random_seed(void);

/* The key of a connection, the same for both of its directions: its two
 * endpoints (family, address, port) in order, the lesser as the source.
 * Returns which way the frame's key went: -1 already in order, 1 swapped,
 * 0 both endpoints the same (a socket connected to itself: its directions
 * cannot be told apart, here as in a one-direction key). */
static inline int flow_key_connection(const struct flow_key *key, struct flow_key *out)
{
    int order = key->src_family != key->dst_family ? (key->src_family < key->dst_family ? -1 : 1)
                                                   : memcmp(key->src, key->dst, sizeof key->src);
    if (order == 0)
        order = key->src_port == key->dst_port ? 0 : key->src_port < key->dst_port ? -1 : 1;
    *out = *key;
    if (order > 0) {
        memcpy(out->src, key->dst, sizeof out->src);
        memcpy(out->dst, key->src, sizeof out->dst);
        out->src_port = key->dst_port;
        out->dst_port = key->src_port;
        out->src_family = key->dst_family;
        out->dst_family = key->src_family;
    }
    return order < 0 ? -1 : order > 0;
}

#endif
