"""pcapflow.trace_file / trace_files with a text format (json, plist, tree text), against pcapkit.extract.

For a text format pcapkit decodes every frame (the text is its description of
the frame) and pcapflow traces the frames and writes the files. The result
must be what pcapkit.extract(..., trace=True, tcp=True, trace_format=fmt)
gives: the same Index and the same bytes in every file, except where pcapflow
differs on purpose:

- each frame's ``packet`` field holds the frame's captured bytes; pcapkit
  1.4.1 puts there the bytes that follow the frame's record in a pcap file
  (nothing after the last one) and nothing at all for pcapng;
- a repeated label writes ``{label}_2{ext}`` (README).

The expected files are written by pcapkit itself, running pcapkit.extract with
pcapkit's own tracer: once as it is, and once with each frame's ``packet`` set
to the frame's bytes as this suite's own reader (capture_tools) reads them.
"""
import contextlib
import io
import json
import logging
import os
import sys
import warnings
from pathlib import Path

import pcapkit
import pytest
from pcapkit.foundation.extraction import Extractor
from pcapkit.foundation.traceflow.tcp import TCP as PcapkitTCP

import pcapflow
from capture_tools import (ACK, ETHERNET, FIN, SYN, as_tuples, ethernet, frames_at, ipv4, read_capture, record_offsets,
                           tcp, write_pcap)
from conftest import reference_format, snapshot
from pcapflow import text_capture

logging.getLogger("pcapkit").setLevel(logging.CRITICAL + 1)

DATA = Path(__file__).parent / "data"
NATIVE = DATA / "native"
# the captures of test_real_captures.py: pcapng, pcap at microseconds, pcap at nanoseconds
CAPTURES = [
    "tcp_teardown.pcapng", "dns_tcp.pcapng", "http_ip4and6.pcapng", "tcp_retransmissions.pcapng",
    "dns_tcp.pcap", "ssh.pcap", "whois.pcap",
    "whois-nsec.pcap", "tcp-handshake-nano.pcap",
]
# pcapkit does not decode Linux cooked captures: it finds no TCP where pcapflow's own decoder does
PCAPKIT_FINDS_NO_TCP = {"tcp-handshake-nano.pcap"}
EXT = {"json": ".json", "plist": ".plist", "xml": ".plist", "tree": ".txt", "txt": ".txt", "text": ".txt"}


# ---------------------------------------------------------------------------
# pcapkit's own run
# ---------------------------------------------------------------------------

def frame_bytes(capture):
    """Frame number -> the frame's captured bytes, read by capture_tools (not by pcapkit or pcapflow)."""
    return {number: record.data for number, record in enumerate(read_capture(capture).records, 1)}


@contextlib.contextmanager
def pcapkit_tracer(true_bytes=None, keep=None):
    """pcapkit.extract traces with pcapkit's own tracer class, which, given true_bytes, first puts
    the frame's real bytes in the frame's `packet` field, and skips the packets keep() rejects."""
    class Tracer(PcapkitTCP):
        def dump(self, packet):
            if keep is not None and not keep(packet):
                return
            if true_bytes is not None:
                packet.frame.__update__(packet=true_bytes[packet.index])
            super().dump(packet)

    registry = Extractor.__traceflow__
    saved = registry["tcp"]
    registry["tcp"] = Tracer
    try:
        yield
    finally:
        registry["tcp"] = saved


def pcapkit_run(capture, out, fmt, *, true_bytes=None, keep=None, byteorder=sys.byteorder, nanosecond=False):
    """(index as (fpout relative to out, frames, label), {file name: bytes}) of pcapkit.extract."""
    with pcapkit_tracer(true_bytes, keep), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extraction = pcapkit.extract(fin=str(capture), nofile=True, trace=True, tcp=True, store=False,
                                     trace_fout=str(out), trace_format=reference_format(fmt),
                                     trace_byteorder=byteorder, trace_nanosecond=nanosecond)
        index = as_tuples(extraction.trace.tcp, relative_to=out)
    return index, snapshot(out) if os.path.isdir(out) else {}


def files_of(out):
    return snapshot(out) if os.path.isdir(out) else {}


def flows(index):
    """(frames, label) of each flow, whatever the file names."""
    return [(tuple(flow.index), flow.label) for flow in index]


