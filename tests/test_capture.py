"""pcapflow.trace_file / trace_files on real captures, against pcapkit.

pcapkit 1.4.1 decodes these captures itself (pcapkit.extract with trace=True,
tcp=True, run here), so the flows (labels, frame numbers, output names, order)
must be identical. pcapkit's own pcap files are garbage (its extractor hands
the tracer the wrong bytes), so pcapflow's files are checked against the
original capture instead, read back with this suite's reader and with
libpcap (tcpdump -r)."""
import io
import logging
import os
import struct
import subprocess
import sys
import tempfile
import threading
import warnings
from decimal import Decimal

import pytest

import pcapflow
from capture_tools import (ACK, DATA, ETHERNET, FIN, LINUX_SLL, PSH, SYN, Record, TCPPacket, as_tuples,
                           check_flow_files, ethernet, expected_flows, frames_at, ip_packet, ipv4, link_type_name, pcap_header, pcap_record, read_capture, tcp, tcpdump_read, udp,
                           write_pcap)

pcapkit = pytest.importorskip("pcapkit")
logging.getLogger("pcapkit").setLevel(logging.CRITICAL + 1)

PCAPKIT_CAPTURES = [
    "dns_tcp.pcap", "ssh.pcap", "whois.pcap", "kday3.pcap", "tfo-5c1fa7f9ae91.pcap", "print-flags.pcap",
    "http_espn.pcapng", "tcp_ports.pcapng", "sessionhijacking.pcapng", "synscan.pcapng", "http_ip4and6.pcapng",
    "dns_axfr.pcapng",
]

_pcapkit_cache = {}


def pcapkit_flows(name):
    """pcapkit's flows for a capture, as (fpout relative to its output dir, index, label), run once per session.

    Runs pcapkit's own tracer even if another test left pcapflow.use_in_pcapkit() on."""
    if name not in _pcapkit_cache:
        from pcapkit.foundation.extraction import Extractor
        from pcapkit.foundation.traceflow.tcp import TCP as PcapkitTCP
        registry = Extractor.__traceflow__
        saved = registry["tcp"]
        registry["tcp"] = PcapkitTCP
        try:
            with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                extraction = pcapkit.extract(fin=str(DATA / name), nofile=True, trace=True, tcp=True,
                                             trace_fout=out, trace_format="pcap", store=False)
                flows = as_tuples(extraction.trace.tcp, relative_to=out)
        finally:
            registry["tcp"] = saved
        _pcapkit_cache[name] = flows
    return _pcapkit_cache[name]


def files_in(directory):
    return sorted(os.listdir(directory))


# ---------------------------------------------------------------------------
# The same flows as pcapkit, and files holding the original frames
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", PCAPKIT_CAPTURES)
def test_index_equals_pcapkit_and_files_hold_the_original_frames(name, tmp_path):
    expected = pcapkit_flows(name)
    assert expected, f"pcapkit found no flows in {name}: not a useful comparison"
    out = tmp_path / "flows"
    index = pcapflow.trace_file(str(DATA / name), str(out), "pcap")
    assert isinstance(index, tuple)
    assert all(isinstance(flow, pcapflow.Index) for flow in index)
    assert as_tuples(index, relative_to=out) == expected
    # the files: one per flow, nothing else, each holding exactly the flow's original frames
    assert files_in(out) == sorted(os.path.basename(flow.fpout) for flow in index)
    original = read_capture(DATA / name)
    assert check_flow_files(index, original) == sum(len(flow.index) for flow in index)


@pytest.mark.parametrize("name", ["ssh.pcap", "http_ip4and6.pcapng", "kday3.pcap"])
def test_flow_files_read_back_through_libpcap(name, tmp_path):
    """tcpdump -r reads every flow file: the capture's link type, one packet per frame, the original timestamps."""
    original = read_capture(DATA / name)
    wanted_link = link_type_name(DATA / name)
    index = pcapflow.trace_file(str(DATA / name), str(tmp_path), "pcap", nanosecond=True)
    for flow in index:
        link, stamps = tcpdump_read(flow.fpout)
        assert f"link-type {wanted_link} " in link, link
        want = [f"{original.records[n - 1].ts_sec}.{original.records[n - 1].ts_nsec:09d}" for n in flow.index]
        assert stamps == want, flow.label


def test_format_cap_writes_pcap_files(tmp_path):
    index = pcapflow.trace_file(str(DATA / "dns_tcp.pcap"), str(tmp_path), "cap")
    assert as_tuples(index, relative_to=tmp_path) == pcapkit_flows("dns_tcp.pcap")
    check_flow_files(index, read_capture(DATA / "dns_tcp.pcap"))


