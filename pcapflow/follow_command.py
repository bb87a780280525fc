"""`pcapflow follow`: print reassembled TCP conversations as tshark's Follow TCP Stream does.

    pcapflow follow CAPTURE [--stream N] [--format raw|ascii|hex|yaml]

pcapflow.cli hands over to main() here when its first argument is `follow`.
Exit status: 0 done, 1 the capture could not be read or has no stream N,
2 bad usage, 130 interrupted (SIGINT, Ctrl-C)."""
import argparse
import os
import sys

import pcapflow
from pcapflow import follow_format
from pcapflow.exceptions import CaptureError

DESCRIPTION = """\
Print the reassembled data of TCP streams exactly as `tshark -q -z follow,tcp,FORMAT,N`
(Wireshark 4.0) prints it: streams are numbered like tshark's tcp.stream. With --stream N,
stream N alone; without it, every stream of the capture, each one's block after the
other in stream order (0, 1, 2, ...), each block the one tshark prints for that stream.
"""
EPILOG = """\
A capture file named `follow` in the current directory is traced by the plain command
when written `./follow` (`pcapflow ./follow -o DIR`): a first argument `follow` always
means this command."""


def _stream_number(text):
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a stream number (0, 1, 2, ...), not {text!r}")
    return value


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="pcapflow follow", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture", metavar="CAPTURE", help="pcap or pcapng file (- for standard input)")
    parser.add_argument("--stream", type=_stream_number, metavar="N",
                        help="print only stream N (tshark's tcp.stream number); it must exist")
    parser.add_argument("--format", default="raw", choices=follow_format.FORMATS,
                        help="tshark's follow format: raw (hex, one line a record; the default), ascii, hex or "
                             "yaml (base64 data with frame numbers and timestamps)")
    return parser.parse_args(argv)


def main(argv):
    args = parse_arguments(argv)
    capture = sys.stdin.buffer if args.capture == "-" else args.capture
    out = sys.stdout.buffer
    try:
        found = _print(pcapflow.follow(capture), args, out)
        out.flush()
    except (OSError, CaptureError) as error:
        if isinstance(error, BrokenPipeError):
            return _reader_gone()
        print(f"pcapflow follow: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pcapflow follow: interrupted", file=sys.stderr)
        return 130
    if args.stream is not None and found <= args.stream:
        print(f"pcapflow follow: {args.capture} has no stream {args.stream} "
              f"({_streams(found)})", file=sys.stderr)
        return 1
    return 0


def _print(conversations, args, out):
    """Writes the chosen stream(s); returns how many streams were looked at."""
    seen = 0
    for conversation in conversations:
        seen += 1
        if args.stream is None:
            follow_format.write(conversation, args.format, out)
        elif conversation.stream == args.stream:
            follow_format.write(conversation, args.format, out)
            return args.stream + 1  # stream numbers count up from 0 without holes
    return seen


def _streams(count):
    if count == 0:
        return "it has no TCP stream"
    return "it has one stream, 0" if count == 1 else f"its streams are 0 to {count - 1}"


def _reader_gone():
    # the reader of our output went away (`| head`): stop quietly, and point stdout at
    # /dev/null so that the interpreter's final flush does not fail again
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1
