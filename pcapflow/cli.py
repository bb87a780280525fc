"""The pcapflow command: trace every TCP flow of captures into one file per flow.

    pcapflow CAPTURE... -o DIR [-f FORMAT] [--filter BPF] [--byteorder little|big]
             [--nanosecond] [--index FILE.jsonl] [--tunnels] [--bidirectional] [--idle-timeout S]
             [--scheduler ADDRESS | --workers N]   (on a Dask cluster: pcapflow.dask)
    pcapflow -i INTERFACE -o DIR [--filter BPF] [-c COUNT] [--duration S] [--idle-timeout S]
             [--index FILE.jsonl] [--snaplen BYTES] [--promisc] [--kernel-buffer-mb MB] ...
    pcapflow follow CAPTURE [--stream N] [--format raw|ascii|hex|yaml]   (pcapflow.follow_command)
    pcapflow split CAPTURE -o DIR --payload [--filter BPF] [--index FILE.jsonl]   (pcapflow.split_command)

Several captures are taken as one series (tcpdump -C/-G rotation): frame
numbers continue and a flow may span files. Exit status: 0 done, 1 a capture
or an output file failed, 2 bad usage, 130 interrupted (SIGINT, Ctrl-C), 143
terminated (SIGTERM); when interrupted or terminated, every frame read is
written first, and the index. An interface (-i) is captured until -c, --duration,
SIGINT or SIGTERM ends it, as tcpdump does: each is a normal end (0)."""
import argparse
import json
import signal
import sys
import threading
import time

from pcapflow import _core, follow_command, split_command
from pcapflow.capture import trace_files, trace_live
from pcapflow.exceptions import CaptureError, FilterError, Terminated

# pcap is written in C; the text formats hold pcapkit's decode of each frame and need pcapkit
FORMATS = ("pcap", "cap", "json", "plist", "xml", "tree", "txt", "text")


#: The largest --buffer-mb: its bytes must fit in a C ssize_t.
MAX_BUFFER_MB = sys.maxsize >> 20
# frame numbers written to --index at a time (about 8 MB of text)
FRAMES_PER_WRITE = 1 << 20


def _buffer_mb(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of MB, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    if value > MAX_BUFFER_MB:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_BUFFER_MB}, not {value}")
    return value