def test_unknown_format_writes_no_files(tmp_path):
    out = tmp_path / "none"
    with pytest.warns(pcapflow.FormatWarning):
        index = pcapflow.trace_file(str(DATA / "ssh.pcap"), str(out), "unknown-format")
    assert [flow.fpout for flow in index] == [None] * len(index)
    assert [(flow.index, flow.label) for flow in index] == [(i, label) for _, i, label in pcapkit_flows("ssh.pcap")]
    assert not out.exists() or files_in(out) == []


def test_default_output_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    index = pcapflow.trace_file(str(DATA / "dns_tcp.pcap"))
    assert [os.path.dirname(flow.fpout) for flow in index] == ["./tmp"] * len(index)
    assert len(files_in(tmp_path / "tmp")) == len(index)


# ---------------------------------------------------------------------------
# Output layout: byte order and resolution
# ---------------------------------------------------------------------------

def raw_records(path):
    """(magic as read little-endian, [(ts_sec, ts_frac, incl_len, orig_len)]) straight from the file bytes."""
    blob = open(path, "rb").read()
    magic_le = struct.unpack("<I", blob[:4])[0]
    order = "<" if magic_le in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    out, offset = [], 24
    while offset < len(blob):
        fields = struct.unpack(order + "IIII", blob[offset:offset + 16])
        out.append(fields)
        offset += 16 + fields[2]
    return blob[:24], order, out


@pytest.mark.parametrize("byteorder", ["big", "little"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_byteorder_and_resolution_of_output(byteorder, nanosecond, tmp_path):
    name = "ssh.pcap"  # a little-endian microsecond capture
    index = pcapflow.trace_file(str(DATA / name), str(tmp_path), "pcap", byteorder, nanosecond)
    check_flow_files(index, read_capture(DATA / name), nanosecond=nanosecond, byteorder=byteorder)
    order = "<" if byteorder == "little" else ">"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    original = {i + 1: fields for i, fields in enumerate(raw_records(DATA / name)[2])}
    for flow in index:
        header, file_order, records = raw_records(flow.fpout)
        assert header == struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, ETHERNET), flow.fpout
        assert file_order == order
        for number, (ts_sec, ts_frac, incl, orig) in zip(flow.index, records):
            o_sec, o_usec, o_incl, o_orig = original[number]
            assert (ts_sec, incl, orig) == (o_sec, o_incl, o_orig)
            assert ts_frac == (o_usec * 1000 if nanosecond else o_usec), f"frame {number}"


def test_nanosecond_capture_written_at_microsecond_truncates(tmp_path):
    name = "tcp-handshake-nano.pcap"  # nanosecond, Linux cooked capture
    original = {i + 1: fields for i, fields in enumerate(raw_records(DATA / name)[2])}
    micro = pcapflow.trace_file(str(DATA / name), str(tmp_path / "us"), "pcap", "little", False)
    nano = pcapflow.trace_file(str(DATA / name), str(tmp_path / "ns"), "pcap", "little", True)
    assert as_tuples(micro, tmp_path / "us") == as_tuples(nano, tmp_path / "ns")
    for flow in micro:
        header, _, records = raw_records(flow.fpout)
        assert struct.unpack("<I", header[:4])[0] == 0xA1B2C3D4
        assert struct.unpack("<I", header[20:24])[0] == LINUX_SLL
        assert [r[1] for r in records] == [original[n][1] // 1000 for n in flow.index]
    for flow in nano:
        header, _, records = raw_records(flow.fpout)
        assert struct.unpack("<I", header[:4])[0] == 0xA1B23C4D
        assert [r[1] for r in records] == [original[n][1] for n in flow.index]
    check_flow_files(micro, read_capture(DATA / name), nanosecond=False)
    check_flow_files(nano, read_capture(DATA / name), nanosecond=True)


def test_nanosecond_to_microsecond_truncates_rather_than_rounds(tmp_path):
    frames = [ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80))), ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80)))]
    records = [Record(1_700_000_000, 123_456_999, frames[0]), Record(1_700_000_000, 999_999_999, frames[1])]
    path = write_pcap(tmp_path / "nano.pcap", records, ETHERNET, nanosecond=True)
    (flow,) = pcapflow.trace_file(str(path), str(tmp_path / "out"), nanosecond=False)
    assert flow.label == "10.0.0.1_1000-10.0.0.2_80-1700000000.123457"  # the label keeps the float's rounding
    _, _, out = raw_records(flow.fpout)
    assert [r[:2] for r in out] == [(1_700_000_000, 123_456), (1_700_000_000, 999_999)]


