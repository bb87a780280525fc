"""Helpers for the capture pipeline tests (test_capture*.py, test_cli.py).

Independent of pcapflow: frames are built byte by byte, pcap files are
written and read here from the file format descriptions (pcap and pcapng,
read the way libpcap reads them), and the expected flows are computed with
pcapkit's unidirectional rules from packet lists that tshark or the tests
themselves provide.
"""
import dataclasses
import ipaddress
import os
import shutil
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "native"
SHARED_CAPTURES = HERE.parents[1] / "shared" / "captures"

# LINKTYPE_ values as they appear in files
NULL, ETHERNET, PPP, PPP_HDLC, RAW, LOOP, LINUX_SLL, IPV4, IPV6, LINUX_SLL2 = 0, 1, 9, 50, 101, 108, 113, 228, 229, 276

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
# libpcap's largest snapshot for ordinary link types (MAXIMUM_SNAPLEN)
MAXIMUM_SNAPLEN = 262144

TSHARK = shutil.which("tshark")
TCPDUMP = shutil.which("tcpdump")


# ---------------------------------------------------------------------------
# Frame builders
# ---------------------------------------------------------------------------

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp(sport, dport, flags=ACK, payload=b"", *, seq=1, ack=0, options=b""):
    """A TCP header (no checksum) and payload."""
    assert len(options) % 4 == 0
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, 65535, 0, 0) + options + payload


def udp(sport, dport, payload=b""):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src, dst, payload, *, proto=6, options=b"", frag_offset=0, more_fragments=False, ident=1, ttl=64,
         total_length=None):
    """An IPv4 packet; frag_offset in 8-byte units."""
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    length = ihl * 4 + len(payload) if total_length is None else total_length
    flags = (0x2000 if more_fragments else 0) | frag_offset
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, flags, ttl, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed) + options
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


# IPv6 extension headers: (next-header number of the header, builder(next) -> bytes)
def hop_by_hop(next_header):
    return bytes([next_header, 0]) + b"\x01\x04\0\0\0\0"  # PadN over 6 bytes


def destination_options(next_header):
    return bytes([next_header, 1]) + b"\x01\x0c" + bytes(12)  # 16 bytes


def routing(next_header):
    # type 2 routing header (RFC 6275), segments left 0
    return bytes([next_header, 2, 2, 0]) + bytes(4) + ipaddress.IPv6Address("2001:db8::99").packed


def fragment(offset=0, more=True, ident=0x1234):
    def build(next_header):
        return struct.pack("!BBHI", next_header, 0, offset << 3 | (1 if more else 0), ident)
    return build


def authentication(next_header):
    # SPI, sequence number and a 12-byte ICV: 24 bytes, payload length (24 / 4) - 2
    return struct.pack("!BBHII", next_header, 4, 0, 0x100, 1) + bytes(12)


EXTENSION_NUMBERS = {hop_by_hop: 0, routing: 43, destination_options: 60, authentication: 51}


def ipv6(src, dst, payload, *, next_header=6, extensions=(), hop_limit=64):
    """An IPv6 packet; extensions is a sequence of (number, builder) pairs, outermost first."""
    body = payload
    nxt = next_header
    for number, build in reversed(list(extensions)):
        body = build(nxt) + body
        nxt = number
    return struct.pack("!IHBB16s16s", 0x60000000, len(body), nxt, hop_limit, ipaddress.IPv6Address(src).packed,
                       ipaddress.IPv6Address(dst).packed) + body


def ip_packet(src, dst, payload, **kwargs):
    """IPv4 or IPv6 according to the address."""
    if ipaddress.ip_address(src).version == 4:
        return ipv4(src, dst, payload, **kwargs)
    return ipv6(src, dst, payload, **kwargs)


def ethertype_of(packet):
    return 0x0800 if packet[0] >> 4 == 4 else 0x86DD


def ethernet(payload, ethertype=None, *, vlans=(), dst=b"\x02\0\0\0\0\x02", src=b"\x02\0\0\0\0\x01"):
    """Ethernet II; vlans is a sequence of (tpid, vid), outermost first."""
    ethertype = ethertype_of(payload) if ethertype is None else ethertype
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    return dst + src + tags + struct.pack("!H", ethertype) + payload


