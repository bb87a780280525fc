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

/* How many digits value has. */
static inline size_t decimal_length(uint64_t value)
{
    size_t length = 1;
    for (; value >= 100; value /= 100)
        length += 2;
    return length + (value >= 10);
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
