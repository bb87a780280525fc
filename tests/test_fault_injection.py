"""Faults from the outside world while pcapflow writes or reads, made real.

A full disk (a 256 KiB tmpfs), no free file descriptors (a real
RLIMIT_NOFILE, a descriptor table filled with open files), a read-only
output directory (a read-only tmpfs), the output directory deleted while a
tracer writes, captures cut mid-record, growing while read (through a FIFO
and as a file appended to) and shrinking while read (truncated under the
reader).

Each fault must end in a clear exception naming the path (OSError with
.filename, or CaptureError with filename, frame and offset), and everything
written before the fault must be intact: every file on disk is a complete
pcap (this suite's strict reader and libpcap both read it to the end) holding
the first frames of its flow, in order. Runs that could crash or hang run in
a subprocess with a timeout. The mounts need root, which CI has."""
import collections
import errno
import gc
import json
import os
import shutil
import subprocess
import sys
import types

import pytest

import pcapflow
from _hardening import (assert_exact, assert_valid_prefix, capture_bytes, generated_capture, payload,
                        record_boundaries, run_python, tmpfs)
from _support import make_packet
from capture_tools import (ETHERNET, Record, check_flow_files, ethernet, expected_flows, ipv4, read_capture, udp,
                           write_pcap)


def frames_by_file(packets, records, fout):
    """{path of the flow's file: [frame bytes]} as pcapflow names the files (expected_flows' rule)."""
    return {fpout: [records[n - 1].data for n in frames] for fpout, frames, _ in expected_flows(packets, str(fout))}


def files_in(directory, *, skip=()):
    return sorted(os.path.join(directory, name) for name in os.listdir(directory) if name not in skip)


def assert_names_a_path(error, directory=None, *, errnos=None):
    """An OSError that says which file: .filename set, in the message, directly inside directory if given."""
    assert isinstance(error, OSError), repr(error)
    assert error.filename, f"{error!r} does not name a path"
    assert str(error.filename) in str(error), f"the message {str(error)!r} does not show the path"
    if directory is not None:
        assert os.path.dirname(error.filename) == str(directory), (
            f"{error.filename!r} is not a file of the output directory {directory}")
    if errnos is not None:
        assert error.errno in errnos, f"{error!r}: errno {error.errno}, expected one of {errnos}"


@pytest.fixture
def unraisable():
    """Exceptions Python could only print ('Exception ignored in ...'), e.g. from a tracer's finalizer."""
    gc.collect()  # what earlier tests left behind is theirs
    seen = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda info: seen.append(f"{info.exc_type.__name__}: {info.exc_value} in {info.object!r}")
    try:
        yield seen
    finally:
        gc.collect()
        sys.unraisablehook = previous


# ---------------------------------------------------------------------------
# A full disk
# ---------------------------------------------------------------------------

def fill_the_disk(mount, fmt="pcap"):
    """dump()+submit() of 1,000-byte frames of three flows into the mount until an OSError.
    Returns (tracer, the error, {srcport: frames given to that flow}, {frame number: bytes})."""
    tracer = pcapflow.TCP(str(mount), fmt)
    given = collections.defaultdict(list)  # srcport -> frame bytes, in dump order
    data_of = {}
    for number in range(1, 1000):  # 1 MB: cannot fit
        port = 40000 + number % 3
        data = payload(number, 1000)
        data_of[number] = data
        given[port].append(data)
        try:
            tracer.dump(make_packet(pcapflow.Packet, number, srcport=port, data=data, timestamp=1.0))
            if number % 40 == 0:
                tracer.submit()
        except OSError as error:
            return tracer, error, given, data_of
    pytest.fail("1 MB went into a 256 KiB tmpfs without an error")


def assert_valid_json_prefix(path, frames):
    """path is a complete JSON file (as dictdumper writes it) whose frames are the first n of `frames`."""
    try:
        with open(path, encoding="utf-8") as file:
            pairs = json.load(file, object_pairs_hook=lambda items: items)
    except ValueError as error:
        raise AssertionError(f"{path} ({os.path.getsize(path)} bytes) is not valid JSON: {error}") from None
    got = [bytes.fromhex(dict(dict(value)["packet"])["hex"]) for _, value in pairs]
    assert got == list(frames[:len(got)]), f"{path}: its {len(got)} frames are not the first of its flow's"


