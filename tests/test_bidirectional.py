"""TCP(..., bidirectional=True) and trace_file(..., bidirectional=True): one flow per connection.

A bidirectional flow holds the frames of both directions of a connection, in
capture order, labelled as its first frame's one-direction flow would be; it
closes once both sides have sent FIN, or at an RST from either side, and a
later frame of the same 4-tuple opens a new flow. The expected flows are
computed here from packet lists that tshark decodes (or that the tests build),
with those rules written out in plain Python; the files are read back with the
tests' own pcap reader (capture_tools) and compared frame by frame with the
capture and with what editcap cuts out of it for tshark's tcp.stream.
"""
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcapflow
from capture_tools import (ACK, ETHERNET, FIN, RST, SHARED_CAPTURES, SYN, TSHARK, TCPPacket, as_tuples,
                           check_flow_files, ethernet, expected_flows, frames_at, ip_packet, label_of, read_capture, tcp,
                           tshark_tcp_packets, write_pcap)

DATA = Path(__file__).parent / "data"
LOCAL = sorted(p for p in DATA.iterdir() if p.suffix in (".pcap", ".pcapng"))
REAL = sorted((SHARED_CAPTURES / "real").glob("*.pcapng")) if (SHARED_CAPTURES / "real").is_dir() else []
CAPTURES = LOCAL + REAL
EDITCAP = "editcap"


def capture_id(path):
    return f"{path.parent.name}/{path.name}"


# ---------------------------------------------------------------------------
# The rules, in plain Python
# ---------------------------------------------------------------------------

def endpoint(address, port):
    return (address.version, int(address), port)


def expected_bidirectional(packets, fout, ext=".pcap"):
    """submit() of a bidirectional tracer for these packets (TCPPacket with an `rst` attribute):
    [(fpout, frames, label)], open flows first (in the order opened), then the closed ones in
    closing order; a repeated label's n-th file is "{label}_{n}" (pcapflow's rule)."""
    open_flows, closed, seen = {}, [], {}
    for p in packets:
        sender, receiver = endpoint(p.src, p.srcport), endpoint(p.dst, p.dstport)
        key = tuple(sorted((sender, receiver)))
        if key not in open_flows:
            label = label_of(p)
            seen[label] = seen.get(label, 0) + 1
            name = label if seen[label] == 1 else f"{label}_{seen[label]}"
            open_flows[key] = {"fpout": f"{fout}/{name}{ext}", "frames": [], "label": label, "fins": []}
        flow = open_flows[key]
        flow["frames"].append(p.frame)
        if p.fin:
            flow["fins"].append(sender)
        if sender == receiver:  # a socket connected to itself: two FINs, whoever sent them
            both = len(flow["fins"]) >= 2
        else:
            both = sender in flow["fins"] and receiver in flow["fins"]
        if p.rst or both:
            del open_flows[key]
            closed.append(flow)
    return [(f["fpout"], tuple(f["frames"]), f["label"]) for f in list(open_flows.values()) + closed]


def tshark_fields(path, *fields):
    """{frame number: [field values]} for the TCP frames of a capture (first occurrence of each field)."""
    args = [TSHARK, "-n", "-r", str(path), "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE", "-T",
            "fields", "-E", "occurrence=f", "-E", "separator=\t", "-Y", "tcp", "-e", "frame.number"]
    for field in fields:
        args += ["-e", field]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    out = {}
    for line in done.stdout.splitlines():
        number, *values = line.split("\t")
        out[int(number)] = values
    return out


_TSHARK_CACHE = {}


def decoded(path):
    """(Capture, [TCPPacket with rst], {frame: tcp.stream}) of a capture, tshark's view, cached."""
    if path not in _TSHARK_CACHE:
        capture = read_capture(path)
        packets = tshark_tcp_packets(path, capture)
        extra = tshark_fields(path, "tcp.flags.reset", "tcp.stream")
        streams = {}
        for p in packets:
            reset, stream = extra[p.frame]
            p.rst = reset in ("1", "True", "true")
            streams[p.frame] = int(stream)
        _TSHARK_CACHE[path] = capture, packets, streams
    return _TSHARK_CACHE[path]


