#include "pcap_format.h"

static void put_u32(uint8_t *out, uint32_t value, int big_endian)
{
    for (int i = 0; i < 4; i++) {
        int shift = big_endian ? 24 - 8 * i : 8 * i;
        out[i] = (uint8_t)(value >> shift);
    }
}

static void put_u16(uint8_t *out, uint16_t value, int big_endian)
{
    out[big_endian ? 0 : 1] = (uint8_t)(value >> 8);
    out[big_endian ? 1 : 0] = (uint8_t)value;
}

void pcap_write_global_header(const struct pcap_layout *layout, uint32_t linktype,
                              uint8_t out[PCAP_GLOBAL_HEADER_SIZE])
{
    put_u32(out, layout->nanosecond ? 0xa1b23c4du : 0xa1b2c3d4u, layout->big_endian);
    put_u16(out + 4, 2, layout->big_endian);
    put_u16(out + 6, 4, layout->big_endian);
    put_u32(out + 8, 0, layout->big_endian);  /* thiszone */
    put_u32(out + 12, 0, layout->big_endian); /* sigfigs */
    put_u32(out + 16, PCAP_SNAPLEN, layout->big_endian);
    put_u32(out + 20, linktype, layout->big_endian);
}

int pcap_write_record_header(const struct pcap_layout *layout, const struct pcap_record *record,
                             uint8_t out[PCAP_RECORD_HEADER_SIZE])
{
    uint64_t seconds = record->ts_sec, frac = record->ts_frac;
    if (record->frac_is_nanosecond && !layout->nanosecond)
        frac /= 1000;
    else if (!record->frac_is_nanosecond && layout->nanosecond)
        frac = frac > UINT64_MAX / 1000 ? UINT64_MAX : frac * 1000;
    if (frac > UINT32_MAX) {
        /* an out-of-range field (a damaged capture) that no longer fits:
         * keep the time it stands for by carrying whole seconds */
        uint64_t unit = layout->nanosecond ? 1000000000u : 1000000u;
        seconds += frac / unit;
        frac %= unit;
    }
    if (seconds > UINT32_MAX || record->incl_len > UINT32_MAX || record->orig_len > UINT32_MAX)
        return -1;
    put_u32(out, (uint32_t)seconds, layout->big_endian);
    put_u32(out + 4, (uint32_t)frac, layout->big_endian);
    put_u32(out + 8, (uint32_t)record->incl_len, layout->big_endian);
    put_u32(out + 12, (uint32_t)record->orig_len, layout->big_endian);
    return 0;
}
