"""pcapkit.extract(trace=True, tcp=True) on real captures, with pcapkit's tracer and with pcapflow's.

pcapkit reads the capture and hands its tracer one Packet per TCP frame; with
pcapflow.use_in_pcapkit() that tracer is pcapflow.TCP. Both runs must report
the same flows (labels, frame numbers, file names relative to their output
directory) and write the same bytes, except where the contract lets pcapflow
differ (pcap records of pcapng input carry incl_len = len(bytes given), and
timestamps convert between resolutions). pcapkit 1.4.1 gives its tracer the
wrong frame bytes; both sides write what they are given, and so does the
expected output computed here.
"""
import contextlib
import os
from pathlib import Path

import pcapkit
import pytest
from pcapkit.foundation.extraction import Extractor

import pcapflow
from conftest import (EXTENSIONS, FileOracle, PcapkitTCP, Step, as_dicts, input_is_nanosecond, render, simulate,
                      snapshot)

DATA = Path(__file__).parent / 'data'
CAPTURES = [
    'tcp_teardown.pcapng', 'dns_tcp.pcapng', 'http_ip4and6.pcapng', 'tcp_retransmissions.pcapng',  # pcapng
    'dns_tcp.pcap', 'ssh.pcap', 'whois.pcap',                                                      # pcap, usec
    'whois-nsec.pcap', 'tcp-handshake-nano.pcap',                                                  # pcap, nsec
]
# (format, byteorder, nanosecond)
OUTPUTS = [('pcap', 'little', False), ('pcap', 'big', False), ('pcap', 'little', True), ('pcap', 'big', True),
           ('json', 'little', False), ('plist', 'little', False), ('tree', 'little', False)]


class RecordingTCP(PcapkitTCP):
    """pcapkit's tracer, unchanged, also keeping the packets the extractor hands it."""
    packets = []

    def dump(self, packet):
        RecordingTCP.packets.append(packet)
        super().dump(packet)


@contextlib.contextmanager
def pcapkit_tracer(cls):
    registry = Extractor.__traceflow__
    saved = registry['tcp']
    registry['tcp'] = cls
    try:
        yield
    finally:
        registry['tcp'] = saved


@contextlib.contextmanager
def pcapflow_in_pcapkit():
    pcapflow.use_in_pcapkit()
    try:
        yield
    finally:
        pcapflow.use_in_pcapkit(False)


def extract(capture, out, fmt, byteorder, nanosecond):
    return pcapkit.extract(fin=str(DATA / capture), nofile=True, trace=True, tcp=True, trace_fout=out,
                           trace_format=fmt, trace_byteorder=byteorder, trace_nanosecond=nanosecond)


def relative(indexes, out):
    return [(os.path.relpath(i['fpout'], out), i['index'], i['label']) for i in indexes]


@pytest.mark.parametrize('fmt, byteorder, nanosecond', OUTPUTS, ids=lambda v: str(v))
@pytest.mark.parametrize('capture', CAPTURES)
def test_extract_with_pcapflow_matches_pcapkit(capture, fmt, byteorder, nanosecond, tmp_path):
    ref_out, cand_out = f'{tmp_path}/pcapkit', f'{tmp_path}/pcapflow'
    original = Extractor.__traceflow__['tcp']

    RecordingTCP.packets = []
    with pcapkit_tracer(RecordingTCP):
        ref_index = as_dicts(extract(capture, ref_out, fmt, byteorder, nanosecond).trace.tcp)
    with pcapflow_in_pcapkit():
        extractor = extract(capture, cand_out, fmt, byteorder, nanosecond)
        cand_index = as_dicts(extractor.trace.tcp)  # index: every frame is on disk now
    assert type(extractor._trace.tcp) is pcapflow.TCP  # pylint: disable=protected-access
    assert Extractor.__traceflow__['tcp'] is original  # use_in_pcapkit(False) undid it
    ref_files, cand_files = snapshot(ref_out), snapshot(cand_out)

    # The model of the tracer, fed what pcapkit's extractor handed over, must describe pcapkit's run.
    timeline = simulate([Step(dict(packet), op='call') for packet in RecordingTCP.packets])
    ext = EXTENSIONS[fmt]
    assert ref_index == render(timeline.final[0], ref_out, ext, numbered=False)
    oracle = FileOracle(f'{tmp_path}/oracle', fmt, byteorder, nanosecond)
    newest = {flow.label: flow for flow in timeline.flows}
    assert ref_files == oracle.files({flow: timeline.final[1][flow] for flow in newest.values()},
                                     as_pcapflow=False)

    # pcapflow: same flows, and the files the contract prescribes.
    assert cand_index == render(timeline.final[0], cand_out, ext, numbered=True)
    assert cand_files == oracle.files(timeline.final[1])

    # Where none of the contract's differences applies, plainly identical to pcapkit.
    repeated = any(flow.occurrence > 1 for flow in timeline.flows)
    frames = [packet.frame for packet in RecordingTCP.packets]
    pcap_differs = fmt == 'pcap' and any(
        len(f.packet) != f.frame_info.incl_len or input_is_nanosecond(f) != nanosecond for f in frames)
    if not repeated:
        assert relative(cand_index, cand_out) == relative(ref_index, ref_out)
        if not pcap_differs:
            assert cand_files == ref_files


def test_captures_exercise_the_tracer(tmp_path):
    """Guard against a vacuous suite: the captures yield flows, IPv6 ones, FINs and nanosecond frames."""
    RecordingTCP.packets = []
    with pcapkit_tracer(RecordingTCP):
        for capture in CAPTURES:
            extract(capture, f'{tmp_path}/{capture}', 'json', 'little', False)
    packets = RecordingTCP.packets
    assert len(packets) > 100
    assert any(p.src.version == 6 for p in packets)
    assert sum(p.fin for p in packets) > 10
    assert any(input_is_nanosecond(p.frame) and p.frame.frame_info.ts_usec < 1_000_000 for p in packets)
    assert any(input_is_nanosecond(p.frame) and p.frame.frame_info.ts_usec >= 1_000_000 for p in packets)
