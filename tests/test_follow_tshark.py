"""pcapflow.follow against tshark 4.0's Follow TCP Stream, on every capture at hand.

For every capture of ../shared/captures, of the project's corpus and of
follow_synthetic's cases, and every stream: `.stream`, `.nodes`, `.data(0)`,
`.data(1)`, `.segments` equal what `tshark -z follow,tcp,raw,N` prints, the
number of conversations equals tshark's stream count, and each record's frame
number and timestamp equal tshark yaml's `packet` and `timestamp`.

Those tests wait for the engine (skipped while pcapflow.follow does not exist).
The others run now: they prove the oracle itself, i.e. that tshark says what
../shared/docs/follow-tcp-stream.md says it does (its table of totals, section 4)
and what each synthetic capture is built to show, and that the raw and yaml
parsers of follow_tools agree with each other.
"""
import re

import pytest

import pcapflow
from follow_synthetic import cases
from follow_tools import (TSHARK, TsharkError, capture_id, corpus_captures, find_capture, follow, oracle,
                          shared_captures, unique_captures)

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

CAPTURES = unique_captures(shared_captures() + corpus_captures())
CASES = {case.name: case for case in cases()}
GAP = re.compile(rb"\[(\d+) bytes missing in capture file\]\x00")

# the doc's table: streams / streams with data / records / node-0 bytes / node-1 bytes
TOTALS = {
    "real/tcp_retransmissions.pcapng": (1, 1, 1, 648, 0),
    "real/tcp_dupack.pcapng": (1, 1, 3, 0, 4104),
    "real/tcp_zerowindowdead.pcapng": (1, 1, 1, 1344, 0),
    "real/tcp_zerowindowrecovery.pcapng": (1, 1, 2, 0, 2920),
    "real/tcp_teardown.pcapng": (1, 0, 0, 0, 0),
    "real/tcp_handshake.pcapng": (1, 0, 0, 0, 0),
    "real/tcp_refuseconnection.pcapng": (1, 0, 0, 0, 0),
    "linktypes/bgp-role.pcapng": (1, 1, 6, 184, 517),
    "real/http_espn.pcapng": (25, 25, 503, 35911, 551466),
    "real/http_espn_fail.pcapng": (16, 7, 231, 2917, 315393),
    "real/tcp_ports.pcapng": (8, 8, 330, 16687, 374742),
    "real/synscan.pcapng": (1994, 0, 0, 0, 0),
    "real/http_ip4and6.pcapng": (2, 2, 4, 161, 982),
    "linktypes/tfo-5c1fa7f9ae91.pcap": (3, 1, 1, 4, 0),
    "linktypes/tcp_rst_diag_payload.pcap": (1, 1, 1, 8, 0),
    "linktypes/tcp_rst_diag_payload-trunc.pcap": (1, 1, 1, 6, 0),
    "linktypes/geneve.pcap": (1, 1, 21, 1829, 2567),
    "linktypes/gso-ipv4-vxlan-ipv6.pcap": (1, 1, 1, 4134, 0),
    "linktypes/bigtcp-ipv6-hbh.pcap": (1, 1, 1, 80000, 0),
}


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """{case name: path of its capture}, written once."""
    directory = tmp_path_factory.mktemp("follow-synthetic")
    return {name: case.write(directory) for name, case in CASES.items()}


def shared(name):
    path = find_capture(name)
    if path is None:
        pytest.skip(f"../shared/captures/{name} is not there, nor a copy in the corpus")
    return oracle(path)


def readable(path):
    """The capture's Oracle, after tshark has read it (a test skips, saying why, if it cannot)."""
    found = oracle(path)
    try:
        found.streams
    except TsharkError as error:
        pytest.skip(f"tshark cannot read {capture_id(path)}: {error}")
    return found


def raw_records(found):
    blocks = found.blocks(("raw",))
    return [blocks["raw", s].records for s in range(found.streams)]


# --------------------------------------------------------------------------- the oracle, now

@pytest.mark.parametrize("name", sorted(TOTALS))
def test_tshark_totals_are_the_documented_ones(name):
    found = shared(name)
    streams = raw_records(found)
    records = [r for stream in streams for r in stream]
    got = (found.streams, sum(1 for s in streams if s), len(records),
           sum(len(r.data) for r in records if r.node == 0), sum(len(r.data) for r in records if r.node == 1))
    assert got == TOTALS[name]


