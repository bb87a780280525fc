"""Small helpers shared by the behaviour tests (not a pytest plugin).

Everything here is independent of pcapflow's internals: packets are built the
way a user would build them, and pcap files are read back with a tiny reader
written against the file format itself, so a bug in pcapflow's writer cannot
hide behind a bug in a shared reader.
"""
import ipaddress
import os
import struct
import subprocess
import sys
import textwrap

from pcapkit.const.reg.linktype import LinkType

ETHERNET = LinkType.ETHERNET  # linktype 1
RAW = LinkType.RAW            # linktype 101

CLIENT = ipaddress.ip_address("10.0.0.1")
SERVER = ipaddress.ip_address("10.0.0.2")
CLIENT6 = ipaddress.ip_address("2001:db8::1")
SERVER6 = ipaddress.ip_address("2001:db8::2")

PACKET_FIELDS = ("protocol", "index", "frame", "syn", "fin",
                 "src", "dst", "srcport", "dstport", "timestamp")


class AttrDict(dict):
    """A dict whose keys are also attributes, like pcapkit's frame Info objects.

    pcapkit reads `frame.packet` as an attribute for pcap output and dumps the
    frame as a mapping for json/plist/tree, so a frame must be both.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def make_frame(data, ts_sec=1_600_000_000, ts_usec=0, *, incl_len=None, orig_len=None, time_epoch=None):
    """A frame the way pcapkit hands it over: `.packet` bytes and a `frame_info` mapping."""
    info = {
        "ts_sec": ts_sec,
        "ts_usec": ts_usec,
        "incl_len": len(data) if incl_len is None else incl_len,
        "orig_len": len(data) if orig_len is None else orig_len,
    }
    frame = AttrDict(packet=data, frame_info=AttrDict(info))
    if time_epoch is not None:
        frame["time_epoch"] = time_epoch
    return frame


_DEFAULT = object()  # lets callers pass frame=None on purpose


def packet_fields(index, *, src=CLIENT, srcport=40000, dst=SERVER, dstport=80,
                  timestamp=None, syn=False, fin=False, frame=_DEFAULT, protocol=ETHERNET, data=None):
    """The 10 fields of a flow packet as a dict; defaults give a valid packet."""
    valid_index = isinstance(index, int)  # error tests pass bad indexes through here too
    if timestamp is None:
        timestamp = 1_600_000_000 + index / 10 if valid_index else 1.0
    if frame is _DEFAULT:
        if data is None:
            data = b"frame-%d" % index if valid_index else b"frame-?"
        frame = make_frame(data, int(timestamp), 0)
    return {
        "protocol": protocol, "index": index, "frame": frame, "syn": syn, "fin": fin,
        "src": src, "dst": dst, "srcport": srcport, "dstport": dstport, "timestamp": timestamp,
    }


def make_packet(cls, index, **kwargs):
    """Build `cls` (pcapflow.Packet or pcapkit's Packet) by keyword."""
    return cls(**packet_fields(index, **kwargs))


def handshake_and_teardown(cls):
    """A client-initiated connection with a four-way teardown, as 7 packets.

    Flows are one direction each; the client's FIN closes the client flow, the
    server's FIN closes the server flow, and the client's last ACK opens a new
    client flow. Expected result: three flows.
    """
    c2s = dict(src=CLIENT, srcport=40000, dst=SERVER, dstport=80)
    s2c = dict(src=SERVER, srcport=80, dst=CLIENT, dstport=40000)
    return [
        make_packet(cls, 1, syn=True, timestamp=1.0, **c2s),
        make_packet(cls, 2, syn=True, timestamp=1.25, **s2c),
        make_packet(cls, 3, timestamp=1.5, **c2s),
        make_packet(cls, 4, fin=True, timestamp=2.0, **c2s),
        make_packet(cls, 5, timestamp=2.25, **s2c),
        make_packet(cls, 6, fin=True, timestamp=2.5, **s2c),
        make_packet(cls, 7, timestamp=3.0, **c2s),
    ]


def index_tuple(index):
    """An Index as a plain (fpout, index, label) tuple, for comparing across libraries."""
    return (index["fpout"], tuple(index["index"]), index["label"])


# ---------------------------------------------------------------------------
# A minimal pcap reader, written from the file format description.
# ---------------------------------------------------------------------------

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D


def read_pcap(path):
    """Parse a classic pcap file; return (header dict, list of record dicts).

    Raises AssertionError on anything malformed, including trailing bytes that
    do not form a whole record.
    """
    with open(path, "rb") as file:
        blob = file.read()
    assert len(blob) >= 24, f"{path}: {len(blob)} bytes, shorter than a global header"
    for order, name in (("<", "little"), (">", "big")):
        magic = struct.unpack(order + "I", blob[:4])[0]
        if magic in (MAGIC_MICRO, MAGIC_NANO):
            break
    else:
        raise AssertionError(f"{path}: bad magic {blob[:4].hex()}")
    major, minor, thiszone, sigfigs, snaplen, linktype = struct.unpack(order + "HHiIII", blob[4:24])
    header = {
        "byteorder": name, "nanosecond": magic == MAGIC_NANO, "magic_bytes": blob[:4],
        "version": (major, minor), "thiszone": thiszone, "sigfigs": sigfigs,
        "snaplen": snaplen, "linktype": linktype,
    }
    records = []
    offset = 24
    while offset < len(blob):
        assert offset + 16 <= len(blob), f"{path}: truncated record header at {offset}"
        ts_sec, ts_frac, incl_len, orig_len = struct.unpack(order + "IIII", blob[offset:offset + 16])
        offset += 16
        assert offset + incl_len <= len(blob), f"{path}: record at {offset} runs past end of file"
        records.append({"ts_sec": ts_sec, "ts_frac": ts_frac, "incl_len": incl_len,
                        "orig_len": orig_len, "data": blob[offset:offset + incl_len]})
        offset += incl_len
    return header, records


def record_payloads(path):
    return [rec["data"] for rec in read_pcap(path)[1]]


def run_python(code, *args, timeout=900):
    """Run `code` in a fresh interpreter (same sys.executable), return CompletedProcess.

    Used where the test must control process-wide state (rlimits, memory
    baseline) without disturbing, or being disturbed by, the pytest process.
    """
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)
