"""idle_timeout: a flow without a frame for longer than the timeout (capture
time) is closed as if by FIN, and its next frame opens a new flow.

Checked against capture_tools.expected_flows (pcapkit's flow rules with the
same timeout added) on random captures: labels, frame lists, the order of
the index, and every flow file byte for byte."""
import ipaddress
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcapflow
from capture_tools import (ACK, DATA, ETHERNET, FIN, SYN, Record, TCPPacket, as_tuples, check_flow_files,
                           ethernet, expected_flows, ipv4, read_capture, tcp, write_pcap)

SECOND = 10**9
START = 1_700_000_000
ENDPOINTS = [("10.0.0.1", 1000, "10.0.0.2", 80), ("10.0.0.2", 80, "10.0.0.1", 1000),
             ("10.0.0.3", 2000, "10.0.0.2", 80), ("10.0.0.4", 3000, "10.0.0.5", 443)]


def build(path, steps):
    """A capture of (endpoint, fin, gap_ns) steps, time moving by gap_ns (which may be
    negative: a merged capture) before each frame. Returns its TCPPacket list."""
    records, packets = [], []
    time_ns = START * SECOND
    for number, (endpoint, fin, gap) in enumerate(steps, 1):
        time_ns += gap
        src, sport, dst, dport = ENDPOINTS[endpoint]
        frame = ethernet(ipv4(src, dst, tcp(sport, dport, (FIN | ACK) if fin else ACK, b"x" * number)))
        record = Record(time_ns // SECOND, time_ns % SECOND, frame)
        records.append(record)
        packets.append(TCPPacket(number, ipaddress.ip_address(src), sport, ipaddress.ip_address(dst), dport, fin,
                                 record.time_epoch))
    write_pcap(path, records, ETHERNET, nanosecond=True)
    return packets


def traced(path, out, timeout, **kwargs):
    stats = {}
    index = pcapflow.trace_file(str(path), str(out), idle_timeout=timeout, stats=stats, **kwargs)
    return index, stats


STEP = st.tuples(st.integers(0, len(ENDPOINTS) - 1), st.booleans(),
                 st.sampled_from([0, 1, SECOND // 2, SECOND, SECOND + 1, 2 * SECOND, 5 * SECOND, -SECOND,
                                  -3 * SECOND]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=40), timeout=st.sampled_from([1, 2, 0.5, 3.25]))
def test_random_captures_match_the_model(tmp_path_factory, steps, timeout):
    directory = tmp_path_factory.mktemp("idle")
    packets = build(directory / "in.pcap", steps)
    index, stats = traced(directory / "in.pcap", directory / "out", timeout)
    counts = {"idle_closed": 0}
    want = expected_flows(packets, str(directory / "out"), idle_timeout_ns=int(timeout * SECOND), counts=counts)
    assert as_tuples(index) == want
    check_flow_files(index, read_capture(directory / "in.pcap"), nanosecond=False)
    assert stats["flows_opened"] == len(want)
    assert stats["idle_closed"] == counts["idle_closed"]


def test_a_paused_connection_reopens_with_a_new_label(tmp_path):
    # three frames one second apart, a pause of a minute, two more frames
    steps = [(0, False, SECOND), (0, False, SECOND), (0, False, SECOND), (0, False, 60 * SECOND),
             (0, False, SECOND)]
    packets = build(tmp_path / "in.pcap", steps)
    index, stats = traced(tmp_path / "in.pcap", tmp_path / "out", 30)
    assert [flow.index for flow in index] == [(4, 5), (1, 2, 3)]  # the open flow first, then the closed one
    assert index[0].label != index[1].label and index[0].label.endswith(str(float(packets[3].time_epoch)))
    assert stats["idle_closed"] == 1
    # without the timeout it is one flow, as pcapkit has it
    index, stats = traced(tmp_path / "in.pcap", tmp_path / "plain", None)
    assert [flow.index for flow in index] == [(1, 2, 3, 4, 5)] and stats["idle_closed"] == 0


def test_exactly_the_timeout_apart_is_not_idle(tmp_path):
    build(tmp_path / "in.pcap", [(0, False, 0), (0, False, 2 * SECOND), (0, False, 2 * SECOND + 1)])
    index, _ = traced(tmp_path / "in.pcap", tmp_path / "out", 2)
    assert [flow.index for flow in index] == [(3,), (1, 2)]


def test_flows_idle_out_by_other_flows_frames(tmp_path):
    # flow 0 falls silent; flow 3's frames move capture time on and close it,
    # before the end of the capture
    steps = [(0, False, 0)] + [(3, False, SECOND)] * 5
    build(tmp_path / "in.pcap", steps)
    index, stats = traced(tmp_path / "in.pcap", tmp_path / "out", 2)
    assert [flow.index for flow in index] == [(2, 3, 4, 5, 6), (1,)]
    assert stats["idle_closed"] == 1


def test_series_keeps_capture_time_across_files(tmp_path):
    steps = [(i % 3, i % 7 == 6, (i % 4) * SECOND) for i in range(60)]
    packets = build(tmp_path / "whole.pcap", steps)
    whole = read_capture(tmp_path / "whole.pcap")
    write_pcap(tmp_path / "a.pcap", whole.records[:25], ETHERNET, nanosecond=True)
    write_pcap(tmp_path / "b.pcap", whole.records[25:], ETHERNET, nanosecond=True)
    series = pcapflow.trace_files([str(tmp_path / "a.pcap"), str(tmp_path / "b.pcap")], str(tmp_path / "out"),
                                  idle_timeout=2.5)
    want = expected_flows(packets, str(tmp_path / "out"), idle_timeout_ns=int(2.5 * SECOND))
    assert as_tuples(series) == want


def test_bidirectional_connection_idles_out_as_one(tmp_path):
    steps = [(0, False, 0), (1, False, SECOND), (0, False, SECOND), (1, False, 10 * SECOND)]
    build(tmp_path / "in.pcap", steps)
    index = pcapflow.trace_file(str(tmp_path / "in.pcap"), str(tmp_path / "out"), bidirectional=True,
                                idle_timeout=5)
    assert [flow.index for flow in index] == [(4,), (1, 2, 3)]


def test_real_capture_with_a_short_timeout(tmp_path):
    # http_espn: many connections; a timeout shorter than its pauses splits some
    capture = DATA / "http_espn.pcapng"
    plain = pcapflow.trace_file(str(capture), str(tmp_path / "plain"))
    stats = {}
    idle = pcapflow.trace_file(str(capture), str(tmp_path / "idle"), idle_timeout=0.05, stats=stats)
    assert stats["idle_closed"] > 0 and len(idle) > len(plain)
    # the same frames, only cut into more flows
    assert sorted(n for flow in idle for n in flow.index) == sorted(n for flow in plain for n in flow.index)
    check_flow_files(idle, read_capture(capture), linktype=read_capture(capture).linktype, nanosecond=False)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (float("nan"), ValueError),
                                         (float("inf"), ValueError), ("5", TypeError), (True, None)])
