"""Stopping a capture: SIGINT, SIGTERM and KeyboardInterrupt.

The capture comes through a FIFO from a real writer process that sends some
frames of several flows (no FIN, so every flow is still open and buffered)
and then stays idle, or trickles a frame every 10 ms. The signal must stop
pcapflow within seconds (it used to take minutes, or forever), and every
frame read must be in its flow file: the files and the index are compared
with what trace_file() makes of the same frames written to a regular file.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pcapflow
from capture_tools import (ACK, ETHERNET, check_flow_files, ethernet, frames_at, ipv4, pcap_bytes, read_capture, tcp,
                           write_pcap)

MODULE = [sys.executable, "-m", "pcapflow"]
STOP_SECONDS = 5  # generous: before the fix an idle pipe was not left for minutes

# Writes the capture to the FIFO, waits until the reader has taken every byte
# (FIONREAD on the pipe), says so by creating `sent`, then keeps the FIFO open
# without writing. With a positive interval it writes one record at a time
# instead, `interval` seconds apart, creating `sent` after the first few;
# with a negative one it writes nothing at all.
WRITER = r"""
import fcntl, os, struct, sys, termios, time
fifo, capture, sent, interval = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
data = open(capture, "rb").read()
with open(fifo, "wb", buffering=0) as out:
    if interval < 0:  # not even the file header
        open(sent, "w").close()
        time.sleep(600)
    elif interval == 0:
        out.write(data)
        while struct.unpack("i", fcntl.ioctl(out.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]:
            time.sleep(0.01)
        open(sent, "w").close()
        time.sleep(600)
    else:
        out.write(data[:24])
        offset, count = 24, 0
        while offset < len(data):
            length = struct.unpack("<I", data[offset + 8:offset + 12])[0]
            out.write(data[offset:offset + 16 + length])
            offset += 16 + length
            count += 1
            if count == 20:
                open(sent, "w").close()
            time.sleep(interval)
        time.sleep(600)
"""


def many_flows(count, flows=5):
    """`count` frames spread over `flows` client connections, all ACK (no FIN): every flow stays open."""
    packets = []
    for i in range(count):
        flow = i % flows
        packets.append(ethernet(ipv4(f"10.0.0.{flow + 1}", "10.0.1.1",
                                     tcp(40000 + flow, 80, ACK, b"x" * (i % 50), seq=1 + i))))
    return frames_at(packets)


class Feed:
    """A FIFO in tmp_path and the writer process feeding it."""

    def __init__(self, tmp_path, records, interval=0.0):
        self.tmp_path = tmp_path
        self.records = records
        self.fifo = tmp_path / "fifo"
        self.sent = tmp_path / "sent"
        os.mkfifo(self.fifo)
        capture = write_pcap(tmp_path / "capture.pcap", records, ETHERNET)
        self.writer = subprocess.Popen([sys.executable, "-c", WRITER, str(self.fifo), str(capture), str(self.sent),
                                        str(interval)])

    def wait_sent(self):
        deadline = time.monotonic() + 60
        while not self.sent.exists():
            assert time.monotonic() < deadline, "the writer did not get its frames read"
            assert self.writer.poll() is None, "the writer died"
            time.sleep(0.01)
        time.sleep(0.3)  # the reader traces what it took

    def close(self):
        self.writer.kill()
        self.writer.wait()


@pytest.fixture
def feed(tmp_path):
    feeds = []

    def make(records, interval=0.0):
        feeds.append(Feed(tmp_path, records, interval))
        return feeds[-1]

    yield make
    for made in feeds:
        made.close()


def reference(tmp_path, records, frames):
    """trace_file() of the first `frames` records written to a regular file: its index, names relative to its directory."""
    path = write_pcap(tmp_path / f"first{frames}.pcap", records[:frames], ETHERNET)
    out = tmp_path / f"reference{frames}"
    index = pcapflow.trace_file(str(path), str(out))
    return [(flow.label, list(flow.index), Path(flow.fpout).read_bytes()) for flow in index]


def same_as_reference(tmp_path, records, flows):
    """Every frame number from 1 to the last one read is in some flow, and the flows and their files are
    those trace_file() makes of those frames read from a regular file."""
    numbers = sorted(n for flow in flows for n in flow.index)
    assert numbers == list(range(1, len(numbers) + 1)), "a frame read is missing from the flows"
    got = [(flow.label, list(flow.index), Path(flow.fpout).read_bytes()) for flow in flows]
    assert got == reference(tmp_path, records, len(numbers))
    check_flow_files(flows, read_capture(pcap_bytes(records, ETHERNET)))
    return len(numbers)


class IndexEntry:
    def __init__(self, entry):
        self.label, self.fpout, self.index = entry["label"], entry["fpout"], tuple(entry["index"])


@contextlib.contextmanager
def reaped(process):
    """The block that talks to `process`; it is killed on the way out if still running, so a failed
    assertion leaves no process behind."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def run_cli_until(feed_, signum, tmp_path, *extra, then=()):
    out, index = tmp_path / "out", tmp_path / "index.jsonl"
    process = subprocess.Popen(MODULE + [str(feed_.fifo), "-o", str(out), "--index", str(index), *extra],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(process):
        feed_.wait_sent()
        assert process.poll() is None, process.communicate()
        sent_at = time.monotonic()
        process.send_signal(signum)
        for pause, more in then:
            time.sleep(pause)
            process.send_signal(more)
        _, stderr = process.communicate(timeout=STOP_SECONDS)
        stopped_after = time.monotonic() - sent_at
    assert stopped_after < STOP_SECONDS
    assert "Traceback" not in stderr, stderr
    assert index.exists(), f"no index written; stderr: {stderr}"
    flows = [IndexEntry(json.loads(line)) for line in index.read_text().splitlines()]
    return process.returncode, stderr, flows


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_stopped_on_an_idle_pipe_writes_every_frame_read(tmp_path, feed, signum, status):
    records = many_flows(300)
    feed_ = feed(records)
    code, stderr, flows = run_cli_until(feed_, signum, tmp_path)
    assert code == status, stderr
    assert len(flows) == 5
    assert same_as_reference(tmp_path, records, flows) == 300
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"pcapflow: interrupted by {signal.Signals(signum).name}; 300 packets, 300 TCP packets, "
                           f"5 flows, 5 files in "), last


@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGTERM, signal.SIGINT),
                                     (signal.SIGTERM, signal.SIGINT, signal.SIGTERM)])
