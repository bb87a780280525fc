"""pcapflow.follow_format prints what `tshark -q -z follow,tcp,FORMAT,N` prints, byte for byte.

No engine needed: each stream is rebuilt from tshark's own yaml output (peers,
frame numbers, data) and the frames' exact times (follow_tools.TsharkConversation),
rendered in every format, and compared with tshark's output for that stream
and format, on every capture at hand and every synthetic case.
"""
import io
import locale

import pytest

from follow_synthetic import cases
from follow_tools import (TSHARK, TsharkConversation, TsharkError, capture_id, corpus_captures, follow, oracle,
                          shared_captures, unique_captures)
from pcapflow import follow_format

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

CAPTURES = unique_captures(shared_captures() + corpus_captures())
MODES = follow_format.FORMATS
# streams compared per capture: all of them up to this many, else the first and last halves
# (synscan's 1,994 streams all print the same empty block; 4 modes of each cost 40 tshark runs)
MAX_STREAMS = 100


@pytest.fixture(scope="session")
def synthetic_captures(tmp_path_factory):
    directory = tmp_path_factory.mktemp("follow-format-synthetic")
    return [case.write(directory) for case in cases()]


def sample(streams):
    if streams <= MAX_STREAMS:
        return list(range(streams))
    return list(range(MAX_STREAMS // 2)) + list(range(streams - MAX_STREAMS // 2, streams))


def first_difference(got, want):
    at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return f"first difference at byte {at}: printed {got[at - 40:at + 40]!r}, tshark {want[at - 40:at + 40]!r}"


def check_capture(found):
    streams = sample(found.streams)
    blocks = follow(found.capture, streams, MODES)  # all four formats of a stream in the same runs
    for stream in streams:
        conversation = TsharkConversation(blocks["yaml", stream], found.times)
        for mode in MODES:
            want = blocks[mode, stream].text
            got = follow_format.render(conversation, mode)
            assert got == want, f"{capture_id(found.capture)} stream {stream} {mode}: {first_difference(got, want)}"


@pytest.mark.parametrize("path", CAPTURES, ids=[capture_id(p) for p in CAPTURES])
def test_every_format_matches_tshark(path):
    found = oracle(path)
    try:
        found.streams
    except TsharkError as error:
        pytest.skip(f"tshark cannot read {capture_id(path)}: {error}")
    check_capture(found)


def test_every_format_matches_tshark_on_synthetic_captures(synthetic_captures):
    for path in synthetic_captures:
        check_capture(oracle(path))


@pytest.mark.parametrize("stream_beyond", [0, 41])
def test_missing_stream_matches_tshark(stream_beyond, synthetic_captures):
    found = oracle(synthetic_captures[0])
    number = found.streams + stream_beyond
    blocks = follow(found.capture, [number], MODES)
    for mode in MODES:
        assert follow_format.render(follow_format.missing_stream(number), mode) == blocks[mode, number].text, mode


def test_write_gives_the_rendered_bytes():
    found = oracle(shared_captures()[0] if shared_captures() else CAPTURES[0])
    conversation = found.conversations()[0]
    for mode in MODES:
        out = io.BytesIO()
        follow_format.write(conversation, mode, out)
        assert out.getvalue() == follow_format.render(conversation, mode)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="raw, ascii, hex, yaml"):
        follow_format.render(follow_format.missing_stream(0), "ebcdic")


def test_output_does_not_depend_on_the_locale(synthetic_captures):
    # German writes 1,5 for 1.5 and groups thousands: C's printf under that LC_NUMERIC would too
    found = oracle(synthetic_captures[0])
    conversations = found.conversations()
    before = [follow_format.render(c, mode) for c in conversations for mode in MODES]
    saved = locale.setlocale(locale.LC_ALL)
    try:
        locale.setlocale(locale.LC_ALL, "de_DE.UTF-8")
    except locale.Error:
        pytest.skip("no de_DE.UTF-8 locale on this machine")
    try:
        assert locale.localeconv()["decimal_point"] == ","
        assert [follow_format.render(c, mode) for c in conversations for mode in MODES] == before
    finally:
        locale.setlocale(locale.LC_ALL, saved)
