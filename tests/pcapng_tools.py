"""pcapng files crafted block by block, for tests of shapes libpcap refuses.

Written from the pcapng specification: every block is type, total length,
body padded to 4 bytes, total length again, in the section's byte order.
Each function returns the block's bytes; a file is their concatenation."""
import struct

SHB, IDB, PB, SPB, NRB, ISB, EPB, DSB, CUSTOM = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6, 0x0A, 0x00000BAD
OPT_END, OPT_COMMENT, IF_TSRESOL, IF_TSOFFSET = 0, 1, 9, 14


def _order(byteorder):
    return "<" if byteorder == "little" else ">"


def pad(data):
    return data + b"\0" * (-len(data) % 4)


def block(kind, body, byteorder="little", *, trailer=None):
    o = _order(byteorder)
    total = 12 + len(pad(body))
    return struct.pack(o + "II", kind, total) + pad(body) + struct.pack(o + "I", total if trailer is None else trailer)


def options(items, byteorder="little"):
    """[(code, value bytes)] as an options list, ended by opt_endofopt."""
    if not items:
        return b""
    o = _order(byteorder)
    out = b"".join(struct.pack(o + "HH", code, len(value)) + pad(value) for code, value in items)
    return out + struct.pack(o + "HH", OPT_END, 0)


def section(byteorder="little", *, section_length=-1, comment=None):
    o = _order(byteorder)
    opts = options([(OPT_COMMENT, comment.encode())] if comment else [], byteorder)
    return block(SHB, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, section_length) + opts, byteorder)


def interface(linktype, snaplen=0, byteorder="little", *, tsresol=None, tsoffset=None, name=None):
    """An IDB. tsresol: the option's byte (6: microseconds, 9: nanoseconds, 0x80 | n: 2^-n)."""
    o = _order(byteorder)
    items = []
    if name is not None:
        items.append((2, name.encode()))
    if tsresol is not None:
        items.append((IF_TSRESOL, bytes([tsresol])))
    if tsoffset is not None:
        items.append((IF_TSOFFSET, struct.pack(o + "q", tsoffset)))
    return block(IDB, struct.pack(o + "HHI", linktype, 0, snaplen) + options(items, byteorder), byteorder)


def enhanced(interface_id, units, data, byteorder="little", *, orig_len=None, comment=None):
    """An EPB; units: the timestamp in the interface's units (64 bits)."""
    o = _order(byteorder)
    opts = options([(OPT_COMMENT, comment.encode())] if comment else [], byteorder)
    body = struct.pack(o + "IIIII", interface_id, units >> 32, units & 0xFFFFFFFF, len(data),
                       len(data) if orig_len is None else orig_len)
    return block(EPB, body + pad(data) + opts, byteorder)


def simple(data, byteorder="little", *, orig_len=None):
    """An SPB: interface 0, no timestamp; the captured length is min(orig_len, snaplen)."""
    o = _order(byteorder)
    return block(SPB, struct.pack(o + "I", len(data) if orig_len is None else orig_len) + data, byteorder)


def packet(interface_id, units, data, byteorder="little"):
    """The obsolete Packet Block."""
    o = _order(byteorder)
    body = struct.pack(o + "HHIIII", interface_id, 0, units >> 32, units & 0xFFFFFFFF, len(data), len(data))
    return block(PB, body + pad(data), byteorder)


def statistics(interface_id, byteorder="little"):
    o = _order(byteorder)
    return block(ISB, struct.pack(o + "III", interface_id, 0, 0), byteorder)


def name_resolution(byteorder="little"):
    o = _order(byteorder)
    record = struct.pack(o + "HH", 1, 8) + bytes([192, 0, 2, 1]) + b"a\0\0\0"
    return block(NRB, record + struct.pack(o + "HH", 0, 0), byteorder)


def custom(payload=b"x" * 10, byteorder="little"):
    return block(CUSTOM, struct.pack(_order(byteorder) + "I", 32473) + payload, byteorder)