def test_cli_signalled_again_while_it_writes_what_it_read(tmp_path, feed, signals):
    """A burst of signals (the user presses Ctrl-C again, a supervisor sends SIGTERM): one stops
    the command (Python runs the handlers of signals pending together in number order, so not
    necessarily the first sent), the others do not cut the writing of the frames read and the
    index short."""
    records = many_flows(3000)
    feed_ = feed(records)
    first, *more = signals
    code, stderr, flows = run_cli_until(feed_, first, tmp_path, then=[(0, signum) for signum in more])
    assert code in (130, 143), stderr
    name = "SIGINT" if code == 130 else "SIGTERM"
    assert f"pcapflow: interrupted by {name}; 3000 packets" in stderr
    assert same_as_reference(tmp_path, records, flows) == 3000


def test_cli_stopped_while_waiting_for_the_file_header(tmp_path, feed):
    feed_ = feed(many_flows(10), interval=-1)
    code, stderr, flows = run_cli_until(feed_, signal.SIGINT, tmp_path)
    assert code == 130, stderr
    assert flows == []
    assert stderr.strip().splitlines()[-1].startswith("pcapflow: interrupted by SIGINT; 0 packets, 0 TCP packets, "
                                                      "0 flows, 0 files in ")


def test_cli_stopped_on_a_slow_pipe_writes_every_frame_read(tmp_path, feed):
    records = many_flows(3000)  # 30 s of frames, one every 10 ms
    feed_ = feed(records, interval=0.01)
    code, stderr, flows = run_cli_until(feed_, signal.SIGINT, tmp_path)
    assert code == 130, stderr
    read = same_as_reference(tmp_path, records, flows)
    assert 20 <= read < 3000, read