def test_pcapng_microsecond_capture_written_at_nanosecond(tmp_path):
    name = "http_ip4and6.pcapng"
    index = pcapflow.trace_file(str(DATA / name), str(tmp_path), nanosecond=True, byteorder="big")
    original = read_capture(DATA / name)
    check_flow_files(index, original, nanosecond=True, byteorder="big")
    for flow in index:
        _, _, records = raw_records(flow.fpout)
        assert [r[1] for r in records] == [original.records[n - 1].ts_nsec for n in flow.index]
        assert all(r[1] % 1000 == 0 for r in records)


def test_big_endian_capture(tmp_path):
    """pptp.pcap is big-endian: pcapflow reads it through libpcap (pcapkit misreads it)."""
    original = read_capture(DATA / "pptp.pcap")
    assert original.byteorder == "big"
    index = pcapflow.trace_file(str(DATA / "pptp.pcap"), str(tmp_path), byteorder="little")
    assert len(index) == 4
    assert all(flow.label.rsplit("-", 1)[1].startswith("954147") for flow in index), [f.label for f in index]
    check_flow_files(index, original, byteorder="little")


# ---------------------------------------------------------------------------
# Sub-second fields out of range: labels as pcapkit computes them, records unchanged
# ---------------------------------------------------------------------------

SUBSECOND_CASES = [(False, 999_999), (False, 1_000_000), (False, 1_500_000), (False, 4_000_000_000),
                   (True, 999_999_999), (True, 1_000_000_000), (True, 2_147_483_648), (True, 4_294_967_295)]


@pytest.mark.parametrize("nanosecond,frac", SUBSECOND_CASES,
                         ids=[f"{'ns' if n else 'us'}-{f}" for n, f in SUBSECOND_CASES])
def test_out_of_range_subsecond_fields(nanosecond, frac, tmp_path):
    """A sub-second field >= 1 second (timestamp_invalid_nano.pcap has such records): pcapkit's
    time_epoch is ts_sec + ts_frac / 10**6 (or 10**9), so the label carries the extra seconds; the
    written record keeps the field as the capture has it."""
    frames = [ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80))), ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(1001, 80)))]
    path = tmp_path / "capture.pcap"
    path.write_bytes(pcap_header(ETHERNET, nanosecond=nanosecond) + pcap_record(1_600_000_000, 0, frames[0])
                     + pcap_record(1_600_000_000, frac, frames[1]))
    from pcapkit.foundation.extraction import Extractor
    from pcapkit.foundation.traceflow.tcp import TCP as PcapkitTCP
    saved, Extractor.__traceflow__["tcp"] = Extractor.__traceflow__["tcp"], PcapkitTCP
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = pcapkit.extract(fin=str(path), nofile=True, trace=True, tcp=True,
                                        trace_fout=str(tmp_path / "pk"), trace_format="pcap", store=False)
    finally:
        Extractor.__traceflow__["tcp"] = saved
    scale = 10**9 if nanosecond else 10**6
    wanted = ["10.0.0.1_1000-10.0.0.2_80-1600000000.0",
              f"10.0.0.1_1001-10.0.0.2_80-{float(1_600_000_000 + Decimal(frac) / scale)}"]
    assert [flow.label for flow in reference.trace.tcp] == wanted  # what pcapkit says
    index = pcapflow.trace_file(str(path), str(tmp_path / "pf"), nanosecond=nanosecond)
    assert [flow.label for flow in index] == wanted
    _, _, out = raw_records(index[1].fpout)
    assert out[0][:2] == (1_600_000_000, frac), f"record {out[0]}, the capture's sub-second field is {frac}"


# ---------------------------------------------------------------------------
# Several captures as one series
# ---------------------------------------------------------------------------

