"""pcapflow.follow_tcp_stream and pcapflow.reassembly against pcapkit 1.4.1.

- The TCP fields pcapflow reads from frame bytes (pcapflow._segment_fields) are
  the fields of the records pcapkit's extractor builds for its reassembly.
- follow_tcp_stream gives pcapkit's streams: the same file names (relative to
  the output directory), the same frames, the same conversations except where
  a documented difference applies (see DIFFERENCES in REASSEMBLY_README_PART
  / pcapflow.reassembly's docstring): pcapkit zero-fills from a zero-length
  segment's sequence number (the SYN's, a keep-alive's), so its conversation
  may carry NUL bytes at its ends that pcapflow's does not, or consist of NULs
  only, where pcapflow has none.
- Fed the same records, pcapflow's TCP/IPv4/IPv6 give pcapkit's datagrams
  (id, index, header, payload, completed) where pcapkit is right; where they
  differ the difference is one of the documented ones, checked against the
  records themselves.
- Hypothesis: random segmentations and fragmentations reassemble to the data.

pcapkit decodes about 250 packets a second: the captures of more than ~300
packets are marked slow (``-m "not slow"`` leaves them out).
"""
import ipaddress
import logging
import os
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcapkit
from pcapkit.foundation.extraction import Extractor
from pcapkit.foundation.reassembly.data.ip import Packet as PcapkitIPRecord
from pcapkit.foundation.reassembly.data.tcp import Packet as PcapkitTCPRecord
from pcapkit.foundation.reassembly.ipv4 import IPv4 as PcapkitIPv4
from pcapkit.foundation.reassembly.ipv6 import IPv6 as PcapkitIPv6
from pcapkit.foundation.reassembly.tcp import TCP as PcapkitTCP
from pcapkit.interface import misc as pcapkit_misc
from pcapkit.toolkit.pcap import ipv4_reassembly, tcp_reassembly

import pcapflow
from pcapflow import reassembly
from pcapflow._segment_fields import tcp_fields
from capture_tools import SHARED_CAPTURES

logging.getLogger("pcapkit").setLevel(logging.CRITICAL)

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
EXAMPLES = HERE.parent / "examples" / "data"
REAL = SHARED_CAPTURES / "real"
LINKTYPES = SHARED_CAPTURES / "linktypes"

# pcapkit cannot follow tcp-handshake-nano.pcap (it finds no TCP frame); every other one here it can
LOCAL = [DATA / name for name in ("dns_tcp.pcap", "dns_tcp.pcapng", "http_ip4and6.pcapng", "ssh.pcap",
                                  "tcp_retransmissions.pcapng", "tcp_teardown.pcapng", "whois-nsec.pcap", "whois.pcap")]
# real captures, each under ~150 TCP frames: a few seconds of pcapkit in all
REAL_SMALL = ["dns_axfr.pcapng", "http_dvwa_clearlogin.pcapng", "http_dvwa_sqlinjection.pcapng", "http_google.pcapng",
              "http_post.pcapng", "inconsistent_printer.pcapng", "latency1.pcapng", "mail_receiver_server_3.pcapng",
              "mail_sender_attachment.pcapng", "mail_sender_client_1.pcapng", "sessionhijacking.pcapng",
              "tcp_dupack.pcapng", "tcp_handshake.pcapng", "tcp_refuseconnection.pcapng", "tcp_zerowindowdead.pcapng",
              "tcp_zerowindowrecovery.pcapng", "tickedoffdeveloper.pcapng", "weather_broken.pcapng",
              "weather_working.pcapng", "wrongdissector.pcapng"]
# 500 to 950 TCP frames: 2 to 6 seconds of pcapkit each (synscan.pcapng, 2,011 one-frame flows, is left out)
REAL_SLOW = ["http_espn_fail.pcapng", "tcp_ports.pcapng"]


def _captures():
    found = [pytest.param(path, id=f"tests/{path.name}") for path in LOCAL]
    found.append(pytest.param(EXAMPLES / "http_espn.pcapng", id="examples/http_espn.pcapng", marks=pytest.mark.slow))
    if REAL.is_dir():
        found += [pytest.param(REAL / name, id=f"real/{name}") for name in REAL_SMALL]
        found += [pytest.param(REAL / name, id=f"real/{name}", marks=pytest.mark.slow) for name in REAL_SLOW]
    return found