@pytest.mark.parametrize("fmt", ["pcap", "json"])
def test_full_disk_during_dump_and_submit(fmt, tmp_path):
    """dump()+submit() into a 256 KiB tmpfs until it is full: OSError ENOSPC naming the flow's file; every file
    is complete (a pcap both readers read to the end, or valid JSON) holding the first frames of its flow."""
    mount = tmp_path / "small"
    with tmpfs(mount, "256k"):
        tracer, error, given, _ = fill_the_disk(mount, fmt)
        assert error.errno == errno.ENOSPC, repr(error)
        label_port = {f"10.0.0.1_{port}-10.0.0.2_80-1.0.{fmt}": port for port in given}
        files = files_in(mount)
        assert files, "no flow file was written before the disk filled up"
        problems = []
        try:
            assert_names_a_path(error, mount, errnos={errno.ENOSPC})
        except AssertionError as failure:
            problems.append(str(failure))
        for path in files:
            try:
                check = assert_valid_prefix if fmt == "pcap" else assert_valid_json_prefix
                check(path, given[label_port[os.path.basename(path)]])
            except AssertionError as failure:
                problems.append(str(failure))
        del tracer
        assert not problems, f"after {error!r}:\n" + "\n".join(problems)


def test_full_disk_then_space_freed(tmp_path):
    """After ENOSPC the frames stay queued: once space is freed, submit() completes every file, each holding
    exactly the frames of its Index."""
    mount = tmp_path / "small"
    with tmpfs(mount, "256k"):
        filler = mount / "filler"
        filler.write_bytes(b"\0" * 96 * 1024)
        tracer, error, _, data_of = fill_the_disk(mount)
        assert_names_a_path(error, mount, errnos={errno.ENOSPC})
        filler.unlink()
        flows = tracer.submit()
        assert sorted(n for flow in flows for n in flow.index) == sorted(data_of)
        for flow in flows:
            assert_exact(flow.fpout, [data_of[n] for n in flow.index])
        tracer.close()
        del tracer


def test_full_disk_during_trace_file(tmp_path, unraisable):
    """trace_file() of a 1.3 MB capture into a 256 KiB tmpfs: OSError ENOSPC naming a flow file; the files on
    disk are complete pcaps holding the first frames of their flows (after the tracer is collected, too)."""
    records, packets = generated_capture(7, 3000, 400)
    capture = write_pcap(tmp_path / "big.pcap", records, ETHERNET)
    mount = tmp_path / "small"
    with tmpfs(mount, "256k"):
        with pytest.raises(OSError) as caught:
            pcapflow.trace_file(str(capture), str(mount))
        assert_names_a_path(caught.value, mount, errnos={errno.ENOSPC})
        del caught
        gc.collect()
        expected = frames_by_file(packets, records, mount)
        problems = []
        for path in files_in(mount):
            try:
                assert_valid_prefix(path, expected[path])
            except AssertionError as failure:
                problems.append(str(failure))
        assert not problems, "files left by trace_file on a full disk:\n" + "\n".join(problems)
        assert not unraisable, f"errors printed after trace_file had raised: {unraisable}"


# ---------------------------------------------------------------------------
# No free file descriptors
# ---------------------------------------------------------------------------

