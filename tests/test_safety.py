"""A tracer is safe under any caller: threads sharing it, Python code it runs
that calls back into it, inputs that cannot be written.

Each test reproduces a way pcapflow crashed or lost data when tried as a
hostile user would. The crashing ones run in a child interpreter, so that a
crash fails the test instead of ending the test run.
"""
import decimal
import ipaddress
import json
import os
import threading

import pytest

import pcapflow
from _support import CLIENT6, SERVER6, make_frame, make_packet, read_pcap, run_python

Packet = pcapflow.Packet
DATA = os.path.join(os.path.dirname(__file__), "data")


def flows_by_label(indexes):
    return {flow.label: tuple(flow.index) for flow in indexes}


def run_child(code, *args):
    done = run_python(code, *args, timeout=300)
    assert done.returncode == 0, f"child exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


# --- threads ---------------------------------------------------------------------

THREADS_SHARING_A_JSON_TRACER = r"""
import json, os, sys, threading
sys.path.insert(0, sys.argv[2])
import pcapflow
from _support import make_packet

sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
out = sys.argv[1]
tracer = pcapflow.TCP(out, "json")
THREADS, FLOWS, FRAMES = 4, 30, 3

def work(thread):
    for frame in range(FRAMES):
        for flow in range(FLOWS):
            number = 1 + thread * 10_000 + flow * 100 + frame
            tracer.dump(make_packet(pcapflow.Packet, number, srcport=1000 + thread * 100 + flow,
                                    timestamp=1.0 + thread))

workers = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
for w in workers: w.start()
for w in workers: w.join()
index = tracer.submit()
tracer.close()
print(json.dumps([[flow.label, list(flow.index), flow.fpout] for flow in index]))
"""


def test_threads_share_a_json_tracer(out):
    """Four threads dump their own flows through one json tracer (whose dumper
    constructor releases the GIL): every flow is there with its frames in
    order, and every file holds them."""
    flows = json.loads(run_child(THREADS_SHARING_A_JSON_TRACER, out, os.path.dirname(__file__)))
    assert len(flows) == 4 * 30
    for label, frames, fpout in flows:
        thread = int(label.split("-")[-1].split(".")[0]) - 1
        flow = int(label.split("_")[1].split("-")[0]) - 1000 - thread * 100
        assert frames == [1 + thread * 10_000 + flow * 100 + frame for frame in range(3)]
        with open(fpout, encoding="utf-8") as file:
            document = json.load(file)
        assert [key for key in document if key.startswith("Frame")] == [f"Frame {n}" for n in frames]


CAPTURE_AND_TRACE_AT_ONCE = r"""
import collections.abc, json, sys, threading, time
import pcapflow

out, capture = sys.argv[1], sys.argv[2]
tracer = pcapflow.TCP(out, "pcap")

class SlowPacket(collections.abc.Mapping):
    # a mapping whose every lookup lets other threads run
    def __init__(self, fields, **more):
        self.fields = {**fields, **more}
    def __getitem__(self, key):
        time.sleep(0.001)
        return self.fields[key]
    def __iter__(self):
        return iter(self.fields)
    def __len__(self):
        return len(self.fields)

# the capture's own packets, so that both threads open and close the same flows
FIELDS = ("protocol", "index", "frame", "syn", "fin", "src", "dst", "srcport", "dstport", "timestamp")
with pcapflow.packets(capture) as packets:
    mine = [SlowPacket({key: packet[key] for key in FIELDS}, index=10_000_000 + packet["index"]) for packet in packets]

def trace_slowly():
    for packet in mine:
        while True:
            try:
                tracer.trace(packet)
                break
            except RuntimeError as error:  # refused while the capture runs; waited for otherwise
                assert "tracing a capture in another thread" in str(error), error
                time.sleep(0.001)

rounds = 0
def trace_capture():
    global rounds
    while slow.is_alive() or rounds == 0:
        tracer._trace_capture(capture)
        rounds += 1

slow = threading.Thread(target=trace_slowly)
fast = threading.Thread(target=trace_capture)
slow.start(); fast.start()
slow.join(); fast.join()
print(json.dumps([rounds, [[flow.label, list(flow.index)] for flow in tracer.submit()]]))
tracer.close()
"""


def test_trace_while_another_thread_traces_a_capture(out, tmp_path):
    """One thread traces mappings whose lookups release the GIL while another
    traces a capture with the same tracer: the capture waits for the trace()
    under way, trace() is refused while the capture runs, and the result
    holds both threads' frames."""
    capture = os.path.join(DATA, "http_ip4and6.pcapng")
    rounds, flows = json.loads(run_child(CAPTURE_AND_TRACE_AT_ONCE, out, capture, os.path.dirname(__file__)))
    frames = sorted(number for _, index in flows for number in index)
    alone = pcapflow.trace_file(capture, str(tmp_path / "alone"))
    captured = sorted(number for flow in alone for number in flow.index)
    assert [number for number in frames if number < 10_000_000] == sorted(captured * rounds)
    assert [number - 10_000_000 for number in frames if number > 10_000_000] == captured


# --- Python code the tracer runs, calling back into it ---------------------------

