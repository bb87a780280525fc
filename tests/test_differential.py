"""pcapflow.TCP against pcapkit's TCP on hypothesis-generated packet sequences.

Every observable result is compared: what trace()/dump()/__call__ return,
submit() and index (also in the middle of a run), the Index each callback
receives and the bytes of its file at that moment, and every output file byte
for byte. Where the contract lets pcapflow differ, its expected result is
derived explicitly (see conftest.py) rather than the case being skipped.
"""
import ipaddress
import os
import struct
import tempfile
import warnings
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcapflow
from conftest import (EXTENSIONS, PCAP_FORMATS, TEXT_FORMATS, TREE_FORMATS, UNKNOWN_FORMAT, FileOracle,
                      PcapkitFrame, PcapkitFrameInfo, PcapkitPacket, PcapkitTCP, Step, candidate_packet,
                      four_tuples, pcapkit_packet, reference_format, render, run_tracer, scenarios, simulate,
                      snapshot, timestamps)

# One failure at a time: shrinking re-runs pcapkit, which is slow.
SETTINGS = dict(deadline=None, report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_against_pcapkit(steps, fmt, byteorder, nanosecond, style, addresses_as_str, slash=''):
    with tempfile.TemporaryDirectory() as tmp:
        # fpout is f'{fout}/{label}{ext}' with fout as given, so a trailing '/' must survive too.
        ref_out, cand_out = os.path.join(tmp, 'pcapkit') + slash, os.path.join(tmp, 'pcapflow') + slash
        ext = EXTENSIONS.get(fmt)
        timeline = simulate(steps)
        oracle = FileOracle(os.path.join(tmp, 'oracle'), fmt, byteorder, nanosecond)

        # The reference run, and the check that the model describes it exactly.
        ref = run_tracer(PcapkitTCP, steps, ref_out, reference_format(fmt), byteorder=byteorder,
                         nanosecond=nanosecond, make_packet=pcapkit_packet)
        assert [r for r, s in zip(ref.returns, steps) if s.op == 'trace'] == \
               [label for label, s in zip(timeline.labels, steps) if s.op == 'trace']
        assert [entries for entries, _ in ref.peeks] == \
               [render(entries, ref_out, ext, numbered=False) for entries, _ in timeline.peeks]
        assert [index for index, _ in ref.callbacks] == \
               [render([(flow, indices)], ref_out, ext, numbered=False)[0] for flow, indices, _ in timeline.callbacks]
        assert ref.index == ref.submit == render(timeline.final[0], ref_out, ext, numbered=False)
        newest = {flow.label: flow for flow in timeline.flows}  # pcapkit keeps the newest per label
        assert ref.files == oracle.files({flow: timeline.final[1][flow] for flow in newest.values()},
                                         as_pcapflow=False)

        cand = run_tracer(pcapflow.TCP, steps, cand_out, fmt, byteorder=byteorder, nanosecond=nanosecond,
                          make_packet=candidate_packet(style, addresses_as_str), candidate_frames=True,
                          read_at_callback=True)
        # Labels from trace(), None from dump()/__call__, a callable from trace(output=True).
        assert cand.returns == ref.returns
        # Mid-run submit()/index and the files they put on disk.
        assert len(cand.peeks) == len(timeline.peeks)
        for (got, files), (entries, written) in zip(cand.peeks, timeline.peeks):
            assert got == render(entries, cand_out, ext, numbered=True)
            assert files == oracle.files(written)
        # Callbacks: the closed flow's Index, its file already holding the frames written so far.
        expected_callbacks = [
            (render([(flow, indices)], cand_out, ext, numbered=True)[0],
             None if ext is None else oracle.content(flow, count))
            for flow, indices, count in timeline.callbacks]
        assert cand.callbacks == expected_callbacks
        # Final index, submit() (cached), and every file.
        assert cand.index == cand.submit == render(timeline.final[0], cand_out, ext, numbered=True)
        assert cand.submit_cached and ref.submit_cached
        assert all(type(i) is pcapflow.Index for i in cand.tracer.submit())
        expected_files = oracle.files(timeline.final[1])
        assert cand.files == expected_files
        # close() must not rewrite or truncate anything.
        cand.tracer.close()
        assert snapshot(cand_out) == expected_files
        return ref, cand


packet_styles = st.sampled_from(['pcapkit', 'pcapflow', 'mapping'])
slashes = st.sampled_from(['', '', '/'])


@pytest.mark.parametrize('nanosecond', [False, True])
@pytest.mark.parametrize('byteorder', ['little', 'big'])
@pytest.mark.parametrize('fmt', PCAP_FORMATS)
def test_pcap_output_matches_pcapkit(fmt, byteorder, nanosecond):
    @settings(max_examples=75, **SETTINGS)
    @given(data=st.data())
    def run(data):
        check_against_pcapkit(data.draw(scenarios()), fmt, byteorder, nanosecond,
                              data.draw(packet_styles), data.draw(st.booleans()), data.draw(slashes))
    run()


@pytest.mark.parametrize('fmt', TEXT_FORMATS)
def test_text_output_matches_pcapkit(fmt):
    @settings(max_examples=50, **SETTINGS)
    @given(data=st.data())
    def run(data):
        # pcapkit's tree dumper crashes on an unnamed block, so only the others get one.
        steps = data.draw(scenarios(unnamed_writes=fmt not in TREE_FORMATS))
        check_against_pcapkit(steps, fmt, data.draw(st.sampled_from(['little', 'big'])), data.draw(st.booleans()),
                              data.draw(packet_styles), data.draw(st.booleans()), data.draw(slashes))
    run()


def test_unknown_format_matches_pcapkit():
    @settings(max_examples=20, **SETTINGS)
    @given(data=st.data())
    def run(data):
        ref, cand = check_against_pcapkit(data.draw(scenarios()), UNKNOWN_FORMAT, 'little', False,
                                          data.draw(packet_styles), data.draw(st.booleans()))
        message = f'Unsupported output format: {UNKNOWN_FORMAT}; disabled file output feature'
        assert [str(w.message) for w in cand.warnings if issubclass(w.category, pcapflow.FormatWarning)] == [message]
        assert cand.files == {}
    run()


@settings(max_examples=500, **SETTINGS)
@given(flow=four_tuples(), timestamp=timestamps(), as_str=st.booleans())
def test_labels_match_pcapkit(flow, timestamp, as_str):
    # Labels alone, cheaply and many (no files): float, int and Decimal text, IPv4/IPv6 text.
    src, srcport, dst, dstport = flow
    fields = dict(protocol=1, index=1, frame={}, syn=False, fin=True, src=src, dst=dst, srcport=srcport,
                  dstport=dstport, timestamp=timestamp)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the unknown format's FormatWarning
        ref = PcapkitTCP(f'{tmp}/pcapkit', UNKNOWN_FORMAT).trace(PcapkitPacket(**fields))
        if as_str:
            fields.update(src=str(src), dst=str(dst))
        assert pcapflow.TCP(f'{tmp}/pcapflow', UNKNOWN_FORMAT).trace(pcapflow.Packet(**fields)) == ref


# --------------------------------------------------------------------------- the deliberate differences, by hand
# The generated tests above cover these too; here each is pinned with a hand-checked example.

def frame(packet, ts_sec, ts_usec, nano=False):
    epoch = Decimal(ts_sec) + Decimal(ts_usec).scaleb(-9 if nano else -6)
    result = PcapkitFrame(frame_info=PcapkitFrameInfo(ts_sec=ts_sec, ts_usec=ts_usec, incl_len=len(packet),
                                                      orig_len=len(packet)),
                          time=None, number=0, time_epoch=epoch, len=len(packet), cap_len=len(packet))
    result.__update__(packet=packet)
    return result


def step(index, fin, timestamp=1.5, the_frame=None, src='10.0.0.1'):
    fields = dict(protocol=1, index=index, frame=the_frame or frame(bytes([index]) * 3, 100, index),
                  syn=False, fin=fin, src=ipaddress.ip_address(src), dst=ipaddress.ip_address('10.0.0.2'),
                  srcport=1000, dstport=80, timestamp=timestamp)
    return Step(fields)


def pcap_records(data, byteorder):
    """(ts_sec, sub-second, incl_len, orig_len, bytes) per record of a pcap file."""
    order = '<' if byteorder == 'little' else '>'
    records, offset = [], 24
    while offset < len(data):
        ts_sec, sub, incl, orig = struct.unpack_from(order + 'IIII', data, offset)
        records.append((ts_sec, sub, incl, orig, data[offset + 16:offset + 16 + incl]))
        offset += 16 + incl
    return records


@pytest.mark.parametrize('fmt', ['pcap', 'json'])
def test_repeated_label_gets_numbered_files(fmt, tmp_path):
    # The same direction closed by FIN and reopened at the same timestamp, three times.
    steps = [step(1, False), step(2, True), step(3, True), step(4, False), step(5, True)]
    t = pcapflow.TCP(str(tmp_path / 'out'), fmt)
    for s in steps:
        t.dump(candidate_packet('pcapflow')(s))
    label = '10.0.0.1_1000-10.0.0.2_80-1.5'
    ext = EXTENSIONS[fmt]
    assert [dict(i) for i in t.submit()] == [
        {'fpout': f'{tmp_path}/out/{label}{ext}', 'index': (1, 2), 'label': label},
        {'fpout': f'{tmp_path}/out/{label}_2{ext}', 'index': (3,), 'label': label},
        {'fpout': f'{tmp_path}/out/{label}_3{ext}', 'index': (4, 5), 'label': label}]
    # Each file is what pcapkit writes for that flow alone.
    for group, name in (([1, 2], label), ([3], f'{label}_2'), ([4, 5], f'{label}_3')):
        alone = PcapkitTCP(str(tmp_path / name), fmt)
        for s in steps:
            if s.fields['index'] in group:
                alone.dump(pcapkit_packet(s))
        assert (tmp_path / 'out' / f'{name}{ext}').read_bytes() == (tmp_path / name / f'{label}{ext}').read_bytes()


@pytest.mark.parametrize('byteorder', ['little', 'big'])
def test_pcap_timestamps_convert_between_resolutions(byteorder, tmp_path):
    micro = step(1, False, the_frame=frame(b'abc', 100, 123456))
    nano = step(2, False, the_frame=frame(b'defg', 200, 987654321, nano=True))
    small_nano = step(3, False, the_frame=frame(b'h', 300, 4321, nano=True))  # nanosecond by time_epoch
    # Also nanosecond by time_epoch (exactly 1600000000.000000100), where a double cannot tell.
    recent_small_nano = step(4, False, the_frame=frame(b'ij', 1600000000, 100, nano=True))
    for nanosecond, expected in ((True, [123456000, 987654321, 4321, 100]), (False, [123456, 987654, 4, 0])):
        out = tmp_path / str(nanosecond)
        t = pcapflow.TCP(str(out), 'pcap', byteorder=byteorder, nanosecond=nanosecond)
        for s in (micro, nano, small_nano, recent_small_nano):
            t.dump(candidate_packet('pcapkit')(s))
        t.submit()
        data = (out / '10.0.0.1_1000-10.0.0.2_80-1.5.pcap').read_bytes()
        magic = 0xa1b23c4d if nanosecond else 0xa1b2c3d4
        assert data[:4] == magic.to_bytes(4, byteorder)
        assert pcap_records(data, byteorder) == [(100, expected[0], 3, 3, b'abc'), (200, expected[1], 4, 4, b'defg'),
                                                 (300, expected[2], 1, 1, b'h'),
                                                 (1600000000, expected[3], 2, 2, b'ij')]


def test_text_format_writes_tree_text(tmp_path):
    steps = [step(1, False), step(2, True)]
    t = pcapflow.TCP(str(tmp_path / 'text'), 'text')
    tree = PcapkitTCP(str(tmp_path / 'tree'), 'tree')
    for s in steps:
        t.dump(candidate_packet('pcapflow')(s))
        tree.dump(pcapkit_packet(s))
    assert [i.fpout for i in t.index] == [f'{tmp_path}/text/10.0.0.1_1000-10.0.0.2_80-1.5.txt']
    assert os.listdir(tmp_path / 'text') == os.listdir(tmp_path / 'tree')
    name = os.listdir(tmp_path / 'tree')[0]
    assert (tmp_path / 'text' / name).read_bytes() == (tmp_path / 'tree' / name).read_bytes()
    with pytest.raises(AttributeError):  # why pcapflow differs here
        PcapkitTCP(str(tmp_path / 'crash'), 'text')


@pytest.mark.parametrize('nanosecond, expected', [(True, 5000), (False, 5)])
def test_time_epoch_matching_neither_reading_means_microseconds(nanosecond, expected, tmp_path):
    # Contract, difference 3: nanosecond only if ts_usec >= 1e6 or time_epoch == ts_sec + ts_usec/1e9;
    # a time_epoch that fits neither reading (100.5 for ts_sec=100, ts_usec=5) leaves microseconds.
    odd = PcapkitFrame.from_dict({**frame(b'xy', 100, 5), 'time_epoch': Decimal('100.5')})
    t = pcapflow.TCP(str(tmp_path), 'pcap', byteorder='little', nanosecond=nanosecond)
    t.dump(candidate_packet('pcapflow')(step(1, False, the_frame=odd)))
    t.submit()
    data = (tmp_path / '10.0.0.1_1000-10.0.0.2_80-1.5.pcap').read_bytes()
    assert pcap_records(data, 'little') == [(100, expected, 2, 2, b'xy')]
