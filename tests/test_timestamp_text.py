"""The timestamp part of a label, held against Python's own repr().

The C core writes it in two ways: from a float a Packet carries (trace()),
and from a capture's seconds and nanoseconds (trace_file()). Both must spell
it exactly as pcapkit's str(float) does, and both have a fast path for
values on the microsecond grid, so the tests aim at that grid, its edges and
the doubles right next to it as well as at arbitrary floats.
"""
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapflow import _core

EDGE = 2.0 ** 33  # the fast path's upper end: below it doubles lie under a microsecond apart
seconds = st.one_of(st.integers(0, 2 ** 34), st.sampled_from([0, 1, 9, 10, 99, 1_700_000_000, 2 ** 33 - 1, 2 ** 33]))
micros = st.one_of(st.integers(0, 999_999), st.sampled_from([0, 1, 10, 99, 100, 500_000, 999_990, 999_999]))


def on_grid(sec, micro):
    return float(Decimal(sec) + Decimal(micro) / 1_000_000)


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False))
def test_any_float_is_written_as_repr_writes_it(value):
    assert _core.float_repr(value) == repr(value)


@settings(max_examples=3000, deadline=None)
@given(seconds, micros, st.integers(-3, 3))
def test_floats_on_and_next_to_the_microsecond_grid(sec, micro, steps):
    value = on_grid(sec, micro)
    for _ in range(abs(steps)):
        value = math.nextafter(value, math.inf if steps > 0 else -math.inf)
    assert _core.float_repr(value) == repr(value)


@pytest.mark.parametrize("value", [1e-4, math.nextafter(1e-4, 0), 9.99e-5, 0.000123, 0.5, 1.0, 1e15, 1e16,
                                   EDGE, math.nextafter(EDGE, 0), EDGE - 1e-6, 1795666673.984141,
                                   0.0, -0.0, -1.5, math.inf, -math.inf, 5e-324, 1.7976931348623157e308])
def test_edges(value):
    assert _core.float_repr(value) == repr(value)


def test_nan():
    assert _core.float_repr(math.nan) == "nan"


@settings(max_examples=3000, deadline=None)
@given(seconds, st.one_of(st.integers(0, 999_999_999), micros.map(lambda micro: micro * 1000)))
def test_capture_timestamps_are_the_float_of_the_exact_decimal(sec, nano):
    assert _core.format_timestamp(sec, nano) == repr(float(Decimal(f"{sec}.{nano:09d}")))