CAPTURES = _captures()
FAST_CAPTURES = [p for p in CAPTURES if not p.marks]


# --------------------------------------------------------------------------- pcapkit's view, computed once

_EXTRACTIONS = {}


def pcapkit_frames(path):
    """pcapkit's frames of a capture (its own tracer and reassembly untouched)."""
    key = str(path)
    if key not in _EXTRACTIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extraction = pcapkit.extract(fin=str(path), nofile=True, store=True, tcp=True, engine="default")
        _EXTRACTIONS[key] = list(extraction.frame)
    return _EXTRACTIONS[key]


def pcapkit_tcp_records(path):
    return [record for record in map(tcp_reassembly, pcapkit_frames(path)) if record is not None]


def fresh(record):
    """A copy of a pcapkit record: pcapkit's reassembly extends the first record's payload in place."""
    return type(record).from_dict({**record, "payload": bytearray(record.payload)})


# --------------------------------------------------------------------------- the decoder

def _decoder_captures():
    found = [pytest.param(p.values[0], id=p.id) for p in FAST_CAPTURES]
    if LINKTYPES.is_dir():
        # the link types pcapkit decodes (pptp.pcap is big-endian, which pcapkit misreads)
        for name in ("accecn_handshake.pcap", "bigtcp-ipv6-hbh.pcap", "dns_tcp.pcap", "gso-ipv6.pcap", "kday3.pcap",
                     "print-flags.pcap", "scps_invalid.pcap", "smb_data_print-segv.pcap", "tfo-5c1fa7f9ae91.pcap",
                     "ipv4_tcp_http_xml.pcap", "babel_update_oobr.pcap", "bgp-evpn.pcap"):
            found.append(pytest.param(LINKTYPES / name, id=f"linktypes/{name}"))
    return found