def test_fin_callback_initialising_the_tracer_again(out, tmp_path, restore_tcp_callbacks):
    """A FIN callback may call __init__ on its tracer: the callbacks after it
    still get the closed flow's Index, and the tracer goes on with its new
    output."""
    class Tracer(pcapflow.TCP):
        pass

    seen = []
    tracer = Tracer(out)
    Tracer.register_callback(lambda index: tracer.__init__(str(tmp_path / "second")))
    Tracer.register_callback(lambda index: seen.append((index.label, index.index)))
    label = tracer.trace(make_packet(Packet, 1, fin=True, timestamp=1.5))
    assert seen == [(label, (1,))]
    assert tracer.index == ()
    second = tracer.trace(make_packet(Packet, 2, timestamp=2.5))
    assert [flow.label for flow in tracer.submit()] == [second]
    assert os.path.exists(os.path.join(tmp_path, "second", second + ".pcap"))


def test_fin_callback_tracing_with_its_tracer(out, restore_tcp_callbacks):
    """A FIN callback may trace and dump with the tracer that called it."""
    class Tracer(pcapflow.TCP):
        pass

    tracer = Tracer(out)
    Tracer.register_callback(lambda index: tracer.dump(make_packet(Packet, 100, srcport=1234, fin=index.index == (1,))))
    tracer.dump(make_packet(Packet, 1, fin=True, timestamp=1.5))
    flows = flows_by_label(tracer.submit())
    assert sorted(flows.values()) == [(1,), (100,)]


DUMPER_TRACING_FROM_ITS_CONSTRUCTOR = r"""
import sys
sys.path.insert(0, sys.argv[2])
import dictdumper
import pcapflow
from _support import make_packet

class Tracer(pcapflow.TCP):
    pass

class Reentrant(dictdumper.JSON):
    def __init__(self, fname, **kwargs):
        tracer.trace(make_packet(pcapflow.Packet, 99, srcport=999))
        super().__init__(fname, **kwargs)

Tracer.register_dumper("reentrant", Reentrant, ".json")
tracer = Tracer(sys.argv[1], "reentrant")
try:
    tracer.dump(make_packet(pcapflow.Packet, 1))
except RuntimeError as error:
    print("RuntimeError:", error)
# the tracer is intact: the refused flow left nothing behind
print(len(tracer.submit()), tracer.open_flows)
Tracer.register_dumper("json2", pcapflow.TCP.__output__["json"][0], ".json")
"""


def test_dumper_constructor_tracing_with_the_tracer(out):
    """A dumper whose constructor traces with the tracer that is making it gets
    a RuntimeError (the tracer is in the middle of opening a flow), and the
    tracer stays consistent."""
    printed = run_child(DUMPER_TRACING_FROM_ITS_CONSTRUCTOR, out, os.path.dirname(__file__)).splitlines()
    assert printed[0].startswith("RuntimeError: TCP.trace() called from code this tracer is running")
    assert printed[1] == "0 0"


def test_timestamp_str_tracing_with_the_tracer(out):
    """Converting a field runs the field's own code; if that code traces with
    the same tracer, it gets a RuntimeError and nothing is half-made."""
    tracer = pcapflow.TCP(out)

    class Sneaky(decimal.Decimal):
        def __str__(self):
            tracer.trace(make_packet(Packet, 50, srcport=5))
            return super().__str__()

    with pytest.raises(RuntimeError, match="called from code this tracer is running"):
        tracer.trace(make_packet(Packet, 1, timestamp=Sneaky("1.5")))
    assert tracer.submit() == ()
    label = tracer.trace(make_packet(Packet, 2, timestamp=decimal.Decimal("2.5")))
    assert flows_by_label(tracer.submit()) == {label: (2,)}


def test_flow_writer_from_before_init_again(out, tmp_path):
    """A writer returned by trace(output=True) belongs to the tracer's output
    at the time: after __init__ it refuses to write instead of writing into a
    flow of the new output that happens to use the same slot."""
    tracer = pcapflow.TCP(out)
    writer = tracer.trace(make_packet(Packet, 1), output=True)
    tracer.__init__(str(tmp_path / "second"))
    tracer.trace(make_packet(Packet, 2))
    with pytest.raises(RuntimeError, match="initialised again"):
        writer(make_frame(b"late"))
    (flow,) = tracer.submit()
    assert [record["data"] for record in read_pcap(flow.fpout)[1]] == []


# --- what cannot be written is refused before anything changes --------------------

def test_frame_longer_than_the_snapshot_length(out):
    """A frame longer than the pcap files' snapshot length (262,144) would make
    the flow's file unreadable from there on: it is refused, nothing traced."""
    tracer = pcapflow.TCP(out)
    tracer.dump(make_packet(Packet, 1, data=b"a" * 100))
    with pytest.raises(ValueError, match="'packet' holds 262145 bytes"):
        tracer.dump(make_packet(Packet, 2, data=b"b" * 262_145))
    tracer.dump(make_packet(Packet, 3, data=b"c" * 262_144))
    (flow,) = tracer.submit()
    assert flow.index == (1, 3)
    assert [len(record["data"]) for record in read_pcap(flow.fpout)[1]] == [100, 262_144]