def _positive(kind):
    """An argparse type: a number of kind (int or float) above 0."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {'whole ' if kind is int else ''}number, not {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value
    return parse


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="pcapflow", description="Trace every TCP flow of packet captures into one pcap file per flow.",
        epilog="pcapflow follow CAPTURE [--stream N] [--format raw|ascii|hex|yaml] prints reassembled TCP "
               "streams as tshark's Follow TCP Stream does (pcapflow follow --help). A capture named follow "
               "is traced when written ./follow: a first argument follow always means that command.")
    parser.add_argument("captures", nargs="*", metavar="CAPTURE", help="pcap or pcapng files, read in this order (- for standard input; .gz, .xz, .bz2 "
                             "and .zst are decompressed)")
    live = parser.add_argument_group("capturing on an interface (root or CAP_NET_RAW)")
    live.add_argument("-i", "--interface", metavar="INTERFACE",
                      help="capture on this interface (lo, eth0, any) instead of reading captures, until -c, "
                           "--duration, SIGINT or SIGTERM")
    live.add_argument("-c", "--count", type=_positive(int), metavar="COUNT", help="stop after COUNT frames")
    live.add_argument("--duration", type=_positive(float), metavar="S", help="stop after S seconds")
    live.add_argument("--snaplen", type=_positive(int), default=262144, metavar="BYTES",
                      help="keep at most BYTES of each frame (262144)")
    live.add_argument("--promisc", action="store_true", help="put the interface in promiscuous mode")
    live.add_argument("--kernel-buffer-mb", type=_positive(int), metavar="MB",
                      help="the kernel's buffer for frames not read yet (32 MB; tcpdump's is 2 MB): more rides "
                           "out bursts without drops")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the flow files")
    parser.add_argument("-f", "--format", default="pcap", choices=FORMATS,
                        help="output format (pcap; the text formats need pcapkit and run at its speed)")
    parser.add_argument("--filter", metavar="BPF", help="only frames matching this BPF expression are traced")
    parser.add_argument("--byteorder", choices=("little", "big"), default=sys.byteorder,
                        help=f"byte order of the output files ({sys.byteorder})")
    parser.add_argument("--nanosecond", action="store_true", help="write nanosecond-resolution pcap files")
    parser.add_argument("--index", metavar="FILE.jsonl", help="write one JSON object per flow to this file")
    parser.add_argument("--tunnels", action="store_true",
                        help="open GRE, IP-in-IP, VXLAN and GENEVE tunnels and trace the innermost TCP "
                             "(pcap output only; by default, as in pcapkit, tunnels are not opened)")
    parser.add_argument("--bidirectional", action="store_true",
                        help="one flow per connection, both directions in one file, closed by FINs from both "
                             "sides or an RST (pcap output only; by default, as in pcapkit, one flow per direction)")
    parser.add_argument("--idle-timeout", type=_positive(float), metavar="S",
                        help="close a flow that has had no frame for S seconds (capture time) as if by FIN; "
                             "its next frame opens a new flow (pcap output only; off by default, as in pcapkit)")
    cluster = parser.add_argument_group("on a Dask cluster (pip install 'pcapflow[dask]'; -o on a file system "
                                        "every worker sees at the same path)")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="trace on the Dask cluster of this scheduler (tcp://HOST:8786): one task per capture, "
                              "the same flows and files as on one machine")
    cluster.add_argument("--workers", type=_positive(int), metavar="N",
                         help="trace on a local Dask cluster of N worker processes")
    parser.add_argument("--buffer-mb", type=_buffer_mb, metavar="MB",
                        help="at most this much output held in memory before the largest buffers are written "
                             "(default: an eighth of the memory available, no more than four times the captures)")
    args = parser.parse_args(argv)
    if args.interface is None and not args.captures:
        parser.error("give captures to read, or -i INTERFACE to capture on")
    if args.interface is not None and args.captures:
        parser.error(f"-i captures on {args.interface}: give no capture files with it")
    for option in ("count", "duration", "kernel_buffer_mb"):
        if args.interface is None and getattr(args, option) is not None:
            parser.error(f"--{option.replace('_', '-')} needs -i INTERFACE")
    if args.interface is not None and args.kernel_buffer_mb is not None and args.kernel_buffer_mb > 2047:
        parser.error(f"--kernel-buffer-mb must be at most 2047, not {args.kernel_buffer_mb}")
    if args.interface is not None and args.snaplen > 262144:
        parser.error(f"--snaplen must be at most 262144, not {args.snaplen}")
    text_format = args.format not in ("pcap", "cap")
    if args.interface is not None and text_format:
        parser.error(f"-i writes pcap files: {args.format} holds pcapkit's decode; trace the pcap files afterwards")
    if args.idle_timeout is not None and text_format:
        parser.error(f"--idle-timeout needs format pcap: {args.format} traces pcapkit's way, which closes flows by FIN only")
    if args.tunnels and args.format not in ("pcap", "cap"):
        parser.error(f"--tunnels needs format pcap: {args.format} holds pcapkit's decode, which opens no tunnels")
    if args.bidirectional and args.format not in ("pcap", "cap"):
        parser.error(f"--bidirectional needs format pcap: {args.format} traces pcapkit's packets, which carry no RST")
    _check_cluster_arguments(parser, args)
    return args


def _check_cluster_arguments(parser, args):
    """--scheduler and --workers: what pcapflow.dask distributes, and dask installed."""
    if args.scheduler is None and args.workers is None:
        return
    option = "--scheduler" if args.scheduler is not None else "--workers"
    if args.scheduler is not None and args.workers is not None:
        parser.error("give --scheduler ADDRESS or --workers N, not both")
    refused = [(args.interface is not None, "-i captures on this machine"),
               (args.format not in ("pcap", "cap"), f"-f {args.format} holds pcapkit's decode, made on one machine"),
               (args.format == "cap", "-f cap: the cluster writes .pcap files"),
               (args.bidirectional, "--bidirectional carries a connection's state across files"),
               (args.idle_timeout is not None, "--idle-timeout carries a flow's idle time across files"),
               ("-" in args.captures, "- (standard input) is this machine's alone")]
    for refuse, why in refused:
        if refuse:
            parser.error(f"{option}: {why}; trace without {option}")
    try:
        import distributed  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        parser.error(f"{option} needs Dask: {_dask_hint()}")


def _dask_hint():
    return "pip install 'pcapflow[dask]'"


class ProgressBar:
    """One line on stderr, redrawn: bytes, packets per second, open flows, time left."""

    def __init__(self, stream):
        self.stream = stream
        self.started = time.monotonic()

    def __call__(self, bytes_read, total_bytes, packets, open_flows):
        elapsed = max(time.monotonic() - self.started, 1e-9)
        fraction = bytes_read / total_bytes if total_bytes else 0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0
        self.stream.write(f"\r{bytes_read / 1e6:9.1f}/{total_bytes / 1e6:.1f} MB {fraction:6.1%}  "
                          f"{packets / elapsed:10.0f} packets/s  {open_flows:8d} open flows  ETA {eta:5.0f}s ")
        self.stream.flush()

    def finish(self):
        self.stream.write("\n")


def write_index(path, flows):
    """Writes one JSON object per flow (as json.dumps spells it); returns False (after saying why)
    when the file cannot be written. Frame numbers are written a million at a time from their
    compact form, never all as ints at once: a flow of 10,000,000 frames costs no more memory
    here than its text's chunk."""
    try:
        with open(path, "w", encoding="utf-8") as out:
            for flow in flows:
                # the line json.dumps() writes, its list's items written piecewise
                out.write(json.dumps({"label": flow.label, "fpout": flow.fpout, "index": []})[:-2])
                _write_frames(out, flow)
                out.write("]}\n")
    except OSError as error:
        print(f"pcapflow: cannot write the index: {error}", file=sys.stderr)
        return False
    return True


