/* libFuzzer harness: any bytes as a frame of any supported link type.
 * The first input byte picks the link type (low 7 bits) and whether
 * tunnels are opened (high bit); the frame is copied into a buffer of
 * exactly its length so AddressSanitizer catches any read past caplen. A
 * decoded TCP frame must name a family for both addresses, and opening
 * tunnels must not change the decoding of a frame traced without them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/decode.h"
#include "core/flow_key.h"

static const int link_types[] = {0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276, 147};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int linktype = link_types[(data[0] & 0x7f) % (sizeof link_types / sizeof link_types[0])];
    unsigned options = data[0] & 0x80 ? DECODE_TUNNELS : 0;
    size_t caplen = size - 1;
    uint8_t *frame = malloc(caplen ? caplen : 1);
    if (!frame)
        return 0;
    memcpy(frame, data + 1, caplen);
    struct decoded_frame decoded;
    enum decode_status status = decode_frame(linktype, frame, caplen, options, &decoded);
    if (status == DECODE_TCP) {
        int families_ok = (decoded.key.src_family == 4 || decoded.key.src_family == 6) &&
                          decoded.key.src_family == decoded.key.dst_family;
        if (!families_ok)
            abort();
    }
    if (status == DECODE_UNSUPPORTED_LINK && decode_link_supported(linktype))
        abort();
    if (status == DECODE_TCP && options == 0) {
        struct decoded_frame tunnelled;
        if (decode_frame(linktype, frame, caplen, DECODE_TUNNELS, &tunnelled) != DECODE_TCP ||
            !flow_key_equal(&decoded.key, &tunnelled.key) || decoded.tcp_flags != tunnelled.tcp_flags)
            abort();
    }
    free(frame);
    return 0;
}