def sll(payload, ethertype=None):
    """Linux cooked capture v1 (16 bytes)."""
    ethertype = ethertype_of(payload) if ethertype is None else ethertype
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0", ethertype) + payload


def sll2(payload, ethertype=None):
    """Linux cooked capture v2 (20 bytes)."""
    ethertype = ethertype_of(payload) if ethertype is None else ethertype
    return struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0") + payload


def loopback(payload, *, byteorder="little", family=None):
    """BSD loopback: NULL (host byte order) or LOOP (byteorder='big')."""
    if family is None:
        family = 2 if payload[0] >> 4 == 4 else 24
    return family.to_bytes(4, byteorder) + payload


def ppp(payload, *, hdlc=True, protocol=None):
    protocol = (0x21 if payload[0] >> 4 == 4 else 0x57) if protocol is None else protocol
    return (b"\xff\x03" if hdlc else b"") + struct.pack("!H", protocol) + payload


# ---------------------------------------------------------------------------
# Writing captures
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Record:
    """One frame: the timestamp always in nanoseconds, as libpcap hands it over at nanosecond precision."""
    ts_sec: int
    ts_nsec: int
    data: bytes
    orig_len: int = None

    def __post_init__(self):
        if self.orig_len is None:
            self.orig_len = len(self.data)

    @property
    def caplen(self):
        return len(self.data)

    @property
    def time_epoch(self):
        return self.ts_sec + Decimal(self.ts_nsec) / 10**9


def pcap_header(linktype, *, nanosecond=False, byteorder="little", snaplen=MAXIMUM_SNAPLEN, version=(2, 4)):
    order = "<" if byteorder == "little" else ">"
    return struct.pack(order + "IHHiIII", MAGIC_NANO if nanosecond else MAGIC_MICRO, *version, 0, 0, snaplen,
                       linktype)


def pcap_record(ts_sec, ts_frac, data, orig_len=None, *, byteorder="little", caplen=None):
    order = "<" if byteorder == "little" else ">"
    return struct.pack(order + "IIII", ts_sec, ts_frac, len(data) if caplen is None else caplen,
                       len(data) if orig_len is None else orig_len) + data


def pcap_bytes(records, linktype, *, nanosecond=False, byteorder="little", snaplen=MAXIMUM_SNAPLEN):
    """A pcap file; records are Record (nanosecond timestamps; divided by 1000 for a microsecond file)."""
    parts = [pcap_header(linktype, nanosecond=nanosecond, byteorder=byteorder, snaplen=snaplen)]
    for r in records:
        frac = r.ts_nsec if nanosecond else r.ts_nsec // 1000
        parts.append(pcap_record(r.ts_sec, frac, r.data, r.orig_len, byteorder=byteorder))
    return b"".join(parts)


def write_pcap(path, records, linktype, **kwargs):
    Path(path).write_bytes(pcap_bytes(records, linktype, **kwargs))
    return Path(path)


