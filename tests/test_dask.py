"""pcapflow.dask on real Dask clusters: LocalCluster with worker processes, and a scheduler
and workers started with the dask command on loopback. Every result is held against
pcapflow.trace_files() on one machine over the same series: the Index, the files (names
and bytes), the exception of a damaged capture, and the rows of flows().

The cluster tests are skipped in the sanitizer runs (PCAPFLOW_EXPECT_SANITIZED): worker
processes under a preloaded ASan are slow, and the C code they run is the code the plain
run's cluster tests and the rest of the sanitized suite already run through. The tests of
pure logic run there too."""
import array
import glob
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import distributed
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pcapflow
import pcapflow.dask
from pcapflow import _core
from capture_tools import (ACK, DATA, ETHERNET, FIN, LINUX_SLL, SHARED_CAPTURES, Record, as_tuples, check_flow_files,
                           ethernet, frames_at, ipv4, read_capture, record_offsets, sll, tcp, write_pcap)
from pcapflow import cli


EXAMPLE = DATA.parent.parent.parent / "examples" / "data" / "http_espn.pcapng"
EDITCAP = shutil.which("editcap")
sanitized = pytest.mark.skipif(
    bool(os.environ.get("PCAPFLOW_EXPECT_SANITIZED")),
    reason="sanitizer run: Dask worker processes under a preloaded ASan are slow and add nothing for the C code "
           "that the plain run's cluster tests trace through")
needs_editcap = pytest.mark.skipif(EDITCAP is None, reason="editcap (Wireshark; make deps installs it) is missing")


# Ethernet captures with flows closed by FIN (the example has none), appended to the example
WITH_FINS = ("sessionhijacking.pcapng", "http_ip4and6.pcapng", "ssh.pcap", "mptcp-v0.pcap", "dns_tcp.pcap",
             "pptp.pcap", "whois.pcap", "tfo-5c1fa7f9ae91.pcap")


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """The example capture followed by captures with FINs (mergecap -a), about 1,500 frames."""
    path = tmp_path_factory.mktemp("capture") / "series.pcapng"
    subprocess.run([shutil.which("mergecap") or "mergecap", "-a", "-F", "pcapng", "-w", str(path), str(EXAMPLE),
                    *(str(DATA / name) for name in WITH_FINS)], check=True, capture_output=True)
    return path


def cut(capture, directory, packets, fmt=None):
    """The capture cut with editcap -c into files of `packets` frames, in order."""
    os.makedirs(directory, exist_ok=True)
    name = os.path.join(directory, "part" + (".pcap" if fmt == "pcap" else os.path.splitext(str(capture))[1]))
    args = [EDITCAP, "-c", str(packets)] + (["-F", fmt] if fmt else []) + [str(capture), name]
    subprocess.run(args, check=True, capture_output=True)
    return sorted(glob.glob(os.path.join(directory, "part_*")))


def same_as_one_machine(series, tmp_path, client, name, partitions=None, **kwargs):
    """Traces the series on one machine and on the cluster; asserts the same Index and the same
    files; returns the cluster's Index."""
    one_dir, many_dir = tmp_path / f"{name}-one", tmp_path / f"{name}-dask"
    one = pcapflow.trace_files(series, str(one_dir), **kwargs)
    many = pcapflow.dask.trace_files(series, str(many_dir), client=client, partitions=partitions, **kwargs)
    assert as_tuples(many, many_dir) == as_tuples(one, one_dir)
    assert sorted(os.listdir(many_dir)) == sorted(os.listdir(one_dir)), "other files, or a run's directory left"
    for flow_one, flow_many in zip(one, many):
        assert (one_dir / os.path.basename(flow_one.fpout)).read_bytes() == open(flow_many.fpout, "rb").read(), \
            flow_one.label
    return many


def crossing(index, series):
    """How many of the cuts between the series' files some flow spans."""
    bounds, total = [], 0
    for part in series[:-1]:
        total += len(read_capture(part).records)
        bounds.append(total)
    return sum(any(flow.index[0] <= bound < flow.index[-1] for flow in index) for bound in bounds), len(bounds)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as cluster:
        with distributed.Client(cluster) as made:
            yield made


# ---------------------------------------------------------------------------
# On LocalCluster
# ---------------------------------------------------------------------------

@sanitized
@needs_editcap
def test_a_series_cut_everywhere_equals_one_machine(tmp_path, client, capture):
    series = cut(capture, tmp_path / "series", 60)
    stats = {}
    index = same_as_one_machine(series, tmp_path, client, "espn")
    pcapflow.dask.trace_files(series, str(tmp_path / "again"), client=client, stats=stats)
    spanned, cuts = crossing(index, series)
    assert spanned == cuts > 10, "a flow must cross every cut"
    check_flow_files(index, [read_capture(part) for part in series])
    one_stats = {}
    pcapflow.trace_files(series, str(tmp_path / "one-stats"), stats=one_stats)
    for key in ("frames", "tcp_frames", "not_tcp", "flows_opened", "last_frame", "bytes"):
        assert stats[key] == one_stats[key], key
    assert stats["stitched_flows"] > cuts