def trace(path, out, **kwargs):
    return pcapflow.trace_file(str(path), str(out), bidirectional=True, **kwargs)


# ---------------------------------------------------------------------------
# Real captures
# ---------------------------------------------------------------------------

def test_the_captures_exercise_the_rules():
    """Guard against a vacuous suite: connections closed by RST, by two FINs, left open with one FIN,
    IPv6, and 4-tuples used again after a close."""
    assert len(REAL) >= 20, f"the shared captures are not at {SHARED_CAPTURES}/real"
    rst = fins = half = v6 = reused = 0
    for path in CAPTURES:
        _, packets, _ = decoded(path)
        rst += sum(p.rst for p in packets)
        v6 += sum(p.src.version == 6 for p in packets)
        flows = expected_bidirectional(packets, "x")
        labels = [label for _, _, label in flows]
        keys = [tuple(sorted(label.rsplit("-", 1)[0].split("-"))) for label in labels]
        reused += len(keys) - len(set(keys))
        by_frame = {p.frame: p for p in packets}
        for _, frames, _ in flows:
            senders = {endpoint(by_frame[f].src, by_frame[f].srcport) for f in frames if by_frame[f].fin}
            fins += len(senders) == 2
            half += len(senders) == 1 and not any(by_frame[f].rst for f in frames)
    assert rst > 5 and fins > 10 and half > 0 and v6 > 10 and reused > 0, (rst, fins, half, v6, reused)


@pytest.mark.parametrize("path", CAPTURES, ids=capture_id)
def test_flows_follow_the_rules_and_files_hold_the_frames(path, tmp_path):
    capture, packets, _ = decoded(path)
    out = tmp_path / "out"
    index = trace(path, out)
    assert as_tuples(index) == expected_bidirectional(packets, str(out))
    # each file holds exactly its flow's frames, both directions, in capture order, byte for byte
    check_flow_files(index, capture)
    assert len(os.listdir(out)) == len(index)


@pytest.mark.parametrize("path", CAPTURES, ids=capture_id)
def test_every_frame_lands_in_exactly_one_flow(path, tmp_path):
    _, packets, _ = decoded(path)
    index = trace(path, tmp_path / "bi")
    frames = [f for flow in index for f in flow.index]
    assert len(frames) == len(set(frames))
    assert sorted(frames) == [p.frame for p in packets]
    for flow in index:
        assert list(flow.index) == sorted(flow.index)


@pytest.mark.parametrize("path", CAPTURES, ids=capture_id)
def test_a_connection_without_reuse_is_the_union_of_its_one_direction_flows(path, tmp_path):
    """Per 4-tuple, the bidirectional flows hold the frames of the one-direction flows of the default
    mode; where the 4-tuple carried a single bidirectional flow, that flow is exactly their union."""
    _, packets, _ = decoded(path)
    bidirectional = trace(path, tmp_path / "bi")
    one_way = pcapflow.trace_file(str(path), str(tmp_path / "uni"))
    key_of = {p.frame: tuple(sorted((endpoint(p.src, p.srcport), endpoint(p.dst, p.dstport)))) for p in packets}
    per_key, union = {}, {}
    for flow in bidirectional:
        per_key.setdefault(key_of[flow.index[0]], []).append(flow)
    for flow in one_way:
        union.setdefault(key_of[flow.index[0]], set()).update(flow.index)
    assert {key: {f for flow in flows for f in flow.index} for key, flows in per_key.items()} == union
    for key, flows in per_key.items():
        if len(flows) == 1:
            assert tuple(flows[0].index) == tuple(sorted(union[key])), flows[0].label
            WHOLE_CONNECTIONS.add((path, key))


WHOLE_CONNECTIONS = set()


def test_some_connections_had_no_reuse():
    """Run after the test above (file order): it compared whole connections, not none."""
    assert len(WHOLE_CONNECTIONS) > 20


