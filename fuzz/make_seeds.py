"""Seed corpora for the fuzz harnesses, from real captures.

fuzz_capture gets each capture file whole; fuzz_decode gets each TCP frame
of them (tunnels opened) prefixed with the byte that selects its link type
in the harness, with the high bit that opens tunnels."""
import pathlib
import shutil
import sys

import pcapflow

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
    (corpus / "writer" / "seed").write_bytes(bytes([0, 3, 1, 2, 3, 0x81, 2, 9, 9, 2, 0]))


if __name__ == "__main__":
    main(*sys.argv[1:3])
