"""pcapng shapes libpcap 1.10 refuses, read by pcapflow's own block reader, against tshark.

Files are crafted here block by block (pcapng_tools): interfaces of different link types,
snapshot lengths and timestamp resolutions and offsets, several sections of either byte order,
SPB and PB frames, blocks that are not frames. tshark decodes each file; its frames give the
expected flows by pcapkit's rules (capture_tools.expected_flows) and its time_epoch the labels.
tshark numbers custom blocks as frames (libpcap and pcapflow do not), so no file compared
with tshark holds one."""
import ipaddress
import os
import subprocess
import threading
from decimal import Decimal

import pytest

import pcapflow
from capture_tools import (ACK, FIN, SYN, TSHARK, Record, TCPPacket, as_tuples, ethernet, expected_flows, ipv4, ipv6,
                           read_capture, tcp, write_pcap)
from pcapng_tools import (custom, enhanced, interface, name_resolution, packet, section, simple, statistics)

ETHERNET, RAW = 1, 101
A, B, C6, D6 = "10.0.0.1", "10.0.0.2", "2001:db8::c", "2001:db8::d"

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def tshark_packets(path):
    """TCPPacket for every TCP frame tshark decodes, time_epoch as tshark prints it."""
    fields = ["frame.number", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport", "tcp.dstport",
              "tcp.flags.fin", "frame.time_epoch"]
    args = [TSHARK, "-n", "-r", str(path), "-Y", "tcp", "-T", "fields", "-E", "occurrence=f"]
    for field in fields:
        args += ["-e", field]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    out = []
    for line in done.stdout.splitlines():
        number, src4, src6, dst4, dst6, sport, dport, fin, epoch = line.split("\t")
        out.append(TCPPacket(int(number), ipaddress.ip_address(src4 or src6), int(sport),
                             ipaddress.ip_address(dst4 or dst6), int(dport), fin in ("1", "True"),
                             Decimal(epoch or 0)))  # an SPB has no time: libpcap and pcapflow say 0 s
    return out


