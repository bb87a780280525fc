/* Every label a tracer has used, kept once. Flows and closed-flow records
 * point at the interned text, and the set counts how often each label was
 * opened so that a repeated label gets its own file instead of truncating
 * the first flow's (pcapkit loses that flow's frames). */
#ifndef PCAPFLOW_LABEL_SET_H
#define PCAPFLOW_LABEL_SET_H

#include <stddef.h>
#include <stdint.h>

struct label_entry { /* 16 bytes: four to a cache line */
    char *text;   /* NUL-terminated, owned by the set */
    uint32_t tag; /* the hash's upper half; its low bits are the home position */
    uint32_t uses;
};

/* Label texts live in large blocks, never freed one by one: a label is
 * kept as long as the tracer (closed flows point at it), so one malloc per
 * label would only add its overhead. */
struct label_block {
    struct label_block *next;
    size_t used;
    char text[];
};

struct label_set {
    struct label_entry *entries; /* open addressing, capacity a power of two */
    size_t capacity;
    size_t count;
    size_t text_bytes; /* bytes held by label texts, for memory accounting */
    uint64_t seed;
    struct label_block *blocks; /* the newest first */
};

/* seed: where the text hash starts (random per tracer, see flow_key_hash). */
void label_set_init(struct label_set *set, uint64_t seed);
void label_set_free(struct label_set *set);

/* Interns text and counts one more use. On success stores the interned text
 * and the use number (1 for the first use) and returns 0; returns -1 when
 * out of memory. */
int label_set_use(struct label_set *set, const char *text, size_t length, const char **interned,
                  uint32_t *use_number);

/* The same, the label having been used `uses` times already (0: count one
 * more use, as label_set_use does); for moving labels to a new set. */
int label_set_keep(struct label_set *set, const char *text, size_t length, uint32_t uses, const char **interned,
                   uint32_t *use_number);
/* The interned text equal to text, or NULL. Allocates nothing. */
const char *label_set_find(const struct label_set *set, const char *text, size_t length);

#endif