LOW_LIMITS = """
import json, os, resource, sys
import pcapflow
capture, out = sys.argv[1], sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
results = []
for limit in map(int, sys.argv[3].split(",")):
    fout = os.path.join(out, str(limit))
    in_use = len(os.listdir("/proc/self/fd")) - 1  # less listdir's own
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        index = pcapflow.trace_file(capture, fout)
        entry = {"ok": True, "index": [[f.fpout, list(f.index), f.label] for f in index]}
    except OSError as error:
        entry = {"ok": False, "error": repr(error), "errno": error.errno, "filename": error.filename,
                 "message": str(error)}
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    entry.update(limit=limit, fout=fout, in_use=in_use)
    results.append(entry)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def many_flow_capture(tmp_path_factory):
    """300 flows of 4 frames, interleaved, every third frame of a flow a FIN: 400 files, many open at once."""
    tmp = tmp_path_factory.mktemp("fds")
    records, packets = generated_capture(300, 1200, 60, fin_every=3)
    return write_pcap(tmp / "many.pcap", records, ETHERNET), records, packets


LIMITS = [4, 5, 6, 7, 8, 16, 64]


@pytest.fixture(scope="module")
def low_limit_results(many_flow_capture, tmp_path_factory):
    capture, _, _ = many_flow_capture
    out = tmp_path_factory.mktemp("limits")
    done = run_python(LOW_LIMITS, capture, out, ",".join(map(str, LIMITS)), timeout=120,
                      what="trace_file under small descriptor limits")
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    return {entry["limit"]: entry for entry in json.loads(done.stdout.splitlines()[-1])}


@pytest.mark.parametrize("limit", LIMITS)
def test_trace_file_under_a_small_descriptor_limit(limit, low_limit_results, many_flow_capture):
    """RLIMIT_NOFILE of `limit` (Python itself holds 3): pcapflow finishes with every file right, or raises
    OSError naming the path it could not open. With three spare descriptors (the output directory, the
    capture, one flow file at a time) it must finish."""
    capture, records, packets = many_flow_capture
    entry = low_limit_results[limit]
    spare = limit - entry["in_use"]
    if entry["ok"]:
        got = [(fpout, tuple(frames), label) for fpout, frames, label in entry["index"]]
        assert got == expected_flows(packets, entry["fout"])
        index = [types.SimpleNamespace(fpout=f, index=i, label=l) for f, i, l in got]
        check_flow_files(index, read_capture(capture))
        assert len(os.listdir(entry["fout"])) == len(got)
        return
    assert spare < 3, f"{spare} spare descriptors and still: {entry['error']}"
    assert entry["errno"] in (errno.EMFILE, errno.ENFILE), entry
    assert entry["filename"], f"the OSError names no path: {entry['error']}"
    assert entry["filename"] in entry["message"], entry
    assert entry["filename"] in (str(capture), entry["fout"]) or os.path.dirname(entry["filename"]) == entry["fout"], (
        f"the OSError names {entry['filename']!r}, neither the capture nor the output directory or one of its files")
    if os.path.isdir(entry["fout"]):
        expected = frames_by_file(packets, records, entry["fout"])
        for path in files_in(entry["fout"]):
            assert_valid_prefix(path, expected[path])


FILLED_TABLE = """
import errno, gc, json, os, resource, sys
import pcapflow
from _support import make_packet
capture, out = sys.argv[1], sys.argv[2]
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
held = []

def leave_free(n):
    # every descriptor taken, then n given back
    while True:
        try:
            held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as error:
            assert error.errno == errno.EMFILE, error
            break
    for _ in range(n):
        os.close(held.pop())

def outcome(call):
    try:
        return {"ok": True, "result": call()}
    except OSError as error:
        return {"ok": False, "error": repr(error), "errno": error.errno, "filename": error.filename,
                "message": str(error)}
    finally:
        gc.collect()

def index_of(flows):
    return [[f.fpout, list(f.index), f.label] for f in flows]

results = {}
leave_free(0)

def make_tracer():
    pcapflow.TCP(out + "/tcp0")

results["TCP() with no descriptor"] = outcome(make_tracer)
for free in (0, 1, 2, 3):
    leave_free(free)
    results[f"trace_file with {free} free"] = outcome(
        lambda: index_of(pcapflow.trace_file(capture, f"{out}/trace{free}")))

# dump(): the table fills up after the tracer was made; submit() fails, then succeeds once one is free
leave_free(1)
tracer = pcapflow.TCP(out + "/dump")
for n in range(1, 7):
    tracer.dump(make_packet(pcapflow.Packet, n, srcport=1000 + n % 3))