def editcap(*args):
    """editcap, without the sanitizer runtimes a sanitized test run preloads (editcap hangs at exit with them)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    subprocess.run([TSHARK.replace("tshark", "editcap"), *map(str, args)], check=True, capture_output=True, env=env)


def tshark_frame_count(path):
    done = subprocess.run([TSHARK, "-n", "-r", str(path), "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, check=True)
    return len(done.stdout.split())


def check_against_tshark(path, out):
    expected = expected_flows(tshark_packets(path), str(out))
    stats = {}
    index = pcapflow.trace_file(str(path), str(out), stats=stats)
    assert as_tuples(index) == expected
    assert stats["frames"] == tshark_frame_count(path)
    return index


def conversation(a, b, link, start):
    """A SYN, data and FIN from a to b and a FIN back, framed for `link`; [(units offset, frame)]."""
    ip = ipv4 if ":" not in a else ipv6
    frame = (lambda p: ethernet(p)) if link == ETHERNET else (lambda p: p)
    return [(start, frame(ip(a, b, tcp(1000, 80, SYN)))), (start + 1, frame(ip(a, b, tcp(1000, 80, ACK, b"x" * 30)))),
            (start + 2, frame(ip(b, a, tcp(80, 1000, FIN | ACK)))), (start + 3, frame(ip(a, b, tcp(1000, 80, FIN))))]


def multi_interface_file(byteorder="little"):
    """Ethernet at microseconds (snaplen 65535), raw IP at nanoseconds (snaplen 128) and raw IPv6 at
    2^-10 s (no snaplen); one flow on each, one flow whose frames come on the first two, interleaved."""
    o = byteorder
    blocks = [section(o), interface(ETHERNET, 65535, o), interface(RAW, 128, o, tsresol=9),
              interface(RAW, 0, o, tsresol=0x80 | 10), name_resolution(o)]
    us, ns, bin10 = 1_600_000_000 * 10**6, 1_600_000_000 * 10**9, 1_600_000_000 * 1024
    eth = conversation(A, B, ETHERNET, us + 250_000)
    raw = conversation(B, A, RAW, ns + 500_000_001)
    raw6 = conversation(C6, D6, RAW, bin10 + 512)
    for i in range(4):
        blocks += [enhanced(0, *eth[i], o), enhanced(1, *raw[i], o), enhanced(2, *raw6[i], o)]
    # the same flow (A:5 -> B:6) first on Ethernet, then on raw IP
    blocks += [enhanced(0, us + 10**6, ethernet(ipv4(A, B, tcp(5, 6, SYN))), o),
               enhanced(1, ns + 2 * 10**9, ipv4(A, B, tcp(5, 6, ACK)), o), statistics(0, o),
               enhanced(0, us + 3 * 10**6, ethernet(ipv4(A, B, tcp(5, 6, FIN))), o)]
    return b"".join(blocks)


@needs_tshark
@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_interfaces_of_several_link_types_against_tshark(byteorder, tmp_path):
    path = tmp_path / "multi.pcapng"
    path.write_bytes(multi_interface_file(byteorder))
    index = check_against_tshark(path, tmp_path / "out")
    assert len(index) == 7
    # each flow file holds its frames' link type; the spanning flow's raw-IP frame sits beside it
    spanning = next(flow for flow in index if flow.label.startswith("10.0.0.1_5-"))
    assert spanning.index == (13, 14, 15)
    main = read_capture(spanning.fpout)
    assert main.linktype == ETHERNET and len(main.records) == 2
    beside = read_capture(spanning.fpout[:-len(".pcap")] + "~101.pcap")
    assert beside.linktype == RAW and [r.data for r in beside.records] == [ipv4(A, B, tcp(5, 6, ACK))]
    for flow in index:
        if flow is not spanning:
            assert read_capture(flow.fpout).linktype == (ETHERNET if flow.label.startswith(("10.0.0.1_1000", "10.0.0.2_80")) else RAW)


@needs_tshark
def test_sections_of_either_byte_order_concatenated(tmp_path):
    first = multi_interface_file("little")
    second = section("big") + interface(RAW, 0, "big", tsresol=9) + b"".join(
        enhanced(0, units, data, "big") for units, data in conversation(A, B, RAW, 1_700_000_000 * 10**9))
    third = section("little") + interface(ETHERNET, 1500) + simple(ethernet(ipv4(B, A, tcp(7, 8, ACK)))) + \
        packet(0, 1_800_000_000 * 10**6, ethernet(ipv4(B, A, tcp(7, 8, FIN))))
    path = tmp_path / "cat.pcapng"
    path.write_bytes(first + second + third)
    index = check_against_tshark(path, tmp_path / "out")
    assert any(flow.label.endswith("-1700000000.0") for flow in index)


@needs_tshark
@pytest.mark.parametrize("units,offset,label", [
    ((2**32 + 5) * 10**6 + 250_000, 0, "4294967301.25"),     # past 2^32 seconds: no wrap
    (5 * 10**6, -100, "-95.0"),                                # a negative if_tsoffset
    (2**40 * 10**6, 0, "1099511627776.0"),
])
def test_times_beyond_32_bits_against_tshark(units, offset, label, tmp_path):
    path = tmp_path / "time.pcapng"
    path.write_bytes(section() + interface(ETHERNET, 0, tsoffset=offset) +
                     enhanced(0, units, ethernet(ipv4(A, B, tcp(1, 2, SYN)))))
    index = check_against_tshark(path, tmp_path / "out")
    assert index[0].label == f"10.0.0.1_1-10.0.0.2_2-{label}"
    packet_ = next(iter(pcapflow.packets(str(path))))
    assert str(packet_.timestamp) == label and float(packet_.frame["time_epoch"]) == float(label)


def test_negative_time_with_a_fraction(tmp_path):
    """-100 s offset, 5.25 s stamp: -94.75 (tshark prints this -95.250000000: its sign covers the seconds only).
    The pcap file gets the seconds modulo 2^32, as editcap writes them; the label keeps the true time."""
    path = tmp_path / "neg.pcapng"
    path.write_bytes(section() + interface(ETHERNET, 0, tsoffset=-100) +
                     enhanced(0, 5_250_000, ethernet(ipv4(A, B, tcp(1, 2, SYN)))))
    index = pcapflow.trace_file(str(path), str(tmp_path / "out"))
    assert index[0].label == "10.0.0.1_1-10.0.0.2_2-" + str(float(Decimal("-94.75")))
    record = read_capture(index[0].fpout).records[0]
    assert (record.ts_sec, record.ts_nsec) == (2**32 - 95, 250_000_000)
    assert next(iter(pcapflow.packets(str(path)))).frame["time_epoch"] == Decimal("-94.75")


@pytest.mark.skipif(TSHARK is None, reason="editcap comes with tshark")
def test_pcap_output_times_match_editcap(tmp_path):
    path = tmp_path / "t.pcapng"
    path.write_bytes(section() + interface(ETHERNET, 0, tsoffset=-100, tsresol=9) + b"".join(
        enhanced(0, units, data) for units, data in [(5_250_000_000, ethernet(ipv4(A, B, tcp(1, 2, SYN)))),
                                                     ((2**32 + 200) * 10**9 + 7, ethernet(ipv4(A, B, tcp(1, 2, ACK))))]))
    converted = tmp_path / "t.pcap"
    editcap("-F", "nsecpcap", path, converted)
    index = pcapflow.trace_file(str(path), str(tmp_path / "out"), nanosecond=True)
    ours = read_capture(index[0].fpout).records
    theirs = read_capture(converted).records
    assert [(r.ts_sec, r.ts_nsec, r.data) for r in ours] == [(r.ts_sec, r.ts_nsec, r.data) for r in theirs]


def test_blocks_that_are_not_frames_are_not_numbered(tmp_path):
    frames = conversation(A, B, ETHERNET, 1_600_000_000 * 10**6)
    path = tmp_path / "other.pcapng"
    path.write_bytes(section(comment="hello") + custom() + interface(ETHERNET) + name_resolution() +
                     enhanced(0, *frames[0]) + custom(b"y" * 5000) + statistics(0) + enhanced(0, *frames[1]))
    stats = {}
    index = pcapflow.trace_file(str(path), str(tmp_path / "out"), stats=stats)
    assert [flow.index for flow in index] == [(1, 2)] and stats["frames"] == 2


def test_unknown_interface_after_good_frames(tmp_path):
    frames = conversation(A, B, ETHERNET, 1_600_000_000 * 10**6)
    path = tmp_path / "bad-id.pcapng"
    path.write_bytes(section() + interface(ETHERNET) + enhanced(0, *frames[0]) + enhanced(0, *frames[1]) +
                     enhanced(3, *frames[2]))
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"))
    assert caught.value.frame == 3 and "interface 3" in str(caught.value)
    assert [flow.index for flow in caught.value.index] == [(1, 2)]


@pytest.mark.parametrize("damage", ["huge", "trailer", "not-multiple-of-4", "too-short"])
def test_damaged_block_lengths(damage, tmp_path):
    good = section() + interface(ETHERNET) + enhanced(0, 10**15, ethernet(ipv4(A, B, tcp(1, 2, SYN))))
    bad = bytearray(enhanced(0, 10**15 + 1, ethernet(ipv4(A, B, tcp(1, 2, ACK)))))
    if damage == "huge":
        bad[4:8] = (0xFFFFFFF0).to_bytes(4, "little")
    elif damage == "trailer":
        bad[-4:] = (len(bad) + 4).to_bytes(4, "little")
    elif damage == "not-multiple-of-4":
        bad[4:8] = (len(bad) - 2).to_bytes(4, "little")
    else:
        bad[4:8] = (8).to_bytes(4, "little")
    path = tmp_path / "bad.pcapng"
    path.write_bytes(good + bytes(bad))
    with pytest.raises(pcapflow.CaptureError) as caught:
        pcapflow.trace_file(str(path), str(tmp_path / "out"))
    assert caught.value.frame == 2
    assert [flow.index for flow in caught.value.index] == [(1,)]


def test_read_from_a_pipe_a_few_bytes_at_a_time(tmp_path):
    blob = multi_interface_file()
    (tmp_path / "ref.pcapng").write_bytes(blob)
    reference = pcapflow.trace_file(str(tmp_path / "ref.pcapng"), str(tmp_path / "ref"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb", buffering=0) as out:
            for i in range(0, len(blob), 3):
                out.write(blob[i:i + 3])

    writer = threading.Thread(target=feed)
    writer.start()
    index = pcapflow.trace_file(str(fifo), str(tmp_path / "piped"))
    writer.join()
    assert [(flow.label, flow.index) for flow in index] == [(flow.label, flow.index) for flow in reference]


def test_filter_compiled_for_each_link_type(tmp_path):
    path = tmp_path / "multi.pcapng"
    path.write_bytes(multi_interface_file())
    stats = {}
    index = pcapflow.trace_file(str(path), str(tmp_path / "out"), filter="tcp port 1000", stats=stats)
    assert all(flow.label.split("-")[0].endswith("_1000") or "_80-" in flow.label for flow in index)
    assert stats["filtered_out"] == 3 and stats["tcp_frames"] == 12
    with pytest.raises(pcapflow.CaptureError, match="link type 101"):
        pcapflow.trace_file(str(path), str(tmp_path / "out2"), filter="ether host 02:00:00:00:00:01")


def test_series_of_an_ethernet_and_a_raw_capture(tmp_path):
    """trace_files: a flow's frames from both go to two files, one per link type."""
    eth = tmp_path / "eth.pcap"
    raw = tmp_path / "raw.pcap"
    write_pcap(eth, [Record(1_600_000_000, 0, ethernet(ipv4(A, B, tcp(1, 2, SYN))))], ETHERNET)
    write_pcap(raw, [Record(1_600_000_001, 0, ipv4(A, B, tcp(1, 2, ACK))),
                     Record(1_600_000_002, 0, ipv4(A, B, tcp(1, 2, FIN)))], RAW)
    index = pcapflow.trace_files([str(eth), str(raw)], str(tmp_path / "out"))
    assert [(flow.label, flow.index) for flow in index] == [("10.0.0.1_1-10.0.0.2_2-1600000000.0", (1, 2, 3))]
    assert read_capture(index[0].fpout).linktype == ETHERNET
    beside = read_capture(str(tmp_path / "out" / "10.0.0.1_1-10.0.0.2_2-1600000000.0~101.pcap"))
    assert beside.linktype == RAW and len(beside.records) == 2
    # a second run over the same directory starts the files afresh
    pcapflow.trace_files([str(eth), str(raw)], str(tmp_path / "out"))
    assert len(read_capture(str(tmp_path / "out" / "10.0.0.1_1-10.0.0.2_2-1600000000.0~101.pcap")).records) == 2


