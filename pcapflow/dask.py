"""pcapflow on a Dask cluster: a series of captures traced one file (or one run of
files) per task, the flows that cross a file boundary stitched on the client, with
the same Index and the same files as pcapflow.trace_files() on one machine.

Needs ``pip install 'pcapflow[dask]'`` (dask.distributed, and dask.dataframe with
pyarrow for flows()); importing pcapflow does not import this module. The output
directory must be on a file system that the client and every worker see at the
same path (NFS, CephFS, Lustre...). docs/dask.rst describes the design."""
import array
import errno
import gc
import itertools
import mmap
import os
import pickle
import shutil
import struct
import sys
import uuid

from pcapflow import _core
from pcapflow._core import Index
from pcapflow.exceptions import CaptureError
from pcapflow.tcp import TCP

__all__ = ["trace_files", "flows", "INSTALL_HINT"]

#: What to run when dask is missing; the CLI prints it too.
INSTALL_HINT = "pip install 'pcapflow[dask]'"

# the pcap file header every flow file starts with; a continuation's records follow it
PCAP_HEADER_BYTES = 24
# a run's per-task directories live under this name in the output directory, removed at the end
RUN_PREFIX = ".pcapflow-run-"
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
    captures) into its own directory under ``fout``; the client then stitches the flows
    that cross a file boundary and moves every flow file to its final name. ``fins`` are
    paths (relative ones are taken from the client's working directory); ``fout`` must be
    on a file system that the client and every worker see at the same path. ``client`` is a
    ``distributed.Client`` (the current one when None). ``tunnels=True`` is honoured;
    ``bidirectional`` and ``idle_timeout`` carry a flow's state across files and raise
    ValueError, as do formats other than pcap. A damaged capture raises the CaptureError
    one machine raises (frame numbers of the series, ``index`` the flows read before the
    damage, whose files are complete); an OSError on a worker comes back as that OSError.
    ``stats``, a dict, receives the summed counters and ``stitched_flows``, the flows
    that continued from one task's files into the next. ``index=False`` returns None, as on
    one machine, and the client then holds each flow's first and last frame numbers only,
    not every frame's: the way to trace a series of billions of frames."""
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
    run_dir = os.path.join(os.path.abspath(root), RUN_PREFIX + uuid.uuid4().hex)
    os.mkdir(run_dir)
    # workers start in their own directories: they are given absolute paths, and the
    # names one machine would report are put back on the client
    paths = [os.path.abspath(os.fsdecode(fin)) for fin in fins]
    futures = [client.submit(_trace_part, run_dir, paths[start:stop], filter, byteorder, bool(nanosecond),
                             tunnels, summaries, bool(index), key=f"pcapflow-trace-{os.path.basename(run_dir)}-{number}",
                             pure=False, priority=len(groups) - number)
               for number, (start, stop) in enumerate(groups)]
    try:
        return _stitch(futures, groups, fins, root, stats, summaries, index, client)
    finally:
        # after an error, the tasks of later captures are of no use; one already running goes
        # on (Dask cannot stop a thread) and writes into the run's directory, which is removed
        # once none does, so that nothing of the run is left beside the flow files
        client.cancel(futures)
        _wait_for_tasks(client, f"pcapflow-trace-{os.path.basename(run_dir)}-")
        shutil.rmtree(run_dir, ignore_errors=True)


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
    """A flow of the series while it is stitched: its pieces from one task or more."""
    __slots__ = ("label", "name", "pieces", "continuations", "first", "closed", "closing", "part", "first_ns",
                 "last_ns", "bytes", "packets")

    def __init__(self, label, name, first, part):
        self.label, self.name, self.first, self.part = label, name, first, part
        self.pieces = []  # (frame numbers as array, offset to add), when an Index is made
        self.continuations = []  # (task, file name) of the pieces after the first, in order
        self.closed, self.closing = False, 0
        self.first_ns = self.last_ns = None
        self.bytes = self.packets = 0


def _key(label):
    """The flow key a label starts with: '{src}_{srcport}-{dst}_{dstport}' (no part has a '-';
    the timestamp after them may be negative, so the split is from the left)."""
    return "-".join(label.split("-", 2)[:2])


def _stitch(futures, groups, fins, root, stats, summaries, index, client=None):
    """_walk() with the cyclic garbage collector paused: the walk makes a few objects per
    flow, none in a cycle, and the collections they set off took half of its time
    (bench/bench_dask.py: 0.83 s against 0.40 s for 59,623 flows)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _walk(futures, groups, fins, root, stats, summaries, index, client)
    finally:
        if collecting:
            gc.enable()


def _walk(futures, groups, fins, root, stats, summaries, index, client):
    """Walks the tasks' results in series order (each as it arrives) and joins each flow
    still open at the end of a task to its key's first flow in the next task that has
    one. The client handles names and frame numbers only; the files are appended to and
    renamed by one task per traced task, on the workers (in parallel, near the file
    system). Returns (tuple of Index, rows of flows() per partition)."""
    open_flows = {}  # key -> _Flow open at the end of the tasks walked so far
    every = []
    offset = 0
    totals = {}
    stitched = 0
    error = None
    dirs = []
    for number, future in enumerate(futures):
        result = future.result()  # a worker's exception is raised here, as Dask sends it back
        dirs.append(result["dir"])
        part_flows = sorted(result["flows"], key=lambda flow: flow[2])  # by first frame
        continued = set()
        stitched_before = stitched
        for key, label, first, last, count, frames, closed, name, summary in part_flows:
            flow = open_flows.get(key) if key not in continued else None
            continued.add(key)
            if flow is None:
                flow = _Flow(label, name, first + offset, number)
                every.append(flow)
                if summary:
                    flow.first_ns = summary[0]
            else:
                stitched += 1
                flow.continuations.append((number, name))
            if frames is not None:
                flow.pieces.append((frames, offset))
            flow.packets += count
            if summary:
                flow.last_ns = summary[1]
                flow.bytes += summary[2]
            flow.closed = closed
            if closed:
                flow.closing = last + offset
                open_flows.pop(key, None)
            else:
                open_flows[key] = flow
        _add(totals, result["counters"], offset)
        if result["error"] is not None:
            _add(totals, result["error"][4] or {}, offset)
            error = result["error"], number, offset, stitched - stitched_before
            break
        offset += result["frames"]
    made, rows, stitched_bytes = _finish(every, root, summaries, len(futures), index, dirs, client)
    stitch_stats = _stitch_stats(totals, stitched, stitched_bytes)
    stitch_stats["files_created"] = len(every)  # one per flow: a stitched flow's pieces are one file
    if stats is not None:
        stats.update(stitch_stats)
    if error is not None:
        (message, position, frame, byte_offset, error_stats), number, task_offset, continued_here = error
        start = groups[number][0]
        exc = CaptureError(message)
        # the name as one machine reports it: the path as the caller gave it
        exc.filename = os.fsdecode(fins[start + position]) if not isinstance(fins[start + position], str) \
            else fins[start + position]
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
        raise exc
    return made, rows


def _stitch_stats(totals, stitched, stitched_bytes=0):
    # a stitched flow was opened once per task it crossed: once on one machine
    stats = dict(totals, stitched_flows=stitched, stitched_bytes=stitched_bytes)
    if "flows_opened" in stats:
        stats["flows_opened"] -= stitched
    return stats


def _place(directory, moves, dirs, root):
    """On a worker: for each flow that began in this task's directory, appends its
    continuations' records (their files less the pcap header, from the later tasks'
    directories, in order) to its file, then renames that file to its final name in root.
    moves: (file name, final name, ((task, file name), ...)), pickled. Returns the bytes
    appended."""
    appended = 0
    for name, final, continuations in pickle.loads(moves):
        path = f"{directory}/{name}"
        if continuations:
            with open(path, "rb") as first:
                linktype = first.read(PCAP_HEADER_BYTES)[20:]
            with open(path, "ab") as whole:
                for task, piece_name in continuations:
                    piece_path = os.path.join(dirs[task], piece_name)
                    with open(piece_path, "rb") as piece:
                        if piece.read(PCAP_HEADER_BYTES)[20:] != linktype:
                            # one machine writes such frames to a '~linktype' file beside the flow's
                            raise ValueError(f"{final}: its frames have different link types in different "
                                             "captures, which pcapflow.dask does not stitch; use "
                                             "pcapflow.trace_files")
                        shutil.copyfileobj(piece, whole, 1 << 20)
                        appended += piece.tell() - PCAP_HEADER_BYTES
                    os.unlink(piece_path)
        os.replace(path, f"{root}/{final}")
    return appended


def _finish(every, root, summaries, partitions, index, dirs, client):
    """Names every flow as one machine does (in order of first frame, '_n' for the n-th
    with a label), has its file made and moved there, and orders the Index: open flows by
    first frame, then closed ones by their FIN's frame."""
    # every is in order of first frame already: each task's flows were taken in that order,
    # and the tasks in series order
    uses = {}
    fpouts = []
    moves = [[] for _ in dirs]
    absolute = os.path.abspath(root)  # the workers' working directories are their own
    for flow in every:
        count = uses[flow.label] = uses.get(flow.label, 0) + 1
        ext = flow.name[flow.name.rfind("."):]  # the tracer's extension (.pcap)
        name = f"{flow.label}{ext}" if count == 1 else f"{flow.label}_{count}{ext}"
        fpouts.append(f"{root}/{name}")
        moves[flow.part].append((flow.name, name, flow.continuations))
    if client is None:  # in this process (bench/bench_dask.py times the stitch alone)
        appended = sum(_place(directory, pickle.dumps(part_moves), dirs, absolute)
                       for directory, part_moves in zip(dirs, moves))
    else:
        # handed over as bytes: Dask walks a task's list arguments item by item, looking
        # for futures, which cost more than the renames for a few thousand flows
        placed = [client.submit(_place, directory, pickle.dumps(part_moves, protocol=pickle.HIGHEST_PROTOCOL),
                                dirs, absolute, pure=False)
                  for directory, part_moves in zip(dirs, moves) if part_moves]
        appended = sum(client.gather(placed))
    made = []
    rows = [[] for _ in range(partitions)]
    for flow, fpout in zip(every, fpouts):
        if index:
            made.append((flow, Index(fpout=fpout, index=_frames(flow.pieces), label=flow.label)))
        if summaries:
            src, srcport, dst, dstport = _endpoints(flow.label)
            rows[flow.part].append((flow.label, src, srcport, dst, dstport, flow.first_ns, flow.last_ns, flow.first,
                                    flow.packets, flow.bytes, flow.closed, fpout))
    if not index:
        return None, rows, appended
    opened = [made_index for flow, made_index in made if not flow.closed]
    closed = sorted(((flow.closing, made_index) for flow, made_index in made if flow.closed), key=lambda pair: pair[0])
    return tuple(opened) + tuple(made_index for _closing, made_index in closed), rows, appended


