"""The decoder's input shapes of issue 10 item 5, against tshark as the oracle.

Each test crafts frames (with capture_tools' builders), writes them into one
capture and asks tshark once which frames it finds TCP in. A frame is traced
by pcapflow when tshark gives it a tcp.stream and, without tunnels, the TCP
header comes right after the first IP header (AH and IPv6 extension headers
between them allowed: pcapkit's rule); with tunnels=True the innermost TCP
counts, keyed by the innermost IP header's addresses. tshark gives no
tcp.stream to a TCP header that does not fit inside its IP datagram, so that
is also how the length bounds are checked.

Shapes: IPv4 with AH; TCP past the IP datagram's stated length (Ethernet
padding), with TSO's zero length, snapshot-length truncation and IPv6
jumbograms; MPLS label stacks over Ethernet, Linux cooked capture and PPP;
PPPoE sessions; tunnels (GRE, IP in IP, VXLAN, GENEVE), closed by default and
opened with tunnels=True; real captures of MPLS over PPP, GENEVE and VXLAN.
"""
import ipaddress
import struct
import subprocess

import pytest

import pcapflow
from capture_tools import (ACK, DATA, ETHERNET, FIN, LINUX_SLL, PPP, PSH, SYN, TSHARK, Record, TCPPacket, as_tuples,
                           authentication, check_flow_files, ethernet, expected_flows, frames_at, hop_by_hop, ipv4,
                           ipv6, read_capture, sll, tcp, udp, write_pcap)
from pcapflow import cli

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

A4, B4 = "192.0.2.10", "198.51.100.20"
A6, B6 = "2001:db8::a", "2001:db8:1::b"
INNER4 = ("10.1.1.1", "10.2.2.2")
INNER6 = ("fd00::1", "fd00::2")

FIELDS = ("frame.number", "frame.protocols", "tcp.stream", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
          "tcp.srcport", "tcp.dstport", "tcp.flags.fin")
# what tshark may show between an IP header and the TCP header pcapkit's rule traces
BETWEEN = {"ah", "ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ipv6.fraghdr"}


def tshark_tcp(path, *, tunnels):
    """{frame number: TCPPacket} of the frames tshark finds pcapflow's TCP in (see the module's doc)."""
    capture = read_capture(path)
    args = [TSHARK, "-n", "-r", str(path), "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
            "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=\t"]
    for field in FIELDS:
        args += ["-e", field]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    found = {}
    for line in done.stdout.splitlines():
        number, protocols, stream, ip_src, ip_dst, ip6_src, ip6_dst, sport, dport, fin = line.split("\t")
        if not stream:
            continue  # no TCP, or a TCP header tshark finds malformed
        layers = protocols.split(":")
        ips = [i for i, layer in enumerate(layers) if layer in ("ip", "ipv6")]
        tcp_at = layers.index("tcp")
        before = tcp_at - 1
        while layers[before] in BETWEEN:
            before -= 1
        if layers[before] not in ("ip", "ipv6") or (not tunnels and before != ips[0]):
            continue  # TCP inside a tunnel
        # the addresses of that IP header: its rank among the headers of its version
        rank = sum(1 for i in ips[:ips.index(before)] if layers[i] == layers[before])
        src, dst = (ip_src, ip_dst) if layers[before] == "ip" else (ip6_src, ip6_dst)
        record = capture.records[int(number) - 1]
        found[int(number)] = TCPPacket(int(number), ipaddress.ip_address(src.split(",")[rank]),
                                       int(sport.split(",")[0]), ipaddress.ip_address(dst.split(",")[rank]),
                                       int(dport.split(",")[0]), fin.split(",")[0] in ("1", "True"),
                                       record.time_epoch)
    return found


def pcapflow_tcp(path, *, tunnels):
    """{frame number: (src, sport, dst, dport)} of the frames pcapflow traces."""
    with pcapflow.packets(str(path), **opened(tunnels)) as frames:
        return {p.index: (p.src, p.srcport, p.dst, p.dstport) for p in frames}


