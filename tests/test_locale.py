"""Labels do not depend on the C locale.

A program that calls locale.setlocale(LC_ALL, ...) with a locale whose decimal
separator is a comma (de_DE.UTF-8) changes how the C library's printf and
strtod write and read numbers. Label timestamps are pcapkit's str(float):
always a point, whatever the locale. Each test computes the labels in the C
locale, then again with de_DE.UTF-8 set in this process, and compares.

`make deps` (run by `make install`, `make test`, `make check`) generates
de_DE.UTF-8. The tests skip only where the locale cannot exist (no de_DE
definition on the machine, or a C library without decimal-comma locales);
where it could be made but was not, they fail and say how to make it.
"""
import locale
import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcapflow
from pcapflow import TCP, Packet, _core

from _support import packet_fields

DATA = Path(__file__).parent / "data"
NANOSECOND_CAPTURE = DATA / "tcp-handshake-nano.pcap"
COMMA_LOCALES = ("de_DE.UTF-8", "de_DE.utf8")
LOCALE_SOURCE = Path("/usr/share/i18n/locales/de_DE")

# the label timestamps of floats off the microsecond grid (the locale-free
# fast path does not take them), of tiny and huge values (exponent notation)
FLOATS = [1418145369.9245055, 1418145370.0520272, 1600000000.1234567, 0.1 + 0.2, 1.5e-07, 9.99e-05,
          1.7976931348623157e308, 5e-324, 1e16, 123456789012345680.0, 2.0 ** 33 + 0.5, 1600000000.25, 0.0]


@pytest.fixture
def comma_locale():
    """Sets de_DE.UTF-8 for LC_ALL for the test, then puts back what was set."""
    saved = locale.setlocale(locale.LC_ALL)
    for name in COMMA_LOCALES:
        try:
            locale.setlocale(locale.LC_ALL, name)
            break
        except locale.Error:
            continue
    else:
        if not LOCALE_SOURCE.exists():
            pytest.skip("no de_DE locale definition on this machine (Debian's locales package)")
        pytest.fail("de_DE.UTF-8 is not generated: run `make deps` (it adds it to /etc/locale.gen and runs locale-gen)")
    try:
        if locale.localeconv()["decimal_point"] != ",":
            # a C library whose LC_NUMERIC is always C's (musl): no locale
            # can change how printf and strtod treat numbers
            pytest.skip("de_DE.UTF-8 has no decimal comma in this C library")
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def test_the_fixture_puts_the_locale_back(comma_locale):
    # the comma locale is set inside; the other tests check the point before and after
    assert locale.localeconv()["decimal_point"] == ","


def test_trace_file_labels_on_a_nanosecond_capture(comma_locale, tmp_path):
    def labels(out):
        return [(flow.label, flow.index, os.path.basename(flow.fpout))
                for flow in pcapflow.trace_file(str(NANOSECOND_CAPTURE), str(out))]

    locale.setlocale(locale.LC_ALL, "C")
    expected = labels(tmp_path / "c")
    assert expected[0][0] == "131.155.215.69_46656-137.116.81.94_80-1418145369.9245055"
    locale.setlocale(locale.LC_ALL, COMMA_LOCALES[0])
    assert labels(tmp_path / "de") == expected
    assert sorted(os.listdir(tmp_path / "de")) == sorted(os.listdir(tmp_path / "c"))


def test_trace_with_float_timestamps(comma_locale):
    def labels():
        tracer = TCP()
        return [tracer.trace(Packet(**packet_fields(number, srcport=40000 + number, timestamp=value)))
                for number, value in enumerate(FLOATS, 1)]

    locale.setlocale(locale.LC_ALL, "C")
    expected = labels()
    assert [label.split("-", 2)[2] for label in expected] == [repr(value) for value in FLOATS]
    locale.setlocale(locale.LC_ALL, COMMA_LOCALES[0])
    assert labels() == expected


def test_core_number_text(comma_locale):
    for value in FLOATS + [-1.5e-07, -0.0, 1e-4, 2.5e22]:
        assert _core.float_repr(value) == repr(value), value
    for seconds, nanoseconds in [(1418145369, 924505500), (1418145370, 52027200), (0, 1), (0, 999_999_999),
                                 (1_600_000_000, 123_456_789), (2 ** 40, 5), (2 ** 63, 999_999_999), (7, 2_500_000_001)]:
        exact = Decimal(seconds + nanoseconds // 10 ** 9) + Decimal(nanoseconds % 10 ** 9) / 10 ** 9
        assert _core.format_timestamp(seconds, nanoseconds) == repr(float(exact)), (seconds, nanoseconds)


@pytest.fixture(autouse=True)
def point_before_and_after():
    assert locale.localeconv()["decimal_point"] == "."
    yield
    assert locale.localeconv()["decimal_point"] == "."


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.floats(allow_nan=False), seconds=st.integers(0, 2 ** 40), nanoseconds=st.integers(0, 999_999_999))
def test_any_number_in_the_comma_locale(comma_locale, value, seconds, nanoseconds):
    assert _core.float_repr(value) == repr(value)
    assert _core.format_timestamp(seconds, nanoseconds) == repr(float(Decimal(f"{seconds}.{nanoseconds:09d}")))
