/* Timestamps in labels, as pcapkit writes them: str(float(epoch)), where the
 * epoch is the exact decimal seconds.nanoseconds of the frame. */
#ifndef PCAPFLOW_TIMESTAMP_TEXT_H
#define PCAPFLOW_TIMESTAMP_TEXT_H

#include <stddef.h>
#include <stdint.h>

enum { TIMESTAMP_TEXT_MAX = 48 };

/* Rounds seconds + nanoseconds / 1e9 to the nearest double (correctly, from
 * the decimal text, not by adding floats) and writes it as Python's repr()
 * would: the shortest digits that read back to the same double, in fixed
 * notation unless the exponent is below -4 or above 15. Returns the length. */
size_t format_timestamp(uint64_t seconds, uint64_t nanoseconds, char out[TIMESTAMP_TEXT_MAX]);

/* repr() of a double in the common case of at most six decimals between
 * 1e-4 and 2^33, or 0 when the value is not such a case. */
size_t format_double_repr_fast(double value, char out[TIMESTAMP_TEXT_MAX]);

/* The same for a double already at hand. */
size_t format_double_repr(double value, char out[TIMESTAMP_TEXT_MAX]);

#endif
