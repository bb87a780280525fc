"""pcapflow on a Dask cluster: a series of captures traced one file (or one run of
files) per task, each writing its flows' files where one machine would, the flows that
cross a file boundary stitched as the results arrive, with the same Index and the same
files as pcapflow.trace_files() on one machine.

Needs ``pip install 'pcapflow[dask]'`` (dask.distributed, and dask.dataframe with
pyarrow for flows()); importing pcapflow does not import this module. The output
directory must be on a file system that the client and every worker see at the
same path (NFS, CephFS, Lustre...). docs/dask.rst describes the design."""
import array
import bisect
import errno
import gc
import heapq
import itertools
import mmap
import os
import pickle
import shutil
import stat
import struct
import sys
import uuid

from pcapflow import _core
from pcapflow._core import Index
from pcapflow._core import _frame_steps, _index_from_steps, _indexes  # pylint: disable=no-name-in-module
from pcapflow.exceptions import CaptureError
from pcapflow.tcp import TCP

__all__ = ["trace_files", "flows", "INSTALL_HINT"]

#: What to run when dask is missing; the CLI prints it too.
INSTALL_HINT = "pip install 'pcapflow[dask]'"

# the pcap file header every flow file starts with; a continuation's records follow it
PCAP_HEADER_BYTES = 24
# a run's per-task directories live under this name in the output directory, removed at the end
RUN_PREFIX = ".pcapflow-run-"
# the appends a task's result asks for are split among tasks of this many flows at least
# (at most one per worker): side by side at the end of the run, few on a large cluster
FLOWS_PER_APPEND = 256
# the append tasks' journals, in the run's directory (the tasks' own directories are beside)
APPENDS = "appends"
# the columns of flows(), in order
COLUMNS = ("label", "src", "srcport", "dst", "dstport", "first", "last", "first_frame", "packets", "bytes",
           "closed", "fpout")


def _distributed():
    try:
        import distributed  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise ImportError(f"pcapflow.dask needs dask.distributed: {INSTALL_HINT}") from error
    return distributed


def trace_files(fins, fout, format=None, byteorder=sys.byteorder, nanosecond=False, *,  # pylint: disable=redefined-builtin
                filter=None, client=None, partitions=None, stats=None, tunnels=False, index=True,
                bidirectional=False, idle_timeout=None):
    """pcapflow.trace_files() on a Dask cluster: the same tuple of Index, the same files.

    Each task traces one capture (or, with ``partitions=N``, one of N runs of consecutive
    captures) on one core, writing each flow's file into ``fout`` under the name one
    machine gives it wherever it can; the client stitches the flows that cross a file
    boundary as the results arrive (a worker appends their pieces) and names the flows of
    labels more than one task met (docs/dask.rst). ``fins`` are
    paths (relative ones are taken from the client's working directory); ``fout`` must be
    on a file system that the client and every worker see at the same path. ``client`` is a
    ``distributed.Client`` (the current one when None). ``tunnels=True`` is honoured;
    ``bidirectional`` and ``idle_timeout`` carry a flow's state across files and raise
    ValueError, as do formats other than pcap. A damaged capture raises the CaptureError
    one machine raises (frame numbers of the series, ``index`` the flows read before the
    damage, whose files are complete); an OSError on a worker comes back as that OSError.
    ``stats``, a dict, receives the summed counters and ``stitched_flows``, the flows
    that continued from one task's files into the next. ``index=False`` returns None, as on
    one machine, and the client then holds only the flows still open, not those done: the
    way to trace a series of billions of frames."""
    made, _rows = _run(fins, fout, format, byteorder, nanosecond, filter=filter, client=client,
                       partitions=partitions, stats=stats, tunnels=tunnels, bidirectional=bidirectional,
                       idle_timeout=idle_timeout, summaries=False, index=index)
    return made


def flows(fins, fout, format=None, byteorder=sys.byteorder, nanosecond=False, *,  # pylint: disable=redefined-builtin
          filter=None, client=None, partitions=None, tunnels=False):
    """Traces the series as trace_files() does (the files are written to ``fout``) and
    returns a dask.dataframe with one row per flow: label, src, dst (str), srcport,
    dstport, first and last (the first and last frames' times, datetime64[ns, UTC], at
    the output files' resolution), first_frame (its number in the series), packets,
    bytes (the frames' original lengths summed), closed (ended by a FIN) and fpout.
    Partition i holds the flows that began in task i's captures, in frame order."""
    _distributed()
    import dask.dataframe as dd  # pylint: disable=import-outside-toplevel
    _index, rows = _run(fins, fout, format, byteorder, nanosecond, filter=filter, client=client,
                        partitions=partitions, stats=None, tunnels=tunnels, bidirectional=False, idle_timeout=None,
                        summaries=True, index=False)
    return dd.from_map(_frame, rows, meta=_frame([]), enforce_metadata=False)