def test_trace_files_over_a_capture_split_in_three(tmp_path):
    original = read_capture(DATA / "http_espn.pcapng")
    n = len(original.records)
    cuts = [0, n // 3, 2 * n // 3, n]
    parts = []
    for k in range(3):
        part = write_pcap(tmp_path / f"part{k}.pcap", original.records[cuts[k]:cuts[k + 1]], original.linktype,
                          nanosecond=True)
        parts.append(str(part))
    whole_stats, split_stats = {}, {}
    whole = pcapflow.trace_file(str(DATA / "http_espn.pcapng"), str(tmp_path / "whole"), stats=whole_stats)
    split = pcapflow.trace_files(parts, str(tmp_path / "split"), stats=split_stats)
    assert as_tuples(split, tmp_path / "split") == as_tuples(whole, tmp_path / "whole")
    assert any(flow.index[0] <= cuts[1] < flow.index[-1] for flow in split), "no flow spans two parts"
    for flow_whole, flow_split in zip(whole, split):
        assert open(flow_whole.fpout, "rb").read() == open(flow_split.fpout, "rb").read()
    check_flow_files(split, original)
    assert split_stats["frames"] == whole_stats["frames"] == n
    assert split_stats["last_frame"] == whole_stats["last_frame"] == n
    for key in ("tcp_frames", "not_tcp", "flows_opened", "filtered_out", "fragments", "truncated",
                "unsupported_link"):
        assert split_stats[key] == whole_stats[key], key
    assert split_stats["bytes"] == sum(os.path.getsize(p) for p in parts)


def test_trace_files_with_one_capture_equals_trace_file(tmp_path):
    a = pcapflow.trace_files([str(DATA / "ssh.pcap")], str(tmp_path / "a"))
    b = pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path / "b"))
    assert as_tuples(a, tmp_path / "a") == as_tuples(b, tmp_path / "b")


def test_trace_files_refuses_a_single_path():
    with pytest.raises(TypeError):
        pcapflow.trace_files(str(DATA / "ssh.pcap"))


def test_trace_files_of_different_link_types(tmp_path):
    """A series whose parts have different link types: each flow file has its own frames' link type."""
    eth = write_pcap(tmp_path / "eth.pcap", frames_at([ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(1, 2)))]), ETHERNET)
    cooked = DATA / "tcp-handshake-nano.pcap"
    index = pcapflow.trace_files([str(eth), str(cooked)], str(tmp_path / "out"))
    series = [read_capture(eth), read_capture(cooked)]
    first, *rest = index
    check_flow_files([first], series, linktype=ETHERNET)
    check_flow_files(rest, series, linktype=LINUX_SLL)
    assert [flow.index for flow in rest] == [(2, 4), (3,)]


# ---------------------------------------------------------------------------
# Inputs: paths, open files, BytesIO
# ---------------------------------------------------------------------------

def test_path_objects_and_str(tmp_path):
    a = pcapflow.trace_file(DATA / "whois.pcap", tmp_path / "a")
    b = pcapflow.trace_file(str(DATA / "whois.pcap"), str(tmp_path / "b"))
    assert as_tuples(a, tmp_path / "a") == as_tuples(b, tmp_path / "b")


def test_open_file_object(tmp_path):
    expected = pcapkit_flows("sessionhijacking.pcapng")
    with open(DATA / "sessionhijacking.pcapng", "rb") as fin:
        index = pcapflow.trace_file(fin, str(tmp_path))
        assert not fin.closed
    assert as_tuples(index, tmp_path) == expected
    check_flow_files(index, read_capture(DATA / "sessionhijacking.pcapng"))


def test_open_file_object_read_from_its_position(tmp_path):
    """A file object positioned past a prefix: the capture starts where the file object is."""
    blob = (DATA / "dns_tcp.pcap").read_bytes()
    path = tmp_path / "prefixed"
    path.write_bytes(b"not a capture, skipped by the caller" + blob)
    with open(path, "rb") as fin:
        fin.seek(len(b"not a capture, skipped by the caller"))
        index = pcapflow.trace_file(fin, str(tmp_path / "out"))
    assert as_tuples(index, tmp_path / "out") == pcapkit_flows("dns_tcp.pcap")
    check_flow_files(index, read_capture(blob))


@pytest.mark.parametrize("name", ["print-flags.pcap", "dns_axfr.pcapng"])
def test_bytesio(name, tmp_path):
    stats = {}
    index = pcapflow.trace_file(io.BytesIO((DATA / name).read_bytes()), str(tmp_path), stats=stats)
    assert as_tuples(index, tmp_path) == pcapkit_flows(name)
    check_flow_files(index, read_capture(DATA / name))
    assert stats["bytes"] == os.path.getsize(DATA / name)


def test_object_with_read_only(tmp_path):
    """Any object with read() (no fileno) works like BytesIO."""
    class Reader:
        def __init__(self, data):
            self.data = data

        def read(self, size=-1):
            data, self.data = self.data, b""
            return data

    index = pcapflow.trace_file(Reader((DATA / "whois.pcap").read_bytes()), str(tmp_path))
    assert as_tuples(index, tmp_path) == pcapkit_flows("whois.pcap")


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------