@sanitized
@needs_editcap
def test_without_an_index_the_files_are_the_same(tmp_path, client, capture, monkeypatch):
    """And the client keeps no flow that is done, only those still open."""
    series = cut(capture, tmp_path / "series", 120)
    one = pcapflow.trace_files(series, str(tmp_path / "one"))
    stats, stitches = {}, []
    walk = pcapflow.dask._Stitch.walk  # pylint: disable=protected-access

    def kept(stitch, futures):
        stitches.append(stitch)
        return walk(stitch, futures)
    monkeypatch.setattr(pcapflow.dask._Stitch, "walk", kept)  # pylint: disable=protected-access
    assert pcapflow.dask.trace_files(series, str(tmp_path / "many"), client=client, index=False, stats=stats) is None
    assert stitches[0].done == [] and 0 < len(stitches[0].open) < len(one)
    assert sorted(os.listdir(tmp_path / "many")) == sorted(os.listdir(tmp_path / "one"))
    for flow in one:
        assert (tmp_path / "many" / os.path.basename(flow.fpout)).read_bytes() == open(flow.fpout, "rb").read()
    assert stats["files_created"] == len(one)


@sanitized
@needs_editcap
def test_a_flow_open_across_many_captures_has_its_pieces_appended_in_order(tmp_path, client, capture, monkeypatch):
    """Captures of 20 frames: a flow crosses many of them. Each task's result has its pieces
    appended as it comes, here split as finely as it goes (a task per flow), so that pieces
    of one flow are appended side by side on both workers, each at its own offset."""
    monkeypatch.setattr(pcapflow.dask, "FLOWS_PER_APPEND", 1)
    series = cut(capture, tmp_path / "series", 20)
    stats = {}
    same_as_one_machine(series, tmp_path, client, "held")
    pcapflow.dask.trace_files(series, str(tmp_path / "again"), client=client, stats=stats)
    assert stats["stitched_flows"] > 2 * len(series)


@sanitized
@needs_editcap
def test_partitions_group_consecutive_captures(tmp_path, client, capture):
    series = cut(capture, tmp_path / "series", 100, fmt="pcap")
    one = pcapflow.trace_files(series, str(tmp_path / "one"))
    for partitions in (1, 3, len(series)):
        many = pcapflow.dask.trace_files(series, str(tmp_path / f"p{partitions}"), client=client,
                                         partitions=partitions)
        assert as_tuples(many, tmp_path / f"p{partitions}") == as_tuples(one, tmp_path / "one")


@sanitized
@needs_editcap
def test_byte_order_resolution_and_a_file_of_another_snapshot_length(tmp_path, client, capture):
    """Big-endian and nanosecond output; the second file cut to 200-byte frames (editcap -s),
    so a flow's pieces come from files of different snapshot lengths."""
    series = cut(capture, tmp_path / "series", 150, fmt="pcap")
    short = tmp_path / "short.pcap"
    subprocess.run([EDITCAP, "-s", "200", series[1], str(short)], check=True, capture_output=True)
    os.replace(short, series[1])
    for byteorder, nanosecond in (("big", True), ("little", False)):
        index = same_as_one_machine(series, tmp_path, client, f"{byteorder}-{nanosecond}", byteorder=byteorder,
                                    nanosecond=nanosecond)
        check_flow_files(index, [read_capture(part) for part in series], nanosecond=nanosecond, byteorder=byteorder)


@sanitized
@needs_editcap
@pytest.mark.skipif(not SHARED_CAPTURES.is_dir(), reason="../shared/captures is not on this machine")
def test_the_shared_captures_as_one_series(tmp_path, client):
    """Every real capture of ../shared/captures cut in pieces, all the pieces one series (so
    flows also run from the end of one capture into the next's pieces)."""
    series = []
    for number, shared in enumerate(sorted((SHARED_CAPTURES / "real").glob("*.pcapng"))):
        series += cut(shared, tmp_path / f"c{number}", 40)
    assert len(series) > 60
    index = same_as_one_machine(series, tmp_path, client, "shared")
    check_flow_files(index, [read_capture(part) for part in series])


@sanitized
@needs_editcap
@pytest.mark.skipif(not SHARED_CAPTURES.is_dir(), reason="../shared/captures is not on this machine")
def test_link_types_and_tunnels(tmp_path, client):
    """Captures of other link types, one series each, with and without tunnels opened."""
    for capture in ("linktypes/geneve.pcap", "linktypes/gso-ipv4-vxlan-ipv6.pcap", "linktypes/mptcp-v1.pcap",
                    "linktypes/pptp.pcap", "linktypes/bigtcp-ipv6-hbh.pcap"):
        stem = os.path.basename(capture).split(".")[0]
        series = cut(SHARED_CAPTURES / capture, tmp_path / stem, 7)
        same_as_one_machine(series, tmp_path, client, stem)
        same_as_one_machine(series, tmp_path, client, stem + "-tunnels", tunnels=True)


@sanitized
@needs_editcap
@pytest.mark.parametrize("workers", [1, 4])
def test_one_and_four_workers(tmp_path, capture, workers):
    series = cut(capture, tmp_path / "series", 90)
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as cluster, distributed.Client(cluster) as made:
        assert len(made.scheduler_info()["workers"]) == workers
        same_as_one_machine(series, tmp_path, made, "espn")