# ---------------------------------------------------------------------------
# The same flows and files as pcapkit
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "tree"])
@pytest.mark.parametrize("name", CAPTURES)
def test_index_and_files_equal_pcapkit(name, fmt, tmp_path):
    capture = DATA / name
    truth = frame_bytes(capture)
    as_is_index, as_is_files = pcapkit_run(capture, tmp_path / "pcapkit", fmt)
    fixed_index, fixed_files = pcapkit_run(capture, tmp_path / "fixed", fmt, true_bytes=truth)
    out = tmp_path / "pcapflow"
    index = pcapflow.trace_file(str(capture), str(out), fmt)

    assert isinstance(index, tuple) and all(isinstance(flow, pcapflow.Index) for flow in index)
    assert as_tuples(index, relative_to=out) == as_is_index == fixed_index
    assert files_of(out) == fixed_files
    assert sorted(as_is_files) == sorted(fixed_files) == sorted(os.path.basename(f.fpout) for f in index)
    # none of these captures repeats a label, so pcapkit's files are all there is to compare with
    assert len({flow.label for flow in index}) == len(index)

    native = pcapflow.trace_file(str(capture), str(tmp_path / "native"))
    if name in PCAPKIT_FINDS_NO_TCP:
        assert index == () and native != ()
    else:
        assert index, f"pcapkit found no flows in {name}: not a useful comparison"
        assert flows(index) == flows(native)
        assert [os.path.splitext(os.path.basename(f.fpout))[0] for f in index] == \
            [os.path.splitext(os.path.basename(f.fpout))[0] for f in native]


@pytest.mark.parametrize("name", [n for n in CAPTURES if n not in PCAPKIT_FINDS_NO_TCP])
def test_json_differs_from_pcapkit_only_in_the_frames_packet_bytes(name, tmp_path):
    """Frame by frame: pcapkit's description, except `packet`: pcapkit's wrong bytes, pcapflow's the frame's."""
    capture = DATA / name
    truth = frame_bytes(capture)
    blob = capture.read_bytes()
    _, as_is_files = pcapkit_run(capture, tmp_path / "pcapkit", "json")
    out = tmp_path / "pcapflow"
    pcapflow.trace_file(str(capture), str(out), "json")
    ours = files_of(out)
    assert sorted(ours) == sorted(as_is_files)
    compared = 0
    for file_name, content in ours.items():
        theirs = json.loads(as_is_files[file_name])
        mine = json.loads(content)
        assert list(mine) == list(theirs)
        for frame_name, frame in mine.items():
            number = int(frame_name.split()[1])
            assert frame["number"] == number
            assert frame["packet"]["hex"] == truth[number].hex()
            if blob[:4] == b"\x0a\x0d\x0d\x0a":
                wrong = b""  # pcapng: nothing
            else:  # pcap: as many bytes as the frame has, from the end of its record on
                offsets = record_offsets(blob) + [len(blob)]
                wrong = blob[offsets[number]:offsets[number] + len(truth[number])]
            assert theirs[frame_name]["packet"]["hex"] == wrong.hex() != truth[number].hex()
            assert {k: v for k, v in frame.items() if k != "packet"} == \
                {k: v for k, v in theirs[frame_name].items() if k != "packet"}
            compared += 1
    assert compared == sum(len(json.loads(content)) for content in as_is_files.values()) > 0


@pytest.mark.parametrize("fmt", ["plist", "xml", "txt", "text"])
def test_other_text_formats(fmt, tmp_path):
    """'text' writes tree text (pcapkit crashes on it, so it is compared with pcapkit's 'tree')."""
    capture = DATA / "http_ip4and6.pcapng"
    expected_index, expected_files = pcapkit_run(capture, tmp_path / "pcapkit", fmt, true_bytes=frame_bytes(capture))
    out = tmp_path / "pcapflow"
    index = pcapflow.trace_file(str(capture), str(out), fmt)
    assert as_tuples(index, relative_to=out) == expected_index
    assert all(flow.fpout.endswith(EXT[fmt]) for flow in index)
    assert files_of(out) == expected_files


def test_byteorder_and_nanosecond_are_passed_on(tmp_path):
    capture = DATA / "whois.pcap"
    expected = pcapkit_run(capture, tmp_path / "pcapkit", "json", true_bytes=frame_bytes(capture), byteorder="big",
                           nanosecond=True)
    out = tmp_path / "pcapflow"
    index = pcapflow.trace_file(str(capture), str(out), "json", "big", True)
    assert (as_tuples(index, relative_to=out), files_of(out)) == expected