def cut(args, out):
    """The records of the pcap file `out` that the command (editcap or tshark) writes."""
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [(r.data, r.orig_len, r.ts_sec, r.ts_nsec) for r in read_capture(out).records]


@pytest.mark.parametrize("path", [p for p in CAPTURES if p.suffix == ".pcapng"], ids=capture_id)
def test_files_match_what_tshark_and_editcap_cut_out(path, tmp_path):
    """Each flow lies within one tshark stream (tshark's own idea of a connection; its stream goes
    on past a close, to the last ACK, where a new flow begins). The flow's file holds the records
    editcap keeps for the flow's frames, and where the flow is a whole stream, those tshark writes
    for `tcp.stream eq N`: same bytes, lengths and times (checked for ten flows a capture: a
    process each). Wireshark's reader takes every file."""
    _, packets, streams = decoded(path)
    index = trace(path, tmp_path / "bi")
    stream_frames = {}
    for p in packets:
        stream_frames.setdefault(streams[p.frame], []).append(p.frame)
    for n, flow in enumerate(index):
        stream = streams[flow.index[0]]
        assert {streams[f] for f in flow.index} == {stream}, flow.label
        got = [(r.data, r.orig_len, r.ts_sec, r.ts_nsec) for r in read_capture(flow.fpout).records]
        if n < 10:  # editcap for a few flows per capture: a process each
            out = tmp_path / f"e{n}.pcap"
            kept = [EDITCAP, "-F", "pcap", "-r", str(path), str(out)] + [str(f) for f in flow.index]
            assert got == cut(kept, out), flow.label
        if tuple(stream_frames[stream]) == tuple(flow.index) and n < 10:
            out = tmp_path / f"s{stream}.pcap"
            assert got == cut([TSHARK, "-n", "-r", str(path), "-Y", f"tcp.stream eq {stream}", "-F", "pcap", "-w",
                               str(out)], out), flow.label
            WHOLE_STREAMS.add((path, stream))
        if n < 10:
            listed = subprocess.run([TSHARK, "-n", "-r", flow.fpout, "-T", "fields", "-e", "tcp.srcport"],
                                    capture_output=True, text=True, check=False)
            assert listed.returncode == 0 and len(listed.stdout.split()) == len(flow.index), listed.stderr
    # Wireshark's reader takes every file (capinfos: one process for many files)
    for start in range(0, len(index), 400):
        chunk = [flow.fpout for flow in index[start:start + 400]]
        counted = subprocess.run(["capinfos", "-T", "-r", "-c"] + chunk, capture_output=True, text=True,
                                 check=False)
        assert counted.returncode == 0, counted.stderr
        assert [int(line.split("\t")[1]) for line in counted.stdout.splitlines()] == [
            len(flow.index) for flow in index[start:start + 400]]


WHOLE_STREAMS = set()


def test_some_flows_were_whole_tshark_streams():
    assert len(WHOLE_STREAMS) > 5


def test_default_is_still_one_flow_per_direction(tmp_path):
    path = DATA / "tcp_teardown.pcapng"
    _, packets, _ = decoded(path)
    for out, kwargs in ((tmp_path / "a", {}), (tmp_path / "b", {"bidirectional": False})):
        assert as_tuples(pcapflow.trace_file(str(path), str(out), **kwargs)) == expected_flows(packets, str(out))
    assert len(expected_flows(packets)) == 3 and len(trace(path, tmp_path / "c")) == 2


# ---------------------------------------------------------------------------
# Built captures: each rule on its own
# ---------------------------------------------------------------------------

CLIENT, SERVER = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
CLIENT6, SERVER6 = ipaddress.ip_address("2001:db8::1"), ipaddress.ip_address("2001:db8::2")


def segment(src, sport, dst, dport, flags, payload=b""):
    return ethernet(ip_packet(str(src), str(dst), tcp(sport, dport, flags, payload)))


