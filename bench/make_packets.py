"""Input for the benchmark: a real capture, decoded once into flow packets.

`ensure_capture(path, count)` returns a capture path (recording one with
/work/shared/tools/make-real-capture.sh into bench/.cache/ if none is given).
`decode(path, limit)` reads the pcap records itself (exact ts_sec/ts_usec,
incl_len, orig_len) and decodes Ethernet/IPv4/IPv6/TCP with dpkt into plain
dicts with the 10 fields pcapkit's tracer takes. `build(fields, cls)` turns
them into pcapflow.Packet or pcapkit Packet objects sharing the same frames
and addresses.

`synthetic_fields(i)` makes the fields of a packet of a distinct flow i, for
the memory-per-open-flow measurement.
"""
import ipaddress
import os
import struct
import subprocess
import sys

from pcapkit.const.reg.linktype import LinkType

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.path.join(HERE, ".cache")
CAPTURE_TOOL = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "tools", "make-real-capture.sh"))

PCAP_MAGIC = {  # magic as read little-endian -> (struct byte order, nanosecond file)
    0xA1B2C3D4: ("<", False),
    0xD4C3B2A1: (">", False),
    0xA1B23C4D: ("<", True),
    0x4D3CB2A1: (">", True),
}


class AttrDict(dict):
    """A dict whose keys are also attributes, like pcapkit's frame Info:
    pcapkit's pcap writer reads `frame.packet` / `**frame.frame_info`, its json
    writer dumps the frame as a mapping, so a frame must be both."""

    __slots__ = ()

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def ensure_capture(path=None, count=100_000):
    """The capture to use: `path` if given, else bench/.cache/real-{count}.pcap,
    recorded with the real-capture tool (needs root) if it is not there yet."""
    if path:
        if not os.path.exists(path):
            raise SystemExit(f"capture not found: {path}")
        return path
    path = os.path.join(CACHE_DIR, f"real-{count}.pcap")
    if os.path.exists(path) and os.path.getsize(path) > 24:
        return path
    if not os.path.exists(CAPTURE_TOOL):
        raise SystemExit(f"no capture given and {CAPTURE_TOOL} is missing; pass a capture path")
    os.makedirs(CACHE_DIR, exist_ok=True)
    print(f"recording {count} packets of real traffic into {path} (takes a minute) ...", file=sys.stderr)
    tmp = path + ".part"
    subprocess.run([CAPTURE_TOOL, tmp, str(count)], check=True)
    os.replace(tmp, path)
    return path


def read_pcap(path):
    """Yield (frame number from 1, linktype, ts_sec, ts_usec, incl_len, orig_len, bytes)."""
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file")
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic not in PCAP_MAGIC:
        raise ValueError(f"{path}: not a pcap file (pcapng is not supported; convert with editcap -F pcap)")
    order, _nanosecond = PCAP_MAGIC[magic]
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    offset, number = 24, 0
    while offset + 16 <= len(data):
        ts_sec, ts_usec, incl_len, orig_len = record.unpack_from(data, offset)
        offset += 16
        number += 1
        yield number, linktype, ts_sec, ts_usec, incl_len, orig_len, data[offset:offset + incl_len]
        offset += incl_len


def decode(path, limit=100_000):
    """Decode up to `limit` TCP packets of an Ethernet capture into field dicts.

    Returns (fields list, number of frames read). The index is the frame
    number in the capture (from 1); non-TCP frames are skipped."""
    import dpkt  # pylint: disable=import-outside-toplevel

    ethernet = LinkType.ETHERNET
    addresses = {}  # share one ipaddress object per distinct address, as a decoder cache would
    out = []
    frames = 0
    for number, linktype, ts_sec, ts_usec, incl_len, orig_len, raw in read_pcap(path):
        frames = number
        if linktype != 1:
            raise ValueError(f"{path}: linktype {linktype}; the benchmark decodes Ethernet (1) only")
        eth = dpkt.ethernet.Ethernet(raw)
        ip = eth.data
        if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
            continue
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        src = addresses.get(ip.src)
        if src is None:
            src = addresses[ip.src] = ipaddress.ip_address(ip.src)
        dst = addresses.get(ip.dst)
        if dst is None:
            dst = addresses[ip.dst] = ipaddress.ip_address(ip.dst)
        frame = AttrDict(
            packet=raw,
            frame_info=AttrDict(ts_sec=ts_sec, ts_usec=ts_usec, incl_len=incl_len, orig_len=orig_len),
        )
        out.append(dict(
            protocol=ethernet,
            index=number,
            frame=frame,
            syn=bool(tcp.flags & dpkt.tcp.TH_SYN),
            fin=bool(tcp.flags & dpkt.tcp.TH_FIN),
            src=src,
            dst=dst,
            srcport=tcp.sport,
            dstport=tcp.dport,
            timestamp=ts_sec + ts_usec / 1_000_000,
        ))
        if len(out) >= limit:
            break
    return out, frames


def build(fields, cls):
    """Packet objects of class `cls` (pcapflow.Packet or pcapkit's Packet)."""
    return [cls(**f) for f in fields]


def synthetic_fields(i, *, fin=False):
    """Fields of the first packet of distinct flow number i (0 <= i < 2**32):
    fresh address objects per packet, as a decoder hands them over."""
    frame = AttrDict(packet=b"\0" * 66,
                     frame_info=AttrDict(ts_sec=1_700_000_000 + i // 1000, ts_usec=i % 1000 * 1000,
                                         incl_len=66, orig_len=66))
    return dict(
        protocol=LinkType.ETHERNET,
        index=i + 1,
        frame=frame,
        syn=True,
        fin=fin,
        src=ipaddress.IPv4Address(0x0A000000 + i // 60000),
        dst=ipaddress.IPv4Address(0x0A800001),
        srcport=1024 + i % 60000,
        dstport=80,
        timestamp=1_700_000_000 + i / 1000,
    )


def cpu_model():
    """The processor's name, for the header of a benchmark report."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform  # pylint: disable=import-outside-toplevel
    return platform.processor() or "unknown CPU"
