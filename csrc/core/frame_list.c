#include "frame_list.h"

int frame_list_grow(struct frame_list *l)
{
    int in_place = l->capacity == FRAME_LIST_INLINE;
    uint32_t capacity = l->capacity > UINT32_MAX / 2 ? UINT32_MAX : l->capacity * 2;
    if (capacity - l->length < FRAME_LIST_MAX_STEP)
        return -1;
    uint8_t *bytes = in_place ? malloc(capacity) : realloc(l->bytes.heap, capacity);
    if (!bytes)
        return -1;
    if (in_place)
        memcpy(bytes, l->bytes.in_place, l->length);
    l->bytes.heap = bytes;
    l->capacity = capacity;
    return 0;
}

void frame_list_drop_last(struct frame_list *l)
{
    if (l->count <= 1) {
        l->count = 0;
        return;
    }
    const uint8_t *step = frame_list_bytes(l) + l->length - l->last_step;
    uint64_t zigzag = 0;
    for (uint8_t i = 0; i < l->last_step; i++)
        zigzag |= (uint64_t)(step[i] & 0x7f) << (7 * i);
    uint64_t difference = (zigzag >> 1) ^ (uint64_t)-(int64_t)(zigzag & 1);
    l->last = (int64_t)((uint64_t)l->last - difference);
    l->length -= l->last_step;
    l->last_step = 0;
    l->count--;
}