def many_flows_capture(path, seed, flows=3000, packets=60000):
    """An Ethernet capture with `packets` frames spread over `flows` flows, some closed by FIN."""
    records = []
    for i in range(packets):
        f = (i * 7919 + seed) % flows
        flags = FIN | ACK if i % 97 == 0 else ACK
        frame = ethernet(ipv4(f"10.{seed}.{f >> 8}.{f & 255}", "192.0.2.1", tcp(1024 + f, 443, flags, b"x" * (i % 50))))
        ns = i * 1_000_123
        records.append(Record(1_700_000_000 + ns // 10**9, ns % 10**9, frame))
    return write_pcap(path, records, ETHERNET)


def test_two_threads_give_the_same_results_as_sequential(tmp_path):
    captures = [many_flows_capture(tmp_path / f"c{k}.pcap", k) for k in (1, 2)]
    sequential = [pcapflow.trace_file(str(c), str(tmp_path / f"seq{k}")) for k, c in enumerate(captures)]
    results, errors = [None, None], []
    barrier = threading.Barrier(2)

    def run(k):
        try:
            barrier.wait()
            results[k] = pcapflow.trace_file(str(captures[k]), str(tmp_path / f"par{k}"))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for k in (0, 1):
        assert as_tuples(results[k], tmp_path / f"par{k}") == as_tuples(sequential[k], tmp_path / f"seq{k}")
        assert files_in(tmp_path / f"par{k}") == files_in(tmp_path / f"seq{k}")
        for name in files_in(tmp_path / f"seq{k}"):
            assert (tmp_path / f"par{k}" / name).read_bytes() == (tmp_path / f"seq{k}" / name).read_bytes()
    check_flow_files(results[0], read_capture(captures[0]))


# ---------------------------------------------------------------------------
# BPF filter
# ---------------------------------------------------------------------------

def test_filter_keeps_frame_numbers(tmp_path):
    name = "http_espn.pcapng"
    full = pcapflow.trace_file(str(DATA / name), str(tmp_path / "all"))
    stats = {}
    host = "172.16.0.122"
    kept = pcapflow.trace_file(str(DATA / name), str(tmp_path / "some"), filter=f"src host {host}", stats=stats)
    wanted = [t for t in as_tuples(full, tmp_path / "all") if t[2].startswith(host + "_")]
    assert wanted and len(wanted) < len(full)
    assert as_tuples(kept, tmp_path / "some") == wanted
    original = read_capture(DATA / name)
    check_flow_files(kept, original)
    matching = sum(1 for r in original.records if r.data[12:14] == b"\x08\x00" and r.data[26:30] == bytes([172, 16, 0, 122]))
    assert stats["frames"] == len(original.records)
    assert stats["filtered_out"] == len(original.records) - matching
    assert stats["last_frame"] == len(original.records)


def test_filter_on_ports(tmp_path):
    name = "tcp_ports.pcapng"
    full = as_tuples(pcapflow.trace_file(str(DATA / name), str(tmp_path / "all")), tmp_path / "all")
    kept = pcapflow.trace_file(str(DATA / name), str(tmp_path / "p"), filter="tcp port 2832")
    wanted = [t for t in full if "_2832-" in t[2]]
    assert wanted and len(wanted) < len(full)
    assert as_tuples(kept, tmp_path / "p") == wanted


def test_filter_matching_nothing(tmp_path):
    stats = {}
    index = pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path), filter="udp", stats=stats)
    assert index == ()
    assert stats["filtered_out"] == stats["frames"] == stats["last_frame"] == 54
    assert stats["tcp_frames"] == 0 and stats["flows_opened"] == 0


def test_filter_on_a_linux_cooked_capture(tmp_path):
    index = pcapflow.trace_file(str(DATA / "resp_1_benchmark.pcap"), str(tmp_path), filter="tcp dst port 6379")
    assert index and all(flow.label.split("-")[1].endswith("_6379") for flow in index)
    check_flow_files(index, read_capture(DATA / "resp_1_benchmark.pcap"))


# ---------------------------------------------------------------------------
# Progress and stats
# ---------------------------------------------------------------------------

def test_progress_final_call_on_a_small_capture(tmp_path):
    calls = []
    stats = {}
    index = pcapflow.trace_file(str(DATA / "tcp_ports.pcapng"), str(tmp_path), progress=lambda *a: calls.append(a),
                                stats=stats)
    size = os.path.getsize(DATA / "tcp_ports.pcapng")
    assert calls, "no progress call"
    assert calls[-1][:3] == (size, size, 505)
    open_flows = len([flow for flow in index if not _closed_by_fin(flow)])
    assert calls[-1][3] == open_flows
    assert stats["bytes"] == size