@pytest.mark.parametrize("path", _decoder_captures())
def test_tcp_fields_are_pcapkits_record_fields(path):
    records = {record.num: record for record in pcapkit_tcp_records(path)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = {packet.index: packet for packet in pcapflow.packets(str(path))}
    common = set(records) & set(ours)
    assert common or not records
    for number in sorted(common):
        record, packet = records[number], ours[number]
        fields = tcp_fields(packet.protocol, packet.frame["packet"])
        assert fields is not None, number
        seq, ack, flags, header, payload = fields
        assert (seq, ack) == (record.dsn, record.ack), number
        assert (bool(flags & 2), bool(flags & 1), bool(flags & 4)) == (record.syn, record.fin, record.rst), number
        assert header == bytes(record.header), number
        assert payload == bytes(record.payload), number
        assert (packet.src, packet.srcport, packet.dst, packet.dstport) == record.bufid, number


# --------------------------------------------------------------------------- the documented differences

def explained_tcp_difference(theirs, ours):
    """pcapkit's payload differs from ours only by NULs at its ends, which pcapkit
    zero-fills from zero-length segments' sequence numbers."""
    if theirs == ours:
        return True
    start = theirs.find(ours) if ours else 0
    return start >= 0 and not theirs[:start].strip(b"\0") and not theirs[start + len(ours):].strip(b"\0")


def coverage_gaps(segments):
    """Whether the payload bytes of (seq, syn, payload) segments leave a gap
    between the first and the last byte, computed from the records alone."""
    spans = []
    for seq, syn, payload in segments:
        if payload:
            start = seq + 1 if syn else seq
            spans.append((start, start + len(payload)))
    if not spans:
        return False
    origin = spans[0][0]
    relative = sorted((((s - origin + 2**31) % 2**32) - 2**31, ((s - origin + 2**31) % 2**32) - 2**31 + e - s)
                      for s, e in spans)
    reach = relative[0][1]
    for start, end in relative[1:]:
        if start > reach:
            return True
        reach = max(reach, end)
    return False


# --------------------------------------------------------------------------- follow_tcp_stream

def check_conversations(theirs, ours):
    """Ours is pcapkit's list, with the documented differences: pcapkit's
    conversations of NULs alone are absent, others may lose NULs at their ends."""
    position = 0
    for conversation in theirs:
        if position < len(ours) and explained_tcp_difference(bytes(conversation), ours[position]):
            position += 1
            continue
        assert not bytes(conversation).strip(b"\0"), (conversation[:40], ours[position:position + 1])
    assert position == len(ours)


@pytest.mark.parametrize("path", CAPTURES)
def test_follow_tcp_stream_matches_pcapkit(path, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pcapkit_misc.follow_tcp_stream(str(path), fout=str(tmp_path / "pcapkit"))
        ours = pcapflow.follow_tcp_stream(str(path), fout=str(tmp_path / "pcapflow"))
    assert theirs, "pcapkit follows this capture"
    assert [os.path.relpath(s.filename, tmp_path / "pcapkit") for s in theirs] == \
        [os.path.relpath(s.filename, tmp_path / "pcapflow") for s in ours]
    assert [tuple(frame.info.number for frame in s.packets) for s in theirs] == \
        [tuple(packet.index for packet in s.packets) for s in ours]
    for stream in ours:
        assert isinstance(stream, pcapflow.Stream)
        assert all(isinstance(packet, pcapflow.Packet) for packet in stream.packets)
        assert all(isinstance(conversation, bytes) for conversation in stream.conversations)
        assert os.path.isfile(stream.filename)
    for mine, reference in zip(ours, theirs):
        check_conversations(reference.conversations, mine.conversations)


def test_follow_tcp_stream_the_known_differences_occur():
    """Guard against a vacuous comparison: the SYN's NUL (a server speaks first) is there in pcapkit."""
    path = REAL / "mail_sender_client_1.pcapng"
    if not path.exists():
        pytest.skip("../shared/captures is not there")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pcapkit_misc.follow_tcp_stream(str(path), fout="/tmp/pcapflow-test-follow-pk")
        ours = pcapflow.follow_tcp_stream(str(path), fout="/tmp/pcapflow-test-follow-pf")
    greetings = [c for s in theirs for c in s.conversations if bytes(c).startswith(b"\x00220 ")]
    assert greetings
    assert [c for s in ours for c in s.conversations if c.startswith(b"220 ")] == [bytes(g[1:]) for g in greetings]


def test_follow_tcp_stream_takes_pcapkits_arguments(tmp_path):
    path = DATA / "ssh.pcap"
    streams = pcapflow.follow_tcp_stream(str(path)[:-len(".pcap")], fout=str(tmp_path / "a"))  # '.pcap' appended
    assert streams and streams[0].filename.startswith(str(tmp_path / "a"))
    with pytest.raises(FileNotFoundError):
        pcapflow.follow_tcp_stream(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        pcapflow.follow_tcp_stream(str(path)[:-len(".pcap")], extension=False)
    with open(path, "rb") as file:
        from_file = pcapflow.follow_tcp_stream(file, fout=str(tmp_path / "b"))
    assert [s.conversations for s in from_file] == [s.conversations for s in streams]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unknown = pcapflow.follow_tcp_stream(str(path), fout=str(tmp_path / "c"), format="nosuchformat")
    assert [s.filename for s in unknown] == [None] * len(streams)
    stream = streams[0]
    assert stream["filename"] == stream.filename and list(stream) == ["filename", "packets", "conversations"]
    assert stream == dict(stream)


# --------------------------------------------------------------------------- the TCP class, fed pcapkit's records

def run_both(records, strict, pcapflow_class=reassembly.TCP, pcapkit_class=PcapkitTCP):
    theirs, ours = pcapkit_class(strict=strict), pcapflow_class(strict=strict)
    for record in records:
        theirs(fresh(record))
        ours(record)
    return theirs.datagram, ours.datagram


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize("path", CAPTURES)
def test_tcp_datagrams_match_pcapkit(path, strict):
    records = pcapkit_tcp_records(path)
    by_number = {record.num: record for record in records}
    theirs, ours = run_both(records, strict)
    mine = {d.index: d for d in ours}
    reference = {d.index: d for d in theirs}
    # the order of the datagrams is pcapkit's
    assert [d.index for d in theirs if d.index in mine] == [d.index for d in ours if d.index in reference]
    if strict:
        # pcapkit's strict mode drops most datagrams it deems incomplete: it cuts their runs at
        # sequence numbers used as offsets, past the end of the data, and finds nothing left
        lenient = {d.index: d for d in run_both(records, False)[0]}
        for index in set(mine) - set(reference):
            assert index in lenient
            assert explained_tcp_difference(bytes(lenient[index].payload), bytes(mine[index].payload)
                                            if isinstance(mine[index].payload, bytes) else b"".join(mine[index].payload)) \
                or not mine[index].completed
        mine = {index: d for index, d in mine.items() if index in reference}
    # pcapflow makes no datagram pcapkit does not; pcapkit's extra ones are NULs from zero-length segments
    assert set(mine) <= set(reference)
    for index in set(reference) - set(mine):
        assert all(by_number[n].len == 0 for n in index)
    for index, datagram in mine.items():
        other = reference[index]
        assert datagram.id == other.id and datagram.header == other.header
        segments = [(by_number[n].dsn, by_number[n].syn, bytes(by_number[n].payload)) for n in index]
        gaps = coverage_gaps(segments)
        assert datagram.completed == (not gaps)
        if datagram.completed or not strict:
            assert isinstance(datagram.payload, bytes)
        if not gaps and other.completed:
            assert explained_tcp_difference(bytes(other.payload), datagram.payload)
        elif not strict:  # both zero-filled
            assert explained_tcp_difference(bytes(other.payload), datagram.payload)


def test_pcapkit_records_give_incomplete_datagrams_somewhere():
    """tcp_dupack.pcapng lost a segment: pcapkit calls the datagram complete
    (strict=False) or keeps 1 of its 2 runs (strict=True); pcapflow has both runs."""
    path = REAL / "tcp_dupack.pcapng"
    if not path.exists():
        pytest.skip("../shared/captures is not there")
    records = pcapkit_tcp_records(path)
    theirs, ours = run_both(records, strict=True)
    (datagram,) = ours
    assert datagram.completed is False and [len(p) for p in datagram.payload] == [1368, 4104]
    assert [len(p) for p in theirs[0].payload] == [1368]
    theirs, ours = run_both(records, strict=False)
    assert theirs[0].completed is True and ours[0].completed is False
    assert ours[0].payload == bytes(theirs[0].payload)


# --------------------------------------------------------------------------- use_in_pcapkit

@pytest.fixture
def pcapflow_in_pcapkit():
    pcapflow.use_in_pcapkit()
    pcapflow.use_in_pcapkit()  # idempotent
    try:
        yield
    finally:
        pcapflow.use_in_pcapkit(False)


def test_use_in_pcapkit_swaps_reassembly_and_follow(tmp_path):
    before = (dict(Extractor.__reassembly__), Extractor.__traceflow__["tcp"], pcapkit_misc.follow_tcp_stream)
    pcapflow.use_in_pcapkit()
    pcapflow.use_in_pcapkit()
    try:
        assert pcapkit_misc.follow_tcp_stream is pcapflow.follow_tcp_stream
        assert isinstance(pcapkit.reassemble("TCP"), reassembly.TCP)
        assert isinstance(pcapkit.reassemble("IPv4"), reassembly.IPv4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extraction = pcapkit.extract(fin=str(DATA / "ssh.pcap"), nofile=True, reassembly=True, tcp=True, ip=True)
        assert type(extraction._reasm.tcp) is reassembly.TCP  # pylint: disable=protected-access
        assert type(extraction._reasm.ipv4) is reassembly.IPv4  # pylint: disable=protected-access
        expected = reassembly.TCP(strict=True)
        expected.run(pcapkit_tcp_records(DATA / "ssh.pcap"))
        assert extraction.reassembly.tcp == expected.datagram
        assert extraction.reassembly.tcp
        from pcapkit.foundation.reassembly.reassembly import Reassembly
        assert issubclass(reassembly.TCP, Reassembly)
    finally:
        pcapflow.use_in_pcapkit(False)
    pcapflow.use_in_pcapkit(False)
    assert (dict(Extractor.__reassembly__), Extractor.__traceflow__["tcp"], pcapkit_misc.follow_tcp_stream) == before
    assert type(pcapkit.reassemble("TCP")) is PcapkitTCP


# --------------------------------------------------------------------------- IPv4 on real records

@pytest.mark.parametrize("path", [p for p in FAST_CAPTURES if p.id in (
    "tests/dns_tcp.pcap", "tests/whois.pcap", "real/http_google.pcapng", "real/inconsistent_printer.pcapng",
    "real/mail_sender_attachment.pcapng")])
@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_ipv4_datagrams_match_pcapkit_on_unfragmented_packets(path, strict):
    records = [r for r in map(ipv4_reassembly, pcapkit_frames(path)) if r is not None]
    assert records
    theirs, ours = run_both(records, strict, reassembly.IPv4, PcapkitIPv4)
    assert len(theirs) == len(ours)
    for other, datagram in zip(theirs, ours):
        assert (datagram.completed, datagram.id, datagram.index, datagram.header, datagram.payload) == \
            (other.completed, other.id, other.index, other.header, other.payload)
    assert ours[0] == {**ours[0]}  # a mapping


# --------------------------------------------------------------------------- IP fragments: hypothesis

SRC, DST = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
HEADER = b"E" + bytes(19)


def ip_record(offset, data, more, num, ident=7):
    return reassembly.IPFragment(bufid=(SRC, DST, ident, 17), num=num, fo=offset, ihl=20, mf=more,
                                 tl=20 + len(data), header=HEADER, payload=bytearray(data))


def pcapkit_ip_record(record):
    return PcapkitIPRecord.from_dict({**record, "payload": bytearray(record.payload)})


@st.composite
def fragmentations(draw):
    """A datagram, its fragments (8-byte aligned except the last) in a random order,
    some repeated (same bytes)."""
    data = draw(st.binary(min_size=1, max_size=300))
    cuts = sorted(set(draw(st.lists(st.integers(1, (len(data) - 1) // 8), max_size=8)) if len(data) > 8 else []))
    bounds = [0] + [c * 8 for c in cuts] + [len(data)]
    pieces = [(bounds[i], data[bounds[i]:bounds[i + 1]], i < len(bounds) - 2) for i in range(len(bounds) - 1)]
    order = draw(st.permutations(pieces))
    repeats = draw(st.lists(st.sampled_from(pieces), max_size=3))
    return data, list(order) + repeats, pieces


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragmentations())
def test_ip_fragments_in_any_order_reassemble(case):
    data, fragments, _ = case
    ours = reassembly.IPv4(strict=True)
    for num, (offset, piece, more) in enumerate(fragments, 1):
        ours(ip_record(offset, piece, more, num))
        if ours._dtgram:  # pylint: disable=protected-access
            break  # complete: later repeats would start a new buffer
    (datagram,) = ours.datagram
    assert datagram.completed and datagram.payload == data and datagram.header == HEADER


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragmentations())
def test_ip_fragments_in_order_match_pcapkit(case):
    data, _, pieces = case
    theirs, ours = PcapkitIPv4(strict=True), reassembly.IPv4(strict=True)
    for num, (offset, piece, more) in enumerate(pieces, 1):
        record = ip_record(offset, piece, more, num)
        theirs(pcapkit_ip_record(record))
        ours(record)
    assert [dict(d, packet=None) for d in ours.datagram] == [dict(d, packet=None) for d in theirs.datagram]
    assert ours.datagram[0].payload == data


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=24, max_size=200), st.data())
def test_ip_overlap_keeps_the_first_copy(data, draw):
    """A fragment overlapping earlier ones with other bytes changes nothing that already arrived."""
    half = (len(data) // 16) * 8
    first, rest = data[:half + 8], data[half:]
    forged = bytes(b ^ 0xFF for b in data[half:half + 8])
    ours = reassembly.IPv4(strict=True)
    ours(ip_record(0, first, True, 1))
    ours(ip_record(half, forged + rest[8:], False, 2))
    (datagram,) = ours.datagram
    assert datagram.completed and datagram.payload == data


def test_ip_missing_fragment_is_incomplete_with_exact_runs():
    data = bytes(range(48))
    for strict in (True, False):
        ours = reassembly.IPv4(strict=strict)
        ours(ip_record(0, data[:16], True, 1))
        ours(ip_record(24, data[24:], False, 2))
        (datagram,) = ours.datagram
        assert datagram.completed is False and datagram.index == (1, 2)
        if strict:
            assert datagram.payload == (data[:16], data[24:]) and datagram.packet is None
        else:
            assert datagram.payload == data[:16] + bytes(8) + data[24:]


def test_ip_last_fragment_first_completes_on_the_missing_one():
    data = bytes(range(40))
    ours = reassembly.IPv4()
    seen = []
    ours.register(seen.append)
    try:
        ours(ip_record(16, data[16:], False, 1))
        ours(ip_record(0, data[:16], True, 2))
        assert ours._dtgram and not ours._buffer  # pylint: disable=protected-access
        assert seen == [list(ours.datagram)]
    finally:
        reassembly.IPv4.__callback_fn__.remove(seen.append)


def test_ip_unfragmented_packet_with_an_open_key_is_its_own_datagram():
    ours = reassembly.IPv4(strict=True)
    ours(ip_record(0, b"A" * 16, True, 1))
    ours(ip_record(0, b"whole", False, 2))
    assert [(d.completed, d.index, d.payload) for d in ours.datagram] == [(False, (1,), (b"A" * 16,)),
                                                                           (True, (2,), b"whole")]


def test_ipv6_class_is_the_same_algorithm():
    data = bytes(range(64))
    ours = reassembly.IPv6(strict=True)
    ours(ip_record(0, data[:32], True, 1))
    ours(ip_record(32, data[32:], False, 2))
    assert ours.datagram[0].payload == data and ours.name == "IPv6" and reassembly.IPv6.name == "IPv6"


# --------------------------------------------------------------------------- TCP segments: hypothesis

A = (ipaddress.ip_address("192.0.2.1"), 40000, ipaddress.ip_address("192.0.2.2"), 80)


def tcp_record(seq, data, num, *, ack=1000, syn=False, fin=False, rst=False, header=b"H" * 20, bufid=A):
    seq &= 0xFFFFFFFF
    return reassembly.TCPSegment(bufid=bufid, dsn=seq, ack=ack, num=num, syn=syn, fin=fin, rst=rst, len=len(data),
                                 first=seq, last=seq + len(data), header=header, payload=bytearray(data))


def pcapkit_tcp_record(record):
    return PcapkitTCPRecord.from_dict({**record, "payload": bytearray(record.payload)})


@st.composite
def segmentations(draw):
    data = draw(st.binary(min_size=1, max_size=400))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=10))))
    bounds = [0] + [c for c in cuts if c < len(data)] + [len(data)]
    pieces = [(bounds[i], data[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1)]
    isn = draw(st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32 - 300, 2**32 - 1)))  # often across the wrap
    return data, isn, pieces


@settings(max_examples=200, deadline=None)
@given(segmentations(), st.data())
def test_tcp_segments_in_any_order_with_retransmissions_reassemble(case, draw):
    data, isn, pieces = case
    order = draw.draw(st.permutations(pieces))
    # retransmissions: the same bytes again, possibly re-cut across segment boundaries
    extra = draw.draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 50)), max_size=4))
    segments = list(order) + [(start, data[start:start + size]) for start, size in extra]
    ours = reassembly.TCP(strict=True)
    for num, (offset, piece) in enumerate(segments, 1):
        ours(tcp_record(isn + offset, piece, num))
    (datagram,) = ours.datagram
    assert datagram.completed and datagram.payload == data
    assert datagram.index == tuple(range(1, len(segments) + 1))