def _write_frames(out, flow):
    start, first = 0, True
    while start is not None:
        chunk = _core.frame_text(flow, start, FRAMES_PER_WRITE)
        if chunk is None:  # a tuple already
            out.write(", ".join(map(str, flow.index)))
            return
        text, start = chunk
        out.write(text if first else ", " + text)
        first = False


class _StopSignals:
    """The command's SIGINT and SIGTERM handlers while main() runs. The first of them raises
    KeyboardInterrupt (SIGINT) or Terminated (SIGTERM), on which trace_files() writes the
    frames read; later ones are ignored, so that nothing cuts that writing and the index
    short. Python's default would kill the process on SIGTERM and lose the buffered frames.
    A SIGINT handler of the caller's own, and signals ignored (SIG_IGN), are left alone; the
    old handlers are put back at the end; when a signal stopped the run, further ones are
    blocked until the process ends. Only the main thread may set handlers."""

    def __init__(self):
        self.stopping = False
        self.saved = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                current = signal.getsignal(signum)
                if current is signal.default_int_handler or (signum == signal.SIGTERM and current is signal.SIG_DFL):
                    self.saved[signum] = signal.signal(signum, self._stop)
        return self

    def _stop(self, signum, frame):  # pylint: disable=unused-argument
        if self.stopping:
            return
        self.stopping = True
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    def __exit__(self, *exc_info):
        if self.stopping and self.saved:
            # the command is on its way out with 130 or 143: a signal more in
            # its last instants (interpreter shutdown puts the default
            # actions back) must not turn that into death by signal
            signal.pthread_sigmask(signal.SIG_BLOCK, set(self.saved))
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)
        return False


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    # the follow and split commands; a capture named follow or split is ./follow or ./split
    if argv[:1] == ["follow"]:
        return follow_command.main(argv[1:])
    if argv[:1] == ["split"]:
        return split_command.main(argv[1:])
    args = parse_arguments(argv)
    started = time.monotonic()
    stats = {}
    bar = None
    if sys.stderr.isatty():
        bar = ProgressBar(sys.stderr)
    with _StopSignals():
        return _run(args, stats, bar, started)


