#include "label.h"

#include <string.h>

#include "digits.h"

/* Lower-case hex digits of a 16-bit group, without leading zeros. */
static size_t write_hex(unsigned value, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (int shift = 12; shift >= 0; shift -= 4)
        if ((value >> shift) || n || shift == 0)
            out[n++] = hex[(value >> shift) & 15];
    return n;
}

static size_t format_ipv4(const uint8_t *a, char *out)
{
    size_t n = write_unsigned(a[0], out);
    for (int i = 1; i < 4; i++) {
        out[n++] = '.';
        n += write_unsigned(a[i], out + n);
    }
    out[n] = '\0';
    return n;
}

/* Python compresses the longest run of two or more zero groups (the first
 * such run on a tie) and prints the other groups in lower-case hex without
 * leading zeros. */
static size_t format_ipv6(const uint8_t *a, int mapped_as_dotted, char *out)
{
    static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (mapped_as_dotted && memcmp(a, mapped_prefix, 12) == 0) {
        memcpy(out, "::ffff:", 7);
        return 7 + format_ipv4(a + 12, out + 7);
    }
    unsigned groups[8];
    for (int i = 0; i < 8; i++)
        groups[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];

    int best_start = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (groups[i] != 0) { i++; continue; }
        int j = i;
        while (j < 8 && groups[j] == 0)
            j++;
        if (j - i > best_len) { best_start = i; best_len = j - i; }
        i = j;
    }
    if (best_len < 2)
        best_start = -1;

    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best_start) {
            /* "::" stands for the run; it also supplies the separator on each side */
            if (i == 0)
                out[n++] = ':';
            out[n++] = ':';
            i += best_len - 1;
            continue;
        }
        n += write_hex(groups[i], out + n);
        if (i < 7)
            out[n++] = ':';
    }
    out[n] = '\0';
    return n;
}

size_t format_address(int family, const uint8_t addr[16], int mapped_as_dotted, char *out)
{
    return family == FLOW_FAMILY_IPV4 ? format_ipv4(addr, out) : format_ipv6(addr, mapped_as_dotted, out);
}

/* [0-9A-Za-z.+-]: what str() of a number can hold, all safe in a file name. */
static const unsigned char timestamp_char_allowed[128] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['.'] = 1, ['+'] = 1, ['-'] = 1,
};

size_t format_label(const struct flow_key *key, const char *timestamp, size_t timestamp_len,
                    int mapped_as_dotted, char out[LABEL_MAX])
{
    if (timestamp_len == 0 || timestamp_len > LABEL_MAX_TIMESTAMP)
        return 0;
    for (size_t i = 0; i < timestamp_len; i++) {
        unsigned char c = (unsigned char)timestamp[i];
        if (c >= 128 || !timestamp_char_allowed[c])
            return 0;
    }

    size_t n = format_address(key->src_family, key->src, mapped_as_dotted, out);
    out[n++] = '_';
    n += write_unsigned(key->src_port, out + n);
    out[n++] = '-';
    n += format_address(key->dst_family, key->dst, mapped_as_dotted, out + n);
    out[n++] = '_';
    n += write_unsigned(key->dst_port, out + n);
    out[n++] = '-';
    memcpy(out + n, timestamp, timestamp_len);
    n += timestamp_len;
    out[n] = '\0';
    if (key->src_family == FLOW_FAMILY_IPV6)
        for (size_t i = 0; i < n; i++)
            if (out[i] == ':')
                out[i] = '.';
    return n;
}
