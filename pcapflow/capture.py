"""Whole captures traced in C: libpcap reads, the C core decodes, traces and
writes; Python only sees the result."""
import os
import sys

from pcapflow import _core, _inputs
from pcapflow._signals import HeldSignals
from pcapflow.exceptions import CaptureError
from pcapflow.tcp import TCP

__all__ = ["trace_file", "trace_files", "trace_live", "packets"]

#: trace_live()'s kernel buffer when none is given, in MB. bench/bench_live.py: with
#: libpcap's 2 MB, pcapflow -i dropped frames from about 200,000 frames/s on a two-core
#: machine where tcpdump -w did not; with 32 MB neither did up to the 234,000 the load
#: generator made.
KERNEL_BUFFER_MB = 32


def trace_file(fin, fout=None, format=None, byteorder=sys.byteorder, nanosecond=False, *,  # pylint: disable=redefined-builtin
               filter=None, progress=None, stats=None, buffer_bytes=None, tunnels=False, index=True,
               bidirectional=False, idle_timeout=None):
    """Trace every TCP flow of a capture (pcap or pcapng; a path or a binary file object).

    A path ending in .gz, .xz, .bz2 or .zst is decompressed as it is read (.zst needs
    the zstandard package before Python 3.14). A file object is read from its position:
    a file, pipe or socket opened by ``io`` through its descriptor, anything else
    (``gzip.open()``, ``BytesIO``, any object with ``read(size)``) through ``read1()``
    or ``read()``, a chunk at a time. An exception read() raises ends the capture as
    damage does (a CaptureError caused by it; a KeyboardInterrupt stays one).

    Returns the tuple of Index that pcapkit.extract(fin, trace=True, tcp=True) gives in
    ``.trace.tcp``: open flows first, then flows closed by FIN. With format 'pcap' (the
    default) each flow's frames go to "{fout}/{label}.pcap"; an unknown format writes no files.
    The text formats ('json', 'plist', 'tree', ...) need pcapkit, which decodes each frame for
    the text (see pcapflow.text_capture).
    ``filter`` is a BPF expression (frames it rejects still count in frame numbers);
    ``progress(bytes_read, total_bytes, packets, open_flows)`` is called every so often;
    ``stats``, a dict, receives the counters (frames, tcp_frames, truncated, ...), the output
    budget used (buffer_bytes) and how often files were created, written and reopened.
    The output buffered in memory is bounded by a budget: an eighth of the memory available,
    no more than four times the capture, at most ``buffer_bytes`` when given (more means fewer writes
    when very many flows are open at once).
    ``tunnels=True`` opens GRE, IP-in-IP, VXLAN and GENEVE tunnels and traces the innermost
    TCP, keyed by the innermost addresses; by default, as in pcapkit, only TCP right after
    the first IP header is traced. The text formats are pcapkit's decode and cannot open them.
    ``index=False`` keeps no frame numbers and makes no Index: it returns None (``stats``
    has the counts; ``exc.index`` is None too), and memory grows with the flows by the C
    tracer's record alone, not with the packets. Otherwise each frame number costs a byte
    or two until an Index's ``index`` is first read.
    A damaged capture raises CaptureError after writing every flow read before the damage;
    ``exc.index`` holds those flows. So does a KeyboardInterrupt (Ctrl-C, or raised by
    ``progress``), which also stops the reading of a pipe that delivers nothing: every
    frame read before it is in its file, and the interrupt is raised again with ``index``
    and ``stats`` set.
    ``bidirectional=True`` traces one flow per connection (see pcapflow.TCP): both directions'
    frames in one file, closed by FINs from both sides or an RST; format 'pcap' or no files.
    ``idle_timeout`` (seconds, off by default as pcapkit has none) closes a flow that has had no
    frame for that long, by the capture's timestamps, as if by FIN: its next frame opens a new
    flow (labelled with that frame's time). ``stats['idle_closed']`` counts them."""
    return trace_files([fin], fout, format, byteorder, nanosecond, filter=filter, progress=progress, stats=stats,
                       buffer_bytes=buffer_bytes, tunnels=tunnels, index=index, bidirectional=bidirectional,
                       idle_timeout=idle_timeout)