def compare(tmp_path, cases, linktype=ETHERNET, *, tunnels=False, records=None):
    """Writes the cases (name -> frame bytes) as one capture; checks that pcapflow traces
    what tshark finds, with the same keys; returns the names of the traced cases."""
    names = list(cases)
    path = write_pcap(tmp_path / "cases.pcap", records or frames_at([cases[n] for n in names]), linktype)
    expected = tshark_tcp(path, tunnels=tunnels)
    got = pcapflow_tcp(path, tunnels=tunnels)
    want = {n: (p.src, p.srcport, p.dst, p.dstport) for n, p in expected.items()}
    assert {names[n - 1]: key for n, key in got.items()} == {names[n - 1]: key for n, key in want.items()}
    # and the flows trace_file makes of them are pcapkit's flows of those packets
    out = tmp_path / "out"
    index = pcapflow.trace_file(str(path), str(out), **opened(tunnels))
    assert as_tuples(index) == expected_flows(sorted(expected.values(), key=lambda p: p.frame), str(out))
    return {names[n - 1] for n in got}


def opened(tunnels):
    """The keyword for tunnels: none for the default, so that the tests of the default decoding
    run (and fail on their merits) with a pcapflow that does not know the keyword."""
    return {"tunnels": True} if tunnels else {}


def syn(src=A4, dst=B4, sport=40000, dport=80, **kwargs):
    build = ipv4 if ipaddress.ip_address(src).version == 4 else ipv6
    return build(src, dst, tcp(sport, dport, SYN), **kwargs)


def with_length(packet, value):
    """An IPv4 packet with its total length (or an IPv6 packet with its payload length) set to value."""
    data = bytearray(packet)
    struct.pack_into("!H", data, 2 if packet[0] >> 4 == 4 else 4, value)
    return bytes(data)


# ---------------------------------------------------------------------------
# IPv4 authentication header
# ---------------------------------------------------------------------------

def ah4(next_header, words=4):
    """An IPv4 AH header: SPI, sequence number and an ICV; `words` is its payload length field."""
    return struct.pack("!BBHII", next_header, words, 0, 0x100, 1) + bytes((words + 2) * 4 - 12)


def test_ipv4_authentication_header_before_tcp_is_traced(tmp_path):
    t = tcp(40000, 80, SYN)
    cases = {
        "ah": ethernet(ipv4(A4, B4, ah4(6) + t, proto=51)),
        "ah-longer-icv": ethernet(ipv4(A4, B4, ah4(6, words=7) + tcp(40001, 80, SYN), proto=51)),
        "ah-ah": ethernet(ipv4(A4, B4, ah4(51) + ah4(6) + tcp(40002, 80, SYN), proto=51)),
        "ah-udp": ethernet(ipv4(A4, B4, ah4(17) + udp(53, 53), proto=51)),
        "ah-cut-by-total-length": ethernet(ipv4(A4, B4, ah4(6) + t, proto=51, total_length=30)),
        "ipv6-ah": ethernet(ipv6(A6, B6, t, extensions=[(51, authentication)])),
    }
    traced = compare(tmp_path, cases)
    assert traced == {"ah", "ah-longer-icv", "ah-ah", "ipv6-ah"}


# ---------------------------------------------------------------------------
# The TCP header must lie inside the IP datagram
# ---------------------------------------------------------------------------

def test_tcp_header_past_the_ip_length_is_not_traced(tmp_path):
    t = tcp(40000, 80, SYN)
    with_options = tcp(40001, 80, SYN, options=b"\x01\x01\x01\x02")
    cases = {
        # Ethernet pads a frame to 60 bytes: a TCP header read from the padding is no TCP header
        "all-in-padding": ethernet(with_length(syn(), 20)),
        "10-bytes-inside": ethernet(with_length(syn(), 30)),
        "13-bytes-inside": ethernet(with_length(syn(), 33)),
        "16-bytes-inside": ethernet(with_length(syn(sport=40005), 36)),
        "fixed-header-inside": ethernet(with_length(ipv4(A4, B4, with_options), 40)),  # options past it: traced
        "whole": ethernet(syn(sport=40002)),
        "padded-whole": ethernet(syn(sport=40003) + bytes(6)),
        "total-below-header": ethernet(with_length(syn(), 12)),
        "tso-total-0": ethernet(with_length(syn(sport=40004), 0)),  # TCP segmentation offload: captured bytes count
        "ipv6-13-inside": ethernet(with_length(syn(A6, B6), 13)),
        "ipv6-16-inside": ethernet(with_length(syn(A6, B6, sport=50002), 16)),
        "ipv6-whole-padded": ethernet(syn(A6, B6, sport=50000) + bytes(8)),
        "ipv6-length-0": ethernet(with_length(syn(A6, B6), 0)),
        "ipv6-hop-by-hop-13-inside": ethernet(with_length(ipv6(A6, B6, t, extensions=[(0, hop_by_hop)]), 21)),
        "ipv6-hop-by-hop-length-0": ethernet(with_length(ipv6(A6, B6, t, extensions=[(0, hop_by_hop)]), 0)),
        # a jumbo payload length must exceed 65535 (RFC 2675): a smaller one is no length
        "ipv6-jumbo-too-small": ethernet(jumbogram(8 + 20, sport=50001)),
    }
    traced = compare(tmp_path, cases)
    assert traced == {"16-bytes-inside", "fixed-header-inside", "whole", "padded-whole", "tso-total-0",
                      "ipv6-16-inside", "ipv6-whole-padded"}