def _closed_by_fin(flow):
    capture = read_capture(flow.fpout)
    last = capture.records[-1].data
    ip = last[14:]
    header = (ip[0] & 15) * 4 if ip[0] >> 4 == 4 else 40
    return bool(ip[header + 13] & FIN)


FEEDER = """
import sys, time
path, header, batch = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
with open(path, "wb") as out:
    out.write(header + batch)
    for _ in range(3):
        out.flush()
        time.sleep(0.3)
        out.write(batch)
"""


def slow_stream(tmp_path):
    """A FIFO, its feeder (another process: 4 batches of 16,384 frames, 0.3 s apart) and its size."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    frame = ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80, ACK, b"abc")))
    batch = b"".join(pcap_record(1_700_000_000, i, frame) for i in range(16384))
    header = pcap_header(ETHERNET)
    (tmp_path / "header").write_bytes(header)
    (tmp_path / "batch").write_bytes(batch)
    feeder = subprocess.Popen([sys.executable, "-c", FEEDER, str(fifo), str(tmp_path / "header"), str(tmp_path / "batch")])
    return fifo, feeder, len(header) + 4 * len(batch)


def test_progress_grows_while_reading_a_slow_stream(tmp_path):
    """Progress is reported while a slowly fed capture is read (growing packet counts) and once at the end."""
    fifo, feeder, total = slow_stream(tmp_path)
    calls, stats = [], {}
    try:
        index = pcapflow.trace_file(str(fifo), str(tmp_path / "out"), progress=lambda *a: calls.append(a),
                                    stats=stats)
    finally:
        assert feeder.wait(timeout=60) == 0
    assert [flow.index[-1] for flow in index] == [4 * 16384]
    assert len(calls) >= 2, calls
    packets = [c[2] for c in calls]
    assert packets == sorted(packets) and packets[0] < packets[-1] == 4 * 16384, calls
    assert [c[3] for c in calls] == [1] * len(calls)
    read = [c[0] for c in calls]
    assert read == sorted(read)
    assert stats["frames"] == 4 * 16384
    assert read[-1] == total, f"final progress call says {read[-1]} bytes read of a {total}-byte stream"
    assert stats["bytes"] == total, f"stats['bytes'] is {stats['bytes']} for a {total}-byte stream"


THREAD_FED_FIFO = """
import os, sys, threading, pcapflow
fifo, out, data = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
os.mkfifo(fifo)
def feed():
    with open(fifo, "wb") as w:
        w.write(data)