def trace_files(fins, fout=None, format=None, byteorder=sys.byteorder, nanosecond=False, *,  # pylint: disable=redefined-builtin
                filter=None, progress=None, stats=None, buffer_bytes=None, tunnels=False, index=True,
                bidirectional=False, idle_timeout=None):
    """trace_file() over several captures taken as one (a rotated tcpdump -C/-G series,
    say): frame numbers continue from one file to the next and flows span files."""
    if isinstance(fins, (str, bytes)):
        raise TypeError("fins must be a list of captures; use trace_file() for one")
    fins = list(fins)
    # imported here because it imports this module
    from pcapflow import text_capture  # pylint: disable=import-outside-toplevel
    if text_capture.is_text_format(format):
        _refuse_for_text(format, tunnels=tunnels, bidirectional=bidirectional, idle_timeout=idle_timeout)
        # pcapkit decodes each frame for the text, pcapflow traces and writes
        trace_capture = text_capture.capture_tracer(filter, progress)
    else:
        def trace_capture(tracer, fin, report, first_frame):
            return tracer._trace_capture(fin, filter, report, first_frame, idle_timeout, index)  # pylint: disable=protected-access
    sizes = [_size(fin) for fin in fins]
    budget = _core.output_budget(sum(sizes) if all(sizes) else 0, buffer_bytes)  # 0: a size is unknown
    tracer = TCP(fout, format, byteorder, nanosecond, buffer_bytes=budget, tunnels=tunnels, frame_numbers=index,
                 bidirectional=bidirectional)
    # progress counts bytes and packets over the whole series
    total_bytes = sum(sizes)

    def trace_all(totals):
        last_frame = 0
        for fin in fins:
            report = None
            if progress is not None:
                done_bytes, done_packets = totals.get("bytes", 0), totals.get("frames", 0)

                def report(read, total, packets, open_flows, done_bytes=done_bytes, done_packets=done_packets):
                    progress(done_bytes + read, total_bytes or total, done_packets + packets, open_flows)

            counters = trace_capture(tracer, fin, report, last_frame)
            last_frame = counters["last_frame"]
            _add(totals, counters)

    return _traced(tracer, trace_all, index, stats)


def trace_live(interface, fout=None, format=None, byteorder=sys.byteorder, nanosecond=False, *,  # pylint: disable=redefined-builtin
               filter=None, count=None, duration=None, snaplen=262144, promisc=False, buffer_mb=None,
               idle_timeout=None, progress=None, stats=None, tunnels=False, index=True, bidirectional=False,
               started=None):
    """Trace the TCP flows of an interface as traffic flows, as trace_file() traces a capture.

    Captures on ``interface`` (``"lo"``, ``"eth0"``, ``"any"``; root or CAP_NET_RAW) until
    ``count`` frames were captured, ``duration`` seconds have passed, or it is stopped (a
    KeyboardInterrupt or a signal handler's exception: within 0.1 s, even on a link without
    traffic). Every flow's frames are then in its file, and it returns the tuple of Index
    as trace_file() does; a KeyboardInterrupt is raised again with ``index`` and ``stats``
    set, as trace_file() does. A flow closed by FIN gets its file within milliseconds.

    ``filter`` is a BPF expression run in the kernel: frames it rejects are neither copied
    nor numbered, as in a file ``tcpdump -w`` writes with the same filter. ``snaplen``
    bytes of each frame are kept, ``promisc`` puts the interface in promiscuous mode,
    ``buffer_mb`` sizes the kernel's buffer for frames not read yet (32 MB by default, where
    libpcap and tcpdump take 2 MB: making a file per flow comes in bursts, which it rides
    out). Timestamps are in nanoseconds where the kernel gives them. ``idle_timeout``
    (seconds) closes a flow that has had no frame for that long as if by FIN; its next frame
    opens a new flow: the open flows stay bounded on a link that runs for days. With ``index=False`` as well, a flow that closes is forgotten once written
    (no Index is kept) and so are the labels of flows that began over a minute ago, so memory
    holds the open flows alone; with an index, each flow costs about 100 bytes until the end. ``stats`` receives trace_file()'s counters and the kernel's:
    ``received`` (frames that passed the filter), ``dropped`` (lost for want of room in the
    buffer) and ``interface_dropped``, and ``tracer_bytes``, the memory the tracer holds for
    its flows (output buffers aside). ``progress(bytes, 0, packets, open_flows)`` is
    called every so often; ``started(info)`` once the interface is open, before the first frame
    (info: interface, linktype and linktype_description as libpcap names them, snaplen,
    nanosecond), as tcpdump says "listening on". ``tunnels``, ``index`` and ``bidirectional``
    are trace_file()'s.

    Raises OSError for an interface that cannot be captured on: ENODEV (no such interface),
    PermissionError (not root, no CAP_NET_RAW), ENETDOWN (the interface is down);
    pcapflow.FilterError for a filter that does not compile; CaptureError (with ``index``)
    when the interface goes away while it is captured. Formats are 'pcap' or none: trace the
    written files again for the text formats."""
    # imported here because it imports this module
    from pcapflow import text_capture  # pylint: disable=import-outside-toplevel
    if text_capture.is_text_format(format):
        raise ValueError(f"format {format!r} cannot be written while capturing: it holds pcapkit's decode of "
                         "each frame; capture to pcap and trace those files again with that format")
    if buffer_mb is not None and (isinstance(buffer_mb, bool) or not isinstance(buffer_mb, int)):
        raise TypeError(f"buffer_mb must be an int, not {type(buffer_mb).__name__}")
    if buffer_mb is not None and not 1 <= buffer_mb <= 2047:
        raise ValueError(f"buffer_mb must be between 1 and 2047, not {buffer_mb}")
    tracer = TCP(fout, format, byteorder, nanosecond, buffer_bytes=_core.output_budget(0, None), tunnels=tunnels,
                 frame_numbers=index, bidirectional=bidirectional)

    def capture(totals):
        _add(totals, tracer._trace_live(  # pylint: disable=protected-access
            interface, filter, progress, count, duration, snaplen, promisc,
            (buffer_mb or KERNEL_BUFFER_MB) << 20, idle_timeout, started, index))

    return _traced(tracer, capture, index, stats)


