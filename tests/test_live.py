"""Live capture (pcapflow -i, trace_live) on real interfaces: a veth pair between
two network namespaces made here, a real HTTP server and client, and tcpdump -w
on the same interface as the reference. The flows pcapflow traces while the
traffic runs must be those pcapflow.trace_file() finds in tcpdump's file (so,
by the rest of the suite, pcapkit's), file for file, byte for byte."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest

import pcapflow
from capture_tools import read_capture
from netns import Link, Namespace, cannot_make_namespaces, http_requests, http_server, slow_request

WHY_NOT = cannot_make_namespaces()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

PORT = 8000
TCP_TO_SERVER = f"tcp port {PORT}"


@pytest.fixture
def link(tmp_path):
    made = Link()
    (tmp_path / "www").mkdir()
    server = http_server(made, tmp_path / "www", PORT)
    yield made
    server.kill()
    server.wait()
    made.delete()


class Capture:
    """A capturing process on the server's end of the link, started and ready."""

    def __init__(self, link, args, ready_text):
        self.process = link.server.popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.first_line = self.process.stderr.readline()
        assert ready_text in self.first_line, self.first_line + self.process.stderr.read()

    def stop(self, signum=signal.SIGINT):
        self.process.send_signal(signum)
        return self.wait()

    def wait(self, timeout=60):
        _, rest = self.process.communicate(timeout=timeout)
        return self.process.returncode, self.first_line + rest


def pcapflow_capture(link, out, *options):
    return Capture(link, [sys.executable, "-m", "pcapflow", "-i", link.server_side, "-o", str(out),
                          "--kernel-buffer-mb", "32", *options], "pcapflow: capturing on")


def tcpdump_capture(link, path, *options):
    # -Z root: tcpdump would otherwise give up root for its own user, who cannot write here
    # --immediate-mode: frames the kernel holds at the stop are not lost
    return Capture(link, ["tcpdump", "-i", link.server_side, "-w", str(path), "-U", "--immediate-mode", "-B", "32768", "-n", "-Z", "root",
                          "--time-stamp-precision", "nano", "-s", "262144", *options], "listening on")


def settle():
    """Time for the last frames to reach both capturers (a wait, not a measurement)."""
    time.sleep(0.5)


def index_lines(path):
    return [(entry["label"], tuple(entry["index"]), entry["fpout"]) for entry in map(json.loads, path.read_text().splitlines())]


# The kernel stamps a frame for each packet socket in turn as it hands it over, so
# tcpdump's times and pcapflow's differ by a microsecond or so (seen: 0.5 to 0.8 us):
# times are compared to within a millisecond, all else exactly.
CLOCK_SKEW = Decimal("0.001")


def split_label(label):
    """(endpoints, time) of a label "{src}_{port}-{dst}_{port}-{time}"."""
    endpoints, _, stamp = label.rpartition("-")
    return endpoints, Decimal(stamp)


def assert_same_flows(index_file, out, reference):
    """pcapflow -i's index and files equal trace_file()'s of tcpdump's capture: the same
    flows in the same order, the same frame numbers, the same frames in each file."""
    live = index_lines(index_file)
    assert len(live) == len(reference)
    for (label, frames, fpout), want in zip(live, reference):
        (endpoints, stamp), (want_endpoints, want_stamp) = split_label(label), split_label(want.label)
        assert (endpoints, frames) == (want_endpoints, tuple(want.index))
        assert abs(stamp - want_stamp) < CLOCK_SKEW, (label, want.label)
        assert os.path.dirname(fpout) == str(out)
        got, expected = read_capture(fpout), read_capture(want.fpout)
        assert (got.linktype, got.nanosecond) == (expected.linktype, expected.nanosecond)
        assert [(r.data, r.orig_len) for r in got.records] == [(r.data, r.orig_len) for r in expected.records]
        for record, want_record in zip(got.records, expected.records):
            assert abs(record.time_epoch - want_record.time_epoch) < CLOCK_SKEW
    assert len(os.listdir(out)) == len({fpout for _, _, fpout in live})


