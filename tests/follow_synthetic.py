"""Synthetic captures for Follow TCP Stream, each with what tshark 4.0 prints for it.

Section 4 of ../shared/docs/follow-tcp-stream.md lists the cases: stream
splitting on tuple reuse, ICMP-quoted headers, reordering, overlap, keep-alives,
zero-window probes, sequence wraparound, IP fragments, snaplen gaps, data on
SYN and RST. Each Case carries the documented outcome; test_follow_tshark.py
checks it against tshark itself (so the frames here are proven to say what
they are meant to say) before comparing pcapflow.follow with tshark.

Frames are Ethernet, IPv4 header checksums right, TCP checksums zero (tshark
does not check them by default, and follow never does). Files are
nanosecond pcap with sub-microsecond timestamps, so the yaml `timestamp`
text exercises the double rounding.
"""
import dataclasses
import socket
import struct

from capture_tools import ACK, ETHERNET, FIN, PSH, RST, SYN, Record, checksum, ethernet, fragment, ip_packet, ipv4, \
    ipv6, tcp, write_pcap

C4, S4 = ("10.0.0.1", 40000), ("10.0.0.2", 80)
C6, S6 = ("2001:db8::1", 40000), ("2001:db8::2", 80)
START_NS = 1_700_000_004_123_460_000   # tshark prints ...004.123460054 for it: rounding noise
STEP_NS = 1_000_333_037


@dataclasses.dataclass
class Frame:
    packet: bytes             # the IP packet
    caplen: int = None        # captured bytes of the Ethernet frame (None: all)
    padding: bytes = b""      # Ethernet trailer after the IP packet