TRACE_AND_INTERRUPT = r"""
import json, os, signal, sys, threading, time
import pcapflow
fifo, out, sent, how = sys.argv[1:5]

def interrupt_when_sent():
    while not os.path.exists(sent):
        time.sleep(0.01)
    time.sleep(0.3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGINT)
    else:
        signal.raise_signal(signal.SIGINT)  # delivered to this thread, not to the one reading

progress = None
if how == "progress":
    def progress(read, total, packets, open_flows):
        if os.path.exists(sent) and packets == 300:
            raise KeyboardInterrupt("enough")
else:
    threading.Thread(target=interrupt_when_sent, daemon=True).start()
stats = {}
try:
    pcapflow.trace_file(fifo, out, progress=progress, stats=stats)
except KeyboardInterrupt as interrupt:
    print(json.dumps({"index": [[flow.label, flow.fpout, list(flow.index)] for flow in interrupt.index],
                      "frames": stats["frames"], "args": list(interrupt.args)}))
else:
    print("not interrupted")
"""


@pytest.mark.parametrize("how", ["kill", "raise_signal", "progress"])
def test_trace_file_interrupted_raises_after_writing_every_frame_read(tmp_path, feed, how):
    records = many_flows(300)
    feed_ = feed(records)
    try:
        done = subprocess.run([sys.executable, "-c", TRACE_AND_INTERRUPT, str(feed_.fifo), str(tmp_path / "out"),
                               str(feed_.sent), how], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("trace_file() was not interrupted")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    flows = [IndexEntry({"label": label, "fpout": fpout, "index": index}) for label, fpout, index in result["index"]]
    assert len(flows) == 5 and result["frames"] == 300
    assert same_as_reference(tmp_path, records, flows) == 300
    if how == "progress":
        assert result["args"] == ["enough"]


def test_trace_file_without_an_interrupt_still_reads_an_idle_pipe_to_its_end(tmp_path):
    """A signal whose handler does not raise (SIGUSR1 here, caught) leaves the capture going."""
    records = many_flows(100)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    capture = pcap_bytes(records, ETHERNET)
    code = r"""
import os, signal, sys, threading, time
import pcapflow
fifo, out, data = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
caught = []
signal.signal(signal.SIGUSR1, lambda *a: caught.append(1))
def feed():
    with open(fifo, "wb") as w:
        w.write(data[:len(data) // 2])
        w.flush()
        for _ in range(5):
            time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGUSR1)
        w.write(data[len(data) // 2:])
threading.Thread(target=feed, daemon=True).start()
index = pcapflow.trace_file(fifo, out)
print(len(caught), sum(len(flow.index) for flow in index))
"""
    (tmp_path / "capture").write_bytes(capture)
    done = subprocess.run([sys.executable, "-c", code, str(fifo), str(tmp_path / "out"), str(tmp_path / "capture")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5", "100"]


# ---------------------------------------------------------------------------
# The text formats (pcapkit decodes, pcapflow traces and writes with dictdumper)
# ---------------------------------------------------------------------------

def text_reference(tmp_path, records, frames, fmt):
    path = write_pcap(tmp_path / f"text{frames}.pcap", records[:frames], ETHERNET)
    index = pcapflow.trace_file(str(path), str(tmp_path / f"text-reference{frames}"), fmt)
    return [(flow.label, list(flow.index), Path(flow.fpout).read_bytes()) for flow in index]


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_text_format_stopped_on_an_idle_pipe_traces_what_it_read(tmp_path, feed, signum, status):
    """A text format reads a pipe to its end before pcapkit decodes it: stopped before the end, it
    traces the whole frames read, then exits."""
    pytest.importorskip("pcapkit")
    records = many_flows(40)
    feed_ = feed(records)
    code, stderr, flows = run_cli_until(feed_, signum, tmp_path, "-f", "json")
    assert code == status, stderr
    got = [(flow.label, list(flow.index), Path(flow.fpout).read_bytes()) for flow in flows]
    assert got == text_reference(tmp_path, records, 40, "json")
    assert f"interrupted by {signal.Signals(signum).name}; 40 packets, 40 TCP packets, 5 flows" in stderr


def test_cli_text_format_stopped_while_tracing_leaves_whole_documents(tmp_path):
    """SIGINT while pcapkit's frames are traced from a regular file: it takes effect between two frames,
    so every flow file is a whole JSON document holding exactly the frames of its index."""
    pytest.importorskip("pcapkit")
    records = many_flows(3000)
    capture = write_pcap(tmp_path / "capture.pcap", records, ETHERNET)
    out, index = tmp_path / "out", tmp_path / "index.jsonl"
    process = subprocess.Popen(MODULE + [str(capture), "-o", str(out), "-f", "json", "--index", str(index)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(process):
        deadline = time.monotonic() + 60
        while not (out.is_dir() and len(os.listdir(out)) == 5):
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.01)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=STOP_SECONDS)
    assert process.returncode == 130, stderr
    flows = [IndexEntry(json.loads(line)) for line in index.read_text().splitlines()]
    numbers = sorted(n for flow in flows for n in flow.index)
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) < 3000, numbers[-1:]
    for flow in flows:
        assert len(json.loads(Path(flow.fpout).read_text())) == len(flow.index), flow.fpout
    got = [(flow.label, list(flow.index), Path(flow.fpout).read_bytes()) for flow in flows]
    assert got == text_reference(tmp_path, records, len(numbers), "json")


SLOW_DUMPER = r"""
import json, os, signal, sys, threading, time
from dictdumper.json import JSON
import pcapflow

class SlowJSON(JSON):
    # frame 3 is half-written (its closing bytes not yet) when SIGINT comes
    def _append_value(self, value, file, name):
        super()._append_value(value, file, name)
        if name == "Frame 3":
            file.flush()
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
            time.sleep(0.5)

pcapflow.TCP.register_dumper("slowjson", SlowJSON, ".json")
try:
    pcapflow.trace_file(sys.argv[1], sys.argv[2], "slowjson")
    print("not interrupted")
except KeyboardInterrupt as interrupt:
    documents = {flow.fpout: list(json.load(open(flow.fpout))) for flow in interrupt.index}
    print(json.dumps([[flow.fpout, list(flow.index), documents[flow.fpout]] for flow in interrupt.index]))
"""


def test_a_signal_while_a_text_frame_is_written_takes_effect_after_it(tmp_path):
    """The SIGINT arrives while dictdumper is in the middle of a frame: the KeyboardInterrupt comes after
    that frame is whole, so every file is a whole document with the frames of its index."""
    pytest.importorskip("pcapkit")
    capture = write_pcap(tmp_path / "capture.pcap", many_flows(10), ETHERNET)
    done = subprocess.run([sys.executable, "-c", SLOW_DUMPER, str(capture), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    flows = json.loads(done.stdout)
    assert sorted(n for _, index, _ in flows for n in index) == [1, 2, 3]
    for _, index, names in flows:
        assert names == [f"Frame {n}" for n in index]


def test_cli_stopped_while_the_fifo_has_no_writer(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    process = subprocess.Popen(MODULE + [str(fifo), "-o", str(tmp_path / "out"), "--index", str(tmp_path / "index")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(process):
        time.sleep(1)  # Python starts and blocks opening the FIFO
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=STOP_SECONDS)
    assert process.returncode == 143, stderr
    assert (tmp_path / "index").read_text() == ""


PACKETS_FROM_A_PIPE = r"""
import sys
import pcapflow
count = 0
try:
    for packet in pcapflow.packets(sys.argv[1]):
        count += 1
        print(count, flush=True)
except KeyboardInterrupt:
    print("interrupted", count, flush=True)
"""


def test_packets_from_an_idle_pipe_stops_on_sigint(tmp_path, feed):
    """pcapflow.packets() waiting on an idle pipe raises KeyboardInterrupt (it waited forever)."""
    feed_ = feed(many_flows(30))
    process = subprocess.Popen([sys.executable, "-c", PACKETS_FROM_A_PIPE, str(feed_.fifo)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(process):
        for expected in range(1, 31):
            assert process.stdout.readline().split() == [str(expected)]
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=STOP_SECONDS)
    assert process.returncode == 0, stderr
    assert stdout.split() == ["interrupted", "30"]