@pytest.mark.parametrize("name, stream, nodes", [
    ("real/tcp_dupack.pcapng", 0, ("172.31.136.85", 38760)),         # a pure ACK first
    ("real/tcp_teardown.pcapng", 0, ("67.228.110.120", 80)),         # the server's FIN first
    ("real/http_ip4and6.pcapng", 1, ("2001:db8:1:2::1002", 35023)),  # printed [addr]:port
])
def test_node_0_sent_the_first_segment(name, stream, nodes):
    found = shared(name)
    assert found.raw(stream).nodes[0] == nodes
    assert found.yaml(stream).nodes[0] == nodes


def test_bgp_role_gap_record():
    # 38 missing bytes, announced at the ACKing frame 3 with timestamp 0, before frame 2's 23 bytes
    records = shared("linktypes/bgp-role.pcapng").yaml(0).records
    assert [(r.frame, r.timestamp, len(r.data)) for r in records[1:3]] == [
        (3, "0.000000000", 35), (2, "1668715733.642400980", 23)]
    assert records[1].data == b"[38 bytes missing in capture file]\x00"


def test_http_espn_gap_record_comes_before_the_held_frames():
    records = shared("real/http_espn.pcapng").yaml(3).records
    gap = [i for i, r in enumerate(records) if GAP.fullmatch(r.data)]
    assert len(gap) == 1
    first = records[gap[0]]
    assert (first.frame, first.timestamp, first.data) == (895, "0.000000000", b"[3038 bytes missing in capture file]\0")
    assert [r.frame for r in records[gap[0] + 1:gap[0] + 3]] == [893, 894]


def test_tfo_syn_data_and_one_long_line():
    assert [(r.node, r.data) for r in shared("linktypes/tfo-5c1fa7f9ae91.pcap").raw(2).records] == [
        (0, bytes.fromhex("deadbeef"))]
    text = shared("linktypes/bigtcp-ipv6-hbh.pcap").raw(0).text
    assert max(len(line) for line in text.split(b"\n")) == 160000


def test_a_missing_stream_prints_empty_nodes():
    found = shared("real/tcp_handshake.pcapng")
    blocks = follow(found.capture, [found.streams, 7], ("raw", "yaml"))
    for key, block in blocks.items():
        assert block.nodes == (("", 0), ("", 0)) and block.records == [], key
    assert b"Node 0: :0\nNode 1: :0\n" in blocks["raw", 7].text


@pytest.mark.parametrize("name", sorted(CASES))
def test_synthetic_capture_shows_what_it_is_built_for(name, synthetic):
    """Each case's documented outcome, checked against tshark itself."""
    case, found = CASES[name], oracle(synthetic[name])
    assert found.streams == case.streams
    raw = found.blocks(("raw",))
    assert {s: [(r.node, r.data) for r in raw["raw", s].records] for s in range(found.streams)} == case.records
    for stream, frames in case.frames_of.items():
        assert [r.frame for r in found.yaml(stream).records] == frames, stream
    for stream, nodes in case.nodes.items():
        assert raw["raw", stream].nodes == nodes, stream
    for stream, text in case.raw_text.items():
        assert raw["raw", stream].text == text, stream
    for frame, streams in case.frame_streams.items():
        assert found.frames[frame] == streams, frame
    for stream in range(found.streams):  # gap records: timestamp 0; others: their frame's time
        for record in found.yaml(stream).records:
            if GAP.fullmatch(record.data):
                assert record.timestamp == "0.000000000"
            else:
                seconds, nanoseconds = found.times[record.frame]
                assert record.timestamp == "%.9f" % (seconds + nanoseconds / 1e9)


@pytest.mark.parametrize("path", CAPTURES + [None], ids=[capture_id(p) for p in CAPTURES] + ["synthetic"])
def test_raw_and_yaml_parsers_agree(path, synthetic):
    """Two modes, two parsers, one truth: the same nodes and records (so the yaml blocks,
    which do not name their stream, were matched to the right streams)."""
    for found in [readable(path)] if path else [oracle(p) for p in synthetic.values()]:
        blocks = found.blocks(("raw", "yaml"))
        for s in range(found.streams):
            raw, yaml = blocks["raw", s], blocks["yaml", s]
            assert raw.nodes == yaml.nodes, (found.capture, s)
            assert [(r.node, r.data) for r in raw.records] == [(r.node, r.data) for r in yaml.records], (
                found.capture, s)


