"""pcapflow.packets(): the TCP frames of a capture as pcapflow Packets, for per-packet logic in Python.

Traced one by one with TCP.trace()/dump(), they must give what trace_file() gives natively: the same
flows, frame numbers and labels, and byte-identical pcap files.
"""
import os
from pathlib import Path

import pytest

import pcapflow
from capture_tools import ETHERNET, read_capture, write_pcap

DATA = Path(__file__).parent / "data"
CAPTURES = ["ssh.pcap", "dns_tcp.pcapng", "http_ip4and6.pcapng", "whois-nsec.pcap", "tcp_teardown.pcapng"]


def files(path):
    return {name: (Path(path) / name).read_bytes() for name in sorted(os.listdir(path))}


@pytest.mark.parametrize("capture", CAPTURES)
def test_dumping_every_packet_gives_trace_file(capture, tmp_path):
    tracer = pcapflow.TCP(str(tmp_path / "python"), "pcap")
    with pcapflow.packets(str(DATA / capture)) as reader:
        for packet in reader:
            tracer.dump(packet)
    by_hand = tracer.submit()
    tracer.close()
    native = pcapflow.trace_file(str(DATA / capture), str(tmp_path / "native"), "pcap")
    assert [(f.label, f.index) for f in by_hand] == [(f.label, f.index) for f in native]
    assert files(tmp_path / "python") == files(tmp_path / "native")


def test_frame_numbers_count_every_frame_and_frames_carry_their_bytes():
    capture = read_capture(DATA / "http_ip4and6.pcapng")
    seen = list(pcapflow.packets(str(DATA / "http_ip4and6.pcapng")))
    assert seen and all(isinstance(p, pcapflow.Packet) for p in seen)
    numbers = [p.index for p in seen]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    for packet in seen:
        record = capture.records[packet.index - 1]
        assert packet.frame["packet"] == record.data
        assert packet.frame["frame_info"]["incl_len"] == len(record.data)
    assert any(p.src.version == 6 for p in seen) and any(p.src.version == 4 for p in seen)


def test_filter_keeps_frame_numbers(tmp_path):
    everything = list(pcapflow.packets(str(DATA / "ssh.pcap")))
    pushed = list(pcapflow.packets(str(DATA / "ssh.pcap"), filter="tcp[tcpflags] & tcp-push != 0"))
    assert 0 < len(pushed) < len(everything)
    assert {p.index for p in pushed} < {p.index for p in everything}


def test_packets_of_one_address_share_one_address_object():
    seen = list(pcapflow.packets(str(DATA / "http_ip4and6.pcapng")))
    first = {}
    for packet in seen:
        for address in (packet.src, packet.dst):
            assert first.setdefault(address, address) is address
    assert len(first) < 2 * len(seen)


def test_a_truncated_capture_yields_what_precedes_the_damage(tmp_path):
    capture = read_capture(DATA / "ssh.pcap")
    whole = write_pcap(tmp_path / "whole.pcap", capture.records, ETHERNET)
    blob = whole.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(blob[:len(blob) - 10])
    got = []
    with pytest.raises(pcapflow.CaptureError) as caught:
        for packet in pcapflow.packets(str(cut)):
            got.append(packet.index)
    assert got == [p.index for p in pcapflow.packets(str(whole))][:-1]
    assert caught.value.frame == len(capture.records)