def built(tmp_path, events, name="built.pcap"):
    """A capture of events (from_client, flags) on CLIENT:40000 <-> SERVER:80; returns (path, packets)."""
    frames, packets = [], []
    for number, (from_client, flags) in enumerate(events, 1):
        src, sport, dst, dport = (CLIENT, 40000, SERVER, 80) if from_client else (SERVER, 80, CLIENT, 40000)
        frames.append(segment(src, sport, dst, dport, flags, b"d%d" % number))
    records = frames_at(frames)
    path = write_pcap(tmp_path / name, records, ETHERNET)
    for number, ((from_client, flags), record) in enumerate(zip(events, records), 1):
        src, sport, dst, dport = (CLIENT, 40000, SERVER, 80) if from_client else (SERVER, 80, CLIENT, 40000)
        packet = TCPPacket(number, src, sport, dst, dport, bool(flags & FIN), record.time_epoch)
        packet.rst = bool(flags & RST)
        packets.append(packet)
    return path, packets


C, S = True, False


def frames_of(index):
    return [tuple(flow.index) for flow in index]


def test_a_fin_from_one_side_keeps_the_flow_open(tmp_path):
    path, packets = built(tmp_path, [(C, SYN), (S, SYN | ACK), (C, FIN | ACK), (S, ACK), (S, ACK), (C, FIN | ACK)])
    index = trace(path, tmp_path / "out")
    assert frames_of(index) == [(1, 2, 3, 4, 5, 6)]  # still open: the server has sent no FIN
    assert index[0].label == label_of(packets[0]) == "10.0.0.1_40000-10.0.0.2_80-1600000000.0"


def test_fins_from_both_sides_close_it_and_the_last_ack_opens_a_new_flow(tmp_path):
    path, packets = built(tmp_path, [(C, SYN), (S, SYN | ACK), (C, FIN | ACK), (S, FIN | ACK), (C, ACK)])
    out = tmp_path / "out"
    index = trace(path, out)
    # the last ACK is open (listed first), labelled as the client's frame 5
    assert frames_of(index) == [(5,), (1, 2, 3, 4)]
    assert index[0].label == label_of(packets[4]) and index[1].label == label_of(packets[0])
    assert as_tuples(index) == expected_bidirectional(packets, str(out))


def test_the_server_can_close_first(tmp_path):
    path, packets = built(tmp_path, [(S, ACK), (S, FIN | ACK), (C, ACK), (C, FIN | ACK), (S, ACK)])
    index = trace(path, tmp_path / "out")
    assert frames_of(index) == [(5,), (1, 2, 3, 4)]
    assert index[1].label == label_of(packets[0]) and index[1].label.startswith("10.0.0.2_80-10.0.0.1_40000-")


@pytest.mark.parametrize("side", [C, S])
def test_an_rst_from_either_side_closes_it(side, tmp_path):
    path, _ = built(tmp_path, [(C, SYN), (S, SYN | ACK), (side, RST | ACK), (C, SYN)])
    assert frames_of(trace(path, tmp_path / "out")) == [(4,), (1, 2, 3)]


def test_an_rst_after_one_fin_closes_it(tmp_path):
    path, _ = built(tmp_path, [(C, ACK), (C, FIN | ACK), (S, RST)])
    assert frames_of(trace(path, tmp_path / "out")) == [(1, 2, 3)]


def test_a_fin_sent_again_by_the_same_side_does_not_close_it(tmp_path):
    path, _ = built(tmp_path, [(C, FIN | ACK), (C, FIN | ACK), (S, ACK), (S, FIN | ACK), (C, ACK)])
    assert frames_of(trace(path, tmp_path / "out")) == [(5,), (1, 2, 3, 4)]