results["submit() with no descriptor"] = outcome(lambda: index_of(tracer.submit()))
leave_free(1)
results["submit() again with one"] = outcome(lambda: index_of(tracer.submit()))
tracer.close()
del tracer

# the tracer holds descriptors when the table fills up: it must give its own back and go on
leave_free(10)
tracer = pcapflow.TCP(out + "/retry")
for n in range(1, 4):
    tracer.dump(make_packet(pcapflow.Packet, n, srcport=2000 + n))
tracer.submit()
leave_free(0)
for n in range(4, 8):
    tracer.dump(make_packet(pcapflow.Packet, n, srcport=2000 + n))
results["new flows while the tracer holds the last descriptors"] = outcome(lambda: index_of(tracer.submit()))
tracer.close()
del tracer
while held:
    os.close(held.pop())
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def filled_table(many_flow_capture, tmp_path_factory):
    capture, _, _ = many_flow_capture
    out = tmp_path_factory.mktemp("filled")
    done = run_python(FILLED_TABLE, capture, out, timeout=120, what="pcapflow with a full descriptor table")
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    return out, json.loads(done.stdout.splitlines()[-1])


def assert_emfile(entry, filename):
    assert not entry["ok"], f"no error without a free descriptor: {entry}"
    assert entry["errno"] == errno.EMFILE, entry
    assert entry["filename"] == filename, f"expected the OSError to name {filename!r}: {entry['error']}"
    assert entry["filename"] in entry["message"], entry


def test_no_descriptor_for_the_output_directory(filled_table):
    out, results = filled_table
    assert_emfile(results["TCP() with no descriptor"], f"{out}/tcp0")
    assert_emfile(results["trace_file with 0 free"], f"{out}/trace0")


def test_no_descriptor_for_the_capture(filled_table, many_flow_capture):
    _, results = filled_table
    assert_emfile(results["trace_file with 1 free"], str(many_flow_capture[0]))


def test_no_descriptor_for_a_flow_file(filled_table):
    out, results = filled_table
    entry = results["trace_file with 2 free"]
    assert not entry["ok"], entry
    assert entry["errno"] == errno.EMFILE, entry
    assert os.path.dirname(entry["filename"]) == f"{out}/trace2", entry
    assert entry["filename"] in entry["message"], entry


def test_one_descriptor_for_flow_files_is_enough(filled_table, many_flow_capture):
    out, results = filled_table
    capture, _, packets = many_flow_capture
    entry = results["trace_file with 3 free"]
    assert entry["ok"], entry
    got = [(fpout, tuple(frames), label) for fpout, frames, label in entry["result"]]
    assert got == expected_flows(packets, f"{out}/trace3")
    index = [types.SimpleNamespace(fpout=f, index=i, label=l) for f, i, l in got]
    check_flow_files(index, read_capture(capture))


def test_submit_without_a_descriptor_fails_then_recovers(filled_table):
    out, results = filled_table
    failed = results["submit() with no descriptor"]
    assert not failed["ok"], failed
    assert failed["errno"] == errno.EMFILE and os.path.dirname(failed["filename"]) == f"{out}/dump", failed
    recovered = results["submit() again with one"]
    assert recovered["ok"], recovered
    for fpout, frames, _ in recovered["result"]:
        assert_exact(fpout, [b"frame-%d" % n for n in frames])
    assert sorted(n for _, frames, _ in recovered["result"] for n in frames) == list(range(1, 7))


def test_tracer_gives_back_its_descriptors_when_the_table_is_full(filled_table):
    _, results = filled_table
    entry = results["new flows while the tracer holds the last descriptors"]
    assert entry["ok"], entry
    assert len(entry["result"]) == 7
    for fpout, frames, _ in entry["result"]:
        assert_exact(fpout, [b"frame-%d" % n for n in frames])