def readable_by_tshark(files):
    """capinfos (Wireshark's reader) opens every file; returns its packet counts by file."""
    done = subprocess.run(["capinfos", "-T", "-r", "-c", *map(str, files)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return {os.path.basename(line.split("\t")[0]): int(line.split("\t")[1]) for line in done.stdout.splitlines()}


def test_same_flows_as_tcpdump_after_sigint(link, tmp_path):
    out, index_file, dump = tmp_path / "flows", tmp_path / "index.jsonl", tmp_path / "tcpdump.pcap"
    reference_capture = tcpdump_capture(link, dump, TCP_TO_SERVER)
    live = pcapflow_capture(link, out, "--filter", TCP_TO_SERVER, "--index", str(index_file))
    http_requests(link, 20, port=PORT)
    settle()
    code, said = live.stop()
    assert code == 0, said
    assert "stopped by SIGINT" in said and " dropped by kernel" in said
    code, tcpdump_said = reference_capture.stop()
    assert code == 0 and "\n0 packets dropped by kernel" in tcpdump_said, tcpdump_said
    reference = pcapflow.trace_file(str(dump), str(tmp_path / "reference"))
    assert len(reference) >= 40, tcpdump_said  # 20 connections, each direction a flow
    assert_same_flows(index_file, out, reference)
    counts = readable_by_tshark(out.iterdir())
    assert counts == {os.path.basename(fpout): len(frames) for _, frames, fpout in index_lines(index_file)}
    # and tshark itself dissects the largest: every frame TCP, from the flow's source port
    largest = max(out.iterdir(), key=lambda path: path.stat().st_size)
    source_port = largest.name.split("-")[0].rsplit("_", 1)[1]
    done = subprocess.run(["tshark", "-r", str(largest), "-T", "fields", "-e", "tcp.srcport"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [source_port] * counts[largest.name]


def ends_with_fin(path):
    """Whether the last frame of a flow file (Ethernet, IPv4, TCP) carries FIN."""
    try:
        records = read_capture(path).records
    except (OSError, ValueError):  # still being written
        return False
    if not records:
        return False
    frame = records[-1].data
    header_length = (frame[14] & 0x0F) * 4
    return bool(frame[14 + header_length + 13] & 0x01)


def test_a_fin_closed_flow_is_on_disk_while_the_capture_runs(link, tmp_path):
    out = tmp_path / "flows"
    live = pcapflow_capture(link, out, "--filter", TCP_TO_SERVER, "--index", str(tmp_path / "index.jsonl"))
    try:
        http_requests(link, 3, port=PORT)
        # 3 connections closed by FINs from both sides: 6 flows whose files are whole
        # (their FIN last) while pcapflow still captures
        deadline = time.monotonic() + 30
        closed = []
        while time.monotonic() < deadline and len(closed) < 6:
            closed = [path for path in out.glob("*.pcap") if ends_with_fin(path)]
            time.sleep(0.01)
        during = {path.name: path.read_bytes() for path in closed}
        assert len(during) == 6 and live.process.poll() is None
    finally:
        code, said = live.stop()
    assert code == 0, said
    # nothing was added to them at the stop, and the index lists them as closed, last
    assert {name: (out / name).read_bytes() for name in during} == during
    flows = index_lines(tmp_path / "index.jsonl")
    assert sorted(os.path.basename(fpout) for _, _, fpout in flows[-6:]) == sorted(during)


def test_idle_timeout_equals_tracing_tcpdumps_file_with_it(link, tmp_path):
    out, index_file, dump = tmp_path / "flows", tmp_path / "index.jsonl", tmp_path / "tcpdump.pcap"
    reference_capture = tcpdump_capture(link, dump, TCP_TO_SERVER)
    live = pcapflow_capture(link, out, "--filter", TCP_TO_SERVER, "--idle-timeout", "0.5", "--index",
                            str(index_file))
    # a connection silent for 2 s in the middle of its request: both directions idle out
    # (on a link without traffic), and its next frames open new flows
    slow_request(link, 2.0, port=PORT)
    http_requests(link, 2, port=PORT)
    settle()
    code, said = live.stop()
    assert code == 0, said
    assert reference_capture.stop()[0] == 0
    stats = {}
    reference = pcapflow.trace_file(str(dump), str(tmp_path / "reference"), idle_timeout=0.5, stats=stats)
    assert stats["idle_closed"] >= 2
    assert f"{stats['idle_closed']} closed idle" in said
    assert_same_flows(index_file, out, reference)
    # the slow connection (its SYN is frame 1) is cut where it paused: its client's side
    # is two flows, the first closed for being idle
    times = [record.time_epoch for record in read_capture(dump).records]
    endpoints = next(split_label(flow.label)[0] for flow in reference if flow.index[0] == 1)
    first, second = sorted((flow for flow in reference if split_label(flow.label)[0] == endpoints),
                           key=lambda flow: flow.index[0])[:2]
    assert times[second.index[0] - 1] - times[first.index[-1] - 1] > Decimal("1.5")


def test_count_ends_the_capture_like_tcpdump_c(link, tmp_path):
    out, index_file, dump = tmp_path / "flows", tmp_path / "index.jsonl", tmp_path / "tcpdump.pcap"
    reference_capture = tcpdump_capture(link, dump, "-c", "25", TCP_TO_SERVER)
    live = pcapflow_capture(link, out, "-c", "25", "--filter", TCP_TO_SERVER, "--index", str(index_file))
    http_requests(link, 10, port=PORT)
    code, said = live.wait()  # ends by itself
    assert code == 0, said
    assert "pcapflow: 25 packets, 25 TCP packets" in said
    assert reference_capture.wait()[0] == 0
    reference = pcapflow.trace_file(str(dump), str(tmp_path / "reference"))
    assert_same_flows(index_file, out, reference)
    assert sorted(n for _, frames, _ in index_lines(index_file) for n in frames) == list(range(1, 26))


def test_duration_ends_the_capture(link, tmp_path):
    live = pcapflow_capture(link, tmp_path / "flows", "--duration", "1", "--index", str(tmp_path / "i.jsonl"))
    http_requests(link, 2, port=PORT)
    code, said = live.wait()  # ends by itself, traffic or not
    assert code == 0 and "pcapflow: " in said.splitlines()[-1], said
    assert len(index_lines(tmp_path / "i.jsonl")) >= 4


def test_sigterm_writes_everything(link, tmp_path):
    out, index_file = tmp_path / "flows", tmp_path / "index.jsonl"
    live = pcapflow_capture(link, out, "--filter", TCP_TO_SERVER, "--index", str(index_file))
    http_requests(link, 5, port=PORT)
    settle()
    code, said = live.stop(signal.SIGTERM)
    assert code == 0 and "stopped by SIGTERM" in said, said
    flows = index_lines(index_file)
    # each connection: two flows closed by FIN (and its last ACK, which opens one more)
    assert sum(ends_with_fin(fpout) for _, _, fpout in flows) >= 10
    counts = readable_by_tshark(out.iterdir())
    assert counts == {os.path.basename(fpout): len(frames) for _, frames, fpout in flows}


def run_pcapflow(args, namespace=None, prefix=()):
    command = [*prefix, sys.executable, "-m", "pcapflow", *args]
    runner = namespace.run if namespace else subprocess.run
    return runner(command, capture_output=True, text=True, timeout=60, check=False)


def test_missing_interface(tmp_path):
    done = run_pcapflow(["-i", "pfnosuch0", "-o", str(tmp_path / "out")])
    assert done.returncode == 1
    assert done.stderr.strip() == "pcapflow: no such interface: 'pfnosuch0' ('ip link' lists them)"


def test_bad_filter_is_a_usage_error(link, tmp_path):
    done = run_pcapflow(["-i", link.server_side, "-o", str(tmp_path / "out"), "--filter", "tcp port"], link.server)
    assert done.returncode == 2 and "BPF filter 'tcp port' does not compile" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_interface_down(tmp_path):
    namespace = Namespace(f"pfdown{os.getpid()}")
    try:
        subprocess.run(["ip", "-n", namespace.name, "link", "set", "lo", "down"], check=True)
        done = run_pcapflow(["-i", "lo", "-o", str(tmp_path / "out")], namespace)
    finally:
        namespace.delete()
    assert done.returncode == 1 and done.stderr.strip() == "pcapflow: interface 'lo' is down ('ip link set lo up')"


def test_no_permission(tmp_path):
    # root without CAP_NET_RAW, as a user without it is
    done = run_pcapflow(["-i", "lo", "-o", str(tmp_path / "out")], prefix=["setpriv", "--bounding-set=-net_raw"])
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("pcapflow: no permission to capture on 'lo': run as root or give the program "
                                  "CAP_NET_RAW"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["-i", "lo"], "-o/--output"),
    (["-i", "lo", "-o", "x", "some.pcap"], "give no capture files with it"),
    (["-o", "x", "some.pcap", "-c", "5"], "--count needs -i INTERFACE"),
    (["-o", "x", "some.pcap", "--duration", "5"], "--duration needs -i INTERFACE"),
    (["-i", "lo", "-o", "x", "-c", "0"], "must be more than 0"),
    (["-i", "lo", "-o", "x", "--duration", "-1"], "must be more than 0"),
    (["-i", "lo", "-o", "x", "--duration", "nan"], "must be more than 0"),
    (["-i", "lo", "-o", "x", "-f", "json"], "-i writes pcap files"),
    (["-i", "lo", "-o", "x", "--snaplen", "300000"], "--snaplen must be at most 262144"),
    (["-o", "x"], "give captures to read, or -i INTERFACE"),
])
def test_usage_errors(args, message):
    done = run_pcapflow(args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


# ---- the Python API, on the test process's own loopback ----

def local_http(count):
    """count HTTP/1.0 requests to a server in this process on 127.0.0.1; returns its port and a
    function that makes the requests."""
    import http.server
    import urllib.request

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"x" * 5000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def requests():
        for _ in range(count):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()

    return server, port, requests


def test_trace_live_returns_the_index_and_the_kernels_counts(tmp_path):
    server, port, requests = local_http(4)
    stats, opened = {}, []

    def started(info):
        opened.append(info)
        threading.Thread(target=requests).start()

    try:
        flows = pcapflow.trace_live("lo", str(tmp_path / "out"), filter=f"tcp port {port}", count=4 * 9,
                                    duration=60, stats=stats, started=started)
    finally:
        server.shutdown()
    assert opened == [{"interface": "lo", "linktype": "EN10MB", "linktype_description": "Ethernet",
                       "snaplen": 262144, "nanosecond": True}]
    assert stats["frames"] == 36 and stats["received"] >= 36 and stats["dropped"] == 0
    assert sorted(n for flow in flows for n in flow.index) == list(range(1, 37))
    assert all(os.path.isfile(flow.fpout) for flow in flows)


def test_keyboard_interrupt_stops_it_with_everything_written(tmp_path):
    server, port, requests = local_http(3)

    def started(info):
        def traffic_then_ctrl_c():
            requests()
            time.sleep(0.3)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        threading.Thread(target=traffic_then_ctrl_c).start()

    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            pcapflow.trace_live("lo", str(tmp_path / "out"), filter=f"tcp port {port}", started=started)
    finally:
        server.shutdown()
    flows = stopped.value.index
    assert sum(ends_with_fin(flow.fpout) for flow in flows) >= 6 and stopped.value.stats["frames"] >= 6 * 3
    for flow in flows:
        assert len(read_capture(flow.fpout).records) == len(flow.index)


def test_a_failing_started_callback_stops_before_capturing(tmp_path):
    def started(info):
        raise RuntimeError("not now")

    with pytest.raises(RuntimeError, match="not now"):
        pcapflow.trace_live("lo", str(tmp_path / "out"), started=started)


@pytest.mark.parametrize("kwargs, error, name", [
    ({"count": -1}, ValueError, "count"), ({"count": "5"}, TypeError, "count"),
    ({"duration": 0}, ValueError, "duration"), ({"duration": "1"}, TypeError, "duration"),
    ({"snaplen": 10**6}, ValueError, "snaplen"), ({"buffer_mb": 0}, ValueError, "buffer_mb"),
    ({"buffer_mb": 1.5}, TypeError, "buffer_mb"), ({"idle_timeout": -2}, ValueError, "idle_timeout"),
    ({"filter": 5}, TypeError, "filter"), ({"progress": 5}, TypeError, "progress"),
    ({"started": 5}, TypeError, "started"), ({"format": "json"}, ValueError, "format"),
])
def test_bad_arguments_name_themselves(tmp_path, kwargs, error, name):
    with pytest.raises(error, match=name):
        pcapflow.trace_live("lo", str(tmp_path / "out"), **{"duration": 0.1, **kwargs})


@pytest.mark.parametrize("interface, error", [("", ValueError), ("lo\0x", ValueError), (b"lo", TypeError),
                                              ("pfnosuch0", OSError)])
def test_bad_interfaces(tmp_path, interface, error):
    with pytest.raises(error):
        pcapflow.trace_live(interface, str(tmp_path / "out"), duration=0.1)