def damaged_series(tmp_path, capture, damage):
    """A pcap series of the example with its fourth file damaged by damage(bytes) -> bytes."""
    series = cut(capture, tmp_path / "series", 100, fmt="pcap")
    blob = open(series[3], "rb").read()
    with open(series[3], "wb") as out:
        out.write(damage(blob))
    return series


@sanitized
@needs_editcap
@pytest.mark.parametrize("damage", ["truncated", "bad caplen", "not a capture"])
def test_a_damaged_capture_raises_what_one_machine_raises(tmp_path, client, capture, damage):
    def damaged(blob):
        if damage == "truncated":
            return blob[:record_offsets(blob)[40] + 9]
        if damage == "bad caplen":
            at = record_offsets(blob)[30]
            return blob[:at + 8] + (10**7).to_bytes(4, "little") + blob[at + 12:]
        return b"this is no capture at all" * 10

    series = damaged_series(tmp_path, capture, damaged)
    with pytest.raises(pcapflow.CaptureError) as one:
        pcapflow.trace_files(series, str(tmp_path / "one"))
    with pytest.raises(pcapflow.CaptureError) as many:
        pcapflow.dask.trace_files(series, str(tmp_path / "many"), client=client)
    assert str(many.value) == str(one.value)
    assert (many.value.filename, many.value.frame, many.value.offset) == \
           (one.value.filename, one.value.frame, one.value.offset) and one.value.filename == series[3]
    # tracer_bytes is the memory of the tracer that read the capture: a task's holds fewer flows
    def counters(stats):
        return None if stats is None else {k: v for k, v in stats.items() if k != "tracer_bytes"}

    assert counters(many.value.stats) == counters(one.value.stats)
    assert as_tuples(many.value.index, tmp_path / "many") == as_tuples(one.value.index, tmp_path / "one")
    assert len(one.value.index) > 0
    assert sorted(os.listdir(tmp_path / "many")) == sorted(os.listdir(tmp_path / "one"))
    for flow in one.value.index:
        assert (tmp_path / "many" / os.path.basename(flow.fpout)).read_bytes() == open(flow.fpout, "rb").read()


@sanitized
def test_a_flow_changing_link_type_between_captures_is_refused(tmp_path, client):
    """One machine writes the frames of the second link type to a '~linktype' file; the
    cluster does not stitch that and says so."""
    packet = ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80))
    first = write_pcap(tmp_path / "a.pcap", frames_at([ethernet(packet)] * 2), ETHERNET)
    second = write_pcap(tmp_path / "b.pcap", frames_at([sll(packet)] * 2, start=1_600_000_001), LINUX_SLL)
    pcapflow.trace_files([str(first), str(second)], str(tmp_path / "one"))
    assert any("~" in name for name in os.listdir(tmp_path / "one"))
    with pytest.raises(ValueError, match="link types"):
        pcapflow.dask.trace_files([str(first), str(second)], str(tmp_path / "many"), client=client)
    assert os.listdir(tmp_path / "many") == [], "nothing of a failed run is left"


# ---------------------------------------------------------------------------
# Labels that more than one piece has: the names one machine gives
# ---------------------------------------------------------------------------

@sanitized
@pytest.mark.parametrize("partitions", [None, 2])
def test_a_capture_given_twice_names_its_flows_again(tmp_path, client, partitions):
    """The same captures twice in a series: every label of the second time is the first's
    (one machine names those flows '_2', '_3'), and a flow open at the end of a capture is
    continued by its key's first frame in the next. With partitions=2 a task traces the
    same capture twice, so labels repeat within a task as well as across tasks."""
    parts = [str(DATA / "ssh.pcap"), str(DATA / "whois.pcap"), str(DATA / "dns_tcp.pcap")]
    series = parts + parts + parts[:1]
    index = same_as_one_machine(series, tmp_path, client, f"twice-{partitions}", partitions=partitions)
    assert any(flow.fpout.endswith("_3.pcap") for flow in index)


