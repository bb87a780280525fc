"""trace_file() and trace_files() for the text formats (json, plist, tree text).

pcapkit's text files hold, for every frame of a flow, the frame as pcapkit's
decoder describes it (``frame.info``: every protocol layer it decoded), and
only pcapkit produces that description. So here pcapkit reads and decodes the
capture frame by frame, exactly as ``pcapkit.extract`` does, and the frames in
which it finds TCP go to a pcapflow.TCP of the requested format, which traces
them and writes them with dictdumper as pcapkit's tracer does.

Before pcapkit reads a capture, libpcap goes through it once in C: that finds
damage (pcapkit would decode a cut frame, or fail, without saying where), tells
which frames a BPF filter accepts, and shows when pcapkit stops reading before
the end (it misreads big-endian pcap files). Each is a CaptureError whose
``index`` holds the flows written up to there.

A KeyboardInterrupt (or SIGTERM in the CLI) while a pipe is read keeps the
whole frames read so far and traces them before it is raised again; while
frames are traced, the SIGINT and SIGTERM handlers run between two frames,
never while one is half-written to its text file.

One deliberate difference from pcapkit: each frame's ``packet`` field holds
the frame's captured bytes. pcapkit 1.4.1 puts the bytes that follow the frame
there (a pcap file's next record; nothing for the last frame and for pcapng).
"""
import io
import os
import stat
import struct
import time

from pcapflow import _core
from pcapflow._inputs import open_compressed
from pcapflow._signals import HeldSignals
from pcapflow.exceptions import CaptureError
from pcapflow.tcp import TCP

__all__ = ["PcapkitMissing", "is_text_format", "capture_tracer"]

#: Seconds between two calls of a progress callback.
PROGRESS_INTERVAL = 0.2


class PcapkitMissing(ImportError):
    """Text formats need pcapkit (PyPI package pypcapkit), which is not installed."""


def is_text_format(format):  # pylint: disable=redefined-builtin
    """Whether pcapflow.TCP writes this format with dictdumper: json, plist, xml, tree, txt, text or a
    format added with TCP.register_dumper(). False for pcap, cap, None and unknown formats."""
    if format is None:
        return False
    try:
        entry = TCP.__output__.get(format)  # get(): the registry is a defaultdict
    except TypeError:  # unhashable: not a format
        return False
    if entry is None:
        return False
    output, ext = entry
    return ext is not None and not getattr(output, "__pcapflow_native__", False)


class _Pcapkit:
    """The parts of pcapkit used here, imported on first use (pcapkit is optional)."""

    def __init__(self):
        try:
            # pylint: disable=import-outside-toplevel
            from pcapkit.foundation.engines.pcap import PCAP
            from pcapkit.foundation.extraction import Extractor
            from pcapkit.toolkit import pcap as pcap_toolkit
            from pcapkit.toolkit import pcapng as pcapng_toolkit
        except ImportError as error:
            raise PcapkitMissing(
                "the text formats (json, plist, tree) describe each frame as pcapkit decodes it, and pcapkit "
                "is not installed: pip install pypcapkit (or use format 'pcap')") from error
        self.extractor = Extractor
        self.pcap_engine = PCAP
        self.pcap_traceflow = pcap_toolkit.tcp_traceflow
        self.pcapng_traceflow = pcapng_toolkit.tcp_traceflow

    def tcp_packet(self, engine, frame):
        """What pcapkit's extractor hands its TCP tracer for this frame (None without TCP)."""
        if isinstance(engine, self.pcap_engine):
            return self.pcap_traceflow(frame, data_link=engine.dlink)
        return self.pcapng_traceflow(frame, nanosecond=frame.nanosecond)


class _MemoryReader(io.BufferedReader):
    """A capture held in memory, as the named, seekable file with peek() that pcapkit reads."""

    def __init__(self, data, name):
        super().__init__(io.BytesIO(data))
        self._name = name

    @property
    def name(self):
        return self._name