# ---------------------------------------------------------------------------
# A read-only output directory
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["pcap", "json"])
def test_read_only_output_directory_dump(fmt, tmp_path):
    mount = tmp_path / "ro"
    with tmpfs(mount, "1m", readonly=True):
        tracer = pcapflow.TCP(str(mount), fmt)
        with pytest.raises(OSError) as caught:
            tracer.dump(make_packet(pcapflow.Packet, 1, timestamp=1.0))
            tracer.submit()
        assert_names_a_path(caught.value, mount, errnos={errno.EROFS})
        assert caught.value.filename == f"{mount}/10.0.0.1_40000-10.0.0.2_80-1.0.{fmt}"
        assert os.listdir(mount) == []
        del tracer, caught


def test_read_only_output_directory_trace_file(tmp_path):
    records, packets = generated_capture(5, 50, 100)
    capture = write_pcap(tmp_path / "c.pcap", records, ETHERNET)
    mount = tmp_path / "ro"
    with tmpfs(mount, "1m", readonly=True):
        with pytest.raises(OSError) as caught:
            pcapflow.trace_file(str(capture), str(mount))
        assert_names_a_path(caught.value, mount, errnos={errno.EROFS})
        assert caught.value.filename in {fpout for fpout, _, _ in expected_flows(packets, str(mount))}


def test_trace_file_that_failed_leaves_nothing_running(tmp_path, unraisable):
    """After trace_file() raised OSError, its tracer must not try again later: no second error printed by a
    finalizer ('Exception ignored in: <TCP ...>') when it is collected."""
    records, _ = generated_capture(5, 50, 100)
    capture = write_pcap(tmp_path / "c.pcap", records, ETHERNET)
    mount = tmp_path / "ro"
    with tmpfs(mount, "1m", readonly=True):
        with pytest.raises(OSError):
            pcapflow.trace_file(str(capture), str(mount))
        gc.collect()
        assert not unraisable, f"errors printed after trace_file had raised: {unraisable}"


# ---------------------------------------------------------------------------
# The output directory deleted while a tracer writes
# ---------------------------------------------------------------------------

def test_output_directory_deleted_new_flow(tmp_path):
    """rmtree(fout) while a tracer writes: the next flush of a new flow raises OSError naming its path; the files
    written before are intact (read through descriptors opened before the deletion)."""
    out = tmp_path / "out"
    tracer = pcapflow.TCP(str(out), "pcap")
    for n in range(1, 7):
        tracer.dump(make_packet(pcapflow.Packet, n, srcport=1000 + n % 2))
    before = tracer.submit()
    held = {flow.fpout: open(flow.fpout, "rb") for flow in before}  # noqa: SIM115 (kept open across the rmtree)
    try:
        shutil.rmtree(out)
        tracer.dump(make_packet(pcapflow.Packet, 7, srcport=3000, timestamp=5.0))
        with pytest.raises(OSError) as caught:
            tracer.submit()
        assert_names_a_path(caught.value, out, errnos={errno.ENOENT})
        assert caught.value.filename == f"{out}/10.0.0.1_3000-10.0.0.2_80-5.0.pcap"
        for flow in before:
            data = held[flow.fpout].read()
            kept = tmp_path / "kept.pcap"
            kept.write_bytes(data)
            assert_exact(kept, [b"frame-%d" % n for n in flow.index])
    finally:
        for file in held.values():
            file.close()
        del tracer


def test_output_directory_deleted_open_flow(tmp_path):
    """rmtree(fout) after a flow's file was created: its next frames cannot reach any file on disk, so the next
    flush must say so (OSError naming the flow's path) rather than write into the deleted file."""
    out = tmp_path / "out"
    tracer = pcapflow.TCP(str(out), "pcap")
    tracer.dump(make_packet(pcapflow.Packet, 1, timestamp=1.0))
    tracer.submit()
    shutil.rmtree(out)
    tracer.dump(make_packet(pcapflow.Packet, 2, timestamp=1.0))
    try:
        tracer.submit()
    except OSError as error:
        assert_names_a_path(error, out)
        assert error.filename == f"{out}/10.0.0.1_40000-10.0.0.2_80-1.0.pcap"
    else:
        pytest.fail("submit() after the output directory was deleted reported success; frame 2 went into a "
                    "deleted file and is on no disk")
    finally:
        del tracer