def test_label_too_long_for_a_file_name(out):
    """A label whose file name would pass 255 bytes is refused by trace()
    (ValueError naming the timestamp), and the other flows stay reachable."""
    tracer = pcapflow.TCP(out)
    first = tracer.trace(make_packet(Packet, 1))
    widest = dict(src=ipaddress.ip_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
                  dst=ipaddress.ip_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), srcport=65535, dstport=65535)
    with pytest.raises(ValueError, match="too long for a file name.*field 'timestamp'"):
        tracer.trace(make_packet(Packet, 2, timestamp=decimal.Decimal("1." + "1" * 158), **widest))
    # 250 characters: with ".pcap" just fits, but not a second time as "_2.pcap"
    fits = decimal.Decimal("1." + "1" * 156)
    longest = tracer.trace(make_packet(Packet, 3, timestamp=fits, fin=True, **widest))
    assert len(longest) == 250
    with pytest.raises(ValueError, match="too long for a file name"):
        tracer.trace(make_packet(Packet, 4, timestamp=fits, **widest))
    assert flows_by_label(tracer.submit()) == {first: (1,), longest: (3,)}
    tracer.close()
    tracer = pcapflow.TCP(out)
    first = tracer.trace(make_packet(Packet, 1))
    assert flows_by_label(tracer.submit()) == {first: (1,)}
    assert flows_by_label(tracer.index) == {first: (1,)}
    tracer.close()


def test_long_label_without_files(tmp_path):
    """Without output files any label pcapkit accepts is accepted."""
    with pytest.warns(pcapflow.FormatWarning):
        tracer = pcapflow.TCP(str(tmp_path / "none"), "no-such-format")
    timestamp = decimal.Decimal("1." + "1" * 150)
    label = tracer.trace(make_packet(Packet, 1, timestamp=timestamp, src=CLIENT6, dst=SERVER6))
    assert label.endswith("-" + str(timestamp))
    assert flows_by_label(tracer.submit()) == {label: (1,)}


def test_output_directory_not_valid_utf8(tmp_path):
    """fout holding bytes that are not UTF-8 (as os.fsdecode gives them) is
    the directory of that name, as str or as bytes."""
    for name in (os.fsdecode(b"out-\xff\xfe"), os.fsencode(str(tmp_path)) + b"/bytes-\xff"):
        fout = name if isinstance(name, bytes) else str(tmp_path / name)
        tracer = pcapflow.TCP(fout)
        label = tracer.trace(make_packet(Packet, 1))
        (flow,) = tracer.submit()
        tracer.close()
        assert flow.fpout == os.fsdecode(fout) + "/" + label + ".pcap"
        assert os.path.exists(os.fsencode(flow.fpout))


def test_address_values_at_the_edges(out):
    """Addresses are read from the int ipaddress keeps, through public API on
    every Python: the widest values trace, and an address object whose value
    was tampered with is refused with the field's name."""
    tracer = pcapflow.TCP(out)
    for number, (src, dst) in enumerate([(ipaddress.IPv6Address(2**128 - 1), ipaddress.IPv6Address(0)),
                                         (ipaddress.IPv4Address(2**32 - 1), ipaddress.IPv4Address(0)),
                                         (ipaddress.IPv6Address(2**64), ipaddress.IPv6Address(2**64 - 1))], 1):
        label = tracer.trace(make_packet(Packet, number, src=src, dst=dst, timestamp=1.0))
        assert label == f"{src}_40000-{dst}_80-1.0".replace(":", ".") if src.version == 6 else \
            label == f"{src}_40000-{dst}_80-1.0"
    for kind, value in [(ipaddress.IPv4Address, -1), (ipaddress.IPv4Address, 2**32),
                        (ipaddress.IPv6Address, -1), (ipaddress.IPv6Address, 2**128), (ipaddress.IPv6Address, "1")]:
        bad = kind(1)
        object.__setattr__(bad, "_ip", value)
        with pytest.raises(ValueError, match="field 'dst'"):
            tracer.trace(make_packet(Packet, 9, dst=bad))
    assert len(tracer.submit()) == 3


def test_a_frame_that_cannot_be_written_is_not_in_the_index(out):
    """dump() of a frame the pcap file cannot hold (a time past 2**32 s)
    raises, and leaves no trace: not its frame number in an open flow, not a
    flow it would have opened."""
    tracer = pcapflow.TCP(out)
    tracer.dump(make_packet(Packet, 1))
    late = make_frame(b"late", ts_sec=2**32)
    with pytest.raises(ValueError, match="does not fit in 32 bits"):
        tracer.dump(make_packet(Packet, 2, frame=late))
    with pytest.raises(ValueError, match="does not fit in 32 bits"):
        tracer.dump(make_packet(Packet, 3, srcport=7, frame=late))
    tracer.dump(make_packet(Packet, 4))
    (flow,) = tracer.submit()
    assert flow.index == (1, 4)
    assert [record["data"] for record in read_pcap(flow.fpout)[1]] == [b"frame-1", b"frame-4"]