def frames_at(packets, start=1_600_000_000, step_ns=1_000_000):
    """Records for a list of frame bytes, one every step_ns nanoseconds from `start` (an int of seconds)."""
    records = []
    for i, data in enumerate(packets):
        ns = i * step_ns
        records.append(Record(start + ns // 10**9, ns % 10**9, data))
    return records


# ---------------------------------------------------------------------------
# Reading captures, the way libpcap does
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Capture:
    format: str  # 'pcap' or 'pcapng'
    linktype: int
    byteorder: str
    snaplen: int
    nanosecond: bool  # pcap: the magic; pcapng: None
    records: list
    magic: int = None
    version: tuple = None


class CaptureFormatError(ValueError):
    pass


def read_capture(source):
    """A pcap or pcapng capture (path or bytes) as a Capture with Records (nanosecond timestamps)."""
    blob = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    if len(blob) >= 4 and blob[:4] == b"\x0a\x0d\x0d\x0a":
        return _read_pcapng(blob)
    return _read_pcap(blob)


def _read_pcap(blob):
    if len(blob) < 24:
        raise CaptureFormatError("shorter than a pcap header")
    for order, name in (("<", "little"), (">", "big")):
        magic = struct.unpack(order + "I", blob[:4])[0]
        if magic in (MAGIC_MICRO, MAGIC_NANO):
            break
    else:
        raise CaptureFormatError(f"bad magic {blob[:4].hex()}")
    major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack(order + "HHiIII", blob[4:24])
    nano = magic == MAGIC_NANO
    linktype &= 0x03FFFFFF  # the upper bits hold FCS information
    # libpcap: a snapshot length of 0 or above the maximum becomes the maximum
    snapshot = snaplen if 0 < snaplen <= MAXIMUM_SNAPLEN else MAXIMUM_SNAPLEN
    records = []
    offset = 24
    while offset < len(blob):
        if offset + 16 > len(blob):
            raise CaptureFormatError(f"truncated record header at {offset}")
        ts_sec, ts_frac, caplen, orig_len = struct.unpack(order + "IIII", blob[offset:offset + 16])
        offset += 16
        if caplen > MAXIMUM_SNAPLEN:
            raise CaptureFormatError(f"caplen {caplen} above the maximum at {offset - 16}")
        if offset + caplen > len(blob):
            raise CaptureFormatError(f"record at {offset - 16} runs past the end")
        kept = min(caplen, snapshot)  # libpcap keeps the first `snapshot` bytes
        records.append(Record(ts_sec, ts_frac if nano else ts_frac * 1000, bytes(blob[offset:offset + kept]),
                              orig_len))
        offset += caplen
    return Capture("pcap", linktype, name, snaplen, nano, records, magic=magic, version=(major, minor))


def _read_pcapng(blob):
    records = []
    interfaces = []
    linktype = None
    snaplen = None
    order = "<"
    name = "little"
    offset = 0
    while offset < len(blob):
        if offset + 12 > len(blob):
            raise CaptureFormatError(f"truncated block at {offset}")
        if blob[offset:offset + 4] == b"\x0a\x0d\x0d\x0a":
            bom = blob[offset + 8:offset + 12]
            order, name = ("<", "little") if bom == b"\x4d\x3c\x2b\x1a" else (">", "big")
            interfaces = []
        block_type, length = struct.unpack(order + "II", blob[offset:offset + 8])
        if length < 12 or offset + length > len(blob):
            raise CaptureFormatError(f"bad block length {length} at {offset}")
        body = blob[offset + 8:offset + length - 4]
        if block_type == 1:  # interface description
            link, _reserved, snap = struct.unpack(order + "HHI", body[:8])
            tsresol, tsoffset = 10**6, 0
            for code, value in _options(body[8:], order):
                if code == 9 and value:
                    tsresol = 10 ** value[0] if value[0] < 128 else 2 ** (value[0] & 0x7F)
                elif code == 14 and len(value) >= 8:
                    tsoffset = struct.unpack(order + "q", value[:8])[0]
            if linktype is None:
                linktype, snaplen = link, snap
            elif link != linktype:
                raise CaptureFormatError("interfaces of different link types")
            interfaces.append((snap, tsresol, tsoffset))
        elif block_type in (6, 2):  # enhanced packet, obsolete packet
            if block_type == 6:
                iface, high, low, caplen, orig_len = struct.unpack(order + "IIIII", body[:20])
            else:
                iface, _drops, high, low, caplen, orig_len = struct.unpack(order + "HHIIII", body[:20])
            _snap, tsresol, tsoffset = interfaces[iface]
            units = high << 32 | low
            sec, frac = divmod(units, tsresol)
            records.append(Record(sec + tsoffset, frac * 10**9 // tsresol, bytes(body[20:20 + caplen]), orig_len))
        elif block_type == 3:  # simple packet
            orig_len = struct.unpack(order + "I", body[:4])[0]
            snap = interfaces[0][0]
            caplen = min(orig_len, snap) if snap else orig_len
            records.append(Record(0, 0, bytes(body[4:4 + caplen]), orig_len))
        offset += length
    if linktype is None:
        raise CaptureFormatError("no interface")
    return Capture("pcapng", linktype, name, snaplen, None, records)


def _options(data, order):
    offset = 0
    while offset + 4 <= len(data):
        code, length = struct.unpack(order + "HH", data[offset:offset + 4])
        if code == 0:
            return
        yield code, data[offset + 4:offset + 4 + length]
        offset += 4 + (length + 3) // 4 * 4


# ---------------------------------------------------------------------------
# Checking pcapflow's output files
# ---------------------------------------------------------------------------

def check_flow_files(index, original, *, linktype=None, nanosecond=False, byteorder=sys.byteorder):
    """Every flow file holds exactly the original frames of its Index, in order, byte for byte.

    original: the Capture the flows came from (or a list of Captures read as one series).
    Returns the number of records checked. Raises AssertionError naming the flow."""
    captures = original if isinstance(original, list) else [original]
    records = [r for c in captures for r in c.records]
    linktype = captures[0].linktype if linktype is None else linktype
    checked = 0
    for flow in index:
        assert flow.fpout is not None and os.path.isfile(flow.fpout), f"{flow.label}: no file {flow.fpout!r}"
        out = read_capture(flow.fpout)
        assert out.format == "pcap", flow.fpout
        assert out.byteorder == byteorder, f"{flow.fpout}: {out.byteorder}-endian file, wanted {byteorder}"
        assert out.nanosecond == nanosecond, f"{flow.fpout}: nanosecond={out.nanosecond}"
        assert out.version == (2, 4), f"{flow.fpout}: version {out.version}"
        assert out.linktype == linktype, f"{flow.fpout}: link type {out.linktype} in the header, capture's is {linktype}"
        assert len(out.records) == len(flow.index), (
            f"{flow.fpout}: {len(out.records)} records for frames {flow.index}")
        for number, got in zip(flow.index, out.records):
            want = records[number - 1]
            assert got.data == want.data, f"{flow.fpout}: frame {number}: bytes differ"
            assert got.orig_len == want.orig_len, f"{flow.fpout}: frame {number}: orig_len {got.orig_len} != {want.orig_len}"
            want_ns = want.ts_nsec if nanosecond else want.ts_nsec // 1000 * 1000
            assert (got.ts_sec, got.ts_nsec) == (want.ts_sec, want_ns), (
                f"{flow.fpout}: frame {number}: timestamp {got.ts_sec}.{got.ts_nsec:09d}, "
                f"capture's {want.ts_sec}.{want.ts_nsec:09d}")
            checked += 1
    return checked


def tcpdump_read(path, nanosecond=True):
    """(link type line, [timestamp strings]) as libpcap reads a file, through tcpdump -r."""
    args = [TCPDUMP, "-r", str(path), "-nn", "-tt", "-q"]
    if nanosecond:
        args.insert(1, "--time-stamp-precision=nano")
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"tcpdump -r {path}: {done.stderr}"
    stamps = [line.split(" ", 1)[0] for line in done.stdout.splitlines() if line]
    return done.stderr, stamps


# ---------------------------------------------------------------------------
# pcapkit's flow rules, applied to plain packet tuples
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class TCPPacket:
    frame: int
    src: object  # ipaddress object
    srcport: int
    dst: object
    dstport: int
    fin: bool
    time_epoch: Decimal


def label_of(packet):
    label = f"{packet.src}_{packet.srcport}-{packet.dst}_{packet.dstport}-{float(packet.time_epoch)}"
    return label.replace(":", ".") if packet.src.version == 6 else label


def expected_flows(packets, fout=None, ext=".pcap", idle_timeout_ns=None, counts=None):
    """pcapkit's submit() for these packets: [(fpout, index tuple, label)].

    A flow is (src, srcport, dst, dstport); FIN closes it; open flows first in the
    order they were opened, then closed ones in closing order. fpout is
    f"{fout}/{label}{ext}", or with pcapflow's rule for repeated labels
    f"{fout}/{label}_{n}{ext}" for the n-th flow opened with that label.

    With idle_timeout_ns (pcapflow's idle_timeout), before each packet the flows
    whose last packet came more than that before the latest time seen so far are
    closed, least recently seen first; `counts`, a dict, gets how many as "idle_closed"."""
    open_flows = {}
    closed = []
    seen = {}
    last_seen = {}  # key: (time the flow was last seen, the count of packets then)
    now = None
    for count, p in enumerate(packets):
        key = (p.src, p.srcport, p.dst, p.dstport)
        if idle_timeout_ns is not None:
            time_ns = int(p.time_epoch * 10**9)
            now = time_ns if now is None else max(now, time_ns)
            for idle in sorted((k for k in open_flows if now - last_seen[k][0] > idle_timeout_ns),
                               key=lambda k: last_seen[k][1]):
                fpout, frames, label = open_flows.pop(idle)
                closed.append((fpout, tuple(frames), label))
                if counts is not None:
                    counts["idle_closed"] = counts.get("idle_closed", 0) + 1
            last_seen[key] = (now, count)
        if key not in open_flows:
            label = label_of(p)
            seen[label] = seen.get(label, 0) + 1
            name = label if seen[label] == 1 else f"{label}_{seen[label]}"
            fpout = None if fout is None else f"{fout}/{name}{ext}"
            open_flows[key] = (fpout, [], label)
        open_flows[key][1].append(p.frame)
        if p.fin:
            fpout, frames, label = open_flows.pop(key)
            closed.append((fpout, tuple(frames), label))
    return [(fpout, tuple(frames), label) for fpout, frames, label in open_flows.values()] + closed


def as_tuples(index, relative_to=None):
    """Index objects as (fpout, index, label), fpout relative to `relative_to` when given."""
    out = []
    for flow in index:
        fpout = flow.fpout
        if fpout is not None and relative_to is not None:
            fpout = os.path.relpath(fpout, relative_to)
        out.append((fpout, tuple(flow.index), flow.label))
    return out


# ---------------------------------------------------------------------------
# tshark as an oracle
# ---------------------------------------------------------------------------

TSHARK_FIELDS = ("frame.number", "frame.protocols", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport",
                 "tcp.dstport", "tcp.flags.fin", "frame.time_epoch")
# tshark's names for what may sit between the IP header and TCP
IPV6_EXTENSIONS = {"ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ipv6.fraghdr", "ah"}


def tshark_tcp_packets(path, capture=None):
    """The TCP packets of a capture as tshark decodes them: TCPPacket for every frame whose first IP
    header (after the link layer, VLAN tags and nothing else) carries TCP directly (IPv6 extension
    headers allowed). No reassembly, so first fragments count and later fragments do not.

    The timestamp is the capture's own (sec + nsec / 1e9, as pcapkit computes time_epoch), taken
    from `capture` (read here when not given); tshark's time_epoch must agree with it whenever the
    sub-second field is in range."""
    capture = read_capture(path) if capture is None else capture
    args = [TSHARK, "-n", "-r", str(path), "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
            "-T", "fields", "-E", "occurrence=f", "-E", "separator=\t", "-Y", "tcp"]
    for field in TSHARK_FIELDS:
        args += ["-e", field]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"tshark -r {path}: {done.stderr}"
    packets = []
    for line in done.stdout.splitlines():
        number, protocols, ip_src, ip6_src, ip_dst, ip6_dst, sport, dport, fin, epoch = line.split("\t")
        layers = protocols.split(":")
        first_ip = next((i for i, layer in enumerate(layers) if layer in ("ip", "ipv6")), None)
        if first_ip is None:
            continue
        following = first_ip + 1
        while following < len(layers) and layers[following] in IPV6_EXTENSIONS:
            following += 1
        if following >= len(layers) or layers[following] != "tcp":
            continue  # TCP only inside a tunnel or an ICMP error, or no TCP header at all
        if layers[first_ip] == "ip":
            src, dst = ip_src, ip_dst
        else:
            src, dst = ip6_src, ip6_dst
        record = capture.records[int(number) - 1]
        if record.ts_nsec < 10**9:
            assert Decimal(epoch) == record.time_epoch, f"frame {number}: tshark says {epoch}, capture {record}"
        packets.append(TCPPacket(int(number), ipaddress.ip_address(src), int(sport), ipaddress.ip_address(dst),
                                 int(dport), fin in ("1", "True", "true"), record.time_epoch))
    return packets


def link_type_name(path):
    """tcpdump's name of the capture's link type (e.g. 'EN10MB'), or None when libpcap cannot read it."""
    done = subprocess.run([TCPDUMP, "-r", str(path), "-c", "1", "-nn"], capture_output=True, text=True, check=False)
    for word in done.stderr.split("link-type ")[1:]:
        return word.split()[0]
    return None


def record_offsets(blob):
    """Offsets of each record header of a little-endian pcap file."""
    offsets, offset = [], 24
    while offset < len(blob):
        offsets.append(offset)
        offset += 16 + int.from_bytes(blob[offset + 8:offset + 12], "little")
    return offsets