@dataclasses.dataclass
class Case:
    name: str
    frames: list
    streams: int                                  # tshark's stream count
    records: dict                                 # stream -> [(node, data)]
    frames_of: dict = dataclasses.field(default_factory=dict)   # stream -> [frame of each record]
    nodes: dict = dataclasses.field(default_factory=dict)       # stream -> ((addr, port), (addr, port))
    raw_text: dict = dataclasses.field(default_factory=dict)    # stream -> tshark's raw block, exactly
    frame_streams: dict = dataclasses.field(default_factory=dict)  # frame -> its tcp.stream values

    def write(self, directory):
        """The capture as a nanosecond pcap file in `directory`; returns its path."""
        records = []
        for number, frame in enumerate(self.frames):
            data = ethernet(frame.packet) + frame.padding
            ns = START_NS + number * STEP_NS
            kept = data if frame.caplen is None else data[:frame.caplen]
            records.append(Record(ns // 10**9, ns % 10**9, kept, len(data)))
        return write_pcap(directory / f"{self.name}.pcap", records, ETHERNET, nanosecond=True)


class Connection:
    """Segments of one TCP connection, sequence numbers given relative to each side's ISN
    (0 is the SYN, 1 the first data byte), as tshark shows them."""

    def __init__(self, client=C4, server=S4, isn=(1000, 5000)):
        self.ends = [client, server]
        self.isn = list(isn)
        self.next = [0, 0]   # next relative seq each side sends

    def seg(self, side, flags=ACK | PSH, payload=b"", *, seq=None, ack=None):
        """An IP packet from side 0 (client) or 1 (server); default seq continues, ack acknowledges all."""
        seq = self.next[side] if seq is None else seq
        self.next[side] = max(self.next[side], seq + len(payload) + (1 if flags & (SYN | FIN) else 0))
        if ack is None:
            ack = self.next[1 - side]
        (src, sport), (dst, dport) = self.ends[side], self.ends[1 - side]
        raw_ack = (self.isn[1 - side] + ack) & 0xFFFFFFFF if flags & ACK else 0
        segment = tcp(sport, dport, flags, payload, seq=(self.isn[side] + seq) & 0xFFFFFFFF, ack=raw_ack)
        return ip_packet(src, dst, segment)

    def handshake(self):
        return [self.seg(0, SYN), self.seg(1, SYN | ACK), self.seg(0, ACK)]

    def close(self):
        return [self.seg(0, FIN | ACK), self.seg(1, FIN | ACK), self.seg(0, ACK)]

    def restart(self, isn):
        """The same tuple, a new connection: new ISNs, sequence numbers from 0 again."""
        self.isn = list(isn)
        self.next = [0, 0]


def icmp_unreachable(conn, quoted_segment_bytes, *, syn_isn=None):
    """ICMP port unreachable from the server quoting the client's IPv4+TCP header,
    cut to `quoted_segment_bytes` bytes of TCP (RFC 792 asks for 8)."""
    (src, sport), (dst, dport) = conn.ends
    flags, seq = (SYN, syn_isn) if syn_isn is not None else (ACK, conn.isn[0] + 1)
    quoted = ipv4(src, dst, tcp(sport, dport, flags, seq=seq))[:20 + quoted_segment_bytes]
    body = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return ipv4(dst, src, body, proto=1)


def fragments4(packet, split):
    """An IPv4 packet (built by ipv4()) as two fragments; `split`: payload bytes in the first, a multiple of 8."""
    header, payload = packet[:20], packet[20:]
    src, dst = socket.inet_ntop(socket.AF_INET, header[12:16]), socket.inet_ntop(socket.AF_INET, header[16:20])
    return (ipv4(src, dst, payload[:split], more_fragments=True, ident=0x4242),
            ipv4(src, dst, payload[split:], frag_offset=split // 8, ident=0x4242))


def fragments6(src, dst, segment, split):
    """A TCP segment in IPv6 as two fragments (fragment header, next header TCP)."""
    return (ipv6(src, dst, segment[:split], extensions=[(44, fragment(0, True, 0x6262))]),
            ipv6(src, dst, segment[split:], extensions=[(44, fragment(split // 8, False, 0x6262))]))


def frames(*items):
    """Frame objects from IP packets, Frames, and lists of either."""
    out = []
    for item in items:
        for one in item if isinstance(item, list) else [item]:
            out.append(one if isinstance(one, Frame) else Frame(one))
    return out


# --------------------------------------------------------------------------- the cases

def reuse_tuple(second_isn, *, fin):
    """A connection, optionally closed, then the same 4-tuple with a SYN of ISN `second_isn`."""
    conn = Connection()
    first = conn.handshake() + [conn.seg(0, payload=b"A1"), conn.seg(1, payload=b"R1")]
    if fin:
        first += conn.close()
    conn.restart((second_isn, 70000))
    return first + conn.handshake() + [conn.seg(0, payload=b"A2"), conn.seg(1, payload=b"R2")]


def cases():
    out = []

    # a new ISN on a SYN (ACK clear) starts stream 1, with or without FIN before it
    out.append(Case("reuse_after_fin_new_isn", frames(reuse_tuple(90000, fin=True)), 2,
                    {0: [(0, b"A1"), (1, b"R1")], 1: [(0, b"A2"), (1, b"R2")]},
                    frames_of={0: [4, 5], 1: [12, 13]}, nodes={0: (C4, S4), 1: (C4, S4)}))
    out.append(Case("new_syn_new_isn_no_fin", frames(reuse_tuple(90000, fin=False)), 2,
                    {0: [(0, b"A1"), (1, b"R1")], 1: [(0, b"A2"), (1, b"R2")]}))
    # the same ISN: one stream; the second connection's bytes are old (client) or re-based old (server)
    out.append(Case("reuse_after_fin_same_isn", frames(reuse_tuple(1000, fin=True)), 1,
                    {0: [(0, b"A1"), (1, b"R1")]}))

    # data after the FINs without a SYN: same stream, seq beyond nxt (FIN adds nothing there), held,
    # and an ACK equal to (not above) the held seq does not release it
    conn = Connection()
    items = conn.handshake() + [conn.seg(0, payload=b"A1"), conn.seg(1, payload=b"R1")] + conn.close()
    items += [conn.seg(0, payload=b"LATE"), conn.seg(1, ACK, ack=4)]
    out.append(Case("data_after_fin_without_syn", frames(items), 1, {0: [(0, b"A1"), (1, b"R1")]}))

    # ICMP errors: 8 quoted TCP bytes take no stream number, 20 take one (before the connection
    # that follows, on another tuple); follow sees nothing of a quoted header
    quoted_only = Connection(client=("10.0.0.1", 40001))
    too_short = Connection(client=("10.0.0.1", 40002))
    conn = Connection()
    items = [icmp_unreachable(too_short, 8), icmp_unreachable(quoted_only, 20)]
    items += conn.handshake() + [conn.seg(0, payload=b"GET"), conn.seg(1, payload=b"OK")]
    out.append(Case("icmp_error_before_connection", frames(items), 2,
                    {0: [], 1: [(0, b"GET"), (1, b"OK")]}, frames_of={1: [6, 7]},
                    frame_streams={1: [], 2: [0], 3: [1]}))

    # an ICMP error quoting a SYN with another ISN splits a live stream: what follows is stream 1
    conn = Connection()
    items = conn.handshake() + [conn.seg(0, payload=b"A1"), conn.seg(1, payload=b"R1")]
    items += [icmp_unreachable(conn, 20, syn_isn=3000), conn.seg(0, payload=b"A2"), conn.seg(1, payload=b"R2")]
    out.append(Case("icmp_quoted_syn_splits_stream", frames(items), 2,
                    {0: [(0, b"A1"), (1, b"R1")], 1: [(0, b"A2"), (1, b"R2")]}, frames_of={1: [7, 8]}))

    # the doc's example: out-of-order pair emitted in seq order, the late filler first
    conn = Connection(isn=(1000, 5000))
    items = conn.handshake() + [conn.seg(0, payload=b"cd", seq=3), conn.seg(1, payload=b"S1", ack=1),
                                conn.seg(0, payload=b"ab", seq=1), conn.seg(1, payload=b"S2")]
    example = (b"\n" + b"=" * 67 + b"\nFollow: tcp,raw\nFilter: tcp.stream eq 0\nNode 0: 10.0.0.1:40000\n"
               b"Node 1: 10.0.0.2:80\n\t5331\n6162\n6364\n\t5332\n" + b"=" * 67 + b"\n")
    out.append(Case("out_of_order_pair", frames(items), 1,
                    {0: [(1, b"S1"), (0, b"ab"), (0, b"cd"), (1, b"S2")]},
                    frames_of={0: [5, 6, 4, 7]}, raw_text={0: example}))

    # partial overlap: only the new tail, the first-seen bytes win
    conn = Connection()
    items = conn.handshake() + [conn.seg(0, payload=b"0123456789"), conn.seg(0, payload=b"xxxxxABCDEFGHIJ", seq=6)]
    out.append(Case("overlap", frames(items), 1, {0: [(0, b"0123456789"), (0, b"ABCDEFGHIJ")]}))

    # 1-byte keep-alive at nxt-1: nothing
    conn = Connection()
    items = conn.handshake() + [conn.seg(0, payload=b"hello"), conn.seg(1, ACK),
                                conn.seg(0, ACK, b"o", seq=5), conn.seg(0, payload=b"world", seq=6)]
    out.append(Case("keep_alive", frames(items), 1, {0: [(0, b"hello"), (0, b"world")]}, frames_of={0: [4, 7]}))

    # zero-window probe: one byte, then its retransmission with more is trimmed
    conn = Connection()
    items = conn.handshake() + [conn.seg(1, ACK), conn.seg(0, payload=b"P"), conn.seg(0, payload=b"PROBED", seq=1)]
    out.append(Case("zero_window_probe", frames(items), 1, {0: [(0, b"P"), (0, b"ROBED")]}))

    # 30 bytes across the 32-bit wrap of the client's sequence numbers
    conn = Connection(isn=(0xFFFFFFF0, 5000))
    items = conn.handshake() + [conn.seg(0, payload=bytes(range(65 + i * 10, 75 + i * 10))) for i in range(3)]
    out.append(Case("isn_wraparound", frames(items), 1,
                    {0: [(0, bytes(range(65 + i * 10, 75 + i * 10))) for i in range(3)]}))

    out.append(ipv4_fragments_case())
    out.append(ipv6_fragments_case())

    # a payload cut to its headers by the snaplen: no bytes; later data held, then a gap record
    # (35 bytes, frame = the ACKing frame) when the peer acknowledges past it
    conn = Connection()
    items = frames(conn.handshake())
    items.append(Frame(conn.seg(0, payload=bytes(range(100))), caplen=14 + 20 + 20))
    items += frames(conn.seg(0, payload=b"later"), conn.seg(1, ACK))
    out.append(Case("snaplen_gap", items, 1, {0: [(0, b"[100 bytes missing in capture file]\0"), (0, b"later")]},
                    frames_of={0: [6, 5]}))

    # data on the SYN and on the SYN-ACK (TCP Fast Open) is emitted
    conn = Connection()
    items = [conn.seg(0, SYN, b"hello"), conn.seg(1, SYN | ACK, b"hi"), conn.seg(0, ACK)]
    out.append(Case("syn_with_data", frames(items), 1, {0: [(0, b"hello"), (1, b"hi")]}, frames_of={0: [1, 2]}))

    # a RST's payload is emitted
    conn = Connection()
    items = conn.handshake() + [conn.seg(0, payload=b"A1"), conn.seg(1, RST | ACK, b"reset reason")]
    out.append(Case("rst_payload", frames(items), 1, {0: [(0, b"A1"), (1, b"reset reason")]}))

    # a non-zero Ethernet trailer is not data (the IP length bounds it)
    conn = Connection()
    items = frames(conn.handshake())
    items.append(Frame(conn.seg(0, payload=b"ab"), padding=b"\xaa" * 4))
    out.append(Case("ethernet_padding", items, 1, {0: [(0, b"ab")]}))

    # bytes the ascii and hex printers treat specially: spaces ending a hex line's text
    # column (tshark drops one), exactly 8 and 16 bytes, CR and LF, and every byte value
    conn = Connection()
    texts = [b"0123456789abcde ", b"1234567 ", b"ab ", b"line\r\nnext\n", bytes(range(256))]
    items = conn.handshake() + [conn.seg(i % 2, payload=t) for i, t in enumerate(texts)]
    out.append(Case("text_edge_bytes", frames(items), 1, {0: [(i % 2, t) for i, t in enumerate(texts)]}))

    # IPv6 addresses that inet_ntop writes with a dotted quad
    conn = Connection(client=("::ffff:10.0.0.1", 40000), server=("::10.0.0.2", 80))
    items = conn.handshake() + [conn.seg(0, payload=b"Q"), conn.seg(1, payload=b"R")]
    out.append(Case("ipv6_dotted_quad_addresses", frames(items), 1, {0: [(0, b"Q"), (1, b"R")]},
                    nodes={0: (("::ffff:10.0.0.1", 40000), ("::10.0.0.2", 80))}))
    return out


def ipv4_fragments_case():
    """A data segment in two IPv4 fragments around another connection's handshake: its stream
    number and its record come at the completing frame (4), not the first fragment (1); a
    datagram whose second fragment never comes takes no number."""
    late = Connection(client=("10.0.0.3", 41000))
    first, second = fragments4(late.seg(0, payload=b"fragmented payload!"), 24)
    lost, _ = fragments4(Connection(client=("10.0.0.4", 42000)).seg(0, payload=b"never completed"), 24)
    conn = Connection()
    hs = conn.handshake()
    items = [first, lost, hs[0], second, hs[1], hs[2], conn.seg(0, payload=b"Y")]
    return Case("ipv4_fragments", frames(items), 2,
                {0: [(0, b"Y")], 1: [(0, b"fragmented payload!")]}, frames_of={0: [7], 1: [4]},
                nodes={1: (("10.0.0.3", 41000), S4)}, frame_streams={1: [], 2: [], 3: [0], 4: [1]})


def ipv6_fragments_case():
    """The IPv6 version: fragment header, reassembled at the second fragment."""
    conn = Connection(client=C6, server=S6)
    items = conn.handshake()
    segment = conn.seg(0, payload=b"sixteen bytes..." * 2)[40:]  # the TCP segment alone
    first, second = fragments6(C6[0], S6[0], segment, 24)
    items += [first, conn.seg(1, payload=b"server"), second]
    return Case("ipv6_fragments", frames(items), 1,
                {0: [(1, b"server"), (0, b"sixteen bytes..." * 2)]}, frames_of={0: [5, 6]}, nodes={0: (C6, S6)})
