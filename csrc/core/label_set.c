#include "label_set.h"

#include <stdlib.h>
#include <string.h>

/* Eight bytes at a time, each word mixed by multiply and xor-shift. */
static uint64_t hash_text(const char *text, size_t length, uint64_t seed)
{
    uint64_t h = seed ^ length;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, text, 8);
        h = (h ^ word) * 0xbf58476d1ce4e5b9u;
        h ^= h >> 29;
        text += 8;
        length -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < length; i++)
        tail = tail << 8 | (uint8_t)text[i];
    h = (h ^ tail) * 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

void label_set_init(struct label_set *set, uint64_t seed)
{
    memset(set, 0, sizeof *set);
    set->seed = seed;
}

enum { LABEL_BLOCK_BYTES = 64 * 1024 - 64 };

void label_set_free(struct label_set *set)
{
    while (set->blocks) {
        struct label_block *next = set->blocks->next;
        free(set->blocks);
        set->blocks = next;
    }
    free(set->entries);
    memset(set, 0, sizeof *set);
}

/* Room for size bytes of text, in the newest block or a new one. */
static char *store(struct label_set *set, size_t size)
{
    struct label_block *block = set->blocks;
    if (!block || block->used + size > LABEL_BLOCK_BYTES) {
        size_t capacity = size > LABEL_BLOCK_BYTES ? size : LABEL_BLOCK_BYTES;
        block = malloc(sizeof *block + capacity);
        if (!block)
            return NULL;
        block->next = set->blocks;
        block->used = 0;
        set->blocks = block;
    }
    char *text = block->text + block->used;
    block->used += size;
    return text;
}

static int grow(struct label_set *set)
{
    size_t capacity = set->capacity ? set->capacity * 2 : 64;
    struct label_entry *entries = calloc(capacity, sizeof *entries);
    if (!entries)
        return -1;
    for (size_t i = 0; i < set->capacity; i++) {
        struct label_entry *old = &set->entries[i];
        if (!old->text)
            continue;
        size_t j = old->tag & (capacity - 1);
        while (entries[j].text)
            j = (j + 1) & (capacity - 1);
        entries[j] = *old;
    }
    free(set->entries);
    set->entries = entries;
    set->capacity = capacity;
    return 0;
}

int label_set_use(struct label_set *set, const char *text, size_t length, const char **interned,
                  uint32_t *use_number)
{
    return label_set_keep(set, text, length, 0, interned, use_number);
}

int label_set_keep(struct label_set *set, const char *text, size_t length, uint32_t uses, const char **interned,
                   uint32_t *use_number)
{
    if ((set->count + 1) * 2 > set->capacity && grow(set) < 0)
        return -1;
    uint32_t tag = (uint32_t)(hash_text(text, length, set->seed) >> 32);
    size_t i = tag & (set->capacity - 1);
    for (;; i = (i + 1) & (set->capacity - 1)) {
        struct label_entry *entry = &set->entries[i];
        if (!entry->text)
            break;
        /* strncmp stops at the entry's NUL, so a shorter entry is never read past */
        if (entry->tag == tag && strncmp(entry->text, text, length) == 0 && entry->text[length] == '\0') {
            entry->uses = uses ? (uses > entry->uses ? uses : entry->uses) : entry->uses + 1;
            *interned = entry->text;
            *use_number = entry->uses;
            return 0;
        }
    }
    char *copy = store(set, length + 1);
    if (!copy)
        return -1;
    memcpy(copy, text, length);
    copy[length] = '\0';
    set->entries[i] = (struct label_entry){copy, tag, uses ? uses : 1};
    set->count++;
    set->text_bytes += length + 1;
    *interned = copy;
    *use_number = uses ? uses : 1;
    return 0;
}

const char *label_set_find(const struct label_set *set, const char *text, size_t length)
{
    if (!set->capacity)
        return NULL;
    uint32_t tag = (uint32_t)(hash_text(text, length, set->seed) >> 32);
    for (size_t i = tag & (set->capacity - 1);; i = (i + 1) & (set->capacity - 1)) {
        const struct label_entry *entry = &set->entries[i];
        if (!entry->text)
            return NULL;
        if (entry->tag == tag && strncmp(entry->text, text, length) == 0 && entry->text[length] == '\0')
            return entry->text;
    }
}
