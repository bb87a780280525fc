/* Decimal digits for labels: every flow's label is written once, so these
 * take two digits per step from a table instead of one per division. */
#ifndef PCAPFLOW_DIGITS_H
#define PCAPFLOW_DIGITS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* "00" "01" ... "99" */
extern const char digit_pairs[200];

/* Exactly two digits of value (below 100). */
static inline void write_two_digits(unsigned value, char *out) { memcpy(out, digit_pairs + 2 * value, 2); }

/* How many digits value has: estimated from its bit length (log10(2) is
 * about 1233/4096), then corrected by one comparison. */
static inline size_t decimal_length(uint64_t value)
{
    static const uint64_t powers[20] = {
        1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u, 1000000000u,
        10000000000u, 100000000000u, 1000000000000u, 10000000000000u, 100000000000000u, 1000000000000000u,
        10000000000000000u, 100000000000000000u, 1000000000000000000u, 10000000000000000000u,
    };
    value |= 1; /* same digit count (powers of ten are even), and 0 has one digit */
    size_t bits = 64 - (size_t)__builtin_clzll(value);
    size_t estimate = bits * 1233 >> 12; /* digits - 1 or digits */
    return estimate + (value >= powers[estimate]);
}

/* The digits of value without leading zeros ("0" for zero); returns the count. */
static inline size_t write_unsigned(uint64_t value, char *out)
{
    size_t length = decimal_length(value), end = length;
    for (; value >= 100; value /= 100) {
        end -= 2;
        write_two_digits((unsigned)(value % 100), out + end);
    }
    if (value >= 10)
        write_two_digits((unsigned)value, out);
    else
        out[0] = (char)('0' + value);
    return length;
}

#endif