def _frame(rows):
    """A pandas DataFrame of flows() rows (one partition)."""
    import pandas as pd  # pylint: disable=import-outside-toplevel
    columns = list(zip(*rows)) if rows else [()] * len(COLUMNS)
    data = dict(zip(COLUMNS, columns))
    return pd.DataFrame({
        "label": pd.Series(data["label"], dtype=object),
        "src": pd.Series(data["src"], dtype=object),
        "srcport": pd.Series(data["srcport"], dtype="int32"),
        "dst": pd.Series(data["dst"], dtype=object),
        "dstport": pd.Series(data["dstport"], dtype="int32"),
        "first": pd.to_datetime(pd.Series(data["first"], dtype="int64"), unit="ns", utc=True),
        "last": pd.to_datetime(pd.Series(data["last"], dtype="int64"), unit="ns", utc=True),
        "first_frame": pd.Series(data["first_frame"], dtype="int64"),
        "packets": pd.Series(data["packets"], dtype="int64"),
        "bytes": pd.Series(data["bytes"], dtype="int64"),
        "closed": pd.Series(data["closed"], dtype=bool),
        "fpout": pd.Series(data["fpout"], dtype=object),
    })


# ---------------------------------------------------------------------------
# The client side
# ---------------------------------------------------------------------------

def _check_arguments(fins, fout, format, tunnels, bidirectional, idle_timeout):  # pylint: disable=redefined-builtin
    if isinstance(fins, (str, bytes)):
        raise TypeError("fins must be a list of captures; use a list of one for one")
    fins = list(fins)
    for fin in fins:
        if not isinstance(fin, (str, bytes, os.PathLike)):
            raise TypeError(f"pcapflow.dask reads captures by path (a worker opens them), not {type(fin).__name__}")
        if os.fsdecode(fin) in ("-", "/dev/stdin"):
            raise ValueError("pcapflow.dask reads captures by path: standard input is the client's alone")
    if fout is None:
        raise ValueError("fout=None: pcapflow.dask needs an output directory that the client and every worker see")
    if format not in (None, "pcap"):
        raise ValueError(f"format={format!r}: pcapflow.dask writes pcap only (the text formats decode each frame "
                         "with pcapkit on one machine); use pcapflow.trace_files")
    if bidirectional:
        raise ValueError("bidirectional=True: a connection's FINs may fall in different files, a state pcapflow.dask "
                         "does not carry across tasks; use pcapflow.trace_files")
    if idle_timeout is not None:
        raise ValueError("idle_timeout: a flow's idle time runs across files, which pcapflow.dask does not carry "
                         "across tasks; use pcapflow.trace_files")
    if not isinstance(tunnels, bool):
        raise TypeError(f"tunnels must be True or False, not {type(tunnels).__name__}")
    return fins