def corpus_pcapng():
    from capture_tools import SHARED_CAPTURES  # pylint: disable=import-outside-toplevel
    here = [p for p in (DATA_DIR).glob("*.pcapng")]
    shared = sorted(SHARED_CAPTURES.glob("*/*.pcapng")) if SHARED_CAPTURES.is_dir() else []
    names = {p.name for p in shared}
    return shared + [p for p in here if p.name not in names]


DATA_DIR = __import__("pathlib").Path(__file__).resolve().parent / "data"


@pytest.mark.skipif(TSHARK is None, reason="editcap comes with tshark")
@pytest.mark.parametrize("path", corpus_pcapng(), ids=lambda p: p.name)
def test_corpus_pcapng_traces_as_its_pcap_conversion(path, tmp_path):
    """The reader against libpcap: each pcapng capture of the corpus, converted to a nanosecond pcap file by
    editcap (which libpcap reads), gives the same flows, labels and flow files byte for byte."""
    converted = tmp_path / "converted.pcap"
    editcap("-F", "nsecpcap", path, converted)
    runs = []
    for name, source in (("ng", path), ("pcap", converted)):
        stats = {}
        index = pcapflow.trace_file(str(source), str(tmp_path / name), nanosecond=True, stats=stats)
        files = [open(flow.fpout, "rb").read() for flow in index]
        for size_dependent in ("bytes", "buffer_bytes", "file_writes", "file_reopens", "budget_flushes"):
            del stats[size_dependent]  # the input's size sets the output budget
        runs.append(([(os.path.basename(flow.fpout), flow.index, flow.label) for flow in index], files, stats))
    assert runs[0] == runs[1]


def test_multi_interface_file_from_a_file_object_and_compressed(tmp_path):
    import gzip  # pylint: disable=import-outside-toplevel
    import io  # pylint: disable=import-outside-toplevel
    blob = multi_interface_file("big")
    (tmp_path / "m.pcapng").write_bytes(blob)
    (tmp_path / "m.pcapng.gz").write_bytes(gzip.compress(blob))
    reference = [(flow.label, flow.index) for flow in pcapflow.trace_file(str(tmp_path / "m.pcapng"), str(tmp_path / "a"))]
    assert len(reference) == 7
    compressed = pcapflow.trace_file(str(tmp_path / "m.pcapng.gz"), str(tmp_path / "b"))
    from_object = pcapflow.trace_file(io.BytesIO(blob), str(tmp_path / "c"))
    assert [(flow.label, flow.index) for flow in compressed] == reference
    assert [(flow.label, flow.index) for flow in from_object] == reference
    assert [p.protocol for p in pcapflow.packets(io.BytesIO(blob))][:3] == [ETHERNET, RAW, RAW]