def labelled_series(directory, frames, cuts):
    """Captures cut from one list of (flow, time, FIN) frames: few keys and coarse times, so
    that labels repeat, within a file and across the cuts."""
    packets, times = [], []
    for flow, tick, fin in frames:
        packets.append(ethernet(ipv4(f"10.0.0.{flow % 2 + 1}", "10.0.1.1",
                                     tcp(4000 + flow // 2, 80, ACK | (FIN if fin else 0)))))
        times.append(tick)
    series, start = [], 0
    for number, stop in enumerate(sorted(set(cuts)) + [len(packets)]):
        records = [Record(1_600_000_000 + times[i], 0, packets[i]) for i in range(start, stop)]
        series.append(str(write_pcap(directory / f"{number}.pcap", records, ETHERNET)))
        start = stop
    return series


@sanitized
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.booleans()), min_size=8, max_size=60),
       cuts=st.lists(st.integers(0, 60), min_size=1, max_size=4), partitioned=st.booleans())
# a flow open at a cut, then two flows of its key closed by FIN in the next capture: the
# first of them is the one that continues it
@example(frames=[(0, 0, False), (0, 1, True), (0, 1, True), (0, 2, False)], cuts=[1], partitioned=False)
def test_random_series_with_repeated_labels(client, frames, cuts, partitioned):
    """Random series where labels repeat everywhere (three keys, three instants, FINs
    anywhere; times may go back at a cut): the Index and the files are one machine's."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as temporary:
        directory = Path(temporary)
        series = labelled_series(directory, frames, [cut for cut in cuts if cut < len(frames)])
        partitions = max(1, len(series) // 2) if partitioned else None
        same_as_one_machine(series, directory, client, "random", partitions=partitions)


@sanitized
def test_files_already_in_the_output_directory(tmp_path, client):
    """A run into a directory holding an earlier run's files: as on one machine, a flow's
    file replaces the earlier file of its name (this user's, no other link), and other
    files stay. A symbolic link, a directory or a FIFO at a flow's name is refused with
    the error one machine raises, and what a link points to is left alone."""
    series = [str(DATA / "ssh.pcap"), str(DATA / "whois.pcap"), str(DATA / "ssh.pcap")]
    for where in ("one", "many"):
        pcapflow.trace_files(series + [str(DATA / "dns_tcp.pcap")], str(tmp_path / where))
        (tmp_path / where / "notes.txt").write_text("kept")
    one = pcapflow.trace_files(series, str(tmp_path / "one"))
    many = pcapflow.dask.trace_files(series, str(tmp_path / "many"), client=client)
    assert as_tuples(many, tmp_path / "many") == as_tuples(one, tmp_path / "one")
    assert sorted(os.listdir(tmp_path / "many")) == sorted(os.listdir(tmp_path / "one"))
    for name in os.listdir(tmp_path / "one"):
        assert (tmp_path / "many" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name

    target = tmp_path / "target"
    target.write_bytes(b"not a capture")
    planted = {"link": lambda path: os.symlink(target, path), "directory": os.mkdir, "fifo": os.mkfifo}
    for kind, plant in planted.items():
        for where in (f"one-{kind}", f"many-{kind}"):
            os.makedirs(tmp_path / where)
            plant(tmp_path / where / os.path.basename(one[0].fpout))
        with pytest.raises(OSError) as on_one:
            pcapflow.trace_files(series, str(tmp_path / f"one-{kind}"))
        with pytest.raises(OSError) as on_many:
            pcapflow.dask.trace_files(series, str(tmp_path / f"many-{kind}"), client=client)
        assert (type(on_many.value), on_many.value.errno) == (type(on_one.value), on_one.value.errno), kind
        assert os.path.basename(on_many.value.filename) == os.path.basename(one[0].fpout)
    assert target.read_bytes() == b"not a capture"


@sanitized
def test_an_oserror_on_a_worker_comes_back_as_that_oserror(tmp_path, client):
    missing = str(tmp_path / "no-such.pcap")
    with pytest.raises(FileNotFoundError) as one:
        pcapflow.trace_files([str(EXAMPLE), missing], str(tmp_path / "one"))
    with pytest.raises(FileNotFoundError) as many:
        pcapflow.dask.trace_files([str(EXAMPLE), missing], str(tmp_path / "many"), client=client)
    assert missing in str(many.value) and missing in str(one.value)
    assert not [name for name in os.listdir(tmp_path / "many") if name.startswith(pcapflow.dask.RUN_PREFIX)]


# ---------------------------------------------------------------------------
# A worker killed while its task runs
# ---------------------------------------------------------------------------

def executing(client):
    """{worker address: keys of the tasks it is running now}."""
    return client.run(lambda dask_worker: [str(task.key) for task in dask_worker.state.executing])


def process_state(pid):
    """The state letter of /proc/PID/stat (after the parenthesised name), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def feed(fifo, data, runner, seconds=60):
    """Writes data to the next reader of the FIFO (a task's next attempt); a reader that goes
    away meanwhile (a process being killed still held it) makes it wait for the next one.
    Returns True once a reader took all of it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and runner.is_alive():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while no reader has it open
        except OSError:
            time.sleep(0.01)
            continue
        os.set_blocking(fd, True)
        try:
            with os.fdopen(fd, "wb") as writer:
                writer.write(data)
            return True
        except BrokenPipeError:
            continue
    return False


@sanitized
@needs_editcap
@pytest.mark.parametrize("after_a_capture", [False, True])
def test_a_worker_killed_in_the_middle(tmp_path, capture, after_a_capture):
    """A capture of the series is a FIFO: its task blocks in open() until the test writes.
    The worker running it is killed with SIGKILL then; Dask runs the task again on a worker
    (the nanny starts a new one), whose open() the test's write meets. The result is one
    machine's. With after_a_capture the FIFO is the last capture and its task traced the one
    before it first, so the killed attempt had made flow files already: the files of the
    attempt whose result is taken replace them."""
    series = cut(capture, tmp_path / "series", 80)
    fifo = str(tmp_path / "fifo.pcapng")
    os.mkfifo(fifo)
    position = len(series) - 1 if after_a_capture else 1
    with_fifo = series[:position] + [fifo] + series[position + 1:]
    # partitions=n-1: the last task traces the last two captures, the others one each
    partitions = len(series) - 1 if after_a_capture else None
    task = len(series) - 2 if after_a_capture else 1
    one = pcapflow.trace_files(series, str(tmp_path / "one"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as cluster, distributed.Client(cluster) as made:
        outcome = {}

        def run():
            try:
                outcome["index"] = pcapflow.dask.trace_files(with_fifo, str(tmp_path / "many"), client=made,
                                                             partitions=partitions)
            except BaseException as error:  # pylint: disable=broad-except
                outcome["error"] = error

        runner = threading.Thread(target=run)
        runner.start()
        written = False
        try:
            victim = None
            deadline = time.monotonic() + 60
            while victim is None and time.monotonic() < deadline and runner.is_alive():
                for address, keys in executing(made).items():
                    if any(key.startswith("pcapflow-") and key.endswith(f"-trace-{task}") for key in keys):
                        victim = address
                time.sleep(0.05)
            assert victim is not None, f"the FIFO's task never ran: {outcome}"
            pid = made.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
            while process_state(pid) not in (None, "Z"):  # dead: its descriptors are closed
                time.sleep(0.01)
            written = feed(fifo, open(series[position], "rb").read(), runner)
        finally:
            if not written:
                # a reader still waiting gets an end of file, so that the run (and the thread) ends
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
            runner.join(120)
        assert written, "no attempt after the kill read the FIFO"
        assert "error" not in outcome, outcome.get("error")
        assert as_tuples(outcome["index"], tmp_path / "many") == as_tuples(one, tmp_path / "one")
        assert victim not in made.scheduler_info()["workers"], "the killed worker is still there"
    assert sorted(os.listdir(tmp_path / "many")) == sorted(os.listdir(tmp_path / "one"))
    for flow in one:
        assert (tmp_path / "many" / os.path.basename(flow.fpout)).read_bytes() == open(flow.fpout, "rb").read()


# ---------------------------------------------------------------------------
# A scheduler and workers started with the dask command
# ---------------------------------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dask_command_cluster(tmp_path):
    """A scheduler and two workers (one process, one thread each) started with the dask
    command on 127.0.0.1, the workers in a directory of their own; its address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    workdir = tmp_path / "workers"
    workdir.mkdir()
    processes = []
    try:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(2):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--no-dashboard", "--local-directory", str(workdir)],
                cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@sanitized
@needs_editcap
def test_dask_scheduler_and_workers_commands(tmp_path, capture, dask_command_cluster, monkeypatch):
    series = cut(capture, tmp_path / "series", 70)
    with distributed.Client(dask_command_cluster, timeout=60) as made:
        made.wait_for_workers(2, timeout=60)
        # relative paths, from the client's directory: the workers run elsewhere
        monkeypatch.chdir(tmp_path)
        relative = [os.path.relpath(part, tmp_path) for part in series]
        one = pcapflow.trace_files(relative, "one")
        many = pcapflow.dask.trace_files(relative, "many", client=made)
        assert as_tuples(many) == [(fpout.replace("one/", "many/", 1), index, label)
                                   for fpout, index, label in as_tuples(one)]
        for flow_one, flow_many in zip(one, many):
            assert open(flow_one.fpout, "rb").read() == open(flow_many.fpout, "rb").read()
        # and the command line, through the same path
        done = subprocess.run([sys.executable, "-m", "pcapflow", *relative, "-o", "cli", "--index", "cli.jsonl",
                               "--scheduler", dask_command_cluster], capture_output=True, text=True, cwd=tmp_path,
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), check=False)
        assert done.returncode == 0, done.stderr
        assert sorted(os.listdir(tmp_path / "cli")) == sorted(os.listdir(tmp_path / "one"))
        one_index = tmp_path / "one.jsonl"
        assert cli.write_index(str(one_index), one)
        assert (tmp_path / "cli.jsonl").read_text().replace('"cli/', '"one/') == one_index.read_text()


# ---------------------------------------------------------------------------
# flows(): a dask.dataframe of the flows
# ---------------------------------------------------------------------------

@sanitized
@needs_editcap
def test_flows_dataframe_and_parquet(tmp_path, client, capture):
    pandas = pytest.importorskip("pandas")
    series = cut(capture, tmp_path / "series", 150)
    frame = pcapflow.dask.flows(series, str(tmp_path / "flows"), client=client)
    assert frame.npartitions == len(series)
    got = frame.compute()
    one = pcapflow.trace_files(series, str(tmp_path / "one"))
    records = [r for part in series for r in read_capture(part).records]
    closed_labels = set()
    # a flow whose last frame is a FIN was closed by it
    packets = {packet.index + offset: packet for offset, part in _numbered(series) for packet in pcapflow.packets(part)}
    fins = {number for number, packet in packets.items() if packet.fin}
    want = []
    for flow in one:
        frames = [records[n - 1] for n in flow.index]
        first = packets[flow.index[0]]
        src, srcport, dst, dstport = str(first.src), first.srcport, str(first.dst), first.dstport
        closed = flow.index[-1] in fins
        if closed:
            closed_labels.add(flow.label)
        want.append((flow.label, src, int(srcport), dst, int(dstport),
                     frames[0].ts_sec * 10**9 + frames[0].ts_nsec // 1000 * 1000,
                     frames[-1].ts_sec * 10**9 + frames[-1].ts_nsec // 1000 * 1000,
                     flow.index[0], len(frames), sum(r.orig_len for r in frames), closed,
                     os.path.basename(flow.fpout)))
    rows = [(r.label, r.src, r.srcport, r.dst, r.dstport, r.first.value, r.last.value, r.first_frame, r.packets,
             r.bytes, r.closed, os.path.basename(r.fpout)) for r in got.itertuples()]
    assert sorted(rows) == sorted(want)
    assert closed_labels and len(closed_labels) < len(want)
    # a flow is in the partition of the file where it began
    starts = [offset for offset, _part in _numbered(series)]
    for number in range(frame.npartitions):
        part = frame.get_partition(number).compute()
        for first_frame in part["first_frame"]:
            assert starts[number] < first_frame <= (starts[number + 1] if number + 1 < len(starts) else 10**9)
    # filtered and aggregated on the cluster, then written as Parquet and read back
    by_port = frame[frame.dstport == 80].groupby("dst")["bytes"].sum().compute()
    assert by_port.sum() == sum(row[9] for row in want if row[4] == 80)
    frame.to_parquet(str(tmp_path / "parquet"))
    back = pandas.read_parquet(tmp_path / "parquet")
    assert sorted(back["label"]) == sorted(row[0] for row in want)
    assert (back["first"].astype("int64").sort_values().tolist()
            == sorted(row[5] for row in want))


def _numbered(series):
    """(frames before it, path) for each file of the series."""
    offset, out = 0, []
    for part in series:
        out.append((offset, part))
        offset += len(read_capture(part).records)
    return out



# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

@sanitized
@needs_editcap
def test_cli_workers_runs_a_local_cluster(tmp_path, capture):
    series = cut(capture, tmp_path / "series", 200)
    done = subprocess.run([sys.executable, "-m", "pcapflow", *series, "-o", str(tmp_path / "cli"), "--workers", "2"],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                          check=False)
    assert done.returncode == 0, done.stderr
    assert f"{len(read_capture(capture).records)} packets" in done.stderr
    one = pcapflow.trace_files(series, str(tmp_path / "one"))
    assert sorted(os.listdir(tmp_path / "cli")) == sorted(os.listdir(tmp_path / "one"))
    for flow in one:
        assert (tmp_path / "cli" / os.path.basename(flow.fpout)).read_bytes() == open(flow.fpout, "rb").read()


def test_cli_without_dask_exits_2_and_says_how_to_install(tmp_path):
    # distributed made unimportable in that process alone, as on a machine without the extra
    program = ("import sys; sys.modules['distributed'] = None; from pcapflow import cli; "
               "sys.exit(cli.main(sys.argv[1:]))")
    for option in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        done = subprocess.run([sys.executable, "-c", program, str(EXAMPLE), "-o", str(tmp_path / "out"), *option],
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                              check=False)
        assert done.returncode == 2, done.stderr
        assert "pip install 'pcapflow[dask]'" in done.stderr
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", [["-f", "json"], ["--bidirectional"], ["--idle-timeout", "5"], ["-i", "lo"]])
def test_cli_refuses_what_dask_does_not_distribute(tmp_path, option, capsys):
    captures = [] if option[0] == "-i" else [str(EXAMPLE)]
    with pytest.raises(SystemExit) as stop:
        cli.main([*captures, "-o", str(tmp_path / "out"), "--workers", "2", *option])
    assert stop.value.code == 2
    assert "--workers" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Pure logic (no cluster; these run in the sanitizer runs too)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, word", [
    ({"format": "json"}, "format"), ({"bidirectional": True}, "bidirectional"), ({"idle_timeout": 5.0}, "idle_timeout"),
    ({"partitions": 0}, "partitions"), ({"partitions": 3}, "partitions"), ({"byteorder": "middle"}, "byteorder"),
])
def test_refusals_name_the_argument(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word):
        pcapflow.dask.trace_files([str(EXAMPLE), str(EXAMPLE)], str(tmp_path / "out"), **kwargs)