def _groups(count, partitions):
    """[start, stop) of each task's run of captures: ``partitions`` runs as even as can be."""
    if partitions is None:
        partitions = count
    if isinstance(partitions, bool) or not isinstance(partitions, int):
        raise TypeError(f"partitions must be an int or None, not {type(partitions).__name__}")
    if not 1 <= partitions <= max(count, 1):
        raise ValueError(f"partitions must be between 1 and the number of captures ({count}), not {partitions}")
    bounds = [count * k // partitions for k in range(partitions + 1)]
    return list(zip(bounds, bounds[1:]))


def _run(fins, fout, format, byteorder, nanosecond, *, filter, client, partitions, stats, tunnels,  # pylint: disable=redefined-builtin
         bidirectional, idle_timeout, summaries, index):
    fins = _check_arguments(fins, fout, format, tunnels, bidirectional, idle_timeout)
    if byteorder not in ("little", "big"):
        raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
    groups = _groups(len(fins), partitions)
    distributed = _distributed()
    if client is None:
        try:
            client = distributed.default_client()
        except ValueError:
            raise ValueError("no Dask client: pass client=distributed.Client(ADDRESS), or make one first") from None
    root = os.fsdecode(os.fspath(fout))
    TCP.make_fout(root, "pcap")  # as one machine: created, or FileExists when a file
    if not fins:
        if stats is not None:
            stats.update(_stitch_stats({}, 0))
        return (() if index else None), []
    absolute = os.path.abspath(root)  # the workers' working directories are their own
    run_dir = os.path.join(absolute, RUN_PREFIX + uuid.uuid4().hex)
    os.mkdir(run_dir)
    os.mkdir(f"{run_dir}/{APPENDS}")
    # workers start in their own directories: they are given absolute paths, and the
    # names one machine would report are put back on the client
    paths = [os.path.abspath(os.fsdecode(fin)) for fin in fins]
    prefix = f"pcapflow-{os.path.basename(run_dir)}-"  # every task's key starts with it
    futures = [client.submit(_trace_part, run_dir, number, absolute, paths[start:stop], filter, byteorder,
                             bool(nanosecond), tunnels, summaries, bool(index), key=f"{prefix}trace-{number}",
                             pure=False, priority=len(groups) - number)
               for number, (start, stop) in enumerate(groups)]
    stitch = _Stitch(root, absolute, run_dir, client, prefix, keep=index or summaries, summaries=summaries)
    # the cyclic garbage collector paused: the stitch makes a few objects per flow, none in
    # a cycle, and the collections they set off took half of its time
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _stitched(stitch, futures, prefix, groups, fins, index, stats)
    finally:
        if collecting:
            gc.enable()


def _stitched(stitch, futures, prefix, groups, fins, index, stats):
    client = stitch.client
    try:
        try:
            stitch.walk(futures)
        finally:
            # after an error, the tasks of later captures are of no use; one already running
            # goes on (Dask cannot stop a thread) and writes its files, which are removed
            # once none does (the append tasks' keys have the prefix too)
            client.cancel([future for future in futures + stitch.placed if future is not None])
            if stitch.failed or stitch.error is not None:
                _wait_for_tasks(client, prefix)
            stitch.remove_other_claims()
        stitch.resolve()
    finally:
        shutil.rmtree(stitch.run_dir, ignore_errors=True)
    made, rows = stitch.index(index), stitch.rows(len(groups))
    stitch_stats = _stitch_stats(stitch.totals, stitch.stitched, stitch.appended)
    stitch_stats["files_created"] = stitch.flow_count  # one per flow: a stitched flow's pieces are one file
    if stats is not None:
        stats.update(stitch_stats)
    if stitch.error is not None:
        raise _capture_error(stitch.error, groups, fins, made)
    return made, rows


def _capture_error(error, groups, fins, made):
    """The CaptureError one machine raises for the damage a task met."""
    (message, position, frame, byte_offset, error_stats), number, task_offset, continued_here = error
    start = groups[number][0]
    exc = CaptureError(message)
    # the name as one machine reports it: the path as the caller gave it
    exc.filename = fins[start + position] if isinstance(fins[start + position], str) \
        else os.fsdecode(fins[start + position])
    exc.frame = None if frame is None else frame + task_offset
    exc.offset = byte_offset
    if error_stats is not None:
        # the damaged capture's own counters, as one machine gives them: its frame
        # numbers in the series, and a flow it continued from an earlier task not opened
        error_stats = dict(error_stats)
        if "last_frame" in error_stats:
            error_stats["last_frame"] += task_offset
        if position == 0 and "flows_opened" in error_stats:
            error_stats["flows_opened"] -= continued_here
    exc.stats = error_stats
    exc.index = made
    return exc


def _running(dask_worker, prefix):
    """The keys starting with prefix that this worker's threads are running (cancelled ones too)."""
    return [str(task.key) for task in dask_worker.state.executing if str(task.key).startswith(prefix)]


def _wait_for_tasks(client, prefix, timeout=3600.0):
    import time  # pylint: disable=import-outside-toplevel
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = client.run(_running, prefix=prefix, on_error="ignore")
        except Exception:  # pylint: disable=broad-except
            return  # the cluster is gone: nothing of it runs
        if not any(running.values()):
            return
        time.sleep(0.05)


class _Flow:
    """A flow of the series while it is stitched: where its file is, and what the Index
    and flows() need of its pieces (one per task it has frames in)."""
    __slots__ = ("label", "name", "where", "part", "first", "frames", "closed", "packets", "first_ns", "last_ns",
                 "bytes", "size")

    def __init__(self, label, name, where, part, first, packets, size):
        self.label, self.name, self.where, self.part, self.first = label, name, where, part, first
        self.frames = []  # its pieces' frame numbers (first, last, count, steps), when an Index is made
        self.closed = False
        self.packets, self.bytes = packets, 0
        self.size = size  # its file's length once every piece so far is appended
        self.first_ns = self.last_ns = None

    @property
    def path(self):
        """Its file, as traced: in the output directory or its task's own."""
        return f"{self.where}/{self.name}"


class _Part:
    """What the client keeps of a task's pieces still open at its end, for those kept as
    numbers (see _Stitch._take): their labels, names, first frames, frame counts and files'
    lengths, and their Index when one is made."""
    __slots__ = ("directory", "labels", "names", "elsewhere", "firsts", "counts", "sizes", "offset", "made")

    def __init__(self, directory, labels, names, elsewhere, firsts, counts, sizes, offset, made):
        self.directory, self.labels, self.names, self.elsewhere = directory, labels, names, elsewhere
        self.firsts, self.counts, self.sizes, self.offset, self.made = firsts, counts, sizes, offset, made


# an open piece kept as a number: its task's number above these bits, its position below
_POSITION_BITS = 32
_POSITION_MASK = (1 << _POSITION_BITS) - 1


def _flow_index(fpout, flow):
    """A flow's Index from its pieces' frame numbers (first, last, count, steps), joined
    as the tracer keeps them: a piece's steps, then the step from its last frame to the
    next piece's first, and so on."""
    first, last, count, steps = flow.frames[0]
    if len(flow.frames) > 1:
        joined = [steps]
        for first_after, last_after, count_after, steps_after in flow.frames[1:]:
            joined += [_step(first_after - last), steps_after]
            last, count = last_after, count + count_after
        steps = b"".join(joined)
    return _index_from_steps(fpout, flow.label, first, count, steps)


def _step(difference):
    """A step between frame numbers as the tracer writes it (frame_list.h): the difference
    zigzag-coded, then 7 bits a byte, low bits first, the last byte below 0x80."""
    zigzag = difference << 1 if difference >= 0 else (-difference << 1) - 1
    out = bytearray()
    while zigzag >= 0x80:
        out.append(zigzag & 0x7f | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _key(label):
    """The flow key a label starts with: '{src}_{srcport}-{dst}_{dstport}' (no part has a '-';
    the timestamp after them may be negative, so the split is from the left)."""
    return "-".join(label.split("-", 2)[:2])


def _time(label):
    """A label's timestamp as a float: equal labels give equal floats, which is all the
    tasks' spans (the range of their labels' times) are compared for."""
    return float(label.split("-", 2)[2])


class _Stitch:
    """The client's side of a run (docs/dask.rst): walks the tasks' results in series
    order, each as soon as it is in, joins each flow open at the end of a task to its
    key's first piece in the next task that has one (a worker appends the pieces to the
    flow's file), and at the end names the flows of labels more than one piece had, from
    the journals the tasks left in the run's directory."""

    def __init__(self, root, absolute, run_dir, client, prefix, keep, summaries):
        self.root, self.absolute, self.run_dir, self.client, self.prefix = root, absolute, run_dir, client, prefix
        self.keep, self.summaries = keep, summaries
        self.open = {}  # key -> the flow open at the end of the tasks walked so far: a _Flow, or a number
        self.parts = []  # per task walked: its _Part
        self.renamed = {}  # a contested flow's file as traced -> its path as one machine names it
        self.moved = {}  # id of a closed flow's Index -> its file, when not fout/{name in fpout}
        self.done = []  # the closed flows' Index (or _Flow, for flows()), in order of their FIN frames
        self.contested = set()  # labels that more than one piece had, or whose piece's name was taken
        self.tasks = []  # per task walked: (its directory, the span of its labels' times)
        self.totals, self.stitched, self.appended, self.flow_count = {}, 0, 0, 0
        self.placed = []  # the append tasks not yet seen done
        self.appends = 0  # how many append tasks were asked for
        self.workers = None  # how many the cluster has, once asked
        self.error = None
        self.failed = True  # until the walk ends without an exception

    def walk(self, futures):
        """Walks every result, stopping after a damaged capture's task, and waits for the
        appends."""
        offset = 0
        for number, future in enumerate(futures):
            # a worker's exception is raised here, as Dask sends it back
            result = pickle.loads(future.result())
            # let go: the cluster then forgets the result (a long series' are not all held)
            futures[number] = future = None
            self._take(number, result, offset)
            if result["error"] is not None:
                break
            offset += result["frame_count"]
        self.appended += sum(self.client.gather(self.placed))
        self.placed = []
        self.failed = False

    def _take(self, number, result, offset):
        directory = result["dir"]
        self.tasks.append((directory, result["span"]))
        self.contested.update(result["contested"])
        labels, names, elsewhere, still_open = result["labels"], result["names"], result["elsewhere"], result["open"]
        firsts, counts, sizes = result["first"], result["count"], result["sizes"]

        def piece(position):
            """A piece's frame numbers: (first and last in the series, how many, steps)."""
            begin = result["ends"][position - 1] if position else 0
            return (firsts[position] + offset, result["last"][position] + offset, counts[position],
                    result["steps"][begin:result["ends"][position]])

        # the first piece of a key open from before continues it (taken out of the open
        # flows first: a later piece of the key may open a new one)
        starts = result["firsts"]
        continued = {starts[key]: self._flow(self.open.pop(key)) for key in self.open.keys() & starts.keys()}
        made = None
        if self.keep and not self.summaries:
            # the Index of every piece, made in C with its frame numbers kept compact; one
            # continuing a flow is replaced below
            made = _indexes(f"{self.root}/", ".pcap", labels, firsts, counts, result["ends"], result["steps"],
                            offset, 0)
            for position in names.keys() | elsewhere:
                if position not in continued:
                    name = names.get(position, labels[position] + ".pcap")
                    first, _last, count, steps = piece(position)
                    made[position] = _index_from_steps(f"{self.root}/{name}", labels[position], first, count, steps)
                    if position in elsewhere:
                        self.moved[id(made[position])] = f"{directory}/files/{name}"
        if self.summaries:
            slow = range(len(labels))
        else:
            # a piece still open that continues nothing is kept as a number (its task's, its
            # position) until a later piece continues it: most never are (pcapkit opens a flow
            # for a FIN's last ACK); only the pieces that continue a flow are walked here
            self.parts.append(_Part(directory, labels[:still_open], names, elsewhere, firsts[:still_open],
                                    counts[:still_open], sizes, offset, None if made is None else made[:still_open]))
            base = number << _POSITION_BITS
            self.open.update(zip(result["open_keys"], range(base, base + still_open)))
            self.flow_count += len(labels) - len(continued)
            slow = sorted(continued)
        moves = []  # (flow, piece) of the pieces that continue a flow: appended now
        stitched_before = self.stitched
        own = f"{directory}/files"
        for position in slow:
            label = labels[position]
            name = names.get(position) or label + ".pcap"
            where = own if position in elsewhere else self.absolute
            closed = position >= still_open
            summary = result["summaries"][position] if self.summaries else None
            flow = continued.get(position)
            if flow is None:
                flow = _Flow(label, name, where, number, firsts[position] + offset, counts[position],
                             sizes[position] if position < still_open else 0)
                self.flow_count += 1
                if summary:
                    flow.first_ns = summary[0]
            else:
                self.stitched += 1
                # its records go where the earlier pieces' end, known now: the appends need
                # not wait for one another
                moves.append((flow, (f"{where}/{name}", None if position in elsewhere else name,
                                     f"{directory}/removed", flow.size)))
                if not closed:
                    flow.size += sizes[position] - PCAP_HEADER_BYTES
                flow.packets += counts[position]
                if made is not None:
                    flow.frames.append(piece(position))
            if summary:
                flow.last_ns = summary[1]
                flow.bytes += summary[2]
            if closed:
                flow.closed = True
                if self.summaries:
                    self.done.append(flow)
                elif made is not None:
                    done = _flow_index(f"{self.root}/{flow.name}", flow)
                    made[position] = done
                    self.moved[id(done)] = flow.path
            else:
                self.open[result["open_keys"][position]] = flow
        if made is not None:
            self.done.extend(made[still_open:])
        self._place(moves)
        _add(self.totals, result["counters"], offset)
        if result["error"] is not None:
            _add(self.totals, result["error"][4] or {}, offset)
            self.error = result["error"], number, offset, self.stitched - stitched_before

    def _flow(self, record):
        """The _Flow of an open flow: made from its task's piece when kept as a number."""
        if isinstance(record, _Flow):
            return record
        part, position = self._part_of(record)
        label = part.labels[position]
        name = part.names.get(position) or label + ".pcap"
        where = f"{part.directory}/files" if position in part.elsewhere else self.absolute
        flow = _Flow(label, name, where, record >> _POSITION_BITS, part.firsts[position] + part.offset,
                     part.counts[position], part.sizes[position])
        if part.made is not None:
            piece, part.made[position] = part.made[position], None
            self.moved.pop(id(piece), None)
            flow.frames.append(_frame_steps(piece))
        return flow

    def _open_index(self, record):
        """An open flow's Index, at the end."""
        if isinstance(record, _Flow):
            return _flow_index(self._fpout(record), record)
        part, position = self._part_of(record)
        made = part.made[position]
        return self._renamed(made) if made.label in self.contested else made

    def _first(self, record):
        """An open flow's first frame in the series."""
        if isinstance(record, _Flow):
            return record.first
        part, position = self._part_of(record)
        return part.firsts[position] + part.offset

    def _part_of(self, record):
        """(its task's _Part, its position there) of an open piece kept as a number."""
        return self.parts[record >> _POSITION_BITS], record & _POSITION_MASK

    def _place(self, moves):
        """Has workers append pieces to their flows' files: split among a few tasks about
        even in frames, which run in any order (each piece goes at its own offset)."""
        # the appends done so far are counted and let go (the scheduler then forgets them);
        # an error of one is raised here
        done, pending = [], []
        for future in self.placed:
            (done if future.done() else pending).append(future)
        self.appended += sum(self.client.gather(done))
        self.placed = pending
        if not moves:
            return
        if self.workers is None:
            self.workers = max(1, len(self.client.scheduler_info().get("workers", ())))
        parts = [(0, number, []) for number in range(max(1, min(self.workers, len(moves) // FLOWS_PER_APPEND)))]
        for flow, piece in sorted(moves, key=lambda move: -move[0].packets):
            frames, number, part = heapq.heappop(parts)
            part.append((flow.path, flow.label, *piece))
            heapq.heappush(parts, (frames + flow.packets, number, part))
        for _frames, _number, part in parts:
            number, self.appends = self.appends, self.appends + 1
            self.placed.append(self.client.submit(_place, pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL),
                                                  f"{self.run_dir}/{APPENDS}/{number}", pure=False,
                                                  key=f"{self.prefix}append-{number}", priority=1 << 30))

    def remove_other_claims(self):
        """Removes the files of the attempts whose results are not taken: tasks Dask ran
        again (their worker died), those after a damaged capture, or, after an exception,
        every task's."""
        taken = set() if self.failed else {os.path.basename(directory) for directory, _span in self.tasks}
        for attempt in os.listdir(self.run_dir):
            if attempt not in taken and attempt != APPENDS:
                for name in _lines(f"{self.run_dir}/{attempt}/claimed"):
                    _unlink(f"{self.absolute}/{name}")

    def resolve(self):
        """Names the flows of contested labels as one machine does: in series order the
        n-th flow with a label gets '_n'. Each task's pieces of those labels are found in
        its journal (names it made in the output directory), its fallback directory (names
        that were taken) and its log of pieces appended to an earlier flow (not flows)."""
        if not self.contested:
            return
        times = sorted({_time(label) for label in self.contested})
        owners = {label: [] for label in self.contested}  # label -> [(task, use, path)] of its flows
        for number, (directory, (low, high)) in enumerate(self.tasks):
            if not _any_within(times, low, high):
                continue  # no contested label in this task's time span
            gone = set(_lines(f"{directory}/removed"))  # its pieces that were not flows
            found = [(name, f"{self.absolute}/{name}") for name in _lines(f"{directory}/claimed") if name not in gone]
            found += [(name, f"{directory}/files/{name}") for name in os.listdir(f"{directory}/files")]
            for name, path in found:
                label, use = _label_and_use(name)
                if label in owners:
                    owners[label].append((number, use, path))
        temporary = f"{self.run_dir}/resolve"
        os.mkdir(temporary)
        final = {}  # current path -> the name it takes
        for label, pieces in owners.items():
            pieces.sort()
            for count, (_number, _use, path) in enumerate(pieces, 1):
                final[path] = f"{label}.pcap" if count == 1 else f"{label}_{count}.pcap"
        # those in the output directory under another name step aside first, so that
        # no name is taken when its flow moves in
        moving = {}
        for number, (path, name) in enumerate(final.items()):
            if path != f"{self.absolute}/{name}":
                if os.path.dirname(path) == self.absolute:
                    os.replace(path, f"{temporary}/{number}")
                    moving[path] = f"{temporary}/{number}"
                else:
                    moving[path] = path
        for path, now in moving.items():
            target = f"{self.absolute}/{final[path]}"
            _check_replaceable(target)
            os.replace(now, target)
        self.renamed = {path: f"{self.root}/{name}" for path, name in final.items()}

    def index(self, wanted):
        """The tuple of Index one machine returns: the open flows by first frame, then the
        closed ones by their FIN's frame (or None when no index is wanted)."""
        if not wanted:
            return None
        still_open = sorted(self.open.values(), key=self._first)
        return tuple(map(self._open_index, still_open)) + tuple(
            self._renamed(made) if made.label in self.contested else made for made in self.done)

    def _renamed(self, made):
        """A closed flow's Index with the name of its contested label's flow."""
        path = self.moved.get(id(made)) or f"{self.absolute}/{made.fpout[len(self.root) + 1:]}"
        return Index(fpout=self.renamed[path], index=made.index, label=made.label)

    def _fpout(self, flow):
        if flow.label in self.contested:
            return self.renamed[flow.path]
        return f"{self.root}/{flow.name}"

    def rows(self, partitions):
        """flows() rows, by the task a flow began in, in first-frame order."""
        rows = [[] for _ in range(partitions)]
        if not self.summaries:
            return rows
        for flow in sorted(itertools.chain(self.open.values(), self.done), key=lambda flow: flow.first):
            src, srcport, dst, dstport = _endpoints(flow.label)
            rows[flow.part].append((flow.label, src, srcport, dst, dstport, flow.first_ns, flow.last_ns, flow.first,
                                    flow.packets, flow.bytes, flow.closed, self._fpout(flow)))
        return rows


def _any_within(times, low, high):
    """Whether the sorted times have one in [low, high]."""
    at = bisect.bisect_left(times, low)
    return at < len(times) and times[at] <= high


def _label_and_use(name):
    """'{label}[_{n}].pcap' -> (label, n): a label ends in digits after its last '-', so
    '_' after that is the use number's."""
    stem = name[:-len(".pcap")]
    head, _, tail = stem.rpartition("-")
    number, underscore, use = tail.partition("_")
    return (f"{head}-{number}", int(use)) if underscore else (stem, 1)


def _lines(path):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            return file.read().splitlines()
    except FileNotFoundError:
        return []


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _check_replaceable(path):
    """One machine's rule for a file already at a flow's name (flow_sink.c's
    open_regular): opened without following a link or waiting for a FIFO's reader, it is
    replaced if it is a regular file of this user with no other link, else refused with
    the error one machine raises."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as error:
        raise OSError(error.errno, "cannot open output file", path) from None
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "cannot open output file", path)
    if info.st_uid != os.geteuid() or info.st_nlink != 1:
        raise OSError(errno.EEXIST, "output file exists and is another user's or has other links; not replaced",
                      path)


def _stitch_stats(totals, stitched, stitched_bytes=0):
    # a stitched flow was opened once per task it crossed: once on one machine
    stats = dict(totals, stitched_flows=stitched, stitched_bytes=stitched_bytes)
    if "flows_opened" in stats:
        stats["flows_opened"] -= stitched
    return stats


def _place(moves, journal):
    """On a worker: appends pieces' records (after their pcap header) to their flows' files,
    each at the offset given, then removes the pieces, writing the name of each that was in
    the output directory to its task's log. moves: pickled [(flow's file, its label, piece's
    file, its name in root or None, its task's log, offset)]. Returns the bytes appended.

    Dask runs it again if its worker dies, so it can be run twice: a run again writes the
    same bytes at the same offsets, and no piece is removed before every append is done,
    which `journal` then says (with the bytes)."""
    moves = pickle.loads(moves)
    done = _lines(journal)
    if done:
        appended = int(done[0])
    else:
        appended = 0
        for path, label, piece_path, _claimed, _log, offset in moves:
            whole = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                linktype = os.pread(whole, PCAP_HEADER_BYTES, 0)[20:]
                appended += _append(piece_path, whole, offset, linktype, label)
            finally:
                os.close(whole)
        _write_journal(journal, str(appended))
    logs = {}
    try:
        for _path, _label, piece_path, claimed, log, _offset in moves:
            _unlink(piece_path)
            if claimed is not None:
                if log not in logs:
                    logs[log] = open(log, "a", encoding="utf-8", errors="surrogateescape")
                logs[log].write(claimed + "\n")
    finally:
        for file in logs.values():
            file.close()
    return appended


def _write_journal(path, text):
    """Replaces the journal whole, on disk before it returns."""
    with open(f"{path}.new", "w", encoding="utf-8", errors="surrogateescape") as file:
        file.write(text + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(f"{path}.new", path)


def _no_copy_range(*_args):
    return 0  # no copy_file_range here (macOS): the caller reads and writes


_copy_range = getattr(os, "copy_file_range", _no_copy_range)


def _append(piece_path, whole, end, linktype, label):
    """Copies a piece's records to the descriptor whole at offset end (in the kernel
    where it can); returns how many bytes."""
    piece = os.open(piece_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.pread(piece, PCAP_HEADER_BYTES, 0)[20:] != linktype:
            # one machine writes such frames to a '~linktype' file beside the flow's
            raise ValueError(f"{label}: its frames have different link types in different captures, "
                             "which pcapflow.dask does not stitch; use pcapflow.trace_files")
        length = os.fstat(piece).st_size - PCAP_HEADER_BYTES
        done = 0
        while done < length:
            try:
                count = _copy_range(piece, whole, length - done, PCAP_HEADER_BYTES + done, end + done)
            except OSError as error:
                if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                count = 0
            if count == 0:  # not in the kernel here: by reading
                chunk = os.pread(piece, min(length - done, 1 << 20), PCAP_HEADER_BYTES + done)
                if not chunk:
                    raise OSError(errno.EIO, "piece shorter than it was", piece_path)
                count = os.pwrite(whole, chunk, end + done)
            done += count
        return length
    finally:
        os.close(piece)


def _endpoints(label):
    """(src, srcport, dst, dstport) from a label, addresses as ipaddress spells them (an IPv6
    label has '.' for ':')."""
    import ipaddress  # pylint: disable=import-outside-toplevel
    source, destination = label.split("-", 2)[:2]
    result = []
    for endpoint in (source, destination):
        address, port = endpoint.rsplit("_", 1)
        parts = address.split(".")
        if len(parts) == 4 and all(part.isdigit() for part in parts):
            text = address
        else:
            # IPv6; a mapped IPv4 tail keeps its dots
            text = address.replace(".", ":")
            try:
                ipaddress.ip_address(text)
            except ValueError:
                text = ":".join(parts[:-4]) + ":" + ".".join(parts[-4:])
        result += [str(ipaddress.ip_address(text)), int(port)]
    return tuple(result)


def _add(totals, counters, offset):
    for key, value in counters.items():
        totals[key] = value + offset if key == "last_frame" else totals.get(key, 0) + value


# ---------------------------------------------------------------------------
# The task, on a worker
# ---------------------------------------------------------------------------

def _trace_part(run_dir, number, root, fins, filter, byteorder, nanosecond, tunnels, summaries, keep_frames):  # pylint: disable=redefined-builtin
    """Traces a run of captures alone (frames numbered from 1), writing each flow's file
    into root under the name its tracer gives it when that name is free there, else into
    a directory of its own (claim mode, see flow_sink.h); the names it made in root are in
    its journal. Returns, pickled: its pieces in the tracer's order (the flows open at the
    end by first frame, then the closed ones by FIN): key, label, file name, whether the
    file went to its own directory, first and last frame numbers, how many frames, closed
    by FIN, and with summaries (first ns, last ns, bytes); the open pieces' file lengths
    (where a later piece of the flow is appended); the first piece of each key
    (key -> position), the labels contested here (a name taken, or a label repeated),
    every piece's frame numbers one after another (an array, with keep_frames), the span
    of its labels' times, its frame count, counters, its directory and the damage that
    ended it (message, which capture, frame, byte offset, stats) or None."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(errno.ENOENT, "the output directory is not on this worker's file system: "
                                "pcapflow.dask needs one that the client and every worker see at the same path",
                                run_dir)
    # each attempt a directory of its own: the client takes one attempt's result and
    # removes the files of any other (a task Dask ran again after its worker died)
    out = os.path.join(run_dir, f"{number}-{uuid.uuid4().hex}")
    os.makedirs(f"{out}/files")
    sizes = [_file_size(fin) for fin in fins]
    budget = _core.output_budget(sum(sizes) if all(sizes) else 0, None)
    tracer = TCP(root, "pcap", byteorder, nanosecond, buffer_bytes=budget, tunnels=tunnels)
    totals, last_frame, damage = {}, 0, None
    try:
        tracer._claim(f"{out}/files", f"{out}/claimed")  # pylint: disable=protected-access
        for position, fin in enumerate(fins):
            try:
                counters = tracer._trace_capture(fin, filter, None, last_frame, None, True)  # pylint: disable=protected-access
            except CaptureError as error:
                damage = (error.args[0] if error.args else "", position, error.frame, error.offset,
                          dict(error.stats) if error.stats is not None else None)
                break
            last_frame = counters["last_frame"]
            _add(totals, counters, 0)
        still_open = tracer.open_flows
        index = tracer.submit()
        tracer.close()
    except BaseException:
        tracer._abandon()  # pylint: disable=protected-access
        raise
    displaced = set(os.listdir(f"{out}/files"))
    if any("~" in name for name in displaced):
        raise ValueError(f"{', '.join(map(str, fins))}: frames of several link types in one flow, which "
                         "pcapflow.dask does not stitch; use pcapflow.trace_files")
    labels, names, elsewhere, contested, starts = [], {}, set(), [], {}
    firsts, lasts, counts, ends, steps = array.array("q"), array.array("q"), array.array("I"), array.array("Q"), []
    summaries = [] if summaries else None
    length = 0
    for position, flow in enumerate(index):
        label, name = flow.label, flow.fpout[len(root) + 1:]
        if name != label + ".pcap":
            names[position] = name  # a label repeated in this task: '_n'
            contested.append(label)
        if name in displaced:
            elsewhere.add(position)  # its name was taken
            contested.append(label)
        if summaries is not None:
            summaries.append(_summary(f"{out}/files/{name}" if position in elsewhere else flow.fpout, byteorder,
                                      nanosecond))
        # the frame numbers as the tracer keeps them (a byte or two a frame), without an int each
        first, last, count, frames = _core._frame_steps(flow)  # pylint: disable=protected-access
        key = _key(label)
        # the first piece of each key (in first-frame order) is what may continue a flow
        if key not in starts or first < firsts[starts[key]]:
            starts[key] = position
        labels.append(label)
        firsts.append(first)
        lasts.append(last)
        counts.append(count)
        if keep_frames:
            steps.append(frames)
            length += len(frames)
        ends.append(length)
    # the open pieces' lengths: where a later task's piece of the flow goes in its file
    sizes = array.array("Q", (os.stat(f"{out}/files/{names.get(position, labels[position] + '.pcap')}"
                                      if position in elsewhere else index[position].fpout).st_size
                              for position in range(still_open)))
    times = [_time(label) for label in labels]
    span = (min(times), max(times)) if times else (0.0, -1.0)
    # pickled here: Dask would otherwise walk the list looking for its own objects
    open_keys = [_key(label) for label in labels[:still_open]]
    return pickle.dumps({"dir": out, "labels": labels, "names": names, "elsewhere": elsewhere, "open": still_open,
                         "open_keys": open_keys,
                         "first": firsts, "last": lasts, "count": counts, "sizes": sizes, "ends": ends,
                         "steps": b"".join(steps),
                         "summaries": summaries, "firsts": starts, "contested": contested, "span": span,
                         "frame_count": last_frame, "counters": totals, "error": damage},
                        protocol=pickle.HIGHEST_PROTOCOL)


def _file_size(fin):
    try:
        return os.path.getsize(fin)
    except OSError:
        return 0


def _summary(path, byteorder, nanosecond):
    """(first frame's time in ns, last frame's, original lengths summed) from the record
    headers of a flow file just written (still in the page cache)."""
    record = struct.Struct(("<" if byteorder == "little" else ">") + "IIII")
    scale = 1 if nanosecond else 1000
    first = last = None
    total = 0
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        offset, end = PCAP_HEADER_BYTES, len(data)
        while offset + record.size <= end:
            seconds, fraction, caplen, orig_len = record.unpack_from(data, offset)
            last = seconds * 1_000_000_000 + fraction * scale
            if first is None:
                first = last
            total += orig_len
            offset += record.size + caplen
    return first, last, total