@settings(max_examples=200, deadline=None)
@given(segmentations())
def test_tcp_segments_in_order_match_pcapkit(case):
    """In order, no wrap inside the data: pcapkit is right, and pcapflow gives its datagrams."""
    data, isn, pieces = case
    isn %= 2**32 - len(data)
    records = [tcp_record(0, b"", 1, syn=True, ack=0, header=b"S" * 24)]  # a SYN: its header is the buffer's
    records += [tcp_record(isn + 1 + offset, piece, num) for num, (offset, piece) in enumerate(pieces, 2)]
    records.append(tcp_record(isn + 1 + len(data), b"", len(records) + 1, ack=2000))  # an ACK with a new number
    records.append(tcp_record(isn + 1 + len(data), b"", len(records) + 1, ack=2000, fin=True))
    for strict in (False, True):
        theirs, ours = PcapkitTCP(strict=strict), reassembly.TCP(strict=strict)
        for record in records:
            theirs(pcapkit_tcp_record(record))
            ours(record)
        assert [dict(d, packet=None) for d in ours.datagram] == [dict(d, packet=None) for d in theirs.datagram]
        assert ours.datagram[0].payload == data and ours.datagram[0].header == b"S" * 24


@settings(max_examples=100, deadline=None)
@given(segmentations(), st.data())
def test_tcp_a_missing_segment_makes_the_datagram_incomplete(case, draw):
    data, isn, pieces = case
    if len(pieces) < 3:
        return
    lost = draw.draw(st.integers(1, len(pieces) - 2))  # not the first nor the last: a gap inside
    for strict in (False, True):
        ours = reassembly.TCP(strict=strict)
        for num, (offset, piece) in enumerate(pieces, 1):
            if num - 1 != lost:
                ours(tcp_record(isn + offset, piece, num))
        (datagram,) = ours.datagram
        assert datagram.completed is False
        start, piece = pieces[lost]
        if strict:
            assert datagram.payload == (data[:start], data[start + len(piece):])
            assert datagram.packet is None
        else:
            assert datagram.payload == data[:start] + bytes(len(piece)) + data[start + len(piece):]


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=2, max_size=100), st.binary(min_size=1, max_size=100), st.integers(0, 2**32 - 1))
def test_tcp_overlap_keeps_the_first_copy(first, second, isn):
    overlap = min(len(first), len(second)) // 2 or 1
    ours = reassembly.TCP(strict=True)
    ours(tcp_record(isn, first, 1))
    ours(tcp_record(isn + len(first) - overlap, second, 2))
    (datagram,) = ours.datagram
    assert datagram.payload == first + second[overlap:]