def test_captures_go_by_path(tmp_path):
    with open(EXAMPLE, "rb") as opened, pytest.raises(TypeError, match="by path"):
        pcapflow.dask.trace_files([opened], str(tmp_path / "out"))
    with pytest.raises(ValueError, match="standard input"):
        pcapflow.dask.trace_files(["-"], str(tmp_path / "out"))
    with pytest.raises(TypeError, match="list"):
        pcapflow.dask.trace_files(str(EXAMPLE), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="fout"):
        pcapflow.dask.trace_files([str(EXAMPLE)], None)


def test_groups_are_consecutive_and_even():
    assert pcapflow.dask._groups(8, None) == [(k, k + 1) for k in range(8)]  # pylint: disable=protected-access
    assert pcapflow.dask._groups(8, 3) == [(0, 2), (2, 5), (5, 8)]  # pylint: disable=protected-access
    assert pcapflow.dask._groups(5, 1) == [(0, 5)]  # pylint: disable=protected-access


def test_endpoints_from_labels():
    endpoints = pcapflow.dask._endpoints  # pylint: disable=protected-access
    assert endpoints("10.0.0.1_40000-10.0.0.2_80-1600000000.25") == ("10.0.0.1", 40000, "10.0.0.2", 80)
    assert endpoints("2001.db8..1_443-2001.db8..2_5000--95.0") == ("2001:db8::1", 443, "2001:db8::2", 5000)
    assert pcapflow.dask._key("2001.db8..1_443-10.0.0.2_5000--95.0") == "2001.db8..1_443-10.0.0.2_5000"  # pylint: disable=protected-access


