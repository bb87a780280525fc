#include "pcapflow_core.h"

#include "digits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* seconds.micro with trailing zeros dropped (".0" kept), as Python prints
 * a value in fixed notation. */
static size_t write_fixed_micro(uint64_t seconds, uint32_t micro, char *out)
{
    size_t n = write_unsigned(seconds, out);
    out[n++] = '.';
    write_two_digits(micro / 10000, out + n);
    write_two_digits(micro / 100 % 100, out + n + 2);
    write_two_digits(micro % 100, out + n + 4);
    n += 6;
    while (out[n - 1] == '0' && out[n - 2] != '.')
        n--;
    out[n] = '\0';
    return n;
}

/* Below 2^33 doubles lie less than a microsecond apart, so at most one
 * decimal with six or fewer decimals rounds to a given double; when one
 * does, it is the shortest text that reads back, which is what repr()
 * prints. From 1e-4 on repr() uses fixed notation. */
static int in_fixed_micro_range(uint64_t seconds, uint32_t micro)
{
    return seconds < (UINT64_C(1) << 33) && (seconds > 0 || micro >= 100);
}

size_t format_double_repr_fast(double value, char out[TIMESTAMP_TEXT_MAX])
{
    if (!(value >= 1e-4 && value < 8589934592.0))
        return 0;
    uint64_t seconds = (uint64_t)value;       /* truncation: the whole seconds */
    double fraction = value - (double)seconds; /* exact */
    uint64_t micro = (uint64_t)(fraction * 1e6 + 0.5);
    /* Whether that decimal reads back as value is exact to test: in
     * microseconds it is an integer below 2^53, and dividing it by 1e6
     * rounds correctly, as reading the text does. */
    uint64_t total = seconds * 1000000u + micro;
    if ((double)total / 1e6 != value)
        return 0;
    return write_fixed_micro(total / 1000000u, (uint32_t)(total % 1000000u), out);
}

/* Number text here never depends on the C locale: a program may have
 * called setlocale(LC_ALL, "de_DE.UTF-8"), after which printf writes and
 * strtod reads a decimal comma (LC_NUMERIC). So the digits are written with
 * write_unsigned, strtod is only given integer digits with an exponent
 * ("123e-5", which every locale reads alike: no decimal separator), and of
 * printf's "%e" text only the ASCII digits and what follows the last 'e' are
 * used; its decimal separator, whatever bytes it is, is skipped. */

/* digits e exponent, as text strtod reads without a decimal separator */
static int reads_back(unsigned long long mantissa, int exponent, double value)
{
    char text[40];
    size_t n = write_unsigned(mantissa, text);
    text[n++] = 'e';
    if (exponent < 0)
        text[n++] = '-';
    n += write_unsigned((uint64_t)(exponent < 0 ? -(long)exponent : exponent), text + n);
    text[n] = '\0';
    return strtod(text, NULL) == value;
}

/* The shortest significant digits that read back as value (positive,
 * finite, nonzero), without trailing zeros, and the decimal exponent of the
 * first: value ~ 0.d1d2... x 10^(exponent + 1). At each length printf's
 * nearest digits are tried first; at a power of two the doubles below lie
 * twice as close as those above, so when the nearest (below) does not read
 * back, the next digits up may. */
static void shortest_digits(double value, char digits[20], int *count, int *exponent)
{
    char text[64];
    unsigned long long mantissa = 0;
    for (int precision = 0; precision < 17; precision++) {
        snprintf(text, sizeof text, "%.*e", precision, value);
        const char *e = strrchr(text, 'e'); /* a separator is never ASCII 'e' */
        mantissa = 0;
        for (const char *p = text; p < e; p++)
            if (*p >= '0' && *p <= '9')
                mantissa = mantissa * 10 + (unsigned long long)(*p - '0');
        int sign = e[1] == '-' ? -1 : 1, magnitude = 0;
        for (const char *p = e + 2; *p >= '0' && *p <= '9'; p++)
            magnitude = magnitude * 10 + (*p - '0');
        *exponent = sign * magnitude;
        if (reads_back(mantissa, *exponent - precision, value))
            break;
        if (reads_back(mantissa + 1, *exponent - precision, value)) {
            mantissa++;
            if (decimal_length(mantissa) > (size_t)precision + 1)
                ++*exponent; /* 9.99 went up to 10.00 */
            break;
        }
    }
    *count = (int)write_unsigned(mantissa, digits);
    while (*count > 1 && digits[*count - 1] == '0')
        --*count;
}

static size_t write_text(const char *text, char *out)
{
    size_t n = strlen(text);
    memcpy(out, text, n + 1);
    return n;
}

size_t format_double_repr(double value, char out[TIMESTAMP_TEXT_MAX])
{
    size_t fast = format_double_repr_fast(value, out);
    if (fast)
        return fast;
    if (isnan(value))
        return write_text("nan", out);
    if (isinf(value))
        return write_text(value < 0 ? "-inf" : "inf", out);
    if (value == 0)
        return write_text(signbit(value) ? "-0.0" : "0.0", out);

    char digits[20];
    int count, exponent;
    shortest_digits(fabs(value), digits, &count, &exponent);
    int negative = signbit(value) != 0;
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
        out[n++] = 'e';
        out[n++] = exponent < 0 ? '-' : '+';
        unsigned magnitude = (unsigned)(exponent < 0 ? -exponent : exponent);
        if (magnitude < 10)
            out[n++] = '0'; /* at least two digits, as repr() writes them */
        n += write_unsigned(magnitude, out + n);
        out[n] = '\0';
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
    /* seconds.nanoseconds as the integer of nanoseconds times 10^-9: text
     * that strtod rounds correctly and reads alike in every locale */
    char exact[48];
    size_t n = write_unsigned(seconds, exact);
    uint32_t nano = (uint32_t)nanoseconds;
    exact[n] = (char)('0' + nano / 100000000u);
    write_two_digits(nano / 1000000u % 100, exact + n + 1);
    write_two_digits(nano / 10000u % 100, exact + n + 3);
    write_two_digits(nano / 100u % 100, exact + n + 5);
    write_two_digits(nano % 100, exact + n + 7);
    memcpy(exact + n + 9, "e-9", 4);
    return format_double_repr(strtod(exact, NULL), out);
}

size_t format_epoch(int64_t seconds, uint64_t nanoseconds, char out[TIMESTAMP_TEXT_MAX])
{
    if (seconds >= 0)
        return format_timestamp((uint64_t)seconds, nanoseconds, out);
    /* the exact sum in nanoseconds; 128 bits hold any seconds and field */
    __int128 total = (__int128)seconds * 1000000000 + (__int128)nanoseconds;
    if (total >= 0)
        return format_timestamp((uint64_t)(total / 1000000000), (uint64_t)(total % 1000000000), out);
    /* -(magnitude)e-9 rounds to the nearest double as the text would; the
     * magnitude is below 2^63 * 10^9, so its digits fit in 29 characters */
    unsigned __int128 magnitude = (unsigned __int128)-total;
    char digits[48], text[56];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (int)(magnitude % 10));
        magnitude /= 10;
    } while (magnitude);
    size_t length = 0;
    while (n)
        text[length++] = digits[--n];
    memcpy(text + length, "e-9", 4);
    return format_double_repr(-strtod(text, NULL), out);
}