def test_tcp_zero_length_segments_carry_no_position():
    """The SYN (and a keep-alive, one below the next byte) are not data: no NUL before the greeting."""
    ours, theirs = reassembly.TCP(strict=False), PcapkitTCP(strict=False)
    records = [tcp_record(99, b"", 1, syn=True, ack=5000),       # the server's SYN-ACK
               tcp_record(100, b"220 ready\r\n", 2, ack=5000),   # its greeting, before the client says anything
               tcp_record(110, b"", 3, ack=5000)]                # a keep-alive probe
    for record in records:
        ours(record)
        theirs(pcapkit_tcp_record(record))
    assert [d.payload for d in ours.datagram] == [b"220 ready\r\n"]
    assert [bytes(d.payload) for d in theirs.datagram] == [b"\x00220 ready\r\n"]
    assert ours.datagram[0].index == theirs.datagram[0].index == (1, 2, 3)


def test_tcp_fast_open_data_follows_the_syn():
    ours = reassembly.TCP()
    ours(tcp_record(99, b"GET", 1, syn=True, ack=0))
    ours(tcp_record(103, b" /", 2, ack=0))
    assert [d.payload for d in ours.datagram] == [b"GET /"]


def test_tcp_interface():
    """pcapkit's interface: callbacks, store=False, index(), count, fetch() of open buffers, records as mappings."""
    seen = []
    reassembly.TCP.register(seen.append)
    try:
        kept = reassembly.TCP(strict=False)
        dropped = reassembly.TCP(strict=False, store=False)
        records = [tcp_record(1, b"hello ", 1), tcp_record(7, b"world", 2), tcp_record(12, b"", 3, fin=True),
                   tcp_record(1, b"again", 4, bufid=A[2:] + A[:2])]
        for record in records:
            kept(record)
            dropped(dict(record))  # a plain mapping is a record too
        assert kept.count == 2 and dropped.count == 1  # the open buffer counts when stored
        assert kept.index(2) == 1 and kept.index(4) == 0 and kept.index(99) is None
        assert [d.payload for d in kept.datagram] == [b"again", b"hello world"]
        with pytest.raises(pcapflow.UnsupportedCall):
            dropped.datagram  # pylint: disable=pointless-statement
        assert dropped._dtgram == []  # pylint: disable=protected-access
        assert kept.fetch() is kept.fetch()
        # each close gives its list; so does each fetch() of an open buffer, as in pcapkit
        assert [d.payload for d in seen[0]] == [b"hello world"] == [d.payload for d in seen[1]]
        datagram = kept.datagram[1]
        assert datagram.id == {"src": (A[0], A[1]), "dst": (A[2], A[3]), "ack": 1000}
        assert list(datagram) == ["completed", "id", "index", "header", "payload", "packet"]
        with pytest.raises(pcapflow.UnsupportedCall):
            datagram.payload = b""
        assert kept.name == "TCP" and reassembly.TCP_Reassembly is reassembly.TCP
        assert kept.protocol is reassembly.TCP.protocol is not None
    finally:
        reassembly.TCP.__callback_fn__.remove(seen.append)