DELETED_DURING_TRACE_FILE = """
import json, os, shutil, sys, threading, time
import pcapflow
fifo, out, first, second = sys.argv[1:5]
first, second = open(first, "rb").read(), open(second, "rb").read()
wanted = int(sys.argv[5])
report = {}

def feed():
    with open(fifo, "wb") as w:
        w.write(first)
        w.flush()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not os.path.isdir(out) or len(os.listdir(out)) < wanted):
            time.sleep(0.01)
        names = sorted(os.listdir(out))
        report["before"] = names
        held.update((name, open(os.path.join(out, name), "rb")) for name in names)
        shutil.rmtree(out)
        w.write(second)

held = {}
feeder = threading.Thread(target=feed)
feeder.start()
try:
    pcapflow.trace_file(fifo, out)
    report["ok"] = True
except OSError as error:
    report.update(ok=False, error=repr(error), errno=error.errno, filename=error.filename, message=str(error))
feeder.join()
# read once trace_file() is over: a file listed may have been created by a background writer
# that had not written it yet
report["held"] = {name: file.read().hex() for name, file in held.items()}
print(json.dumps(report))
"""


def test_output_directory_deleted_during_trace_file(tmp_path):
    """trace_file() reads a FIFO; once the first flows' files exist (closed by FIN) the directory is deleted and
    the rest of the capture is sent: OSError naming a file of the directory; the first files were intact."""
    records, packets = generated_capture(5, 15, 100, fin_every=3)  # 5 flows closed by FIN: 5 files
    # then > 512 KiB of UDP, so libpcap's 256 KiB reads have passed the FINs, then 5 new flows closed by FIN
    padding = [Record(1_600_000_001, i * 1000, ethernet(ipv4("10.9.9.9", "10.9.9.8", udp(53, 53, b"u" * 1400), proto=17)))
               for i in range(400)]
    later, _ = generated_capture(5, 15, 100, fin_every=3, start=1_600_000_002)  # the same 4-tuples, new labels
    blob = capture_bytes(records + padding + later)
    cut = record_boundaries(records + padding)[-1]
    (tmp_path / "first").write_bytes(blob[:cut])
    (tmp_path / "second").write_bytes(blob[cut:])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    done = run_python(DELETED_DURING_TRACE_FILE, fifo, out, tmp_path / "first", tmp_path / "second", 5, timeout=60,
                      what="trace_file with its output directory deleted")
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.splitlines()[-1])
    assert len(report["before"]) == 5, report["before"]
    assert not report["ok"], "trace_file reported success after its output directory was deleted"
    assert report["errno"] == errno.ENOENT, report
    assert os.path.dirname(report["filename"]) == str(out) and report["filename"] in report["message"], report
    expected = frames_by_file(packets, records, out)
    for name, data in report["held"].items():
        kept = tmp_path / name
        kept.write_bytes(bytes.fromhex(data))
        assert_exact(kept, expected[f"{out}/{name}"])


# ---------------------------------------------------------------------------
# Damaged and changing captures
# ---------------------------------------------------------------------------

CUT_CAPTURE = """
import json, sys
import pcapflow
fin, out = sys.argv[1:3]
try:
    pcapflow.trace_file(fin, out)
    print(json.dumps({"ok": True}))
except pcapflow.CaptureError as error:
    print(json.dumps({"ok": False, "filename": error.filename, "frame": error.frame, "offset": error.offset,
                      "message": str(error), "index": [[f.fpout, list(f.index), f.label] for f in error.index],
                      "stats": error.stats}))
"""