def test_repeated_label_gets_its_own_file(tmp_path):
    """A flow closed by FIN and reopened at the same timestamp: pcapkit's second file replaces
    the first; pcapflow writes the second to '{label}_2.json'."""
    a, b = "10.0.0.1", "10.0.0.2"
    frames = [ethernet(ipv4(a, b, tcp(1000, 80, SYN))), ethernet(ipv4(a, b, tcp(1000, 80, FIN | ACK))),
              ethernet(ipv4(a, b, tcp(1000, 80, ACK, b"after")))]
    records = frames_at(frames, step_ns=0)  # one timestamp: the reopened flow has the same label
    capture = write_pcap(tmp_path / "repeat.pcap", records, ETHERNET)
    first_only = write_pcap(tmp_path / "first.pcap", records[:2], ETHERNET)
    truth = frame_bytes(capture)
    label = "10.0.0.1_1000-10.0.0.2_80-1600000000.0"

    theirs_index, theirs_files = pcapkit_run(capture, tmp_path / "pcapkit", "json", true_bytes=truth)
    _, first_files = pcapkit_run(first_only, tmp_path / "first", "json", true_bytes=truth)
    assert theirs_index == [(f"{label}.json", (3,), label), (f"{label}.json", (1, 2), label)]

    out = tmp_path / "pcapflow"
    index = pcapflow.trace_file(str(capture), str(out), "json")
    assert as_tuples(index, relative_to=out) == [(f"{label}_2.json", (3,), label), (f"{label}.json", (1, 2), label)]
    assert files_of(out) == {f"{label}.json": first_files[f"{label}.json"],
                             f"{label}_2.json": theirs_files[f"{label}.json"]}


# ---------------------------------------------------------------------------
# filter, progress, stats
# ---------------------------------------------------------------------------

def test_filter_traces_the_frames_it_accepts_with_their_numbers(tmp_path):
    capture = DATA / "ssh.pcap"
    expected_index, expected_files = pcapkit_run(capture, tmp_path / "pcapkit", "json",
                                                 true_bytes=frame_bytes(capture),
                                                 keep=lambda packet: packet.srcport == 22)
    out = tmp_path / "pcapflow"
    stats = {}
    index = pcapflow.trace_file(str(capture), str(out), "json", filter="tcp src port 22", stats=stats)
    assert as_tuples(index, relative_to=out) == expected_index
    assert files_of(out) == expected_files
    numbers = sorted(n for flow in index for n in flow.index)
    assert numbers and numbers != list(range(1, len(numbers) + 1)), "the filter left the numbering contiguous"
    assert all(flow.label.split("-")[0].endswith("_22") for flow in index)
    assert stats["frames"] == 54 and stats["tcp_frames"] == len(numbers)
    native = pcapflow.trace_file(str(capture), str(tmp_path / "native"), filter="tcp src port 22")
    assert flows(index) == flows(native)


def test_filter_errors_are_the_native_ones(tmp_path):
    with pytest.raises(pcapflow.FilterError):
        pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path / "out"), "json", filter="port not-a-port")
    with pytest.raises(TypeError):
        pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path / "out"), "json", filter=22)


def test_progress_final_call_is_the_native_one(tmp_path):
    capture = str(DATA / "http_ip4and6.pcapng")
    calls, native_calls = [], []
    pcapflow.trace_file(capture, str(tmp_path / "text"), "json", progress=lambda *a: calls.append(a))
    pcapflow.trace_file(capture, str(tmp_path / "native"), progress=lambda *a: native_calls.append(a))
    size = os.path.getsize(capture)
    assert calls[-1] == native_calls[-1]
    assert calls[-1][:3] == (size, size, 20)


def test_progress_is_called_while_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(text_capture, "PROGRESS_INTERVAL", 0)  # a call after every frame
    capture = str(DATA / "ssh.pcap")
    size = os.path.getsize(capture)
    calls, native_calls = [], []
    pcapflow.trace_file(capture, str(tmp_path / "text"), "tree", progress=lambda *a: calls.append(a))
    pcapflow.trace_file(capture, str(tmp_path / "native"), progress=lambda *a: native_calls.append(a))
    assert [c[2] for c in calls] == list(range(1, 55)) + [54]
    assert all(c[1] == size for c in calls)
    read = [c[0] for c in calls]
    assert read == sorted(read) and 0 < read[0] < size and read[-1] == size
    assert [c[3] for c in calls[:3]] == [1, 2, 2]  # open flows: the SYN's, the SYN-ACK's, no new one
    assert calls[-1] == native_calls[-1]
    with pytest.raises(RuntimeError, match="stop"):
        pcapflow.trace_file(capture, str(tmp_path / "again"), "json",
                            progress=lambda *a: (_ for _ in ()).throw(RuntimeError("stop")))
    with pytest.raises(TypeError):
        pcapflow.trace_file(capture, str(tmp_path / "again"), "json", progress=42)


