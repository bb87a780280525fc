"""pcapflow.trace_file on captures pcapkit cannot decode, against tshark.

The expected flows are computed independently: tshark (run here) decodes each
frame, the first IP header and the TCP header right after it (IPv6 extension
headers allowed) give the flow key, and pcapkit's unidirectional rules are
applied by capture_tools.expected_flows (BUFID = (src, srcport, dst, dstport),
a FIN closes, label f"{src}_{sport}-{dst}_{dport}-{float(time_epoch)}" with
':' -> '.' for an IPv6 source, open flows first then closed ones in closing
order). Generated captures cover every link type and IP extension the decoder
supports; their expected flows are also known by construction."""
import ipaddress
import struct

import pytest

import pcapflow
from capture_tools import (ACK, DATA, ETHERNET, FIN, IPV4, IPV6, LINUX_SLL, LINUX_SLL2, LOOP, NULL, PPP, PPP_HDLC,
                           PSH, RAW, RST, SYN, TSHARK, Record, TCPPacket, as_tuples, authentication, check_flow_files,
                           destination_options, ethernet, expected_flows, fragment, hop_by_hop, ipv4, ipv6, loopback,
                           ppp, read_capture, routing, sll, sll2, tcp, tshark_tcp_packets, udp, write_pcap)

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

# Captures pcapkit 1.4.1 does not decode (link types it lacks, big-endian files, MPTCP segments, ...)
ORACLE_CAPTURES = [
    "mptcp-v0.pcap",               # Ethernet, MPTCP options (pcapkit: no flows)
    "mptcp-v1.pcap",               # Linux cooked capture
    "tcp-handshake-nano.pcap",     # Linux cooked capture, nanosecond timestamps
    "timestamp_invalid_nano.pcap",  # Linux cooked capture, sub-second fields >= 1 s
    "resp_1_benchmark.pcap",       # Linux cooked capture
    "bgp-orf.pcapng",              # Linux cooked capture in pcapng, IPv6 link-local
    "bgp-role.pcapng",             # Linux cooked capture in pcapng
    "pptp.pcap",                   # big-endian (pcapkit misreads it); GRE frames carry no direct TCP
    "bgp-addpath.pcap",            # raw IP (101)
    "tcp_rst_diag_payload.pcap",   # BSD loopback (NULL)
    "tcp_rst_diag_payload-trunc.pcap",  # BSD loopback, snapshot length 50
    "gso-ipv6.pcap",               # IPv6, a 7 kB GSO segment
    "bigtcp-ipv6-hbh.pcap",        # IPv6 hop-by-hop jumbogram (BIG TCP), 80 kB frame
    "accecn_handshake.pcap",       # AccECN flags
]

# Tunnels: by default pcapflow only traces TCP directly over the outer IP header. The oracle's
# query follows the same rule (the layer after the first IP header must be TCP), so it expects no
# flow from the encapsulated TCP; the test also checks there is TCP inside for tshark, so the rule
# is exercised.
TUNNEL_CAPTURES = ["geneve.pcap", "gso-ipv4-vxlan-ipv6.pcap"]

# lspping-fec-ldp.pcap (TCP inside MPLS over PPP) and the tunnels opened with tunnels=True are
# compared with tshark in test_decoders.py.

# Link types pcapflow does not decode: every frame is counted as unsupported, no flows.
UNSUPPORTED_CAPTURES = {
    "ipoib.pcap": 242,                         # IP over InfiniBand
    "arcnet-rfc1201-arp-icmp-http.pcap": 129,  # Linux ARCNET
    "bgp-aigp.pcap": 178,                      # Juniper Ethernet
}


def check_against_oracle(path, out, **trace_kwargs):
    capture = read_capture(path)
    expected = expected_flows(tshark_tcp_packets(path, capture), str(out))
    stats = {}
    index = pcapflow.trace_file(str(path), str(out), stats=stats, **trace_kwargs)
    assert as_tuples(index) == expected
    check_flow_files(index, capture)
    assert stats["frames"] == stats["last_frame"] == len(capture.records)
    assert stats["tcp_frames"] == sum(len(flow[1]) for flow in expected)
    assert stats["flows_opened"] == len(expected)
    return index, stats