feeder = threading.Thread(target=feed, daemon=True)
feeder.start()
index = pcapflow.trace_file(fifo, out)
feeder.join()
print(len(index))
"""


def test_a_fifo_fed_by_a_python_thread(tmp_path):
    """Opening the capture must not hold the GIL while it waits for data (a thread of the same process
    feeds the FIFO). Run in a subprocess so a deadlock fails the test instead of hanging pytest."""
    done = _run_with_timeout([sys.executable, "-c", THREAD_FED_FIFO, str(tmp_path / "fifo"), str(tmp_path / "out"),
                              str(DATA / "ssh.pcap")], 10)
    assert done is not None, "trace_file on a FIFO fed by a thread of the same process deadlocked (10 s)"
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5"]


def _run_with_timeout(args, seconds):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=seconds, check=False)
    except subprocess.TimeoutExpired:
        return None


def test_progress_over_a_series_counts_the_whole_series(tmp_path):
    parts = [DATA / "dns_tcp.pcap", DATA / "ssh.pcap", DATA / "whois.pcap"]
    calls = []
    pcapflow.trace_files([str(p) for p in parts], str(tmp_path), progress=lambda *a: calls.append(a))
    size = sum(os.path.getsize(p) for p in parts)
    assert calls
    assert all(c[1] == size for c in calls), calls
    assert calls[-1][0] == size and calls[-1][2] == 11 + 54 + 11
    assert [c[2] for c in calls] == sorted(c[2] for c in calls)


def test_progress_exception_propagates(tmp_path):
    def progress(*args):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path), progress=progress)


def mixed_capture(path):
    """An Ethernet capture of every kind of frame the counters distinguish; returns (path, counters, packets)."""
    a, b = "10.0.0.1", "10.0.0.2"
    frames, packets = [], []

    def add_tcp(src, sport, dst, dport, flags, payload=b""):
        frames.append(ethernet(ipv4(src, dst, tcp(sport, dport, flags, payload))))
        packets.append((len(frames), src, sport, dst, dport, bool(flags & FIN)))

    add_tcp(a, 1000, b, 80, SYN)
    frames.append(ethernet(ipv4(a, b, udp(53, 53, b"dns"), proto=17)))                      # not TCP
    add_tcp(b, 80, a, 1000, SYN | ACK)
    frames.append(ethernet(b"\0\x01\x08\x00\x06\x04\0\x01" + bytes(20), 0x0806))           # ARP: not TCP
    add_tcp(a, 1000, b, 80, ACK | PSH, b"GET /")
    frames.append(ethernet(ipv4(a, b, b"later fragment bytes", frag_offset=3)))              # non-first fragment
    frames.append(ethernet(ipv4(a, b, tcp(1000, 80))[:30]))                                  # truncated IPv4/TCP
    frames.append(ethernet(ip_packet("2001:db8::1", "2001:db8::2", tcp(5555, 22, SYN))))
    packets.append((len(frames), "2001:db8::1", 5555, "2001:db8::2", 22, False))
    add_tcp(a, 1000, b, 80, FIN | ACK)
    add_tcp(b, 80, a, 1000, FIN | ACK)
    add_tcp(a, 1000, b, 80, ACK)                                                             # reopens
    frames.append(b"\x02\0\0")                                                               # runt: truncated
    records = frames_at(frames, start=1_650_000_000, step_ns=250_000_000)
    write_pcap(path, records, ETHERNET)
    counters = {"frames": len(frames), "tcp_frames": len(packets), "filtered_out": 0, "not_tcp": 2, "fragments": 1,
                "truncated": 2, "unsupported_link": 0, "flows_opened": 4, "last_frame": len(frames),
                "bytes": os.path.getsize(path), "idle_closed": 0}
    import ipaddress
    tcp_packets = [TCPPacket(n, ipaddress.ip_address(s), sp, ipaddress.ip_address(d), dp, fin,
                             records[n - 1].time_epoch) for n, s, sp, d, dp, fin in packets]
    return path, counters, tcp_packets


def test_stats_counters(tmp_path):
    path, counters, packets = mixed_capture(tmp_path / "mixed.pcap")
    stats = {"untouched": 1}
    index = pcapflow.trace_file(str(path), str(tmp_path / "out"), stats=stats)
    assert as_tuples(index) == expected_flows(packets, str(tmp_path / "out"))
    assert stats.pop("untouched") == 1
    # the output budget (no more than the capture) and each file made and written once
    output = {key: stats.pop(key) for key in ("buffer_bytes", "files_created", "file_writes", "file_reopens",
                                              "budget_flushes")}
    assert stats == counters
    assert output.pop("buffer_bytes") == max(os.path.getsize(path), 4096)
    assert output == {"files_created": 4, "file_writes": 4, "file_reopens": 0, "budget_flushes": 0}
    check_flow_files(index, read_capture(path))


def test_stats_of_an_unsupported_link_type(tmp_path):
    path = write_pcap(tmp_path / "user0.pcap", frames_at([ipv4("10.0.0.1", "10.0.0.2", tcp(1, 2))] * 3), 147)
    stats = {}
    assert pcapflow.trace_file(str(path), str(tmp_path / "out"), stats=stats) == ()
    assert stats["frames"] == stats["unsupported_link"] == 3
    assert stats["tcp_frames"] == stats["flows_opened"] == 0


def test_stats_summed_over_a_series(tmp_path):
    path, counters, _ = mixed_capture(tmp_path / "mixed.pcap")
    stats = {}
    pcapflow.trace_files([str(path), str(path)], str(tmp_path / "out"), stats=stats)
    for key in ("frames", "tcp_frames", "not_tcp", "fragments", "truncated", "bytes"):
        assert stats[key] == 2 * counters[key], key
    assert stats["last_frame"] == 2 * counters["frames"]


def test_labels_and_frame_numbers_of_a_generated_capture(tmp_path):
    path, _, packets = mixed_capture(tmp_path / "mixed.pcap")
    with pytest.warns(pcapflow.FormatWarning):
        index = pcapflow.trace_file(str(path), str(tmp_path / "x"), "unknown-format")
    assert as_tuples(index) == expected_flows(packets, None)
    # spelled out: the reopened client flow and the IPv6 flow are open, then the two FIN-closed flows
    assert [flow.index for flow in index] == [(8,), (11,), (1, 5, 9), (3, 10)]
    assert index[0].label == "2001.db8..1_5555-2001.db8..2_22-1650000001.75"
    assert index[2].label == "10.0.0.1_1000-10.0.0.2_80-1650000000.0"


BUSY_TRACER = """
import gc, os, sys, threading, time
import pcapflow
fifo, out, capture = sys.argv[1:4]
data = open(capture, "rb").read()
os.mkfifo(fifo)
tracer = pcapflow.TCP(out, "pcap")
result = {}