@pytest.mark.parametrize("where", [16 + 1, 16 + 150, 3, 15], ids=["data-start", "data-middle", "header", "header-end"])
@pytest.mark.parametrize("source", ["file", "fifo"])
def test_capture_truncated_mid_record(where, source, tmp_path):
    """Cut inside record 60 (its header or its data): CaptureError with the file, frame 60 and an offset inside
    that record; exc.index holds exactly the flows of frames 1..59, every file complete."""
    records, packets = generated_capture(7, 100, 300, fin_every=4)
    blob = capture_bytes(records)
    starts = record_boundaries(records)
    damaged = 60
    cut = starts[damaged - 1] + where
    if source == "file":
        fin = tmp_path / "cut.pcap"
        fin.write_bytes(blob[:cut])
        feeder = None
    else:
        fin = tmp_path / "fifo"
        os.mkfifo(fin)
        (tmp_path / "cut.bin").write_bytes(blob[:cut])
        feeder = subprocess.Popen(["sh", "-c", f"cat '{tmp_path / 'cut.bin'}' > '{fin}'"])
    out = tmp_path / "out"
    try:
        done = run_python(CUT_CAPTURE, fin, out, timeout=60, what="trace_file of a cut capture")
    finally:
        if feeder is not None:
            feeder.kill()
            feeder.wait()
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.splitlines()[-1])
    assert not report["ok"], "a capture cut mid-record was read as complete"
    assert report["filename"] == str(fin) and str(fin) in report["message"], report["message"]
    assert report["frame"] == damaged, report["message"]
    assert starts[damaged - 1] <= report["offset"] <= cut, (
        f"offset {report['offset']}: record {damaged} spans {starts[damaged - 1]}..{cut} of the cut file")
    assert report["stats"]["frames"] == damaged - 1
    got = [(fpout, tuple(frames), label) for fpout, frames, label in report["index"]]
    assert got == expected_flows(packets[:damaged - 1], str(out))
    index = [types.SimpleNamespace(fpout=f, index=i, label=l) for f, i, l in got]
    check_flow_files(index, read_capture(capture_bytes(records)))
    assert sorted(os.listdir(out)) == sorted(os.path.basename(f) for f, _, _ in got)


GROWING_FIFO = """
import json, os, sys, threading, time
import pcapflow
fifo, out, blob = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
pieces = int(sys.argv[4])

def feed():
    # arbitrary cuts: record headers and frames arrive in pieces, with pauses between them
    with open(fifo, "wb", buffering=0) as w:
        step = len(blob) // pieces + 1
        for start in range(0, len(blob), step):
            w.write(blob[start:start + step])
            time.sleep(0.02)

feeder = threading.Thread(target=feed)
feeder.start()
stats = {}
try:
    index = pcapflow.trace_file(fifo, out, stats=stats)
    report = {"ok": True, "index": [[f.fpout, list(f.index), f.label] for f in index], "stats": stats}
except pcapflow.CaptureError as error:
    report = {"ok": False, "message": str(error)}
feeder.join()
print(json.dumps(report))
"""


def test_capture_growing_through_a_fifo(tmp_path):
    """A capture that arrives through a FIFO in 40 pieces cut anywhere, with pauses: every frame is read."""
    records, packets = generated_capture(9, 600, 250, fin_every=7)
    (tmp_path / "blob").write_bytes(capture_bytes(records))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    done = run_python(GROWING_FIFO, fifo, out, tmp_path / "blob", 40, timeout=60, what="trace_file of a slow FIFO")
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["ok"], report["message"]
    assert report["stats"]["frames"] == len(records)
    got = [(fpout, tuple(frames), label) for fpout, frames, label in report["index"]]
    assert got == expected_flows(packets, str(out))
    index = [types.SimpleNamespace(fpout=f, index=i, label=l) for f, i, l in got]
    check_flow_files(index, read_capture(capture_bytes(records)))


