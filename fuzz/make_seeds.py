"""Seed corpora for the fuzz harnesses, from real captures.

fuzz_capture gets each capture file whole; fuzz_decode gets each TCP frame
of them (tunnels opened) prefixed with the byte that selects its link type
in the harness, with the high bit that opens tunnels. fuzz_follow gets the
small captures prefixed with 0x01 (its capture mode) and a few segment lists
in its compact encoding (see fuzz/fuzz_follow.c)."""
import pathlib
import shutil
import sys

import pcapflow

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from capture_tools import ACK, FIN, SYN, ethernet, ipv4, ipv6, tcp  # noqa: E402  pylint: disable=wrong-import-position
import pcapng_tools as ng  # noqa: E402  pylint: disable=wrong-import-position

LINK_TYPES = [0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276, 147]  # as in fuzz_decode.c


def main(captures_dir, corpus_dir):
    captures = sorted(p for p in pathlib.Path(captures_dir).rglob("*") if p.suffix in (".pcap", ".pcapng"))
    corpus = pathlib.Path(corpus_dir)
    for name in ("capture", "decode", "writer", "follow"):
        (corpus / name).mkdir(parents=True, exist_ok=True)
    for capture in captures:
        shutil.copy(capture, corpus / "capture" / capture.name)
        if capture.stat().st_size <= 65535:
            (corpus / "follow" / capture.name).write_bytes(b"\x01" + capture.read_bytes())
        try:
            with pcapflow.packets(capture, tunnels=True) as frames:
                selector = bytes([0x80 | LINK_TYPES.index(frames.linktype)]) if frames.linktype in LINK_TYPES else None
                for n, packet in enumerate(frames):
                    if selector is None or n >= 20:
                        break
                    (corpus / "decode" / f"{capture.stem}-{packet.index}").write_bytes(selector + packet.frame["packet"])
        except pcapflow.CaptureError:
            pass  # damaged captures still seed fuzz_capture
    write_pcapng_seeds(corpus / "capture")
    write_follow_seeds(corpus / "follow")
    (corpus / "writer" / "seed").write_bytes(bytes([0, 3, 1, 2, 3, 0x81, 2, 9, 9, 2, 0]))


def write_pcapng_seeds(directory):
    """pcapng shapes libpcap refuses, for the block reader: interfaces of several link types, resolutions
    and offsets, sections of both byte orders, SPB, PB and blocks that are not frames."""
    a, b = "10.0.0.1", "2001:db8::2"
    for order in ("little", "big"):
        blob = (ng.section(order) + ng.interface(1, 65535, order) +
                ng.interface(101, 96, order, tsresol=9, tsoffset=-100) +
                ng.interface(101, 0, order, tsresol=0x80 | 20, tsoffset=2**33) + ng.name_resolution(order) +
                ng.enhanced(0, 1_600_000_000 * 10**6, ethernet(ipv4(a, "10.0.0.2", tcp(1, 2, SYN))), order) +
                ng.enhanced(1, 5 * 10**9 + 1, ipv4(a, "10.0.0.2", tcp(1, 2, ACK)), order, comment="c") +
                ng.enhanced(2, 2**40, ipv6("2001:db8::1", b, tcp(3, 4, FIN)), order) + ng.statistics(0, order) +
                ng.custom(byteorder=order) + ng.simple(ethernet(ipv4("10.0.0.2", a, tcp(2, 1, ACK))), order) +
                ng.packet(1, 7, ipv4(a, "10.0.0.2", tcp(1, 2, FIN)), order))
        (directory / f"crafted-{order}.pcapng").write_bytes(blob)
    sections = b"".join((directory / f"crafted-{order}.pcapng").read_bytes() for order in ("little", "big"))
    (directory / "crafted-sections.pcapng").write_bytes(sections)


def follow_segment(direction, flags, length, *, tuple_=0, variant=0, seq=None, ack=None, extra=b""):
    """One segment of fuzz_follow's segment mode. seq: None (at the cursor) or a delta (-128..127);
    ack: None (all the peer sent) or a delta (-128..127); length: 0..255, or a multiple of 8 up to 2040."""
    wide = length > 255
    op = direction | tuple_ << 1 | variant << 3
    ack_mode = (0 if ack is None else 1) | (4 if wide else 0)
    out = bytes([op, flags, length // 8 if wide else length, ack_mode, (seq or 0) & 0xFF])
    if ack is not None:
        out += bytes([ack & 0xFF])
    return out + extra


def write_follow_seeds(directory):
    """Segment lists for fuzz_follow: a handshake and data, reordering, a hole the peer acknowledges,
    fragments, ICMP quotes, truncation, a sequence wrap, a new connection on the same ports."""
    S, A, P, F = 0x02, 0x10, 0x18, 0x01

    def header(isn0=1000, isn1=5000, v6=0, bounds=0):
        return isn0.to_bytes(4, "big") + isn1.to_bytes(4, "big") + (40000).to_bytes(2, "big") + \
            (80).to_bytes(2, "big") + bytes([v6, bounds])

    handshake = follow_segment(0, S, 0) + follow_segment(1, S | A, 0) + follow_segment(0, A, 0)
    seeds = {
        "talk": header() + handshake + follow_segment(0, P, 100) + follow_segment(1, P, 200) +
        follow_segment(0, F | A, 0) + follow_segment(1, F | A, 0),
        # a 100-byte segment skipped (seq +100), then acknowledged by the peer
        "hole": header() + handshake + follow_segment(0, P, 100, seq=100) + follow_segment(0, P, 50) +
        follow_segment(1, A, 0) + follow_segment(1, P, 10, seq=20) + follow_segment(1, P, 20, seq=-30),
        "reorder": header(bounds=0x1A) + handshake + follow_segment(0, P, 30, seq=60) +
        follow_segment(0, P, 30, seq=-60) + follow_segment(0, P, 60, seq=-90) + follow_segment(0, P, 90, seq=-90),
        "wrap": header(isn0=0xFFFFFF00, isn1=0xFFFFFFF0) + handshake + follow_segment(0, P, 200) +
        follow_segment(1, P, 100) + follow_segment(0, P, 200),
        "fragments4": header() + handshake + follow_segment(0, P, 1200, variant=4, extra=bytes([0x65, 3])) +
        follow_segment(1, P, 300, variant=4, extra=bytes([0x22, 1])),
        "fragments6": header(v6=0xF) + handshake + follow_segment(0, P, 1600, variant=4, extra=bytes([0x47, 2])) +
        follow_segment(1, P, 200, variant=4, extra=bytes([0x01, 0])),
        "quote": header() + follow_segment(0, S, 0, variant=5, extra=b"\x14") + handshake +
        follow_segment(1, P, 50, variant=6, extra=b"\x50") + follow_segment(1, P, 50) + follow_segment(0, A, 0),
        "reuse": header(bounds=0x09) + handshake + follow_segment(0, P, 40, variant=7) + follow_segment(0, F | A, 0) +
        bytes([0 | 3 << 6, S, 0, 0]) + (77777).to_bytes(4, "big") + follow_segment(1, S | A, 0) +
        follow_segment(0, P, 40, tuple_=1) + follow_segment(1, P, 40, tuple_=1, variant=3),
    }
    for name, blob in seeds.items():
        (directory / f"segments-{name}").write_bytes(b"\0" + blob)


if __name__ == "__main__":
    main(*sys.argv[1:3])