def test_the_14_bytes_read_must_be_inside_the_datagram(tmp_path):
    """The decoder reads 14 bytes of TCP header (ports to flags): they must be captured (as
    test_capture_oracle's 14-byte test has it) and inside the datagram. tshark wants 16 for a
    tcp.stream, in both cases: 14 and 15 bytes are where the two differ, so no oracle here."""
    frames = [ethernet(with_length(syn(sport=40000 + inside), 20 + inside)) for inside in (13, 14, 15)]
    frames += [ethernet(with_length(syn(A6, B6, sport=50000 + inside), inside)) for inside in (13, 14, 15)]
    path = write_pcap(tmp_path / "cases.pcap", frames_at(frames), ETHERNET)
    stats = {}
    index = pcapflow.trace_file(str(path), str(tmp_path / "out"), stats=stats)
    assert sorted(flow.index for flow in index) == [(2,), (3,), (5,), (6,)]
    assert stats["truncated"] == 2


def jumbogram(length, sport):
    """An IPv6 SYN with payload length 0 and a hop-by-hop Jumbo Payload option giving `length`."""
    option = lambda nxt: bytes([nxt, 0]) + b"\xc2\x04" + struct.pack("!I", length)  # noqa: E731
    return with_length(ipv6(A6, B6, tcp(sport, 80, SYN), extensions=[(0, option)]), 0)


def test_snapshot_length_cuts_the_datagram_not_the_tcp_header(tmp_path):
    """A large datagram captured with a short snapshot length: traced when its TCP header was captured."""
    big4 = ipv4(A4, B4, tcp(40000, 80, ACK | PSH, b"x" * 1400))
    big6 = ipv6(A6, B6, tcp(50000, 443, ACK | PSH, b"y" * 1400))
    frames = {
        "ipv4-header-captured": ethernet(big4)[:14 + 20 + 20],
        "ipv4-13-bytes-captured": ethernet(big4)[:14 + 20 + 13],
        "ipv6-header-captured": ethernet(big6)[:14 + 40 + 20],
        "ipv6-13-bytes-captured": ethernet(big6)[:14 + 40 + 13],
        # BIG TCP: a jumbogram, its length in the hop-by-hop header, captured in part
        "ipv6-jumbogram": ethernet(jumbogram(70_000, sport=50001)),
    }
    records = [Record(1_600_000_000, i * 1000, data, orig_len=14 + 1460) for i, data in enumerate(frames.values())]
    traced = compare(tmp_path, frames, records=records)
    assert traced == {"ipv4-header-captured", "ipv6-header-captured", "ipv6-jumbogram"}


# ---------------------------------------------------------------------------
# MPLS and PPPoE: opened
# ---------------------------------------------------------------------------

def labels(*values):
    """An MPLS label stack, the last label marked bottom of stack."""
    return b"".join(struct.pack("!I", value << 12 | (i == len(values) - 1) << 8 | 64) for i, value in enumerate(values))


def ppp_frame(protocol, payload):
    return b"\xff\x03" + struct.pack("!H", protocol) + payload