CHANGING_FILE = """
import json, os, sys, threading, time, warnings
import pcapflow
mode, path, blob_path, fout = sys.argv[1:5]
threshold, new_size = int(sys.argv[5]), int(sys.argv[6])
warnings.simplefilter("ignore")
blob = open(blob_path, "rb").read()
report = {"mode": mode}
finished = threading.Event()

def capture_position():
    # the reader's own descriptor for the capture, and its file position
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    return int(info.readline().split()[1])
        except OSError:
            pass
    return None

def shrink():
    while not finished.is_set():
        position = capture_position()
        if position is not None and position >= threshold:
            # the reader still has the capture open: it has not finished reading
            report["while_reading"] = not finished.is_set()
            os.truncate(path, new_size)
            report["truncated_at"] = position
            return

def grow():
    # appends the rest in pieces cut anywhere, as a writer that is not record-aware would
    with open(path, "ab", buffering=0) as out:
        rest = blob[os.path.getsize(path):]
        step = 3001
        for start in range(0, len(rest), step):
            out.write(rest[start:start + step])
    report["appended"] = True
    report["while_reading"] = not finished.is_set()

changer = threading.Thread(target=shrink if mode == "shrink" else grow)
changer.start()
stats = {}
try:
    index = pcapflow.trace_file(path, fout, "none", stats=stats)
    report.update(ok=True, frames=stats["frames"])
except pcapflow.CaptureError as error:
    index = error.index
    report.update(ok=False, frame=error.frame, offset=error.offset, message=str(error), filename=error.filename)
finished.set()
changer.join()
report["index"] = [[list(f.index), f.label] for f in index]
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory):
    """60,000 frames (27 MB) of 64 flows closing every 50 frames, and the file holding them."""
    records, packets = generated_capture(64, 60000, 400, fin_every=50)
    blob = capture_bytes(records)
    path = tmp_path_factory.mktemp("big") / "blob"
    path.write_bytes(blob)
    return records, packets, blob, path


def check_changing(report, packets, starts):
    """The result is that of a prefix of the capture: the K first frames, K the frames read (or, for a
    CaptureError, the frames before the damaged one, which starts where the data ran out)."""
    if report["ok"]:
        count = report["frames"]
    else:
        count = report["frame"] - 1
        assert report["offset"] is not None and starts[count] <= report["offset"], report
        assert report["filename"] and report["filename"] in report["message"], report
    got = [(tuple(frames), label) for frames, label in report["index"]]
    expected = [(frames, label) for _, frames, label in expected_flows(packets[:count])]
    if got != expected:
        pytest.fail(f"the result is not that of the first {count} frames of the capture ({report.get('message')}): "
                    f"{len(got)} flows, {len(expected)} expected; first difference at flow "
                    f"{next(i for i, (a, b) in enumerate(zip(got + [None], expected + [None])) if a != b)}")
    return count


@pytest.mark.parametrize("behind", [True, False], ids=["behind-the-reader", "ahead-of-the-reader"])
def test_capture_shrinking_while_read(behind, big_capture, tmp_path):
    """The capture is truncated (at a cut inside a record) while trace_file() reads it: a consistent result for
    a prefix of the capture, or CaptureError; never a crash or a hang."""
    records, packets, blob, blob_path = big_capture
    starts = record_boundaries(records)
    path = tmp_path / "shrinking.pcap"
    path.write_bytes(blob)
    threshold = 2 << 20
    new_size = (1 << 20) + 777 if behind else threshold + (4 << 20) + 777
    done = run_python(CHANGING_FILE, "shrink", path, blob_path, tmp_path / "none", threshold, new_size, timeout=60,
                      what="trace_file of a shrinking capture")
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.splitlines()[-1])
    assert report.get("while_reading"), (f"the capture was not truncated while it was read (test too fast?): "
                                         f"{ {k: v for k, v in report.items() if k != 'index'} }")
    count = check_changing(report, packets, starts)
    assert count < len(records)


def test_capture_growing_while_read(big_capture, tmp_path):
    """Records are appended (in pieces cut anywhere) while trace_file() reads the file: a consistent result for
    a prefix of the final capture, or CaptureError; never a crash or a hang."""
    records, packets, blob, blob_path = big_capture
    starts = record_boundaries(records)
    path = tmp_path / "growing.pcap"
    path.write_bytes(blob[:starts[len(records) // 3] + 100])
    done = run_python(CHANGING_FILE, "grow", path, blob_path, tmp_path / "none", 0, 0, timeout=60,
                      what="trace_file of a growing capture")
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.splitlines()[-1])
    assert report.get("appended")
    count = check_changing(report, packets, starts)
    assert count >= len(records) // 3