@pytest.mark.parametrize("name", ORACLE_CAPTURES)
def test_real_capture_against_tshark(name, tmp_path):
    index, _ = check_against_oracle(DATA / name, tmp_path / "out")
    assert index, f"no flows in {name}"


def test_linux_cooked_captures_are_in_the_list():
    cooked = [name for name in ORACLE_CAPTURES if read_capture(DATA / name).linktype == LINUX_SLL]
    assert len(cooked) >= 5


@pytest.mark.parametrize("name", TUNNEL_CAPTURES)
def test_tunnelled_tcp_is_not_traced(name, tmp_path):
    import subprocess
    inner = subprocess.run([TSHARK, "-n", "-r", str(DATA / name), "-Y", "tcp", "-T", "fields", "-e", "frame.number"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert inner, f"tshark sees no TCP at all in {name}"
    index, stats = check_against_oracle(DATA / name, tmp_path / "out")
    assert index == ()
    assert stats["tcp_frames"] == 0 and stats["not_tcp"] == stats["frames"]


@pytest.mark.parametrize("name,linktype", sorted(UNSUPPORTED_CAPTURES.items()))
def test_unsupported_link_types(name, linktype, tmp_path):
    capture = read_capture(DATA / name)
    assert capture.linktype == linktype
    assert tshark_tcp_packets(DATA / name, capture), "tshark finds TCP in it"
    stats = {}
    assert pcapflow.trace_file(str(DATA / name), str(tmp_path / "out"), stats=stats) == ()
    assert stats["frames"] == stats["unsupported_link"] == len(capture.records)
    assert stats["tcp_frames"] == stats["flows_opened"] == 0


# ---------------------------------------------------------------------------
# Generated captures: every link type and IP extension the decoder supports
# ---------------------------------------------------------------------------

A4, B4 = "192.0.2.10", "198.51.100.20"
A6, B6 = "2001:db8::a", "2001:db8:1::b"


def icmp_error_with_tcp(src, dst):
    """ICMP destination unreachable quoting an IPv4+TCP header: TCP inside ICMP is not a TCP packet."""
    quoted = ipv4(dst, src, tcp(80, 40000, SYN | ACK))[:28]
    return ipv4(src, dst, struct.pack("!BBHI", 3, 3, 0, 0) + quoted, proto=1)


def conversation(families=(4, 6)):
    """[(IP packet, (src, sport, dst, dport, fin) or None)]: two connections with FINs, a reopened
    flow, and frames that carry no TCP packet."""
    items = []

    def add(src, sport, dst, dport, flags, payload=b"", **ip_kwargs):
        build = ipv4 if ipaddress.ip_address(src).version == 4 else ipv6
        items.append((build(src, dst, tcp(sport, dport, flags, payload), **ip_kwargs),
                      (src, sport, dst, dport, bool(flags & FIN))))

    if 4 in families:
        add(A4, 40000, B4, 80, SYN)
        add(B4, 80, A4, 40000, SYN | ACK)
        add(A4, 40000, B4, 80, ACK | PSH, b"GET / HTTP/1.0\r\n\r\n")
        items.append((ipv4(A4, B4, udp(5353, 53, b"query"), proto=17), None))
    if 6 in families:
        add(A6, 50000, B6, 443, SYN)
        add(B6, 443, A6, 50000, SYN | ACK)
        items.append((ipv6(A6, B6, udp(5353, 53, b"query"), next_header=17), None))
    if 4 in families:
        add(B4, 80, A4, 40000, ACK | PSH, b"HTTP/1.0 200 OK\r\n\r\n")
        add(A4, 40000, B4, 80, FIN | ACK)
        add(B4, 80, A4, 40000, FIN | ACK)
        add(A4, 40000, B4, 80, ACK)  # reopens the client's flow
        items.append((icmp_error_with_tcp(B4, A4), None))
    if 6 in families:
        add(A6, 50000, B6, 443, ACK | PSH, b"\x16\x03\x01")
        add(A6, 50000, B6, 443, FIN | ACK)
        add(B6, 443, A6, 50000, RST | ACK)
        add(A6, 50001, B6, 443, SYN)
    return items


def build(items, wrap, start_ns=1_600_000_000_123_456_789, step_ns=1_000_333):
    """Records (frames wrapped for the link) and the TCP packets they hold."""
    records, packets = [], []
    for number, (packet, meta) in enumerate(items, 1):
        ns = start_ns + (number - 1) * step_ns
        record = Record(ns // 10**9, ns % 10**9, wrap(packet))
        records.append(record)
        if meta is not None:
            src, sport, dst, dport, fin = meta
            packets.append(TCPPacket(number, ipaddress.ip_address(src), sport, ipaddress.ip_address(dst), dport, fin,
                                     record.time_epoch))
    return records, packets


def null_family(byteorder):
    counter = iter(range(10**6))
    ipv6_families = (24, 28, 30)

    def wrap(packet):
        family = 2 if packet[0] >> 4 == 4 else ipv6_families[next(counter) % 3]
        return loopback(packet, byteorder=byteorder, family=family)
    return wrap


def ppp_compressed_protocol(packet):
    """PPP with a one-byte (compressed, RFC 1661 6.5) protocol field: 0x21 IPv4, 0x57 IPv6."""
    return (b"\x21" if packet[0] >> 4 == 4 else b"\x57") + packet


# (id, link type, wrapper, families, file byte order, nanosecond file)
LINK_CASES = [
    ("ethernet", ETHERNET, lambda p: ethernet(p), (4, 6), "little", False),
    ("ethernet-vlan", ETHERNET, lambda p: ethernet(p, vlans=[(0x8100, 42)]), (4, 6), "little", True),
    ("ethernet-qinq-88a8", ETHERNET, lambda p: ethernet(p, vlans=[(0x88A8, 100), (0x8100, 42)]), (4, 6), "big", False),
    ("ethernet-qinq-9100", ETHERNET, lambda p: ethernet(p, vlans=[(0x9100, 7), (0x8100, 8)]), (4, 6), "little", False),
    ("linux-sll", LINUX_SLL, lambda p: sll(p), (4, 6), "little", True),
    ("linux-sll2", LINUX_SLL2, lambda p: sll2(p), (4, 6), "big", False),
    ("raw-101", RAW, lambda p: p, (4, 6), "little", False),
    ("raw-ipv4-228", IPV4, lambda p: p, (4,), "little", True),
    ("raw-ipv6-229", IPV6, lambda p: p, (6,), "big", False),
    ("null-little", NULL, null_family("little"), (4, 6), "little", False),
    ("null-big", NULL, null_family("big"), (4, 6), "big", False),
    ("null-big-family-little-file", NULL, null_family("big"), (4, 6), "little", False),
    ("loop", LOOP, lambda p: loopback(p, byteorder="big"), (4, 6), "little", False),
    ("ppp", PPP, lambda p: ppp(p, hdlc=False), (4, 6), "little", False),
    ("ppp-with-address-control", PPP, lambda p: ppp(p, hdlc=True), (4, 6), "little", False),
    ("ppp-compressed-protocol", PPP, ppp_compressed_protocol, (4, 6), "little", False),
    ("ppp-hdlc-50", PPP_HDLC, lambda p: ppp(p, hdlc=True), (4, 6), "big", True),
]


@pytest.mark.parametrize("case", LINK_CASES, ids=[case[0] for case in LINK_CASES])
def test_generated_link_type(case, tmp_path):
    _, linktype, wrap, families, byteorder, nanosecond = case
    records, packets = build(conversation(families), wrap)
    path = write_pcap(tmp_path / "capture.pcap", records, linktype, byteorder=byteorder, nanosecond=nanosecond)
    capture = read_capture(path)
    if not nanosecond:  # the file holds microseconds: the labels do too
        packets = [TCPPacket(p.frame, p.src, p.srcport, p.dst, p.dstport, p.fin,
                             capture.records[p.frame - 1].time_epoch) for p in packets]
    out = tmp_path / "out"
    expected = expected_flows(packets, str(out))
    assert expected_flows(tshark_tcp_packets(path, capture), str(out)) == expected, "tshark reads the file otherwise"
    stats = {}
    index = pcapflow.trace_file(str(path), str(out), stats=stats)
    assert as_tuples(index) == expected
    check_flow_files(index, capture)
    assert stats["tcp_frames"] == len(packets)
    assert stats["not_tcp"] == len(records) - len(packets)
    assert stats["truncated"] == stats["fragments"] == stats["unsupported_link"] == 0


# IP extension cases on Ethernet: (id, IP packet, traced?)
def _tcp4(**kwargs):
    return ipv4(A4, B4, tcp(40000, 80, ACK | PSH, b"payload bytes"), **kwargs)


def _tcp6(extensions):
    return ipv6(A6, B6, tcp(50000, 443, ACK | PSH, b"payload bytes"), extensions=extensions)


EXTENSION_CASES = [
    ("ipv4-router-alert", _tcp4(options=b"\x94\x04\x00\x00"), True),
    ("ipv4-40-bytes-of-options", _tcp4(options=b"\x01" * 39 + b"\x00"), True),
    ("ipv4-first-fragment", _tcp4(more_fragments=True), True),
    ("ipv4-non-first-fragment", ipv4(A4, B4, b"\x9c\x40\x00\x50" + bytes(40), frag_offset=185), False),
    ("ipv4-last-fragment", ipv4(A4, B4, b"\x9c\x40\x00\x50" + bytes(40), frag_offset=2), False),
    ("ipv6-hop-by-hop", _tcp6([(0, hop_by_hop)]), True),
    ("ipv6-routing", _tcp6([(43, routing)]), True),
    ("ipv6-destination-options", _tcp6([(60, destination_options)]), True),
    ("ipv6-first-fragment", _tcp6([(44, fragment(0, True))]), True),
    ("ipv6-atomic-fragment", _tcp6([(44, fragment(0, False))]), True),
    ("ipv6-non-first-fragment", ipv6(A6, B6, b"\xc3\x50\x01\xbb" + bytes(40), extensions=[(44, fragment(185, True))]),
     False),
    ("ipv6-last-fragment", ipv6(A6, B6, b"\xc3\x50\x01\xbb" + bytes(40), extensions=[(44, fragment(3, False))]), False),
    ("ipv6-authentication-header", _tcp6([(51, authentication)]), True),
    ("ipv6-chain", _tcp6([(0, hop_by_hop), (60, destination_options), (43, routing), (44, fragment(0, True)),
                          (51, authentication), (60, destination_options)]), True),
    ("ipv6-no-next-header", ipv6(A6, B6, b"", next_header=59), False),
    ("ipv6-esp", ipv6(A6, B6, bytes(32), next_header=50), False),
    ("ipv4-udp", ipv4(A4, B4, udp(1, 2), proto=17), False),
]


@pytest.mark.parametrize("case", EXTENSION_CASES, ids=[case[0] for case in EXTENSION_CASES])
def test_ip_extensions(case, tmp_path):
    _, packet, traced = case
    # the frame between two ordinary TCP frames of another flow
    other = ipv4(B4, A4, tcp(80, 40000, ACK))
    records, _ = build([(other, None), (packet, None), (other, None)], ethernet)
    path = write_pcap(tmp_path / "capture.pcap", records, ETHERNET, nanosecond=True)
    capture = read_capture(path)
    version = packet[0] >> 4
    src, dst = (A4, B4) if version == 4 else (A6, B6)
    sport, dport = (40000, 80) if version == 4 else (50000, 443)
    wanted = [TCPPacket(1, ipaddress.ip_address(B4), 80, ipaddress.ip_address(A4), 40000, False,
                        records[0].time_epoch)]
    if traced:
        wanted.append(TCPPacket(2, ipaddress.ip_address(src), sport, ipaddress.ip_address(dst), dport, False,
                                records[1].time_epoch))
    wanted.append(TCPPacket(3, ipaddress.ip_address(B4), 80, ipaddress.ip_address(A4), 40000, False,
                            records[2].time_epoch))
    out = tmp_path / "out"
    expected = expected_flows(wanted, str(out))
    assert expected_flows(tshark_tcp_packets(path, capture), str(out)) == expected, "tshark reads the file otherwise"
    stats = {}
    index = pcapflow.trace_file(str(path), str(out), stats=stats)
    assert as_tuples(index) == expected
    check_flow_files(index, capture)
    if "fragment" in case[0] and not traced:
        assert stats["fragments"] == 1
    elif not traced:
        assert stats["not_tcp"] == 1


# Frames cut short: counted as truncated, never traced, never read past caplen
TRUNCATED_CASES = [
    ("ethernet-header", lambda: ethernet(_tcp4())[:13]),
    ("vlan-tag", lambda: ethernet(_tcp4(), vlans=[(0x8100, 1)])[:16]),
    ("ipv4-header", lambda: ethernet(_tcp4())[:14 + 19]),
    ("ipv4-options", lambda: ethernet(_tcp4(options=b"\x01" * 40))[:14 + 40]),
    ("tcp-ports-only", lambda: ethernet(_tcp4())[:14 + 20 + 4]),
    ("tcp-13-bytes", lambda: ethernet(_tcp4())[:14 + 20 + 13]),
    ("ipv6-header", lambda: ethernet(_tcp6([]))[:14 + 39]),
    ("ipv6-hop-by-hop", lambda: ethernet(_tcp6([(0, hop_by_hop)]))[:14 + 40 + 4]),
    ("ipv6-authentication", lambda: ethernet(_tcp6([(51, authentication)]))[:14 + 40 + 20]),
    ("ipv6-fragment", lambda: ethernet(_tcp6([(44, fragment(0, True))]))[:14 + 40 + 6]),
]


@pytest.mark.parametrize("case", TRUNCATED_CASES, ids=[case[0] for case in TRUNCATED_CASES])
def test_truncated_frames(case, tmp_path):
    _, make = case
    frame = make()
    whole = ethernet(ipv4(B4, A4, tcp(80, 40000, ACK)))
    records = [Record(1_600_000_000, 0, whole), Record(1_600_000_000, 1000, frame, orig_len=len(frame) + 100),
               Record(1_600_000_000, 2000, whole)]
    path = write_pcap(tmp_path / "capture.pcap", records, ETHERNET)
    stats = {}
    index = pcapflow.trace_file(str(path), str(tmp_path / "out"), stats=stats)
    assert [flow.index for flow in index] == [(1, 3)]
    assert stats["truncated"] == 1
    check_flow_files(index, read_capture(path))


def test_tcp_header_of_exactly_14_bytes_is_traced(tmp_path):
    """Ports, sequence and acknowledgement numbers, offset and flags: the 14 bytes the decoder needs."""
    frame = ethernet(ipv4(A4, B4, tcp(40000, 80, FIN | ACK)))[:14 + 20 + 14]
    path = write_pcap(tmp_path / "capture.pcap", [Record(1_600_000_000, 0, frame, orig_len=80)], ETHERNET)
    (flow,) = pcapflow.trace_file(str(path), str(tmp_path / "out"))
    assert flow.index == (1,)
    assert flow.label == f"{A4}_40000-{B4}_80-1600000000.0"
    check_flow_files([flow], read_capture(path))


def test_ipv4_mapped_and_link_local_addresses_in_labels(tmp_path):
    """Addresses print as Python's ipaddress prints them."""
    items = [(ipv6("::ffff:192.0.2.1", "fe80::1", tcp(1, 2)), ("::ffff:192.0.2.1", 1, "fe80::1", 2, False)),
             (ipv6("2001:db8:0:0:1:0:0:1", "::1", tcp(3, 4)), ("2001:db8::1:0:0:1", 3, "::1", 4, False)),
             (ipv4("0.0.0.0", "255.255.255.255", tcp(0, 65535)), ("0.0.0.0", 0, "255.255.255.255", 65535, False))]
    records, packets = build(items, ethernet)
    path = write_pcap(tmp_path / "capture.pcap", records, ETHERNET, nanosecond=True)
    out = tmp_path / "out"
    index = pcapflow.trace_file(str(path), str(out))
    assert as_tuples(index) == expected_flows(packets, str(out))
    assert index[0].label.startswith("..ffff.c000.201_1-fe80..1_2-")
    assert index[1].label.startswith("2001.db8..1.0.0.1_3-..1_4-")
    check_flow_files(index, read_capture(path))