def test_bad_idle_timeout_names_the_argument(tmp_path, bad, error):
    capture = str(DATA / "ssh.pcap")
    if error is None:  # True is an int (1 second)
        pcapflow.trace_file(capture, str(tmp_path), idle_timeout=bad)
        return
    with pytest.raises(error, match="idle_timeout"):
        pcapflow.trace_file(capture, str(tmp_path), idle_timeout=bad)


def test_text_formats_refuse_idle_timeout(tmp_path):
    with pytest.raises(ValueError, match="idle_timeout"):
        pcapflow.trace_file(str(DATA / "ssh.pcap"), str(tmp_path), "json", idle_timeout=5)


def test_cli_idle_timeout(tmp_path):
    capture = DATA / "http_espn.pcapng"
    done = subprocess.run([sys.executable, "-m", "pcapflow", str(capture), "-o", str(tmp_path / "out"),
                           "--idle-timeout", "0.05", "--index", str(tmp_path / "index.jsonl")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    expected = pcapflow.trace_file(str(capture), str(tmp_path / "api"), idle_timeout=0.05)
    assert len((tmp_path / "index.jsonl").read_text().splitlines()) == len(expected)
    assert " closed idle, " in done.stderr
    bad = subprocess.run([sys.executable, "-m", "pcapflow", str(capture), "-o", str(tmp_path / "x"),
                          "--idle-timeout", "0"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "--idle-timeout" in bad.stderr
