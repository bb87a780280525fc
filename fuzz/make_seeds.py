"""Seed corpora for the fuzz harnesses, from real captures.

fuzz_capture gets each capture file whole; fuzz_decode gets each TCP frame
of them (tunnels opened) prefixed with the byte that selects its link type
in the harness, with the high bit that opens tunnels."""
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
    for name in ("capture", "decode", "writer"):
        (corpus / name).mkdir(parents=True, exist_ok=True)
    for capture in captures:
        shutil.copy(capture, corpus / "capture" / capture.name)
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


if __name__ == "__main__":
    main(*sys.argv[1:3])