def test_a_reused_four_tuple_opens_a_new_flow_with_its_own_label(tmp_path):
    events = [(C, SYN), (S, SYN | ACK), (C, FIN), (S, FIN),   # first connection
              (S, SYN), (C, SYN | ACK), (S, RST),             # the server's, on the same 4-tuple
              (C, SYN), (S, ACK)]                             # a third, left open
    path, packets = built(tmp_path, events)
    out = tmp_path / "out"
    index = trace(path, out)
    assert frames_of(index) == [(8, 9), (1, 2, 3, 4), (5, 6, 7)]
    assert [flow.label for flow in index] == [label_of(packets[i]) for i in (7, 0, 4)]
    assert len({flow.fpout for flow in index}) == 3
    assert as_tuples(index) == expected_bidirectional(packets, str(out))
    check_flow_files(index, read_capture(path))


def test_ipv6_and_both_directions_in_one_file(tmp_path):
    frames = [segment(CLIENT6, 5000, SERVER6, 443, SYN), segment(SERVER6, 443, CLIENT6, 5000, SYN | ACK),
              segment(CLIENT, 5000, SERVER, 443, SYN),  # same ports, IPv4: another connection
              segment(SERVER6, 443, CLIENT6, 5000, RST)]
    path = write_pcap(tmp_path / "six.pcap", frames_at(frames), ETHERNET)
    index = trace(path, tmp_path / "out")
    assert frames_of(index) == [(3,), (1, 2, 4)]
    assert index[1].label.startswith("2001.db8..1_5000-2001.db8..2_443-")
    check_flow_files(index, read_capture(path))
    listed = subprocess.run([TSHARK, "-n", "-r", index[1].fpout, "-T", "fields", "-e", "ipv6.src"],
                            capture_output=True, text=True, check=False)
    assert listed.stdout.split() == ["2001:db8::1", "2001:db8::2", "2001:db8::2"]


def test_a_socket_connected_to_itself_closes_after_two_fins(tmp_path):
    frames = [segment(CLIENT, 7, CLIENT, 7, SYN), segment(CLIENT, 7, CLIENT, 7, FIN),
              segment(CLIENT, 7, CLIENT, 7, FIN), segment(CLIENT, 7, CLIENT, 7, ACK)]
    path = write_pcap(tmp_path / "self.pcap", frames_at(frames), ETHERNET)
    assert frames_of(trace(path, tmp_path / "out")) == [(4,), (1, 2, 3)]


def test_a_series_of_captures_continues_the_connection(tmp_path):
    first, _ = built(tmp_path, [(C, SYN), (S, SYN | ACK), (C, FIN)], "one.pcap")
    second, _ = built(tmp_path, [(S, FIN), (C, ACK)], "two.pcap")
    index = pcapflow.trace_files([str(first), str(second)], str(tmp_path / "out"), bidirectional=True)
    assert frames_of(index) == [(5,), (1, 2, 3, 4)]


def test_index_false_and_stats(tmp_path):
    path, _ = built(tmp_path, [(C, SYN), (S, SYN | ACK), (C, RST), (C, SYN)])
    stats = {}
    assert trace(path, tmp_path / "out", index=False, stats=stats) is None
    assert stats["flows_opened"] == 2 and len(os.listdir(tmp_path / "out")) == 2


# ---------------------------------------------------------------------------
# trace() and dump() with Python packets
# ---------------------------------------------------------------------------

def packet(number, from_client, flags, *, rst_field=True):
    src, sport, dst, dport = (CLIENT, 40000, SERVER, 80) if from_client else (SERVER, 80, CLIENT, 40000)
    data = segment(src, sport, dst, dport, flags)
    fields = {"protocol": 1, "index": number, "frame": {"packet": data, "frame_info": {
        "ts_sec": 1_600_000_000 + number, "ts_usec": 0, "incl_len": len(data), "orig_len": len(data)}},
        "syn": bool(flags & SYN), "fin": bool(flags & FIN), "src": src, "dst": dst, "srcport": sport,
        "dstport": dport, "timestamp": 1_600_000_000 + number}
    if rst_field:
        fields["rst"] = bool(flags & RST)
    return pcapflow.Packet.from_dict(fields)