class _Source:
    """One capture: a regular file is read where it is, anything else (FIFO, file object) is
    read into memory once, since it is read twice (by libpcap, then by pcapkit)."""

    def __init__(self, fin):
        self.path = self.data = None
        self.interrupted = None  # the KeyboardInterrupt that cut the reading of a pipe short
        if isinstance(fin, (str, os.PathLike)):
            path = os.fspath(fin)
            self.name = path
            compressed = open_compressed(path)
            if compressed is not None:
                # decompressed into memory, as a pipe is; damage is found before tracing
                with compressed:
                    try:
                        data, self.interrupted = _read_until_interrupted(compressed)
                    except Exception as error:  # pylint: disable=broad-exception-caught
                        damaged = CaptureError(f"cannot read the capture: {type(error).__name__}: {error}")
                        damaged.filename, damaged.frame, damaged.offset = path, 1, 0
                        raise damaged from error
            elif stat.S_ISREG(os.stat(path).st_mode):
                self.path = path
                self.size = os.path.getsize(path)
                return
            else:
                with open(path, "rb") as file:
                    data, self.interrupted = _read_until_interrupted(file)
        else:
            self.name = fin.name if hasattr(fin, "name") else repr(fin)
            read = getattr(fin, "read", None)
            data = read() if callable(read) else None
            if not isinstance(data, bytes):
                raise TypeError(f"fin must be a path or a binary file object, not {type(fin).__name__}")
        self.data = data
        self.size = len(data)

    def for_libpcap(self):
        return self.path if self.path is not None else io.BytesIO(self.data)

    def for_pcapkit(self):
        if self.path is not None:
            return open(self.path, "rb")  # pylint: disable=consider-using-with
        return _MemoryReader(self.data, self.name)


def _read_until_interrupted(file):
    """(every byte up to the end of `file`, None), or on a KeyboardInterrupt (the whole pcap
    or pcapng records read up to then, the interrupt)."""
    chunks = []
    try:
        while True:
            chunk = file.read1(1 << 20)
            if not chunk:
                return b"".join(chunks), None
            chunks.append(chunk)
    except KeyboardInterrupt as interrupt:
        data = b"".join(chunks)
        whole = _whole_records(data)
        if not whole:  # not even the file header: nothing to trace
            raise
        return data[:whole], interrupt


def _whole_records(data):
    """How many leading bytes of a pcap or pcapng capture are whole records (or blocks)."""
    if len(data) < 12:
        return 0
    if data[:4] == b"\x0a\x0d\x0d\x0a":  # pcapng: blocks of (type, total length, ..., total length)
        order = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        end = 0
        while end + 8 <= len(data):
            length = struct.unpack_from(order + "I", data, end + 4)[0]
            if length < 12 or end + length > len(data):
                break
            end += length
        return end
    if len(data) < 24:
        return 0
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    end = 24
    while end + 16 <= len(data):
        length = struct.unpack_from(order + "I", data, end + 8)[0]
        if end + 16 + length > len(data):
            break
        end += 16 + length
    return end


def _check_with_libpcap(source, filter):  # pylint: disable=redefined-builtin
    """(frame numbers of the TCP frames the filter accepts, or None without a filter;
    the number of the last TCP frame libpcap read (that the filter accepts), or 0;
    the CaptureError for damage, or None)."""
    accepted = None if filter is None else set()
    last = 0
    try:
        with _core.CaptureReader(source.for_libpcap(), filter) as reader:
            for packet in reader:
                last = packet.index
                if accepted is not None:
                    accepted.add(last)
    except CaptureError as error:
        return accepted, last, error
    return accepted, last, None


def _damage(source, message, frame, offset):
    damage = CaptureError(message)
    damage.filename, damage.frame, damage.offset = source.name, frame, offset
    return damage


def _undecodable(source, frame, offset, error):
    return _damage(source, f"pcapkit cannot read this capture: {type(error).__name__}: {error}", frame, offset)