def _run(args, stats, bar, started):
    try:
        flows = _trace(args, stats, bar)
    except (FilterError, ImportError) as error:  # a filter that does not compile; pcapkit missing
        print(f"pcapflow: {error}", file=sys.stderr)
        return 2
    except CaptureError as error:
        if bar:
            bar.finish()
        print(f"pcapflow: {error}; {_flow_count(error.index, stats)} flows read before it were written",
              file=sys.stderr)
        if args.index:
            write_index(args.index, error.index)
        return 1
    except OSError as error:
        if bar:
            bar.finish()
        # an interface's error says it all; an output file's names the file
        print(f"pcapflow: {error.strerror if error.filename is None and error.strerror else error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        # every frame read is written (trace_files saw to it): say so, and write the index
        return _finish(args, stats, bar, started, getattr(interrupt, "index", ()), interrupt)
    return _finish(args, stats, bar, started, flows, None)


def _finish(args, stats, bar, started, flows, interrupted):
    if bar:
        bar.finish()
    if args.index and not write_index(args.index, flows):
        return 1
    # without --index trace_files makes no Index: the counts come from stats
    files = len({flow.fpout for flow in flows}) if flows is not None else stats.get("files_created", 0)
    skipped = sum(stats.get(key, 0) for key in ("truncated", "fragments", "unsupported_link"))
    # the output budget trace_file chose (pcap output only): more memory than expected is explained here
    budget = f"{stats['buffer_bytes'] / 2**20:.1f} MiB output buffer, " if "buffer_bytes" in stats else ""
    idle = f"{stats['idle_closed']} closed idle, " if args.idle_timeout else ""
    summary = (f"{stats.get('frames', 0)} packets, {stats.get('tcp_frames', 0)} TCP packets, {_flow_count(flows, stats)} flows, "
               f"{idle}{files} files in {args.output}, {skipped} frames skipped, {budget}"
               f"{time.monotonic() - started:.2f} seconds")
    if "received" in stats:
        # the kernel's counters, as tcpdump prints them
        summary += (f"; {stats['received']} packets received by filter, {stats['dropped']} dropped by kernel, "
                    f"{stats['interface_dropped']} dropped by interface")
    if interrupted is None:
        print(f"pcapflow: {summary}", file=sys.stderr)
        return 0
    signum = interrupted.args[0] if isinstance(interrupted, Terminated) else signal.SIGINT
    if args.interface is not None:
        # how a capture on an interface is meant to end, as for tcpdump
        print(f"pcapflow: stopped by {signal.Signals(signum).name}; {summary}", file=sys.stderr)
        return 0
    print(f"pcapflow: interrupted by {signal.Signals(signum).name}; {summary}", file=sys.stderr)
    return 128 + signum


def _flow_count(flows, stats):
    return len(flows) if flows is not None else stats.get("flows_opened", 0)


def _say_capturing(info):
    """What tcpdump says when it starts listening: from here on frames are captured."""
    stamps = "nanosecond" if info["nanosecond"] else "microsecond"
    print(f"pcapflow: capturing on {info['interface']}, link-type {info['linktype']} "
          f"({info['linktype_description']}), snapshot length {info['snaplen']} bytes, {stamps} timestamps",
          file=sys.stderr, flush=True)


def _trace(args, stats, bar):
    # without --index (and pcap output) no frame number and no Index is kept
    index = bool(args.index) or args.format not in ("pcap", "cap", None)
    if args.interface is not None:
        return trace_live(args.interface, args.output, args.format, args.byteorder, args.nanosecond,
                          filter=args.filter, count=args.count, duration=args.duration, snaplen=args.snaplen,
                          promisc=args.promisc, buffer_mb=args.kernel_buffer_mb, idle_timeout=args.idle_timeout,
                          progress=bar, stats=stats, tunnels=args.tunnels, index=index,
                          bidirectional=args.bidirectional, started=_say_capturing)
    if args.scheduler is not None or args.workers is not None:
        return _trace_on_cluster(args, stats, index)
    # '-' is standard input, as tcpdump -r - reads it
    captures = [sys.stdin.buffer if capture == "-" else capture for capture in args.captures]
    return trace_files(captures, args.output, args.format, args.byteorder, args.nanosecond,
                       filter=args.filter, progress=bar, stats=stats,
                       buffer_bytes=args.buffer_mb << 20 if args.buffer_mb else None, tunnels=args.tunnels,
                       bidirectional=args.bidirectional, idle_timeout=args.idle_timeout, index=index)


def _trace_on_cluster(args, stats, index):
    """The captures traced by pcapflow.dask on the scheduler's cluster, or on a local
    cluster of --workers processes (one thread each) made for the run. Without --index
    (index false) the client holds each flow's first and last frame numbers only."""
    # imported here: pcapflow never needs dask unless asked
    import distributed  # pylint: disable=import-outside-toplevel
    from pcapflow import dask as on_dask  # pylint: disable=import-outside-toplevel
    if args.scheduler is not None:
        with distributed.Client(args.scheduler) as client:
            return on_dask.trace_files(args.captures, args.output, None, args.byteorder, args.nanosecond,
                                       filter=args.filter, client=client, stats=stats, tunnels=args.tunnels,
                                       index=index)
    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        return on_dask.trace_files(args.captures, args.output, None, args.byteorder, args.nanosecond,
                                   filter=args.filter, client=client, stats=stats, tunnels=args.tunnels,
                                   index=index)