@pytest.mark.parametrize("method", ["trace", "dump"])
@pytest.mark.parametrize("fmt", ["pcap", "json", "none"])
def test_python_packets_follow_the_same_rules(method, fmt, tmp_path):
    closed = []
    events = [(C, SYN), (S, SYN | ACK), (C, FIN), (S, ACK), (S, FIN), (C, ACK), (S, SYN), (C, RST), (C, ACK)]
    with pytest.warns(Warning) if fmt == "none" else _nothing():
        tracer = _Recording(str(tmp_path / "out"), fmt, bidirectional=True)
    _Recording.closed = closed
    for number, (side, flags) in enumerate(events, 1):
        getattr(tracer, method)(packet(number, side, flags))
    index = tracer.submit()
    assert frames_of(index) == [(9,), (1, 2, 3, 4, 5), (6, 7, 8)]
    assert [tuple(i.index) for i in closed] == [(1, 2, 3, 4, 5), (6, 7, 8)]
    assert index[0].label == "10.0.0.1_40000-10.0.0.2_80-1600000009"
    assert index[2].label == "10.0.0.1_40000-10.0.0.2_80-1600000006"
    if fmt == "pcap" and method == "dump":
        got = [r.data for r in read_capture(index[1].fpout).records]
        assert got == [packet(n, *events[n - 1]).frame["packet"] for n in (1, 2, 3, 4, 5)]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Recording(pcapflow.TCP):
    closed = []


_Recording.register_callback(lambda index: _Recording.closed.append(index))


def test_a_packet_without_an_rst_field_carries_no_rst(tmp_path):
    tracer = pcapflow.TCP(str(tmp_path / "out"), bidirectional=True)
    tracer.trace(packet(1, C, SYN, rst_field=False))
    tracer.trace(packet(2, S, RST, rst_field=False))  # without the field the RST is not seen
    assert frames_of(tracer.submit()) == [(1, 2)]
    tracer.trace(packet(3, S, RST))
    assert frames_of(tracer.submit()) == [(1, 2, 3)]


def test_one_direction_mode_ignores_rst(tmp_path):
    tracer = pcapflow.TCP(str(tmp_path / "out"))
    tracer.dump(packet(1, C, SYN))
    tracer.dump(packet(2, C, RST))
    assert frames_of(tracer.submit()) == [(1, 2)] and tracer.bidirectional is False


def test_a_frame_that_cannot_be_written_takes_its_fin_back(tmp_path):
    tracer = pcapflow.TCP(str(tmp_path / "out"), bidirectional=True)
    tracer.dump(packet(1, C, FIN))
    fields = packet(2, S, FIN).to_dict()
    data = fields["frame"]["packet"]
    # a time a pcap file cannot hold: the core refuses the record after noting the frame
    fields["frame"] = {"packet": data, "frame_info": {"ts_sec": 1 << 33, "ts_usec": 0, "incl_len": len(data),
                                                      "orig_len": len(data)}}
    with pytest.raises(ValueError, match="does not fit in 32 bits"):
        tracer.dump(pcapflow.Packet.from_dict(fields))
    assert frames_of(tracer.submit()) == [(1,)]
    tracer.dump(packet(3, S, ACK))
    assert frames_of(tracer.submit()) == [(1, 3)]  # the server's FIN was taken back with its frame
    tracer.dump(packet(4, S, FIN))
    assert frames_of(tracer.submit()) == [(1, 3, 4)]


# ---------------------------------------------------------------------------
# Arguments and the command line
# ---------------------------------------------------------------------------

def test_positional_calls_still_work_and_bidirectional_is_keyword_only(tmp_path):
    tracer = pcapflow.TCP(str(tmp_path / "a"), "pcap", "little", False)
    assert tracer.bidirectional is False
    assert pcapflow.TCP(str(tmp_path / "b"), "pcap", "big", True, bidirectional=True).bidirectional is True
    with pytest.raises(TypeError):
        pcapflow.TCP(str(tmp_path / "c"), "pcap", "little", False, 1 << 20)  # no fifth positional