def _pcapkit_frames(pcapkit, source, reader, first_frame, stop):
    """(frame, what pcapkit's tracer would get or None) for each frame pcapkit reads, up to frame
    `stop` of this capture (not included; None: to the end). pcapkit's failures are CaptureError."""
    try:
        extractor = pcapkit.extractor(fin=reader, nofile=True, auto=False, store=False, extension=False)
    except Exception as error:  # pylint: disable=broad-except
        raise _undecodable(source, first_frame + 1, 0, error) from error
    engine = extractor.engine
    # pcapkit numbers the frames of each capture from 1; a series continues the numbers
    extractor._frnum = first_frame  # pylint: disable=protected-access
    count = 0
    while stop is None or count + 1 < stop:
        try:
            frame = engine.read_frame()
        except (EOFError, StopIteration):
            return
        except Exception as error:  # pylint: disable=broad-except
            raise _undecodable(source, first_frame + count + 1, reader.tell(), error) from error
        count += 1
        try:
            packet = pcapkit.tcp_packet(engine, frame)
        except Exception as error:  # pylint: disable=broad-except
            raise _undecodable(source, first_frame + count, reader.tell(), error) from error
        yield frame, packet


# pylint: disable-next=redefined-builtin,too-many-arguments,too-many-locals
def _trace_capture(pcapkit, tracer, fin, filter, report, first_frame):
    """Trace one capture; returns its counters, as TCP._trace_capture does."""
    source = _Source(fin)
    accepted, last_tcp_frame, damage = _check_with_libpcap(source, filter)
    counters = {"frames": 0, "tcp_frames": 0, "last_frame": first_frame, "bytes": source.size}
    if damage is not None:
        damage.frame += first_frame
        damage.filename = source.name
    if damage is None or damage.frame > first_frame + 1:
        reader = source.for_pcapkit()
        try:
            last_report = time.monotonic()
            stop = None if damage is None else damage.frame - first_frame
            with HeldSignals() as signals:
                for frame, packet in _pcapkit_frames(pcapkit, source, reader, first_frame, stop):
                    counters["frames"] += 1
                    counters["last_frame"] = first_frame + counters["frames"]
                    if packet is not None and (accepted is None or counters["frames"] in accepted):
                        # the frame's own bytes in place of those pcapkit puts there
                        packet.frame.__update__(packet=frame.payload.data)
                        tracer.dump(packet)
                        counters["tcp_frames"] += 1
                    signals.deliver()
                    if report is not None and time.monotonic() - last_report >= PROGRESS_INTERVAL:
                        report(reader.tell(), source.size, counters["frames"], tracer.open_flows)
                        last_report = time.monotonic()
            if damage is None and counters["frames"] < last_tcp_frame:
                # pcapkit saw the end of the file early (it misreads big-endian pcap files, say)
                damage = _damage(source, f"pcapkit stopped reading after {counters['frames']} frames; libpcap reads "
                                 f"TCP frames up to frame {last_tcp_frame}", counters["last_frame"] + 1, reader.tell())
        except CaptureError as error:
            damage = error
        except KeyboardInterrupt as interrupt:  # from a signal handler or the progress callback
            counters["bytes"] = reader.tell()
            interrupt.stats = counters
            raise
        finally:
            reader.close()
    if damage is not None:
        counters["bytes"] = damage.offset
        damage.stats = counters
        raise damage
    if source.interrupted is not None:
        # what was read before the interrupt is traced: now it goes on
        source.interrupted.stats = counters
        raise source.interrupted
    if report is not None:
        report(source.size, source.size, counters["frames"], tracer.open_flows)
    return counters


def capture_tracer(filter, progress):  # pylint: disable=redefined-builtin
    """The function pcapflow.trace_files() calls for each capture of a series in a text format:
    (tracer, fin, report, first_frame) -> counters. Fails here, before any file is made, when
    pcapkit is missing or an argument is wrong."""
    pcapkit = _Pcapkit()
    if filter is not None and not isinstance(filter, str):
        raise TypeError(f"filter must be a str (a BPF expression), not {type(filter).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, not {type(progress).__name__}")

    def trace_capture(tracer, fin, report, first_frame):
        flows_before = len(tracer.submit())
        try:
            counters = _trace_capture(pcapkit, tracer, fin, filter, report, first_frame)
        except (CaptureError, KeyboardInterrupt) as stopped:
            if getattr(stopped, "stats", None) is not None:
                stopped.stats["flows_opened"] = len(tracer.submit()) - flows_before
            raise
        counters["flows_opened"] = len(tracer.submit()) - flows_before
        return counters

    return trace_capture