def _refuse_for_text(format, **options):  # pylint: disable=redefined-builtin
    """The options pcapkit's text formats cannot honour raise ValueError."""
    reasons = {"tunnels": "pcapkit does not open tunnels",
               "bidirectional": "it traces pcapkit's packets, which carry no RST flag",
               "idle_timeout": "pcapkit closes flows by FIN only"}
    for name, value in options.items():
        if value:
            raise ValueError(f"{name}={value!r} needs format 'pcap': the {format!r} format holds pcapkit's "
                             f"decode of each frame, and {reasons[name]}")


def _traced(tracer, trace, index, stats):
    """Runs trace(totals) on the tracer, then returns its Index objects (None when index is
    false). When the capture is damaged or the user stops it, every frame read is written
    first and the exception carries ``index`` (and ``stats``)."""
    totals = {}
    try:
        trace(totals)
        flows = _submit(tracer, index)
        tracer.close()
        return flows
    except CaptureError as error:
        _add(totals, error.stats or {})
        try:
            error.index = _submit(tracer, index)
        except OSError:
            tracer._abandon()  # pylint: disable=protected-access
            raise
        raise
    except KeyboardInterrupt as interrupt:
        # the user stopped it (exceptions.Terminated for SIGTERM in the CLI): what
        # was read is written, as tcpdump keeps what it captured; a second Ctrl-C
        # meanwhile waits for it (one that comes before the signals are held, a few
        # bytecodes, still cuts it short)
        with HeldSignals(deliver_on_exit=False) as held:
            _add(totals, getattr(interrupt, "stats", None) or {})
            try:
                interrupt.index = _submit(tracer, index)
                tracer.close()
            except OSError:
                tracer._abandon()  # pylint: disable=protected-access
                raise
        try:
            held.deliver()
        except KeyboardInterrupt as again:
            again.index, again.stats = interrupt.index, getattr(interrupt, "stats", None)
            raise
        raise
    except BaseException:
        # a write failed: what could be written was; the rest is dropped so
        # that collecting the tracer does not try again
        tracer._abandon()  # pylint: disable=protected-access
        raise
    finally:
        if stats is not None:
            stats.update(totals, **_core._output_stats(tracer))  # pylint: disable=protected-access


def _submit(tracer, index):
    """The tracer's Index objects, or None (after writing every frame) when none are wanted."""
    if index:
        return tracer.submit()
    tracer.close()
    return None


def _size(fin):
    """The capture's size in bytes, 0 when unknown: a file object, a pipe, or a
    compressed file (whose size on disk would cut the output budget short)."""
    try:
        return 0 if _inputs.is_compressed(os.fspath(fin)) else os.path.getsize(fin)
    except (TypeError, OSError):
        return 0


def _add(totals, counters):
    for key, value in counters.items():
        totals[key] = value if key == "last_frame" else totals.get(key, 0) + value


def packets(fin, *, filter=None, tunnels=False):  # pylint: disable=redefined-builtin
    """The TCP frames of a capture as pcapflow Packets, for per-packet logic in Python.

    Each packet's frame is a dict with the frame's ``packet`` bytes, its
    ``frame_info`` (ts_sec, ts_usec in nanoseconds, incl_len, orig_len) and the
    exact ``time_epoch`` (a Decimal); ``TCP.dump()`` writes them with the right
    timestamps. Frame numbers count every frame of the capture. ``tunnels=True``
    opens tunnels as trace_file() does. The iterator is also a context manager
    that closes the capture."""
    return _core.CaptureReader(fin, filter, tunnels)