def trace():
    result["counters"] = tracer._trace_capture(fifo)

worker = threading.Thread(target=trace)
worker.start()
with open(fifo, "wb") as feed:
    feed.write(data[:len(data) // 2])
    feed.flush()
    # the loop now waits for the rest, without the GIL: the tracer must refuse other threads
    deadline, refused = time.monotonic() + 10, None
    while refused is None and time.monotonic() < deadline:
        try:
            tracer.submit()
            time.sleep(0.01)
        except RuntimeError as error:
            refused = str(error)
    for method in (tracer.close, tracer._abandon):
        try:
            method()
            refused = None
        except RuntimeError:
            pass
    gc.collect()  # traverses the busy tracer
    feed.write(data[len(data) // 2:])
worker.join()
print(refused)
print(len(tracer.submit()), result["counters"]["frames"])
"""


def test_a_tracer_tracing_a_capture_refuses_other_threads(tmp_path):
    """While trace_file's loop runs without the GIL, another thread using the same tracer gets RuntimeError
    (and a garbage collection leaves its flow table alone) instead of racing with the loop."""
    # 2 MB: libpcap reads a pipe in 256 KiB blocks, so half of it starts the loop and leaves it waiting
    records = [Record(1_600_000_000 + i // 1000, i % 1000 * 1000,
                      ethernet(ipv4("10.0.0.%d" % (i % 200), "10.0.1.1", tcp(1000 + i % 200, 80, FIN if i % 7 == 6 else ACK,
                                                                           b"p" * 1000))))
               for i in range(2000)]
    capture = write_pcap(tmp_path / "big.pcap", records, ETHERNET)
    done = _run_with_timeout([sys.executable, "-c", BUSY_TRACER, str(tmp_path / "fifo"), str(tmp_path / "out"),
                              str(capture)], 60)
    assert done is not None, "deadlocked"
    assert done.returncode == 0, done.stderr
    refused, summary = done.stdout.splitlines()
    assert "another thread" in refused
    expected = pcapflow.trace_file(str(capture), str(tmp_path / "native"))
    assert summary == f"{len(expected)} 2000"


LIVE_PIPE = """
import os, sys, threading, time
import pcapflow
fifo, out, first, rest, wanted = sys.argv[1:6]
first, rest = open(first, "rb").read(), open(rest, "rb").read()
os.mkfifo(fifo)
seen = {}

def feed():
    with open(fifo, "wb") as pipe:
        pipe.write(first)
        pipe.flush()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not os.path.exists(os.path.join(out, wanted)):
            time.sleep(0.01)
        seen["file"] = os.path.exists(os.path.join(out, wanted))
        pipe.write(rest)

feeder = threading.Thread(target=feed)
feeder.start()
index = pcapflow.trace_file(fifo, out)
feeder.join()
print(seen["file"], len(index))
"""


def test_frames_from_a_live_pipe_are_traced_as_they_come(tmp_path):
    """A capture written slowly into a pipe (tcpdump -w - | ...): a flow closed by FIN has its file while the
    writer still holds the pipe open with nothing more to say, not once 256 KiB have arrived."""
    frames = [ethernet(ipv4("10.0.0.1", "10.0.0.2", tcp(40000, 80, flags))) for flags in (SYN, ACK, FIN | ACK)]
    frames += [ethernet(ipv4("10.0.0.3", "10.0.0.2", tcp(40001, 80, ACK, b"later")))]
    blob = pcap_header(ETHERNET) + b"".join(pcap_record(1_600_000_000, i, data) for i, data in enumerate(frames))
    cut = len(blob) - len(pcap_record(1_600_000_000, 3, frames[3]))
    (tmp_path / "first").write_bytes(blob[:cut])
    (tmp_path / "rest").write_bytes(blob[cut:])
    wanted = "10.0.0.1_40000-10.0.0.2_80-1600000000.0.pcap"
    done = _run_with_timeout([sys.executable, "-c", LIVE_PIPE, str(tmp_path / "fifo"), str(tmp_path / "out"),
                              str(tmp_path / "first"), str(tmp_path / "rest"), wanted], 60)
    assert done is not None, "deadlocked"
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "2"]
