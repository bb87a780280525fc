"""pcapflow split: one file per direction of each TCP conversation.

    pcapflow split CAPTURE -o DIR --payload [--filter BPF] [--index FILE.jsonl]

With --payload each direction's reassembled bytes (Follow TCP Stream, as
tshark gives them) go to DIR/{stream}-{src}.{port}-{dst}.{port}, as tcpflow
writes them, and one JSON line per conversation to DIR/index.jsonl (or
--index): its nodes, frames, times, and per direction the file, bytes and
the gaps (offset in the file, length) the capture lacks, which are left out
of the file, never filled. Without --payload it is the pcap split: the same
as `pcapflow CAPTURE -o DIR`. Exit status: 0 done, 1 a capture or an output
file failed, 2 bad usage, 130 interrupted (what was read is written)."""
import argparse
import os
import sys
import time

from pcapflow.exceptions import CaptureError, FilterError
from pcapflow.payload import split_payload


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="pcapflow split", description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", metavar="CAPTURE", help="a pcap or pcapng file (- for standard input)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the files")
    parser.add_argument("--payload", action="store_true",
                        help="write each direction's reassembled bytes (else one pcap file per flow)")
    parser.add_argument("--filter", metavar="BPF", help="only frames matching this BPF expression")
    parser.add_argument("--index", metavar="FILE.jsonl", help="the index's path (default DIR/index.jsonl)")
    return parser.parse_args(argv)


def main(argv):
    args = parse_arguments(argv)
    if not args.payload:
        from pcapflow import cli  # pylint: disable=import-outside-toplevel
        pcap_args = [args.capture, "-o", args.output] + (["--filter", args.filter] if args.filter else [])
        return cli.main(pcap_args + (["--index", args.index] if args.index else []))
    started = time.monotonic()
    index = args.index or os.path.join(args.output, "index.jsonl")
    capture = sys.stdin.buffer if args.capture == "-" else args.capture
    try:
        entries = split_payload(capture, args.output, filter=args.filter, index=index)
    except FilterError as error:
        print(f"pcapflow split: {error}", file=sys.stderr)
        return 2
    except (CaptureError, OSError) as error:
        print(f"pcapflow split: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pcapflow split: interrupted; the bytes read so far are written", file=sys.stderr)
        return 130
    files = sum(1 for e in entries for d in e["directions"] if d["file"])
    size = sum(d["bytes"] for e in entries for d in e["directions"])
    gaps = sum(len(d["gaps"]) for e in entries for d in e["directions"])
    print(f"pcapflow split: {len(entries)} conversations, {files} files, {size} bytes, {gaps} gaps in {args.output}, "
          f"index {index}, {time.monotonic() - started:.2f} seconds", file=sys.stderr)
    return 0
