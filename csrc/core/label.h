/* Flow labels, spelled exactly as pcapkit spells them:
 *   {src}_{srcport}-{dst}_{dstport}-{timestamp}
 * with every ':' turned into '.' when the source is IPv6. */
#ifndef PCAPFLOW_LABEL_H
#define PCAPFLOW_LABEL_H

#include <stddef.h>

#include "pcapflow_core.h"

/* Longest label: two IPv6 addresses (45 chars each, with an IPv4 tail),
 * two ports, separators and a timestamp text of at most LABEL_MAX_TIMESTAMP. */
enum { LABEL_MAX = 2 * 46 + 2 * 6 + 3 + LABEL_MAX_TIMESTAMP + 1 };

/* Python's str() of an ipaddress object. When `mapped_as_dotted` is set an
 * IPv4-mapped IPv6 address prints as ::ffff:a.b.c.d (Python 3.13 and later).
 * Writes a NUL-terminated string of at most 46 bytes; returns its length. */
size_t format_address(int family, const uint8_t addr[16], int mapped_as_dotted, char *out);

/* Writes the label for key and the timestamp text; returns its length, or 0
 * when the timestamp text is too long or holds a character that a file name
 * must not (only [0-9A-Za-z.+-] can come from str() of a number). */
size_t format_label(const struct flow_key *key, const char *timestamp, size_t timestamp_len,
                    int mapped_as_dotted, char out[LABEL_MAX]);

#endif