# --------------------------------------------------------------------------- pcapflow.follow

def check_follow(found, conversations):
    """conversations (pcapflow.follow's, as a list) say what tshark says, stream by stream."""
    assert len(conversations) == found.streams, "number of conversations"
    blocks = found.blocks(("raw", "yaml"))
    for number, conversation in enumerate(conversations):
        raw, yaml = blocks["raw", number], blocks["yaml", number]
        where = f"{capture_id(found.capture)} stream {number}"
        assert conversation.stream == number, where
        assert tuple(tuple(node) for node in conversation.nodes) == raw.nodes, where
        segments = tuple((r.node, r.data) for r in raw.records)
        assert tuple(tuple(s) for s in conversation.segments) == segments, where
        for node in (0, 1):
            assert conversation.data(node) == b"".join(d for n, d in segments if n == node), f"{where} node {node}"
        got = [(r.frame, "%.9f" % (r.seconds + r.nanoseconds / 1e9)) for r in conversation.records]
        assert got == [(r.frame, r.timestamp) for r in yaml.records], f"{where}: frames and timestamps"
        # exactly, too: yaml's text is a double, blind to a few hundred nanoseconds
        times = [(0, 0) if GAP.fullmatch(r.data) and r.timestamp == "0.000000000" else found.times[r.frame]
                 for r in yaml.records]
        assert [(r.seconds, r.nanoseconds) for r in conversation.records] == times, f"{where}: exact times"
        missing = [int(GAP.fullmatch(r.data).group(1)) if t == (0, 0) and GAP.fullmatch(r.data) else 0
                   for r, t in zip(yaml.records, times)]
        assert [r.missing for r in conversation.records] == missing, f"{where}: missing"
        for node in (0, 1):
            captured = b"".join(r.data for r, m in zip(yaml.records, missing) if r.node == node and not m)
            assert conversation.data(node, markers=False) == captured, f"{where} node {node}, markers=False"


@pytest.mark.parametrize("path", CAPTURES, ids=[capture_id(p) for p in CAPTURES])
def test_follow_matches_tshark(path):
    found = readable(path)
    check_follow(found, list(pcapflow.follow(str(path))))


@pytest.mark.parametrize("name", sorted(CASES))
def test_follow_matches_tshark_on_synthetic_capture(name, synthetic):
    check_follow(oracle(synthetic[name]), list(pcapflow.follow(str(synthetic[name]))))


# the check itself must be able to fail: tshark's own streams pass it, altered ones do not
ALTERATIONS = {
    "a byte": lambda c, r: setattr(c, "segments", ((0, c.segments[0][1][:-1] + b"?"),) + c.segments[1:]),
    "a record's data": lambda c, r: setattr(c, "records", (r[0]._replace(data=b"?"),) + r[1:]),
    "node order": lambda c, r: setattr(c, "nodes", c.nodes[::-1]),
    "a frame number": lambda c, r: setattr(c, "records", (r[0]._replace(frame=r[0].frame + 1),) + r[1:]),
    "a nanosecond": lambda c, r: setattr(c, "records", (r[0]._replace(nanoseconds=r[0].nanoseconds + 1),) + r[1:]),
    "a gap's timestamp": lambda c, r: setattr(c, "records", r[:1] + (r[1]._replace(seconds=1),) + r[2:]),
    "a stream dropped": None,
    "a gap not marked missing": lambda c, r: setattr(c, "records", r[:1] + (r[1]._replace(missing=0),) + r[2:]),
}


def test_check_accepts_tshark_itself():
    found = shared("linktypes/bgp-role.pcapng")
    check_follow(found, found.conversations())


@pytest.mark.parametrize("alteration", sorted(ALTERATIONS))
def test_check_rejects_a_difference(alteration):
    found = shared("linktypes/bgp-role.pcapng")  # one stream; record 1 is a gap record
    conversations = found.conversations()
    if ALTERATIONS[alteration] is None:
        conversations = conversations[:-1]
    else:
        ALTERATIONS[alteration](conversations[0], conversations[0].records)
    with pytest.raises(AssertionError):
        check_follow(found, conversations)
