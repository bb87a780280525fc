#include "timestamp_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* seconds.micro with trailing zeros dropped (".0" kept), as Python prints
 * a value in fixed notation. */
static size_t write_fixed_micro(uint64_t seconds, uint32_t micro, char *out)
{
    char digits[20];
    size_t count = 0, n = 0;
    do {
        digits[count++] = (char)('0' + seconds % 10);
        seconds /= 10;
    } while (seconds);
    while (count)
        out[n++] = digits[--count];
    out[n++] = '.';
    for (uint32_t scale = 100000; scale; scale /= 10)
        out[n++] = (char)('0' + micro / scale % 10);
    while (out[n - 1] == '0' && out[n - 2] != '.')
        n--;
    out[n] = '\0';
    return n;
}

/* The common case without the shortest-digits search. Below 2^33 a double's
 * spacing is under a microsecond, so a value with at most six decimals is
 * the only such decimal that rounds to its double: that decimal is then the
 * shortest text that reads back, which is what repr() prints. From 1e-4 on
 * repr() uses fixed notation. */
static int in_fixed_micro_range(uint64_t seconds, uint32_t micro)
{
    return seconds < (UINT64_C(1) << 33) && (seconds > 0 || micro >= 100);
}

/* Whether the decimal whole(value) + micro / 10**6 certainly reads back as
 * value: it lies within half a unit in the last place of value (scaled to
 * integers, so the comparison is exact). 0 means "not shown", not "no". */
static int rounds_to(double value, double fraction, uint64_t micro)
{
#ifdef __SIZEOF_INT128__
    int exponent;
    double mantissa = frexp(value, &exponent); /* value = mantissa * 2^exponent, mantissa in [0.5, 1) */
    int binade = exponent - 1;                  /* value in [2^binade, 2^(binade+1)) */
    if (binade < -14 || binade > 32)
        return 0;
    /* every bit of fraction is at least 2^-66 here, so this is an exact integer */
    unsigned __int128 scaled_fraction = (unsigned __int128)ldexp(fraction, 66);
    unsigned __int128 lhs = scaled_fraction * 1000000u, rhs = (unsigned __int128)micro << 66;
    unsigned __int128 distance = lhs > rhs ? lhs - rhs : rhs - lhs;
    /* half an ulp is 2^(binade-53); below a power of two the spacing halves */
    int shift = binade + 13 - (mantissa == 0.5);
    unsigned __int128 bound = shift >= 0 ? (unsigned __int128)1000000u << shift : 1000000u >> -shift;
    return distance < bound;
#else
    (void)value;
    (void)fraction;
    (void)micro;
    return 0;
#endif
}

size_t format_double_repr_fast(double value, char out[TIMESTAMP_TEXT_MAX])
{
    if (!(value >= 1e-4 && value < 8589934592.0))
        return 0;
    double whole = floor(value);
    uint64_t seconds = (uint64_t)whole;
    uint64_t micro = (uint64_t)llround((value - whole) * 1e6); /* value - whole is exact */
    if (micro == 1000000) {
        seconds++;
        micro = 0;
    }
    if (!in_fixed_micro_range(seconds, (uint32_t)micro))
        return 0;
    size_t n = write_fixed_micro(seconds, (uint32_t)micro, out);
    return rounds_to(value, value - whole, micro) || strtod(out, NULL) == value ? n : 0;
}

size_t format_double_repr(double value, char out[TIMESTAMP_TEXT_MAX])
{
    size_t fast = format_double_repr_fast(value, out);
    if (fast)
        return fast;
    if (isnan(value))
        return (size_t)snprintf(out, TIMESTAMP_TEXT_MAX, "nan");
    if (isinf(value))
        return (size_t)snprintf(out, TIMESTAMP_TEXT_MAX, value < 0 ? "-inf" : "inf");
    if (value == 0)
        return (size_t)snprintf(out, TIMESTAMP_TEXT_MAX, signbit(value) ? "-0.0" : "0.0");

    /* the shortest "%.Ne" that reads back to the same double */
    char scientific[40];
    for (int precision = 0; precision < 17; precision++) {
        snprintf(scientific, sizeof scientific, "%.*e", precision, value);
        if (strtod(scientific, NULL) == value)
            break;
    }
    /* split "-d.ddde+XX" into sign, digits and decimal exponent */
    const char *p = scientific;
    int negative = *p == '-';
    if (negative)
        p++;
    char digits[20];
    int count = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[count++] = *p;
    while (count > 1 && digits[count - 1] == '0')
        count--;
    int exponent = atoi(p + 1);
    int point = exponent + 1; /* digits are 0.d1d2... x 10^point */

    size_t n = 0;
    if (negative)
        out[n++] = '-';
    if (point <= -4 || point > 16) {
        out[n++] = digits[0];
        if (count > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, (size_t)count - 1);
            n += (size_t)count - 1;
        }
        n += (size_t)snprintf(out + n, TIMESTAMP_TEXT_MAX - n, "e%c%02d", exponent < 0 ? '-' : '+',
                              exponent < 0 ? -exponent : exponent);
        return n;
    }
    if (point <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -point; i++)
            out[n++] = '0';
        memcpy(out + n, digits, (size_t)count);
        n += (size_t)count;
    } else if (point < count) {
        memcpy(out + n, digits, (size_t)point);
        n += (size_t)point;
        out[n++] = '.';
        memcpy(out + n, digits + point, (size_t)(count - point));
        n += (size_t)(count - point);
    } else {
        memcpy(out + n, digits, (size_t)count);
        n += (size_t)count;
        for (int i = count; i < point; i++)
            out[n++] = '0';
        out[n++] = '.';
        out[n++] = '0';
    }
    out[n] = '\0';
    return n;
}

size_t format_timestamp(uint64_t seconds, uint64_t nanoseconds, char out[TIMESTAMP_TEXT_MAX])
{
    /* an out-of-range field (a damaged capture) adds whole seconds, as the
     * decimal sum does */
    seconds += nanoseconds / 1000000000u;
    nanoseconds %= 1000000000u;
    if (nanoseconds % 1000 == 0 && in_fixed_micro_range(seconds, (uint32_t)(nanoseconds / 1000)))
        return write_fixed_micro(seconds, (uint32_t)(nanoseconds / 1000), out); /* exact already: no rounding to do */
    char exact[40];
    snprintf(exact, sizeof exact, "%llu.%09llu", (unsigned long long)seconds, (unsigned long long)nanoseconds);
    return format_double_repr(strtod(exact, NULL), out);
}