def test_stats_agree_with_the_native_counters(tmp_path):
    capture = str(DATA / "dns_tcp.pcapng")
    stats, native_stats = {"untouched": 1}, {}
    index = pcapflow.trace_file(capture, str(tmp_path / "text"), "json", stats=stats)
    pcapflow.trace_file(capture, str(tmp_path / "native"), stats=native_stats)
    assert stats == {"untouched": 1, "frames": 14, "tcp_frames": 12, "last_frame": 14,
                     "bytes": os.path.getsize(capture), "flows_opened": len(index)}
    for key in ("frames", "tcp_frames", "last_frame", "bytes", "flows_opened"):
        assert stats[key] == native_stats[key], key


# ---------------------------------------------------------------------------
# A series of captures
# ---------------------------------------------------------------------------

def split_in_three(name, tmp_path):
    """The capture's frames in three pcap files at its own resolution; (paths, frames per part)."""
    original = read_capture(DATA / name)
    n = len(original.records)
    cuts = [0, n // 3, 2 * n // 3, n]
    parts = [str(write_pcap(tmp_path / f"part{k}.pcap", original.records[cuts[k]:cuts[k + 1]], original.linktype,
                            nanosecond=original.nanosecond))
             for k in range(3)]
    return parts, cuts


def test_trace_files_over_a_capture_split_in_three(tmp_path):
    """Frame numbers continue across files, in the Index, in the frames' names and in their `number`."""
    parts, cuts = split_in_three("ssh.pcap", tmp_path)
    whole_stats, split_stats = {}, {}
    whole = pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path / "whole"), "json", stats=whole_stats)
    split = pcapflow.trace_files(parts, str(tmp_path / "split"), "json", stats=split_stats)
    assert as_tuples(split, tmp_path / "split") == as_tuples(whole, tmp_path / "whole")
    assert any(flow.index[0] <= cuts[1] < flow.index[-1] for flow in split), "no flow spans two parts"
    assert files_of(tmp_path / "split") == files_of(tmp_path / "whole")
    for content in files_of(tmp_path / "split").values():
        for frame_name, frame in json.loads(content).items():
            assert frame_name == f"Frame {frame['number']}"
    assert split_stats == dict(whole_stats, bytes=sum(os.path.getsize(p) for p in parts))
    assert split_stats["frames"] == split_stats["last_frame"] == 54


def test_trace_files_of_pcapng_and_pcap_captures(tmp_path):
    """A mixed series: the same flows as the native path, frames named and numbered across the series."""
    series = [str(DATA / "dns_tcp.pcapng"), str(DATA / "whois.pcap"), str(DATA / "http_ip4and6.pcapng")]
    index = pcapflow.trace_files(series, str(tmp_path / "text"), "json")
    native = pcapflow.trace_files(series, str(tmp_path / "native"))
    assert flows(index) == flows(native)
    assert max(n for flow in index for n in flow.index) > 14 + 11
    for flow in index:
        with open(flow.fpout, encoding="utf-8") as file:
            frames = json.load(file)
        assert list(frames) == [f"Frame {n}" for n in flow.index]
        assert [frame["number"] for frame in frames.values()] == list(flow.index)


def test_progress_over_a_series(tmp_path):
    parts, _ = split_in_three("whois.pcap", tmp_path)
    calls = []
    pcapflow.trace_files(parts, str(tmp_path / "out"), "json", progress=lambda *a: calls.append(a))
    size = sum(os.path.getsize(p) for p in parts)
    assert calls and all(c[1] == size for c in calls)
    assert calls[-1][:3] == (size, size, 11)
    assert [c[2] for c in calls] == sorted(c[2] for c in calls)