def _frames(pieces):
    """A flow's frame numbers in the series from its pieces' (task-local numbers, offset)."""
    if len(pieces) == 1:
        numbers, offset = pieces[0]
        if not offset:
            return tuple(numbers)
        if _numpy is not None and len(numbers) > 8:
            # the offset added in C: a Python loop over every frame cost the client more
            # than the rest of the stitch (bench/bench_dask.py)
            return tuple((_numpy.frombuffer(numbers, dtype=_numpy.uint64) + offset).tolist())
    return tuple(itertools.chain.from_iterable(
        (number + offset for number in numbers) if offset else numbers for numbers, offset in pieces))


try:  # installed with dask[dataframe]; the stitch only goes faster with it
    import numpy as _numpy
except ImportError:  # pragma: no cover
    _numpy = None


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

def _trace_part(run_dir, fins, filter, byteorder, nanosecond, tunnels, summaries, keep_frames):  # pylint: disable=redefined-builtin
    """Traces a run of captures alone (frames numbered from 1) into a directory of its own
    under run_dir. Returns its flows (key, label, first and last frame numbers, how many frames,
    every frame number (keep_frames) or None, closed by FIN, file name, and with summaries
    (first ns, last ns, bytes)), its frame count, counters, and the damage that ended it
    (message, which capture, frame, byte offset, stats) or None."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(errno.ENOENT, "the output directory is not on this worker's file system: "
                                "pcapflow.dask needs one that the client and every worker see at the same path",
                                run_dir)
    # each attempt its own directory: a task Dask runs again (its worker died) never
    # meets the files of the attempt before
    out = os.path.join(run_dir, uuid.uuid4().hex)
    os.mkdir(out)
    sizes = [_file_size(fin) for fin in fins]
    budget = _core.output_budget(sum(sizes) if all(sizes) else 0, None)
    tracer = TCP(out, "pcap", byteorder, nanosecond, buffer_bytes=budget, tunnels=tunnels)
    totals, last_frame, damage = {}, 0, None
    try:
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
    if any("~" in name for name in os.listdir(out)):
        raise ValueError(f"{', '.join(map(str, fins))}: frames of several link types in one flow, which "
                         "pcapflow.dask does not stitch; use pcapflow.trace_files")
    flows_out = []
    for number, flow in enumerate(index):
        summary = _summary(flow.fpout, byteorder, nanosecond) if summaries else None
        frames = flow.index
        flows_out.append((_key(flow.label), flow.label, frames[0], frames[-1], len(frames),
                          array.array("Q", frames) if keep_frames else None, number >= still_open,
                          os.path.basename(flow.fpout), summary))
    return {"dir": out, "flows": flows_out, "frames": last_frame, "counters": totals, "error": damage}


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