@pytest.mark.parametrize("value", [1, "yes", None])
def test_bidirectional_must_be_a_bool(value, tmp_path):
    with pytest.raises(TypeError, match="bidirectional must be True or False"):
        pcapflow.TCP(str(tmp_path / "out"), bidirectional=value)
    with pytest.raises(TypeError, match="bidirectional must be True or False"):
        pcapflow._core.TCPBase(str(tmp_path), "little", False, bidirectional=value)  # pylint: disable=protected-access


def test_text_formats_refuse_bidirectional(tmp_path):
    with pytest.raises(ValueError, match="bidirectional=True needs format 'pcap'"):
        pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path / "out"), "json", bidirectional=True)
    assert not (tmp_path / "out").exists()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pcapflow"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_cli_bidirectional(tmp_path):
    path = DATA / "http_ip4and6.pcapng"
    done = run_cli(path, "-o", tmp_path / "cli", "--bidirectional", "--index", tmp_path / "index.jsonl")
    assert done.returncode == 0, done.stderr
    expected = trace(path, tmp_path / "cli2")
    lines = (tmp_path / "index.jsonl").read_text().splitlines()
    assert len(lines) == len(expected) and sorted(os.listdir(tmp_path / "cli")) == sorted(
        os.listdir(tmp_path / "cli2"))
    for name in os.listdir(tmp_path / "cli"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "cli2" / name).read_bytes()
    refused = run_cli(path, "-o", tmp_path / "x", "--bidirectional", "-f", "json")
    assert refused.returncode == 2 and "--bidirectional needs format pcap" in refused.stderr


# ---------------------------------------------------------------------------
# Random interleavings
# ---------------------------------------------------------------------------

# (connection 0 or 1, from the client, TCP flags); connection 1 is another client port
events = st.lists(st.tuples(st.integers(0, 1), st.booleans(),
                            st.sampled_from([ACK, ACK, ACK, FIN | ACK, FIN | ACK, RST, SYN])), min_size=1, max_size=40)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(program=events, nanosecond=st.booleans())
def test_random_interleavings(program, nanosecond, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("random")
    frames, packets = [], []
    for number, (connection, from_client, flags) in enumerate(program, 1):
        client_port = 40000 + connection
        src, sport, dst, dport = (CLIENT, client_port, SERVER, 80) if from_client else (SERVER, 80, CLIENT,
                                                                                          client_port)
        frames.append(segment(src, sport, dst, dport, flags, b"%d" % number))
    # every packet in the same second, some in the same microsecond: labels repeat, files must not
    records = frames_at(frames, step_ns=300_000)
    for number, ((connection, from_client, flags), record) in enumerate(zip(program, records), 1):
        client_port = 40000 + connection
        src, sport, dst, dport = (CLIENT, client_port, SERVER, 80) if from_client else (SERVER, 80, CLIENT,
                                                                                          client_port)
        p = TCPPacket(number, src, sport, dst, dport, bool(flags & FIN), record.time_epoch)
        p.rst = bool(flags & RST)
        packets.append(p)
    path = write_pcap(tmp / "random.pcap", records, ETHERNET, nanosecond=nanosecond)
    out = tmp / "out"
    index = pcapflow.trace_file(str(path), str(out), nanosecond=nanosecond, bidirectional=True)
    expected = expected_bidirectional(packets, str(out))
    assert as_tuples(index) == expected
    check_flow_files(index, read_capture(path), nanosecond=nanosecond)
    # the same packets handed to trace() one by one give the same flows
    tracer = pcapflow.TCP(str(tmp / "python"), "pcap", bidirectional=True)
    for p in packets:
        fields = {"protocol": 1, "index": p.frame, "frame": {}, "syn": False, "fin": p.fin, "src": p.src,
                  "dst": p.dst, "srcport": p.srcport, "dstport": p.dstport, "timestamp": float(p.time_epoch),
                  "rst": p.rst}
        tracer.trace(pcapflow.Packet.from_dict(fields))
    assert [(frames, label) for _, frames, label in as_tuples(tracer.submit())] == [
        (frames, label) for _, frames, label in expected]