def test_a_task_whose_worker_cannot_see_the_output_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="every worker see"):
        pcapflow.dask._trace_part(str(tmp_path / "elsewhere"), 0, str(tmp_path), [str(EXAMPLE)], None, "little",
                                  False, False, False, True)  # pylint: disable=protected-access


def test_claim_mode_makes_only_free_names(tmp_path):
    """The tracer's claim mode, in this process (so the sanitizer runs go through its C
    code): a task's files go to the shared directory under free names only; a second task
    of the same capture finds every name taken and writes its files to its own directory,
    byte for byte the same, and journals nothing. The mode is refused once a flow exists."""
    root = tmp_path / "root"
    root.mkdir()
    run = root / ".run"
    run.mkdir()
    results = [pickle.loads(pcapflow.dask._trace_part(  # pylint: disable=protected-access
        str(run), number, str(root), [str(DATA / "ssh.pcap"), str(DATA / "whois.pcap")], None, "little", False,
        False, False, True)) for number in range(2)]
    names = sorted(name for name in os.listdir(root) if not name.startswith("."))
    first, second = (result["dir"] for result in results)
    assert names and sorted(open(f"{first}/claimed").read().split()) == names
    assert open(f"{second}/claimed").read() == ""
    assert sorted(os.listdir(f"{second}/files")) == names
    for name in names:
        assert (root / name).read_bytes() == open(f"{second}/files/{name}", "rb").read()
    assert not results[0]["contested"] and sorted(set(results[1]["contested"])) == sorted(
        name[:-len(".pcap")] for name in names)
    tracer = pcapflow.TCP(str(tmp_path / "late"))
    tracer._trace_capture(str(DATA / "ssh.pcap"), None, None, 0, None, True)  # pylint: disable=protected-access
    with pytest.raises(OSError, match="before its first flow"):
        tracer._claim(str(tmp_path), str(tmp_path / "journal"))  # pylint: disable=protected-access
    tracer.close()


