#include "flow_key.h"

#include <stdint.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

/* A seed for the hash tables, so that their layout cannot be predicted from
 * the packets alone. getrandom() does not block once the system has booted;
 * should it fail, the clock and an address stand in. */
uint64_t flow_key_random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return ((uint64_t)now.tv_nsec << 32 ^ (uint64_t)now.tv_sec ^ (uint64_t)(uintptr_t)&now) * 0x9e3779b97f4a7c15u;
}