# ---------------------------------------------------------------------------
# Damaged captures
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["record-data", "record-header"])
@pytest.mark.parametrize("source", ["path", "bytesio"])
def test_capture_truncated_mid_record(where, source, tmp_path):
    """The flows before the damage are written and in exc.index; pcapkit alone would decode the cut frame."""
    blob = (DATA / "ssh.pcap").read_bytes()
    offsets = record_offsets(blob)
    damaged_frame = 30
    cut = offsets[damaged_frame - 1] + (16 + 5 if where == "record-data" else 8)
    path = tmp_path / "cut.pcap"
    path.write_bytes(blob[:cut])
    before = tmp_path / "before.pcap"
    before.write_bytes(blob[:offsets[damaged_frame - 1]])
    fin = str(path) if source == "path" else io.BytesIO(blob[:cut])
    stats = {}
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(fin, str(tmp_path / "out"), "json", stats=stats)
    error = caught.value
    assert error.frame == damaged_frame
    assert isinstance(error.offset, int) and offsets[damaged_frame - 1] <= error.offset <= cut
    if source == "path":
        assert error.filename == str(path)
    assert stats["frames"] == stats["last_frame"] == damaged_frame - 1
    assert error.stats["frames"] == damaged_frame - 1
    expected = pcapflow.trace_file(str(before), str(tmp_path / "before"), "json")
    assert error.index and as_tuples(error.index, tmp_path / "out") == as_tuples(expected, tmp_path / "before")
    assert files_of(tmp_path / "out") == files_of(tmp_path / "before")


