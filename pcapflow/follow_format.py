"""tshark's Follow TCP Stream output, byte for byte: `tshark -q -z follow,tcp,FORMAT,N`.

write(conversation, fmt, out) prints one stream in format raw, ascii, hex or
yaml to a binary file. A conversation is anything with the attributes of
pcapflow.follow's Conversation that the printers read: `stream`, `nodes`
((addr, port) twice, IPv6 without brackets, "" for no address) and `records`
(each with node, frame, seconds, nanoseconds, data). missing_stream(N) stands
for a stream number the capture does not have: tshark prints it with empty
nodes ("Node 0: :0").

Numbers are written with %-formatting of ints and floats, which never
depends on the locale (unlike C's printf under LC_NUMERIC, which tshark does
not set). The layouts are those of Wireshark 4.0's ui/cli/tap-follow.c, as
described in ../shared/docs/follow-tcp-stream.md, section 3.
"""
import binascii
import collections

FORMATS = ("raw", "ascii", "hex", "yaml")
SEPARATOR = b"=" * 67 + b"\n"

# ascii: printable ASCII, CR and LF as they are, every other byte as "."
_ASCII = bytes(b if 0x20 <= b < 0x7F or b in (0x0A, 0x0D) else 0x2E for b in range(256))
# the text column of hex: printable ASCII only
_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))
# base64 lines of yaml: 57 input bytes make the 76 characters of a line
_BASE64_LINE = 76
# hex lines: the text column starts at character 60 (8-digit offset, 2 spaces, 48 of
# byte pairs with the extra space after the 8th, 2 spaces)
_HEX_COLUMNS = 50
_HEX_SLICE = 1 << 16

MissingStream = collections.namedtuple("MissingStream", "stream nodes records")


def missing_stream(stream):
    """A stream number the capture does not have, as tshark prints it (nodes ":0", no records)."""
    return MissingStream(stream, (("", 0), ("", 0)), ())


def render(conversation, fmt):
    """The output as bytes (for tests and small streams; write() for large ones)."""
    chunks = []
    _WRITERS[_check(fmt)](conversation, chunks.append)
    return b"".join(chunks)


def write(conversation, fmt, out):
    """Print one stream to the binary file `out` in format `fmt`."""
    _WRITERS[_check(fmt)](conversation, out.write)


def _check(fmt):
    if fmt not in _WRITERS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def _node(addr, port):
    # IPv6 (the only form with ':') in brackets; no address at all stays empty
    text = f"[{addr}]:{port:d}" if ":" in addr else f"{addr}:{port:d}"
    return text.encode("ascii")


def _header(conversation, fmt):
    (addr0, port0), (addr1, port1) = conversation.nodes
    return (b"\n" + SEPARATOR + b"Follow: tcp,%s\nFilter: tcp.stream eq %d\nNode 0: %s\nNode 1: %s\n"
            % (fmt.encode("ascii"), conversation.stream, _node(addr0, port0), _node(addr1, port1)))


def _raw(conversation, emit):
    emit(_header(conversation, "raw"))
    for record in conversation.records:
        # node 1's lines are indented by one TAB; the whole record is one line
        emit((b"\t" if record.node else b"") + binascii.hexlify(record.data) + b"\n")
    emit(SEPARATOR)


def _ascii(conversation, emit):
    emit(_header(conversation, "ascii"))
    for record in conversation.records:
        emit(b"%s%d\n%s\n" % (b"\t" if record.node else b"", len(record.data), record.data.translate(_ASCII)))
    emit(SEPARATOR)


def _hex(conversation, emit):
    emit(_header(conversation, "hex"))
    offsets = [0, 0]  # each node counts its own bytes; every record starts a new line
    for record in conversation.records:
        prefix, start, data = b"\t" if record.node else b"", offsets[record.node], record.data
        # a large record in slices (a multiple of 16 bytes), so that its text is never
        # all in memory at once: about 280 kB of output a slice
        for at in range(0, len(data), _HEX_SLICE):
            emit(_hex_record(prefix, start + at, data[at:at + _HEX_SLICE]))
        offsets[record.node] = start + len(data)
    emit(SEPARATOR)


def _hex_record(prefix, start, data):
    # whole lines from the record's hex and text computed at once (one slice per column,
    # no per-byte work); the last, partial line by _hex_line
    full = len(data) // 16 * 16
    pairs = binascii.hexlify(data[:full], b" ")   # "xx xx ..": 48 characters a line, less one at the end
    text = data[:full].translate(_PRINTABLE)
    head = prefix + b"%08X  "
    lines = [head % ((start + at) & 0xFFFFFFFF) + pairs[at * 3:at * 3 + 23] + b"  " + pairs[at * 3 + 24:at * 3 + 47]
             + b"  " + text[at:at + 8] + b" " + _trim(text[at + 8:at + 16]) + b"\n"
             for at in range(0, full, 16)]
    if full < len(data):
        lines.append(prefix + _hex_line((start + full) & 0xFFFFFFFF, data[full:]))
    return b"".join(lines)


def _trim(text):
    # tshark drops one trailing space of the text column: the separator of a line of exactly
    # 8 bytes, but also a real space that ends a line (a quirk kept on purpose)
    return text[:-1] if text.endswith(b" ") else text


def _hex_line(offset, chunk):
    pairs = chunk[:8].hex(" ")
    if len(chunk) > 8:
        pairs += "  " + chunk[8:].hex(" ")
    text = chunk.translate(_PRINTABLE)
    if len(chunk) >= 8:  # the text column also has a space after its 8th character
        text = text[:8] + b" " + text[8:]
    return b"%08X  %s%s\n" % (offset, pairs.ljust(_HEX_COLUMNS).encode("ascii"), _trim(text))


def _yaml(conversation, emit):
    (addr0, port0), (addr1, port1) = conversation.nodes
    emit(b"peers:\n  - peer: 0\n    host: %s\n    port: %d\n  - peer: 1\n    host: %s\n    port: %d\npackets:\n"
         % (addr0.encode("ascii"), port0, addr1.encode("ascii"), port1))
    for record in conversation.records:
        # tshark: the C double secs + nsecs/1e9 printed "%.9f" (a gap record has 0 and 0)
        stamp = "%.9f" % (record.seconds + record.nanoseconds / 1e9)
        encoded = binascii.b2a_base64(record.data, newline=False)
        lines = b"".join(b"      %s\n" % encoded[at:at + _BASE64_LINE]
                         for at in range(0, len(encoded), _BASE64_LINE))
        emit(b"  - packet: %d\n    peer: %d\n    timestamp: %s\n    data: !!binary |\n%s"
             % (record.frame, record.node, stamp.encode("ascii"), lines))


_WRITERS = {"raw": _raw, "ascii": _ascii, "hex": _hex, "yaml": _yaml}