def test_mpls_label_stacks_are_opened(tmp_path):
    cases = {
        "one-label": ethernet(labels(100) + syn(), 0x8847),
        "three-labels": ethernet(labels(100, 200, 300) + syn(sport=40001), 0x8847),
        "ipv6": ethernet(labels(16, 2) + syn(A6, B6), 0x8847),
        "multicast": ethernet(labels(500) + syn(sport=40002), 0x8848),
        "vlan": ethernet(labels(100) + syn(sport=40003), 0x8847, vlans=[(0x8100, 5)]),
        "pseudowire-control-word": ethernet(labels(700) + bytes(4) + ethernet(syn(sport=40004)), 0x8847),
        "no-bottom-of-stack": ethernet(struct.pack("!I", 100 << 12 | 64), 0x8847),
        "mpls-udp": ethernet(labels(100) + ipv4(A4, B4, udp(3503, 3503), proto=17), 0x8847),
    }
    traced = compare(tmp_path, cases)
    assert traced == {"one-label", "three-labels", "ipv6", "multicast", "vlan"}


def test_mpls_over_ppp_and_linux_cooked_capture(tmp_path):
    traced = compare(tmp_path, {
        "ppp-unicast": ppp_frame(0x0281, labels(100, 200) + syn()),
        "ppp-multicast": ppp_frame(0x0283, labels(100) + syn(A6, B6)),
        "ppp-ipv4": ppp_frame(0x0021, syn(sport=40001)),
    }, PPP)
    assert traced == {"ppp-unicast", "ppp-multicast", "ppp-ipv4"}
    (tmp_path / "sll").mkdir()
    traced = compare(tmp_path / "sll", {"sll": sll(labels(100) + syn(), 0x8847)}, LINUX_SLL)
    assert traced == {"sll"}


def pppoe(ppp_payload, length=None):
    """A PPPoE session header (version 1, type 1, code 0) and the PPP frame it carries."""
    return struct.pack("!BBHH", 0x11, 0, 0x1234, len(ppp_payload) if length is None else length) + ppp_payload


def test_pppoe_sessions_are_opened(tmp_path):
    ip4 = b"\x00\x21" + syn()
    cases = {
        "ipv4": ethernet(pppoe(ip4), 0x8864),
        "ipv6": ethernet(pppoe(b"\x00\x57" + syn(A6, B6)), 0x8864),
        "compressed-protocol": ethernet(pppoe(b"\x21" + syn(sport=40001)), 0x8864),
        "mpls": ethernet(pppoe(b"\x02\x81" + labels(100) + syn(sport=40002)), 0x8864),
        "vlan": ethernet(pppoe(b"\x00\x21" + syn(sport=40003)), 0x8864, vlans=[(0x8100, 7)]),
        "padded": ethernet(pppoe(b"\x00\x21" + syn(sport=40004)) + bytes(10), 0x8864),
        "length-cuts-ip": ethernet(pppoe(ip4, length=10), 0x8864),
        "lcp": ethernet(pppoe(b"\xc0\x21" + bytes(8)), 0x8864),
    }
    traced = compare(tmp_path, cases)
    assert traced == {"ipv4", "ipv6", "compressed-protocol", "mpls", "vlan", "padded"}


def test_real_capture_mpls_over_ppp(tmp_path):
    """tcpdump's lspping-fec-ldp.pcap: BGP over TCP inside MPLS over PPP (link type 9)."""
    path = DATA / "lspping-fec-ldp.pcap"
    capture = read_capture(path)
    assert capture.linktype == PPP
    expected = tshark_tcp(path, tunnels=False)
    assert expected
    stats = {}
    out = tmp_path / "out"
    index = pcapflow.trace_file(str(path), str(out), stats=stats)
    assert as_tuples(index) == expected_flows(sorted(expected.values(), key=lambda p: p.frame), str(out))
    check_flow_files(index, capture)
    assert stats["tcp_frames"] == len(expected)


# ---------------------------------------------------------------------------
# Tunnels: closed by default (pcapkit's rule), opened with tunnels=True
# ---------------------------------------------------------------------------

def gre(payload, protocol=0x0800, *, checksum=False, key=None, sequence=None):
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0) | (0x1000 if sequence is not None else 0)
    fields = (b"\0\0\0\0" if checksum else b"") + (struct.pack("!I", key) if key is not None else b"") + \
        (struct.pack("!I", sequence) if sequence is not None else b"")
    return struct.pack("!HH", flags, protocol) + fields + payload


def pptp_gre(ppp_payload, *, sequence=None, ack=None):
    """Enhanced GRE (version 1, RFC 2637): key present, optional sequence and acknowledgement numbers."""
    flags = 0x2001 | (0x1000 if sequence is not None else 0) | (0x0080 if ack is not None else 0)
    return struct.pack("!HHHH", flags, 0x880B, len(ppp_payload), 7) + \
        (struct.pack("!I", sequence) if sequence is not None else b"") + \
        (struct.pack("!I", ack) if ack is not None else b"") + ppp_payload