def appended_at(whole, pieces, log):
    """_place's moves of pieces appended one after another to the file whole."""
    offset, moves = whole.stat().st_size, []
    for piece in pieces:
        moves.append((str(whole), "label", str(piece), piece.name, str(log), offset))
        offset += piece.stat().st_size - 24
    return moves


@pytest.mark.parametrize("in_the_kernel", [True, False])
def test_appending_pieces(tmp_path, monkeypatch, in_the_kernel):
    """_place appends each piece's records to its flow's file at the offset given (here in
    the reverse of their order) and removes the piece, with copy_file_range or (where there
    is none, macOS) by reading; a piece of another link type is refused."""
    if not in_the_kernel:
        monkeypatch.setattr(pcapflow.dask, "_copy_range", pcapflow.dask._no_copy_range)  # pylint: disable=protected-access
    packet = ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80, payload=b"x" * 3000))
    whole = write_pcap(tmp_path / "flow.pcap", frames_at([ethernet(packet)] * 2), ETHERNET)
    pieces = [write_pcap(tmp_path / f"piece{n}.pcap", frames_at([ethernet(packet)] * (n + 1), start=1_600_000_001 + n),
                         ETHERNET) for n in range(3)]
    records = b"".join(piece.read_bytes()[24:] for piece in pieces)
    expected = whole.read_bytes() + records
    moves = appended_at(whole, pieces, tmp_path / "removed")[::-1]
    assert pcapflow.dask._place(pickle.dumps(moves), str(tmp_path / "journal")) == len(records)  # pylint: disable=protected-access
    assert whole.read_bytes() == expected
    assert not any(piece.exists() for piece in pieces)
    assert sorted((tmp_path / "removed").read_text().split()) == [piece.name for piece in pieces]
    other = write_pcap(tmp_path / "sll.pcap", frames_at([sll(packet)]), LINUX_SLL)
    with pytest.raises(ValueError, match="link types"):
        pcapflow.dask._place(pickle.dumps([(str(whole), "label", str(other), None, "", len(expected))]),  # pylint: disable=protected-access
                             str(tmp_path / "journal-other"))