def test_pcapng_truncated_mid_block(tmp_path):
    blob = (DATA / "http_ip4and6.pcapng").read_bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(blob[:len(blob) * 2 // 3])
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"), "json")
    with pytest.raises(pcapflow.CaptureError) as native:
        pcapflow.trace_file(str(path), str(tmp_path / "native"))
    error = caught.value
    assert (error.filename, error.frame, error.offset) == (native.value.filename, native.value.frame,
                                                           native.value.offset)
    assert error.index and flows(error.index) == flows(native.value.index)
    assert all(n < error.frame for flow in error.index for n in flow.index)


def test_trace_files_damage_in_the_second_capture(tmp_path):
    blob = (DATA / "ssh.pcap").read_bytes()
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(blob[:record_offsets(blob)[10] + 20])
    stats = {}
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_files([str(DATA / "dns_tcp.pcap"), str(damaged)], str(tmp_path / "out"), "json", stats=stats)
    error = caught.value
    assert error.filename == str(damaged)
    assert error.frame == 11 + 11
    assert sorted(n for flow in error.index for n in flow.index) == list(range(1, 11 + 10 + 1))
    assert stats["frames"] == stats["last_frame"] == 21
    assert stats["flows_opened"] == len(error.index)


def test_capture_pcapkit_stops_reading_early(tmp_path):
    """pcapkit misreads a big-endian pcap file and sees its end after frame 1; libpcap reads 23 frames.
    pcapkit.extract says nothing; trace_file raises, with pcapkit's flows up to there."""
    capture = NATIVE / "pptp.pcap"
    expected_index, expected_files = pcapkit_run(capture, tmp_path / "pcapkit", "json")
    assert [frames for _, frames, _ in expected_index] == [(1,)]
    with pytest.raises(pcapflow.CaptureError, match="pcapkit stopped reading after 1 frames") as caught:
        pcapflow.trace_file(str(capture), str(tmp_path / "out"), "json")
    error = caught.value
    assert (error.filename, error.frame) == (str(capture), 2)
    assert as_tuples(error.index, tmp_path / "out") == expected_index
    # (pcapkit's frame 1 is not the capture's, so its bytes are not compared here)
    assert sorted(files_of(tmp_path / "out")) == sorted(expected_files)


def test_not_a_capture(tmp_path):
    path = tmp_path / "not-a-capture"
    path.write_bytes(b"hello, this is not a packet capture at all\n" * 3)
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"), "json")
    assert caught.value.filename == str(path) and caught.value.frame == 1
    assert caught.value.index == ()
    assert files_of(tmp_path / "out") == {}


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def test_open_file_and_bytesio_and_path_objects(tmp_path):
    capture = DATA / "dns_tcp.pcapng"
    expected_index = pcapflow.trace_file(str(capture), str(tmp_path / "path"), "json")
    expected = (as_tuples(expected_index, tmp_path / "path"), files_of(tmp_path / "path"))
    with open(capture, "rb") as fin:
        index = pcapflow.trace_file(fin, str(tmp_path / "file"), "json")
        assert not fin.closed
    assert (as_tuples(index, tmp_path / "file"), files_of(tmp_path / "file")) == expected
    index = pcapflow.trace_file(io.BytesIO(capture.read_bytes()), tmp_path / "bytesio", "json")
    assert (as_tuples(index, tmp_path / "bytesio"), files_of(tmp_path / "bytesio")) == expected
    index = pcapflow.trace_file(capture, tmp_path / "pathlib", "json")
    assert (as_tuples(index, tmp_path / "pathlib"), files_of(tmp_path / "pathlib")) == expected


def test_file_object_read_from_its_position(tmp_path):
    blob = (DATA / "whois.pcap").read_bytes()
    path = tmp_path / "prefixed"
    path.write_bytes(b"skipped by the caller" + blob)
    expected_index = pcapflow.trace_file(str(DATA / "whois.pcap"), str(tmp_path / "plain"), "json")
    with open(path, "rb") as fin:
        fin.seek(len(b"skipped by the caller"))
        index = pcapflow.trace_file(fin, str(tmp_path / "out"), "json")
    assert as_tuples(index, tmp_path / "out") == as_tuples(expected_index, tmp_path / "plain")
    assert files_of(tmp_path / "out") == files_of(tmp_path / "plain")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        pcapflow.trace_file(str(tmp_path / "nothing.pcap"), str(tmp_path / "out"), "json")


# ---------------------------------------------------------------------------
# Which formats go here, and without pcapkit
# ---------------------------------------------------------------------------

def test_text_formats_are_the_dictdumper_formats():
    for fmt in ("json", "plist", "xml", "tree", "txt", "text"):
        assert text_capture.is_text_format(fmt), fmt
    for fmt in ("pcap", "cap", None, "nosuchformat", ["json"]):
        assert not text_capture.is_text_format(fmt), fmt
    assert "nosuchformat" not in pcapflow.TCP.__output__  # asking did not register it


def test_pcap_and_unknown_formats_stay_native(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the text path was taken")

    monkeypatch.setattr(text_capture, "capture_tracer", refuse)
    capture = str(DATA / "whois.pcap")
    assert pcapflow.trace_file(capture, str(tmp_path / "pcap"), "pcap")
    with pytest.warns(pcapflow.FormatWarning):
        index = pcapflow.trace_file(capture, str(tmp_path / "unknown"), "nosuchformat")
    assert index and all(flow.fpout is None for flow in index)
    assert files_of(tmp_path / "unknown") == {}


def test_without_pcapkit_text_formats_say_what_to_install(tmp_path, monkeypatch):
    for module in [m for m in sys.modules if m == "pcapkit" or m.startswith("pcapkit.")]:
        monkeypatch.setitem(sys.modules, module, None)  # "import pcapkit..." now fails
    with pytest.raises(ImportError, match="pip install pypcapkit") as caught:
        pcapflow.trace_file(str(DATA / "whois.pcap"), str(tmp_path / "out"), "json")
    assert isinstance(caught.value, text_capture.PcapkitMissing)
    assert not (tmp_path / "out").exists()
    # the native formats do not need pcapkit
    assert pcapflow.trace_file(str(DATA / "whois.pcap"), str(tmp_path / "pcap"), "pcap")


# the captures of tests/data/native that pcapkit decodes (test_capture.py compares their pcap output)
PCAPKIT_DECODES = [
    "dns_tcp.pcap", "ssh.pcap", "whois.pcap", "kday3.pcap", "tfo-5c1fa7f9ae91.pcap", "print-flags.pcap",
    "http_espn.pcapng", "tcp_ports.pcapng", "sessionhijacking.pcapng", "synscan.pcapng", "http_ip4and6.pcapng",
    "dns_axfr.pcapng",
]


@pytest.mark.parametrize("name", PCAPKIT_DECODES)
def test_json_of_every_capture_pcapkit_decodes(name, tmp_path):
    """json, the text format, on every shipped real capture pcapkit decodes: pcapkit's index and files
    (with each frame's own bytes in its packet field)."""
    capture = NATIVE / name
    expected_index, expected_files = pcapkit_run(capture, tmp_path / "pcapkit", "json", true_bytes=frame_bytes(capture))
    out = tmp_path / "pcapflow"
    index = pcapflow.trace_file(str(capture), str(out), "json")
    assert expected_index, f"pcapkit finds no flows in {name}"
    assert as_tuples(index, relative_to=out) == expected_index
    assert files_of(out) == expected_files