def vxlan(frame):
    return struct.pack("!BBHI", 0x08, 0, 0, 42 << 8) + frame


def geneve(payload, protocol=0x6558, options=b""):
    return struct.pack("!BBHI", len(options) // 4, 0, protocol, 42 << 8) + options + payload


def inner(version=4, sport=30000):
    return syn(*(INNER4 if version == 4 else INNER6), sport=sport)


def tunnel_cases():
    return {
        "gre": ethernet(ipv4(A4, B4, gre(inner(sport=1)), proto=47)),
        "gre-key-sequence-checksum": ethernet(ipv4(A4, B4, gre(inner(sport=2), checksum=True, key=9, sequence=3),
                                                   proto=47)),
        "gre-key": ethernet(ipv4(A4, B4, gre(inner(sport=3), key=5), proto=47)),
        "gre-ipv6-inner": ethernet(ipv4(A4, B4, gre(inner(6, sport=4), 0x86DD), proto=47)),
        "gre-over-ipv6": ethernet(ipv6(A6, B6, gre(inner(sport=5)), next_header=47)),
        "gre-ethernet": ethernet(ipv4(A4, B4, gre(ethernet(inner(sport=6)), 0x6558), proto=47)),
        "gre-ethernet-vlan": ethernet(ipv4(A4, B4, gre(ethernet(inner(sport=7), vlans=[(0x8100, 3)]), 0x6558),
                                           proto=47)),
        "pptp-gre-ppp": ethernet(ipv4(A4, B4, pptp_gre(b"\xff\x03\x00\x21" + inner(sport=8), sequence=1, ack=1),
                                      proto=47)),
        "ipip-4-in-4": ethernet(ipv4(A4, B4, inner(sport=9), proto=4)),
        "ipip-6-in-4": ethernet(ipv4(A4, B4, inner(6, sport=10), proto=41)),
        "ipip-4-in-6": ethernet(ipv6(A6, B6, inner(sport=11), next_header=4)),
        "ipip-6-in-6": ethernet(ipv6(A6, B6, inner(6, sport=12), next_header=41)),
        "ipip-6-in-6-after-hop-by-hop": ethernet(ipv6(A6, B6, inner(6, sport=13), next_header=41,
                                                      extensions=[(0, hop_by_hop)])),
        "vxlan": ethernet(ipv4(A4, B4, udp(50000, 4789, vxlan(ethernet(inner(sport=14)))), proto=17)),
        "vxlan-ipv6-outer-and-inner": ethernet(ipv6(A6, B6, udp(50000, 4789, vxlan(ethernet(inner(6, sport=15)))),
                                                    next_header=17)),
        "geneve": ethernet(ipv4(A4, B4, udp(50000, 6081, geneve(ethernet(inner(sport=16)))), proto=17)),
        "geneve-options": ethernet(ipv4(A4, B4, udp(50000, 6081, geneve(ethernet(inner(sport=17)),
                                                                        options=bytes(4) + bytes(8))), proto=17)),
        "geneve-ipv4-payload": ethernet(ipv4(A4, B4, udp(50000, 6081, geneve(inner(sport=18), 0x0800)), proto=17)),
        "gre-in-vxlan": ethernet(ipv4(A4, B4, udp(50000, 4789, vxlan(ethernet(
            ipv4("172.16.0.1", "172.16.0.2", gre(inner(sport=19)), proto=47)))), proto=17)),
        "mpls-in-gre": ethernet(ipv4(A4, B4, gre(labels(100) + inner(sport=20), 0x8847), proto=47)),
        "gre-udp-inner": ethernet(ipv4(A4, B4, gre(ipv4(*INNER4, udp(1, 2), proto=17)), proto=47)),
        "udp-other-port": ethernet(ipv4(A4, B4, udp(50000, 4790, vxlan(ethernet(inner(sport=21)))), proto=17)),
        "plain": ethernet(syn(sport=40000)),
    }


def test_tunnels_are_not_opened_by_default(tmp_path):
    """pcapkit's rule: only TCP right after the first IP header; a GRE-encapsulated TCP is not traced."""
    traced = compare(tmp_path, tunnel_cases(), tunnels=False)
    assert traced == {"plain"}


def test_tunnels_open_to_the_innermost_tcp(tmp_path):
    cases = tunnel_cases()
    traced = compare(tmp_path, cases, tunnels=True)
    assert traced == set(cases) - {"gre-udp-inner", "udp-other-port"}
    keys = pcapflow_tcp(tmp_path / "cases.pcap", tunnels=True)
    # the flow is the innermost connection's, whatever carries it
    assert {str(src) for src, _, _, _ in keys.values()} == {INNER4[0], INNER6[0], A4}


def test_tunnel_nesting_is_bounded(tmp_path):
    """Eight tunnels deep is opened, nine is not: a crafted frame cannot make the decoder recurse without end."""
    def nested(depth):
        packet = inner(sport=depth)
        for _ in range(depth):
            packet = ipv4(A4, B4, packet, proto=4)
        return ethernet(packet)
    path = write_pcap(tmp_path / "nested.pcap", frames_at([nested(8), nested(9), nested(200)]), ETHERNET)
    assert sorted(pcapflow_tcp(path, tunnels=True)) == [1]
    stats = {}
    pcapflow.trace_file(str(path), str(tmp_path / "out"), tunnels=True, stats=stats)
    assert stats["tcp_frames"] == 1 and stats["not_tcp"] == 2


@pytest.mark.parametrize("name", ["geneve.pcap", "gso-ipv4-vxlan-ipv6.pcap"])
def test_real_tunnel_captures(name, tmp_path):
    """tcpdump's GENEVE and VXLAN captures: no flows by default, the inner connections with tunnels=True."""
    path = DATA / name
    capture = read_capture(path)
    assert pcapflow.trace_file(str(path), str(tmp_path / "closed")) == ()
    expected = tshark_tcp(path, tunnels=True)
    assert expected
    out = tmp_path / "out"
    index = pcapflow.trace_file(str(path), str(out), tunnels=True)
    assert as_tuples(index) == expected_flows(sorted(expected.values(), key=lambda p: p.frame), str(out))
    check_flow_files(index, capture)


def test_tunnels_option_plumbing(tmp_path, capsys):
    path = DATA / "geneve.pcap"
    assert pcapflow.TCP(str(tmp_path / "t"), tunnels=True).tunnels is True
    assert pcapflow.TCP(str(tmp_path / "t")).tunnels is False
    assert cli.main([str(path), "-o", str(tmp_path / "cli"), "--index", str(tmp_path / "index.jsonl")]) == 0
    assert (tmp_path / "index.jsonl").read_text() == ""
    assert cli.main([str(path), "-o", str(tmp_path / "cli-tunnels"), "--tunnels",
                     "--index", str(tmp_path / "index.jsonl")]) == 0
    assert len((tmp_path / "index.jsonl").read_text().splitlines()) == len(tshark_flows(path))
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(path), "-o", str(tmp_path / "json"), "-f", "json", "--tunnels"])
    assert exit_info.value.code == 2
    assert "--tunnels needs format pcap" in capsys.readouterr().err
    with pytest.raises(ValueError, match="tunnels=True needs format 'pcap'"):
        pcapflow.trace_file(str(path), str(tmp_path / "json"), "json", tunnels=True)
    assert not (tmp_path / "json").exists()


def tshark_flows(path):
    return expected_flows(sorted(tshark_tcp(path, tunnels=True).values(), key=lambda p: p.frame))


def test_fin_closes_a_tunnelled_flow(tmp_path):
    """The inner TCP's flags are read: FIN closes the flow as for plain TCP."""
    def wrapped(flags):
        return ethernet(ipv4(A4, B4, gre(ipv4(*INNER4, tcp(30000, 80, flags))), proto=47))
    path = write_pcap(tmp_path / "fin.pcap", frames_at([wrapped(SYN), wrapped(ACK | FIN), wrapped(ACK)]), ETHERNET)
    index = pcapflow.trace_file(str(path), str(tmp_path / "out"), tunnels=True)
    assert [tuple(flow.index) for flow in index] == [(3,), (1, 2)]
    assert as_tuples(index) == tshark_flows_at(path, tmp_path / "out")


def tshark_flows_at(path, out):
    return expected_flows(sorted(tshark_tcp(path, tunnels=True).values(), key=lambda p: p.frame), str(out))