@pytest.mark.parametrize("dies", ["in the middle of the appends", "before removing the pieces"])
def test_an_append_task_run_again_after_its_worker_died(tmp_path, monkeypatch, dies):
    """Dask runs a task again when its worker dies: an append task run a second time
    leaves each flow file as one run leaves it, never a piece twice."""
    packet = ipv4("10.0.0.1", "10.0.0.2", tcp(1000, 80, payload=b"y" * 500))
    moves, expected = [], {}
    for flow in range(2):
        whole = write_pcap(tmp_path / f"flow{flow}.pcap", frames_at([ethernet(packet)]), ETHERNET)
        pieces = [write_pcap(tmp_path / f"piece{flow}-{n}.pcap", frames_at([ethernet(packet)] * 2,
                                                                           start=1_600_000_010 + n), ETHERNET)
                  for n in range(3)]
        expected[whole] = whole.read_bytes() + b"".join(piece.read_bytes()[24:] for piece in pieces)
        moves += appended_at(whole, pieces, tmp_path / "removed")
    arguments = (pickle.dumps(moves), str(tmp_path / "journal"))
    calls = {"count": 0}

    def dying(real):
        def call(*args):
            calls["count"] += 1
            if calls["count"] == 4:
                raise SystemExit("the worker died")
            return real(*args)
        return call
    name = "_append" if dies.startswith("in the middle") else "_unlink"
    monkeypatch.setattr(pcapflow.dask, name, dying(getattr(pcapflow.dask, name)))
    with pytest.raises(SystemExit):
        pcapflow.dask._place(*arguments)  # pylint: disable=protected-access
    monkeypatch.undo()
    assert pcapflow.dask._place(*arguments) == sum(len(data) for data in expected.values()) - 2 * (24 + 16 + len(ethernet(packet)))  # pylint: disable=protected-access
    for whole, data in expected.items():
        assert whole.read_bytes() == data
    assert not list(tmp_path.glob("piece*"))


def test_a_stitched_flows_frame_numbers_joined_compact(tmp_path):
    """A flow's pieces' frame numbers are joined as the tracer keeps them (no int a frame):
    real flows' numbers one after another, and gaps of every length of the step's coding."""
    index = pcapflow.trace_files([str(EXAMPLE), str(DATA / "ssh.pcap")], str(tmp_path / "one"))
    flow = pcapflow.dask._Flow("label", "name", str(tmp_path), 0, 0, 0, 0)  # pylint: disable=protected-access
    expected = []
    for piece in index:  # each piece moved to start 3 frames after the one before
        first, last, count, steps = _core._frame_steps(piece)  # pylint: disable=protected-access
        shift = (expected[-1] + 3 if expected else 1) - first
        flow.frames.append((first + shift, last + shift, count, steps))
        expected += [number + shift for number in piece.index]
    joined = pcapflow.dask._flow_index("out", flow)  # pylint: disable=protected-access
    assert _core._frame_steps(joined) is not None, "kept compact"  # pylint: disable=protected-access
    assert joined.index == tuple(expected) and (joined.fpout, joined.label) == ("out", "label")
    assert len(expected) > 900
    for gap in (1, 63, 64, 127, 128, 8191, 8192, 2**21, 2**35):
        flow.frames = [(5, 9, 2, b"\x08"), (9 + gap, 9 + gap, 1, b"")]
        assert pcapflow.dask._flow_index("out", flow).index == (5, 9, 9 + gap)  # pylint: disable=protected-access


def test_frame_numbers_handed_over_compact(tmp_path):
    """A task hands its flows' frame numbers over as the tracer keeps them and the client
    makes each Index from them with its offset (C code the sanitizer runs go through here):
    the same numbers, shifted; malformed input is refused, never read past its end."""
    index = pcapflow.trace_files([str(EXAMPLE), str(DATA / "ssh.pcap")], str(tmp_path / "one"))
    exported = [_core._frame_steps(flow) for flow in index]  # pylint: disable=protected-access
    firsts, counts, ends = array.array("q"), array.array("I"), array.array("Q")
    for first, _last, count, steps in exported:
        firsts.append(first)
        counts.append(count)
        ends.append((ends[-1] if ends else 0) + len(steps))
    steps = b"".join(steps for *_rest, steps in exported)
    labels = [flow.label for flow in index]
    made = _core._indexes("out/", ".pcap", labels, firsts, counts, ends, steps, 1000, 2)  # pylint: disable=protected-access
    assert len(made) == len(index) - 2
    for flow, (first, last, count, _steps), again in zip(index[2:], exported[2:], made):
        assert again.index == tuple(number + 1000 for number in flow.index)
        assert (again.label, again.fpout) == (flow.label, f"out/{flow.label}.pcap")
        assert (first, last, count) == (flow.index[0], flow.index[-1], len(flow.index))
    assert max(counts) > 100, "a flow of many frames"
    made_here = pcapflow.Index(fpout="f", index=(1, 2), label="l")
    assert _core._frame_steps(made_here) is None, "an Index made with a tuple holds no compact numbers"  # pylint: disable=protected-access
    bad = [(labels, firsts, counts, ends, steps[:-1]),  # the last flow's steps cut short
           (labels[:-1], firsts, counts, ends, steps),  # a label missing
           ([1] * len(labels), firsts, counts, ends, steps)]  # not str
    for arguments in bad:
        with pytest.raises((ValueError, TypeError)):
            _core._indexes("", "", *arguments[:4], arguments[4], 0, 0)  # pylint: disable=protected-access
    with pytest.raises(ValueError):
        _core._index_from_steps("f", "l", 1, 3, b"\x02")  # pylint: disable=protected-access
